
/*
 * fuzz/fuzz_reply.c: the reply renderer, in every wire format.
 *
 * The input: one byte of settings (classify_reply_format, whether the
 * client's body was an openai one and asked to stream), one byte picking
 * the clock (0, now, the time_t extremes), then the reply text, the
 * client's model, its Accept header and the classifier's name, separated
 * by "\n--\n".  Checked, beyond the sanitizers:
 *   - the format chosen is a real one and follows classify_reply_format
 *     when it is set; rendering takes no more than NGX_FUZZ_BUDGET() of
 *     CPU time for the input's size (ngx_fuzz_timed());
 *   - openai: one chat.completion whose content is the reply, or
 *     chat.completion.chunk events whose deltas put the reply together,
 *     the last with finish_reason "stop", then "data: [DONE]";
 *   - sse: read back as an SSE client would (any of \r\n, \r, \n end a
 *     line), the event's data is the reply, its line breaks as "\n";
 *   - json: {"verdict": name, "reply": text}; text: the reply as it is.
 * A reply or model with a NUL byte is skipped where cJSON would cut it:
 * they come from the configuration and from a checked body, never with one.
 */


#include "ngx_http_classify.h"
#include "ngx_fuzz.h"

#include <cjson/cJSON.h>


static ngx_int_t
ngx_fuzz_same(cJSON *item, ngx_str_t *s)
{
    return cJSON_IsString(item)
           && strlen(item->valuestring) == s->len
           && (s->len == 0 || memcmp(item->valuestring, s->data, s->len) == 0);
}


/* the chat.completion.chunk events: their contents, appended */

static void
ngx_fuzz_check_chunks(ngx_str_t *body, ngx_str_t *reply, ngx_str_t *model)
{
    u_char   *p, *last, *end, *text, *t;
    cJSON    *root, *choice, *content;
    size_t    len;
    ngx_uint_t  events, stopped;

    p = body->data;
    last = body->data + body->len;

    text = ngx_pnalloc(NULL, body->len + 1);
    t = text;
    events = 0;
    stopped = 0;

    for ( ;; ) {
        ngx_fuzz_assert(last - p >= 6 && ngx_strncmp(p, "data: ", 6) == 0,
                        "openai stream: an event that is not \"data: \"");
        p += 6;

        end = p;
        while (end < last && *end != '\n') {
            end++;
        }

        ngx_fuzz_assert(last - end >= 2 && end[1] == '\n',
                        "openai stream: an event not ended by a blank line");

        if (end - p == 6 && ngx_strncmp(p, "[DONE]", 6) == 0) {
            ngx_fuzz_assert(end + 2 == last,
                            "openai stream: bytes after [DONE]");
            break;
        }

        ngx_fuzz_assert(!stopped, "openai stream: an event after the stop");

        root = cJSON_ParseWithLength((const char *) p, end - p);
        ngx_fuzz_assert(root != NULL, "openai stream: an event is not JSON");

        ngx_fuzz_assert(ngx_fuzz_same(ngx_fuzz_get(root, "object"),
                                      &(ngx_str_t) ngx_string(
                                          "chat.completion.chunk")),
                        "openai stream: not a chat.completion.chunk");
        ngx_fuzz_assert(ngx_fuzz_same(ngx_fuzz_get(root, "model"),
                                      model),
                        "openai stream: the model changed");

        choice = cJSON_GetArrayItem(ngx_fuzz_get(root, "choices"), 0);
        content = ngx_fuzz_get(ngx_fuzz_get(choice, "delta"),
                                      "content");

        if (cJSON_IsString(content)) {
            len = strlen(content->valuestring);
            t = ngx_cpymem(t, content->valuestring, len);
        }

        if (cJSON_IsString(ngx_fuzz_get(choice, "finish_reason"))) {
            stopped = 1;
        }

        cJSON_Delete(root);

        events++;
        p = end + 2;
    }

    ngx_fuzz_assert(stopped, "openai stream: no finish_reason before [DONE]");
    ngx_fuzz_assert((size_t) (t - text) == reply->len
                    && (reply->len == 0
                        || memcmp(text, reply->data, reply->len) == 0),
                    "openai stream: the deltas are not the reply");
}


/* an SSE client's reading of one event: its data lines joined by "\n" */

static void
ngx_fuzz_check_sse(ngx_str_t *body, ngx_str_t *reply)
{
    u_char      *p, *last, *line, *data, *d, *expect, *e, *r;
    ngx_uint_t   lines, blank;

    p = body->data;
    last = body->data + body->len;

    data = ngx_pnalloc(NULL, body->len + 1);
    d = data;
    lines = 0;
    blank = 0;

    while (p < last) {
        line = p;

        while (p < last && *p != '\r' && *p != '\n') {
            p++;
        }

        ngx_fuzz_assert(p < last, "sse: the last line has no end");

        if (p == line) {
            /* a blank line dispatches the event: it must be the end */
            blank = 1;
            p += (*p == '\r' && p + 1 < last && p[1] == '\n') ? 2 : 1;
            ngx_fuzz_assert(p == last, "sse: more than one event");
            break;
        }

        ngx_fuzz_assert(p - line >= 5 && ngx_strncmp(line, "data:", 5) == 0,
                        "sse: a line that is not a data line");

        line += 5;
        if (line < p && *line == ' ') {
            line++;
        }

        if (lines++) {
            *d++ = '\n';
        }

        d = ngx_cpymem(d, line, p - line);

        p += (*p == '\r' && p + 1 < last && p[1] == '\n') ? 2 : 1;
    }

    ngx_fuzz_assert(blank, "sse: the event is not dispatched");

    /* the reply with its line breaks as "\n" */

    expect = ngx_pnalloc(NULL, reply->len + 1);
    e = expect;

    for (r = reply->data; r < reply->data + reply->len; r++) {
        if (*r == '\r') {
            *e++ = '\n';

            if (r + 1 < reply->data + reply->len && r[1] == '\n') {
                r++;
            }

            continue;
        }

        *e++ = *r;
    }

    ngx_fuzz_assert(d - data == e - expect
                    && ngx_strncmp(data, expect, d - data) == 0,
                    "sse: the event's data is not the reply");
}


/* the body rendered: the reply, in the format chosen */

static void
ngx_fuzz_check_body(ngx_uint_t format, ngx_uint_t stream, ngx_str_t *body,
    ngx_http_classify_input_t *input, ngx_http_classify_classifier_t *cl)
{
    cJSON       *root, *item;
    ngx_str_t    model;
    ngx_uint_t   nul;

    model = input->model;
    if (model.len == 0) {
        ngx_str_set(&model, "classify");
    }

    nul = memchr(cl->reply.data, '\0', cl->reply.len) != NULL
          || memchr(model.data, '\0', model.len) != NULL
          || memchr(cl->name.data, '\0', cl->name.len) != NULL;

    switch (format) {

    case NGX_HTTP_CLASSIFY_REPLY_OPENAI:

        ngx_fuzz_assert(stream == input->stream, "openai: streams wrongly");

        if (nul) {
            break;
        }

        if (stream) {
            ngx_fuzz_check_chunks(body, &cl->reply, &model);
            break;
        }

        root = cJSON_ParseWithLength((const char *) body->data, body->len);
        ngx_fuzz_assert(root != NULL, "openai: not JSON");

        ngx_fuzz_assert(ngx_fuzz_same(ngx_fuzz_get(root, "model"),
                                      &model),
                        "openai: the model changed");

        item = ngx_fuzz_get(cJSON_GetArrayItem(
                   ngx_fuzz_get(root, "choices"), 0), "message");

        ngx_fuzz_assert(ngx_fuzz_same(ngx_fuzz_get(item, "content"),
                                      &cl->reply),
                        "openai: the content is not the reply");

        cJSON_Delete(root);
        break;

    case NGX_HTTP_CLASSIFY_REPLY_SSE:

        ngx_fuzz_assert(stream, "sse: does not stream");
        ngx_fuzz_check_sse(body, &cl->reply);
        break;

    case NGX_HTTP_CLASSIFY_REPLY_JSON:

        if (nul) {
            break;
        }

        root = cJSON_ParseWithLength((const char *) body->data, body->len);
        ngx_fuzz_assert(root != NULL, "json: not JSON");

        ngx_fuzz_assert(ngx_fuzz_same(ngx_fuzz_get(root, "verdict"),
                                      &cl->name),
                        "json: the verdict is not the classifier's name");
        ngx_fuzz_assert(ngx_fuzz_same(ngx_fuzz_get(root, "reply"),
                                      &cl->reply),
                        "json: the reply changed");

        cJSON_Delete(root);
        break;

    default: /* NGX_HTTP_CLASSIFY_REPLY_TEXT */

        ngx_fuzz_assert(body->len == cl->reply.len
                        && (body->len == 0
                            || memcmp(body->data, cl->reply.data, body->len)
                               == 0),
                        "text: the body is not the reply");
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                           settings, clock;
    time_t                           now;
    ngx_str_t                        accept, id, content_type, body;
    ngx_int_t                        rc;
    ngx_uint_t                       conf, format, stream;
    ngx_fuzz_input_t                 in;
    ngx_http_classify_input_t        input;
    ngx_http_classify_classifier_t   cl;

    static time_t  clocks[] = { 0, 1764000000, -1,
                                (time_t) 0x7fffffffffffffffLL,
                                (time_t) (-0x7fffffffffffffffLL - 1) };

    in.p = data;
    in.last = data + size;

    settings = ngx_fuzz_byte(&in);
    clock = ngx_fuzz_byte(&in);
    now = clocks[clock % (sizeof(clocks) / sizeof(clocks[0]))];

    ngx_memzero(&cl, sizeof(ngx_http_classify_classifier_t));
    ngx_memzero(&input, sizeof(ngx_http_classify_input_t));

    conf = settings % 5;
    input.openai = (settings >> 3) & 1;
    input.stream = (settings >> 4) & 1;

    ngx_fuzz_field(&in, NULL, &cl.reply);
    ngx_fuzz_field(&in, NULL, &input.model);
    ngx_fuzz_field(&in, NULL, &accept);
    ngx_fuzz_field(&in, NULL, &cl.name);

    ngx_str_set(&id, "chatcmpl-classify-18446744073709551615-1");

    format = ngx_http_classify_reply_format(conf, &input, &accept);

    ngx_fuzz_assert(format >= NGX_HTTP_CLASSIFY_REPLY_OPENAI
                    && format <= NGX_HTTP_CLASSIFY_REPLY_JSON,
                    "not a reply format");
    ngx_fuzz_assert(conf == NGX_HTTP_CLASSIFY_REPLY_AUTO || format == conf,
                    "classify_reply_format not followed");

    ngx_fuzz_timed(size,
                   rc = ngx_http_classify_render_reply(NULL, format, &cl,
                                                       &input, &id, now,
                                                       &content_type, &body,
                                                       &stream),
                   "render_reply");

    ngx_fuzz_assert(rc == NGX_OK, "render_reply failed");

    ngx_fuzz_assert(content_type.len > 0, "no content type");

    ngx_fuzz_check_body(format, stream, &body, &input, &cl);

    ngx_fuzz_pool_reset();

    return 0;
}

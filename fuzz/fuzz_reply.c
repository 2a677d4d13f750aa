
/*
 * fuzz/fuzz_reply.c: the reply renderer, in every wire format.
 *
 * The input: one byte of settings (classify_reply_format, the client's
 * body format, whether it asked to stream and for include_usage), one
 * byte picking the clock (0, now, the time_t extremes), then the reply
 * text, the client's model, its Accept header and the classifier's name,
 * separated by "\n--\n".  Checked, beyond the sanitizers:
 *   - the format chosen is a real one, follows classify_reply_format when
 *     it is set and the body's format when not; rendering takes no more
 *     than NGX_FUZZ_BUDGET() of CPU time for the input's size
 *     (ngx_fuzz_timed());
 *   - openai: one chat.completion whose content is the reply, or
 *     chat.completion.chunk events whose deltas put the reply together,
 *     the last with finish_reason "stop" (then, with include_usage, one
 *     usage chunk with no choices), then "data: [DONE]";
 *   - responses and anthropic, streamed: "event: T" and "data: J" lines,
 *     each event's JSON of type T, in the order the APIs send them,
 *     Responses' sequence numbers 0, 1, 2 ..., the text deltas putting
 *     the reply together, the model in the first event; not streamed: one
 *     Response (one output_text part) or Message (one text block) whose
 *     text is the reply;
 *   - sse: read back as an SSE client would (any of \r\n, \r, \n end a
 *     line), the event's data is the reply, its line breaks as "\n";
 *   - json: {"verdict": name, "reply": text}; text: the reply as it is.
 * A reply or model with a NUL byte is skipped where cJSON would cut it:
 * they come from the configuration and from a checked body, never with one.
 */


#include "ngx_http_classify.h"
#include "ngx_http_classify_reply.h"
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
ngx_fuzz_check_chunks(ngx_str_t *body, ngx_str_t *reply, ngx_str_t *model,
    ngx_uint_t include_usage)
{
    u_char   *p, *last, *end, *text, *t;
    cJSON    *root, *choice, *content;
    size_t    len;
    ngx_uint_t  events, stopped, usage;

    p = body->data;
    last = body->data + body->len;

    text = ngx_pnalloc(NULL, body->len + 1);
    t = text;
    events = 0;
    stopped = 0;
    usage = 0;

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

        ngx_fuzz_assert(!usage, "openai stream: an event after the usage");

        root = cJSON_ParseWithLength((const char *) p, end - p);
        ngx_fuzz_assert(root != NULL, "openai stream: an event is not JSON");

        ngx_fuzz_assert(!stopped
                        || (cJSON_GetArraySize(ngx_fuzz_get(root, "choices"))
                            == 0
                            && cJSON_IsObject(ngx_fuzz_get(root, "usage"))),
                        "openai stream: an event after the stop that is not "
                        "the usage chunk");

        usage = stopped;

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
    ngx_fuzz_assert(usage == include_usage,
                    "openai stream: a usage chunk not asked for, or none");
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


/*
 * "event: T\ndata: J\n\n" events of JSON of type T, in the order of the
 * NULL-terminated names; each event's JSON is handed to "check" with its
 * index.  The text deltas ("delta" of Responses' output_text.delta,
 * "delta.text" of Anthropic's content_block_delta) put together are the
 * reply.
 */

typedef void (*ngx_fuzz_event_pt)(cJSON *ev, ngx_uint_t i, void *data);

static void
ngx_fuzz_check_events(ngx_str_t *body, const char **names,
    ngx_fuzz_event_pt check, void *data, ngx_str_t *reply)
{
    u_char      *p, *last, *nl, *end, *text, *t;
    size_t       len, n;
    cJSON       *root, *delta;
    ngx_uint_t   i;

    p = body->data;
    last = body->data + body->len;

    text = ngx_pnalloc(NULL, body->len + 1);
    t = text;

    for (i = 0; names[i]; i++) {
        n = strlen(names[i]);

        ngx_fuzz_assert((size_t) (last - p) >= sizeof("event: \n") - 1 + n
                        && ngx_strncmp(p, "event: ", 7) == 0
                        && ngx_strncmp(p + 7, names[i], n) == 0
                        && p[7 + n] == '\n',
                        "stream: not the next event's name");

        p += 8 + n;

        ngx_fuzz_assert(last - p >= 6 && ngx_strncmp(p, "data: ", 6) == 0,
                        "stream: an event without its data line");
        p += 6;

        nl = memchr(p, '\n', last - p);
        ngx_fuzz_assert(nl != NULL && last - nl >= 2 && nl[1] == '\n',
                        "stream: an event not ended by a blank line");
        end = nl;

        root = cJSON_ParseWithLength((const char *) p, end - p);
        ngx_fuzz_assert(root != NULL, "stream: an event is not JSON");

        ngx_fuzz_assert(ngx_fuzz_same(ngx_fuzz_get(root, "type"),
                                      &(ngx_str_t) { n, (u_char *) names[i] }),
                        "stream: an event's type is not its name");

        delta = NULL;

        if (strcmp(names[i], "response.output_text.delta") == 0) {
            delta = ngx_fuzz_get(root, "delta");

        } else if (strcmp(names[i], "content_block_delta") == 0) {
            delta = ngx_fuzz_get(ngx_fuzz_get(root, "delta"), "text");
        }

        if (delta) {
            ngx_fuzz_assert(cJSON_IsString(delta), "stream: a delta not text");
            len = strlen(delta->valuestring);
            t = ngx_cpymem(t, delta->valuestring, len);
        }

        check(root, i, data);

        cJSON_Delete(root);
        p = end + 2;
    }

    ngx_fuzz_assert(p == last, "stream: bytes after the last event");
    ngx_fuzz_assert((size_t) (t - text) == reply->len
                    && (reply->len == 0
                        || memcmp(text, reply->data, reply->len) == 0),
                    "stream: the deltas are not the reply");
}


typedef struct {
    ngx_str_t                       *model;
    ngx_str_t                       *reply;
} ngx_fuzz_expect_t;


/* one Response: completed, one message, one output_text, the reply */

static void
ngx_fuzz_check_response(cJSON *res, ngx_fuzz_expect_t *e)
{
    cJSON  *part;

    ngx_fuzz_assert(ngx_fuzz_same(ngx_fuzz_get(res, "object"),
                                  &(ngx_str_t) ngx_string("response"))
                    && ngx_fuzz_same(ngx_fuzz_get(res, "status"),
                                     &(ngx_str_t) ngx_string("completed"))
                    && ngx_fuzz_same(ngx_fuzz_get(res, "model"), e->model),
                    "responses: not a completed Response of the model");

    part = cJSON_GetArrayItem(ngx_fuzz_get(cJSON_GetArrayItem(
               ngx_fuzz_get(res, "output"), 0), "content"), 0);

    ngx_fuzz_assert(ngx_fuzz_same(ngx_fuzz_get(part, "type"),
                                  &(ngx_str_t) ngx_string("output_text"))
                    && ngx_fuzz_same(ngx_fuzz_get(part, "text"), e->reply),
                    "responses: the output_text is not the reply");
}


static void
ngx_fuzz_responses_event(cJSON *ev, ngx_uint_t i, void *data)
{
    ngx_fuzz_expect_t  *e = data;

    cJSON  *seq;

    seq = ngx_fuzz_get(ev, "sequence_number");

    ngx_fuzz_assert(cJSON_IsNumber(seq) && seq->valuedouble == (double) i,
                    "responses: sequence numbers not 0, 1, 2 ...");

    if (i == 0) {
        ngx_fuzz_assert(ngx_fuzz_same(ngx_fuzz_get(ngx_fuzz_get(ev,
                                          "response"), "model"), e->model),
                        "responses: the model changed");
    }

    if (i == 8) {
        ngx_fuzz_check_response(ngx_fuzz_get(ev, "response"), e);
    }
}


/* one Message: end_turn, one text block, the reply */

static void
ngx_fuzz_check_message(cJSON *msg, ngx_fuzz_expect_t *e)
{
    cJSON  *block;

    ngx_fuzz_assert(ngx_fuzz_same(ngx_fuzz_get(msg, "type"),
                                  &(ngx_str_t) ngx_string("message"))
                    && ngx_fuzz_same(ngx_fuzz_get(msg, "stop_reason"),
                                     &(ngx_str_t) ngx_string("end_turn"))
                    && ngx_fuzz_same(ngx_fuzz_get(msg, "model"), e->model),
                    "anthropic: not an end_turn Message of the model");

    block = cJSON_GetArrayItem(ngx_fuzz_get(msg, "content"), 0);

    ngx_fuzz_assert(cJSON_GetArraySize(ngx_fuzz_get(msg, "content")) == 1
                    && ngx_fuzz_same(ngx_fuzz_get(block, "type"),
                                     &(ngx_str_t) ngx_string("text"))
                    && ngx_fuzz_same(ngx_fuzz_get(block, "text"), e->reply),
                    "anthropic: the text block is not the reply");
}


static void
ngx_fuzz_anthropic_event(cJSON *ev, ngx_uint_t i, void *data)
{
    ngx_fuzz_expect_t  *e = data;

    if (i == 0) {
        ngx_fuzz_assert(ngx_fuzz_same(ngx_fuzz_get(ngx_fuzz_get(ev,
                                          "message"), "model"), e->model),
                        "anthropic: the model changed");
    }
}


static const char  *ngx_fuzz_responses_events[] = {
    "response.created", "response.in_progress", "response.output_item.added",
    "response.content_part.added", "response.output_text.delta",
    "response.output_text.done", "response.content_part.done",
    "response.output_item.done", "response.completed", NULL
};

static const char  *ngx_fuzz_anthropic_events[] = {
    "message_start", "content_block_start", "content_block_delta",
    "content_block_stop", "message_delta", "message_stop", NULL
};


/* the whole JSON answer of a format, or its events */

static void
ngx_fuzz_check_api(ngx_uint_t format, ngx_uint_t stream, ngx_str_t *body,
    ngx_fuzz_expect_t *e)
{
    cJSON  *root;

    if (stream) {
        if (format == NGX_HTTP_CLASSIFY_REPLY_RESPONSES) {
            ngx_fuzz_check_events(body, ngx_fuzz_responses_events,
                                  ngx_fuzz_responses_event, e, e->reply);
        } else {
            ngx_fuzz_check_events(body, ngx_fuzz_anthropic_events,
                                  ngx_fuzz_anthropic_event, e, e->reply);
        }

        return;
    }

    root = cJSON_ParseWithLength((const char *) body->data, body->len);
    ngx_fuzz_assert(root != NULL, "a whole answer is not JSON");

    if (format == NGX_HTTP_CLASSIFY_REPLY_RESPONSES) {
        ngx_fuzz_check_response(root, e);
    } else {
        ngx_fuzz_check_message(root, e);
    }

    cJSON_Delete(root);
}


/* the body rendered: the reply, in the format chosen */

static void
ngx_fuzz_check_body(ngx_uint_t format, ngx_uint_t stream, ngx_str_t *body,
    ngx_http_classify_input_t *input, ngx_http_classify_classifier_t *cl)
{
    cJSON              *root, *item;
    ngx_str_t           model;
    ngx_uint_t          nul;
    ngx_fuzz_expect_t   expect;

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
            ngx_fuzz_check_chunks(body, &cl->reply, &model,
                                  input->include_usage);
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

    case NGX_HTTP_CLASSIFY_REPLY_RESPONSES:
    case NGX_HTTP_CLASSIFY_REPLY_ANTHROPIC:

        ngx_fuzz_assert(stream == input->stream, "a chat API streams wrongly");

        if (!nul) {
            expect.model = &model;
            expect.reply = &cl->reply;
            ngx_fuzz_check_api(format, stream, body, &expect);
        }

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

    static ngx_http_classify_format_e  formats[] = {
        NGX_HTTP_CLASSIFY_FORMAT_FIELDS, NGX_HTTP_CLASSIFY_FORMAT_OPENAI,
        NGX_HTTP_CLASSIFY_FORMAT_RESPONSES, NGX_HTTP_CLASSIFY_FORMAT_ANTHROPIC
    };

    conf = (settings & 7) % 7;
    input.format = formats[(settings >> 3) & 3];
    input.stream = (settings >> 5) & 1;
    input.include_usage = (settings >> 6) & 1;

    ngx_fuzz_field(&in, NULL, &cl.reply);
    ngx_fuzz_field(&in, NULL, &input.model);
    ngx_fuzz_field(&in, NULL, &accept);
    ngx_fuzz_field(&in, NULL, &cl.name);

    ngx_str_set(&id, "classify-18446744073709551615-18446744073709551615");

    format = ngx_http_classify_reply_format(conf, &input, &accept);

    ngx_fuzz_assert(format >= NGX_HTTP_CLASSIFY_REPLY_OPENAI
                    && format <= NGX_HTTP_CLASSIFY_REPLY_ANTHROPIC,
                    "not a reply format");
    ngx_fuzz_assert(conf == NGX_HTTP_CLASSIFY_REPLY_AUTO || format == conf,
                    "classify_reply_format not followed");
    ngx_fuzz_assert(conf != NGX_HTTP_CLASSIFY_REPLY_AUTO
                    || input.format == NGX_HTTP_CLASSIFY_FORMAT_FIELDS
                    || format == (input.format
                                  == NGX_HTTP_CLASSIFY_FORMAT_OPENAI
                                  ? NGX_HTTP_CLASSIFY_REPLY_OPENAI
                                  : input.format
                                    == NGX_HTTP_CLASSIFY_FORMAT_RESPONSES
                                  ? NGX_HTTP_CLASSIFY_REPLY_RESPONSES
                                  : NGX_HTTP_CLASSIFY_REPLY_ANTHROPIC),
                    "auto: not the body's own format");

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

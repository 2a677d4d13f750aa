
/*
 * fuzz/fuzz_stream.c: the reader of a generation's stream (stream.c) and
 * the end of a stream cut after it (reply.c's cut).
 *
 * The input: one byte of settings (the splitter's limit on an event kept
 * for reading, 64 << (s & 7) bytes; the seed of the points the stream is
 * cut at), then the stream.  Checked, beyond the sanitizers:
 *   - the stream is read within NGX_FUZZ_BUDGET() of CPU time for its size;
 *   - fed in one piece or in pieces cut anywhere, the splitter gives the
 *     same events in the same order (their bytes, or the type alone of
 *     one too big), and the reader the same state after them: the guard
 *     sees the same answer whatever the network did to it;
 *   - the end of a stream cut after that state is SSE whose every data is
 *     JSON (read back with cJSON) or [DONE], carries the reply as a text
 *     delta, and ends as its format ends a content filter: a chunk with
 *     finish_reason "content_filter" then [DONE], message_delta with
 *     stop_reason "refusal" then message_stop, response.completed with a
 *     Response incomplete for content_filter.
 */


#include "ngx_http_classify.h"
#include "ngx_http_classify_jsonr.h"
#include "ngx_http_classify_stream.h"
#include "ngx_fuzz.h"

#include <cjson/cJSON.h>


#define NGX_FUZZ_EVENTS  4096


typedef struct {
    ngx_str_t                    bytes;      /* NULL data: too big */
    ngx_str_t                    type;
    ngx_http_classify_event_t    ev;
} ngx_fuzz_event_t;


typedef struct {
    ngx_fuzz_event_t             events[NGX_FUZZ_EVENTS];
    ngx_uint_t                   n;
    ngx_http_classify_stream_t   st;
    size_t                       text;
} ngx_fuzz_read_t;


static ngx_int_t
ngx_fuzz_event(ngx_http_classify_sse_t *sse, ngx_str_t *event)
{
    ngx_fuzz_read_t *rd = sse->data;

    u_char            *p, *last;
    ngx_fuzz_event_t  *e;

    if (rd->n == NGX_FUZZ_EVENTS) {
        return NGX_OK;
    }

    e = &rd->events[rd->n++];
    ngx_memzero(e, sizeof(ngx_fuzz_event_t));

    e->type.len = sse->type_len;
    e->type.data = ngx_pnalloc(NULL, sse->type_len + 1);
    ngx_memcpy(e->type.data, sse->type, sse->type_len);

    if (event == NULL) {
        e->ev.seq = -1;
        e->ev.index = -1;
        ngx_http_classify_stream_type(&e->type, &e->ev);
        return ngx_http_classify_stream_apply(NULL, &rd->st, &e->ev, 0);
    }

    e->bytes.len = event->len;
    e->bytes.data = ngx_pnalloc(NULL, event->len + 1);
    ngx_memcpy(e->bytes.data, event->data, event->len);

    ngx_fuzz_assert(ngx_http_classify_stream_event(NULL, event, NULL, &e->ev)
                    == NGX_OK, "an event not read");

    if (!e->ev.has_text) {
        return ngx_http_classify_stream_apply(NULL, &rd->st, &e->ev, 0);
    }

    /* the text decodes into no more bytes than its JSON */

    p = ngx_pnalloc(NULL, e->ev.text.len + 1);
    last = ngx_http_classify_jsonr_copy(p, &e->ev.text);

    ngx_fuzz_assert((size_t) (last - p) <= e->ev.text.len,
                    "decoded text longer than its JSON");

    e->ev.text.data = p;
    e->ev.text.len = last - p;
    rd->text += last - p;

    return ngx_http_classify_stream_apply(NULL, &rd->st, &e->ev, last - p);
}


static void
ngx_fuzz_read(ngx_fuzz_read_t *rd, size_t max, const u_char *data,
    size_t size, ngx_uint_t seed)
{
    size_t                   off, n;
    u_char                  *copy;
    ngx_http_classify_sse_t  sse;

    rd->n = 0;
    rd->text = 0;
    ngx_http_classify_stream_init(&rd->st);

    ngx_http_classify_sse_init(&sse, NULL, max);
    sse.handler = ngx_fuzz_event;
    sse.data = rd;

    for (off = 0; off < size; off += n) {
        n = size - off;

        if (seed) {
            seed = seed * 1103515245 + 12345;
            n = ngx_min(n, 1 + (seed >> 16) % 97);
        }

        /* a piece of its own exact size, as a read gives it */

        copy = ngx_pnalloc(NULL, n ? n : 1);
        ngx_memcpy(copy, data + off, n);

        ngx_fuzz_assert(ngx_http_classify_sse_feed(&sse, copy, n) == NGX_OK,
                        "the stream not read");
    }

    ngx_fuzz_assert(sse.offset == (off_t) size, "bytes not counted");
}


static void
ngx_fuzz_same(ngx_fuzz_read_t *a, ngx_fuzz_read_t *b)
{
    ngx_uint_t         i;
    ngx_fuzz_event_t  *x, *y;

    ngx_fuzz_assert(a->n == b->n, "another number of events in pieces");

    for (i = 0; i < a->n; i++) {
        x = &a->events[i];
        y = &b->events[i];

        ngx_fuzz_assert((x->bytes.data == NULL) == (y->bytes.data == NULL)
                        && x->bytes.len == y->bytes.len
                        && (x->bytes.len == 0
                            || ngx_memcmp(x->bytes.data, y->bytes.data,
                                          x->bytes.len) == 0),
                        "another event in pieces");
        ngx_fuzz_assert(x->type.len == y->type.len
                        && (x->type.len == 0
                            || ngx_memcmp(x->type.data, y->type.data,
                                          x->type.len) == 0),
                        "another event type in pieces");
        ngx_fuzz_assert(x->ev.kind == y->ev.kind
                        && x->ev.has_text == y->ev.has_text
                        && x->ev.text.len == y->ev.text.len,
                        "another reading of an event in pieces");
    }

    ngx_fuzz_assert(a->st.text == b->st.text
                    && a->st.format == b->st.format
                    && a->st.seq == b->st.seq
                    && a->st.block == b->st.block
                    && a->st.item == b->st.item
                    && a->st.part == b->st.part,
                    "another state in pieces");
}


/* the end of a stream cut after st: SSE of JSON, ending as its format */

static void
ngx_fuzz_check_cut(ngx_http_classify_stream_t *st, ngx_uint_t usage)
{
    u_char                          *p, *last, *eol;
    ngx_str_t                        body, id, reply, part, last_data;
    ngx_uint_t                       replied, events;
    ngx_http_classify_input_t        in;
    ngx_http_classify_classifier_t   cl;
    cJSON                           *o, *v;
    char                             buf[128];

    ngx_memzero(&in, sizeof(in));
    ngx_memzero(&cl, sizeof(cl));
    ngx_str_set(&reply, "I can't \"continue\".\n");
    ngx_str_set(&id, "classify-1-1");
    ngx_str_set(&part, "so far");
    ngx_str_set(&in.model, "m");
    in.include_usage = usage;
    cl.reply = reply;

    ngx_fuzz_assert(ngx_http_classify_render_cut(NULL,
                                         NGX_HTTP_CLASSIFY_FORMAT_OPENAI, st,
                                         &part, &cl, &in, &id, 1, &body)
                    == NGX_OK, "no cut rendered");

    replied = 0;
    events = 0;
    ngx_str_null(&last_data);

    last = body.data + body.len;

    for (p = body.data; p < last; p = eol + 1) {
        eol = ngx_strlchr(p, last, '\n');
        ngx_fuzz_assert(eol != NULL, "a cut not ending its last line");

        if (eol - p < 6 || ngx_strncmp(p, "data: ", 6) != 0) {
            continue;
        }

        events++;
        last_data.data = p + 6;
        last_data.len = eol - p - 6;

        if (last_data.len == 6 && ngx_strncmp(last_data.data, "[DONE]", 6)
                                  == 0)
        {
            continue;
        }

        o = cJSON_ParseWithLength((char *) last_data.data, last_data.len);
        ngx_fuzz_assert(o != NULL, "a cut's event that is not JSON");

        v = cJSON_GetObjectItemCaseSensitive(o, "delta");
        if (cJSON_IsObject(v)) {
            v = cJSON_GetObjectItemCaseSensitive(v, "text");
        }

        if (!cJSON_IsString(v)) {
            v = ngx_fuzz_get(cJSON_GetArrayItem(ngx_fuzz_get(o, "choices"),
                                                0), "delta");
            v = ngx_fuzz_get(v, "content");
        }

        if (cJSON_IsString(v)
            && strcmp(v->valuestring, "I can't \"continue\".\n") == 0)
        {
            replied = 1;
        }

        cJSON_Delete(o);
    }

    ngx_fuzz_assert(replied, "a cut without the reply as its text");
    ngx_fuzz_assert(events >= 3, "a cut of fewer than three events");

    /* how each format ends a content filter */

    ngx_memzero(buf, sizeof(buf));
    ngx_memcpy(buf, last_data.data, ngx_min(last_data.len, sizeof(buf) - 1));

    switch (st->started ? st->format : NGX_HTTP_CLASSIFY_FORMAT_OPENAI) {

    case NGX_HTTP_CLASSIFY_FORMAT_RESPONSES:
        ngx_fuzz_assert(strstr(buf, "\"type\":\"response.completed\"")
                        && ngx_strlcasestrn(body.data, last,
                                            (u_char *) "\"incomplete_details\""
                                            ":{\"reason\":\"content_filter\"}",
                                            48 - 1),
                        "a Responses cut not incomplete for content_filter");
        break;

    case NGX_HTTP_CLASSIFY_FORMAT_ANTHROPIC:
        ngx_fuzz_assert(strstr(buf, "\"type\":\"message_stop\"")
                        && ngx_strlcasestrn(body.data, last,
                                            (u_char *) "\"stop_reason\":"
                                            "\"refusal\"", 23 - 1),
                        "an Anthropic cut not ending in a refusal");
        break;

    default:
        ngx_fuzz_assert(strcmp(buf, "[DONE]") == 0
                        && ngx_strlcasestrn(body.data, last,
                                            (u_char *) "\"finish_reason\":"
                                            "\"content_filter\"", 32 - 1),
                        "a chat cut not ending in content_filter, [DONE]");
        break;
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char            settings;
    size_t            max;
    ngx_fuzz_read_t  *whole, *pieces;

    if (size == 0) {
        return 0;
    }

    settings = data[0];
    data++;
    size--;

    max = (size_t) 64 << (settings & 7);

    whole = malloc(sizeof(ngx_fuzz_read_t));
    pieces = malloc(sizeof(ngx_fuzz_read_t));

    ngx_fuzz_timed(size, ngx_fuzz_read(whole, max, data, size, 0),
                   "reading the stream");

    ngx_fuzz_read(pieces, max, data, size, (settings >> 3) | 1);

    ngx_fuzz_same(whole, pieces);

    ngx_fuzz_check_cut(&whole->st, settings & 0x80);

    free(whole);
    free(pieces);

    ngx_fuzz_pool_reset();

    return 0;
}

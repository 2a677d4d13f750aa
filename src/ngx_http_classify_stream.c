
/*
 * ngx_http_classify_module: a generation's answer as it streams (pure).
 *
 * The SSE splitter is fed the stream's bytes in whatever pieces they come
 * and hands each whole event (its lines up to the blank line that ends
 * it) to its handler: in place when the event came in one piece, else
 * from a buffer of its own.  An event of more than sse->max bytes is only
 * delimited, and its handler gets its "event:" type alone, however its
 * bytes came: what the handler sees never depends on how the network cut
 * the stream (fuzz/fuzz_stream.c checks it).  A line ends at LF or CRLF.
 * One pass over the bytes, whatever their shape.
 *
 * An event is read by the JSON pull reader into what the output guard
 * and the capture follow: the text it adds to the answer (a chat chunk's
 * choices[0].delta.content, Responses' response.output_text.delta,
 * Anthropic's text_delta), whether the message ends (a finish_reason,
 * message_delta, response.completed) and the stream with it ("[DONE]",
 * message_stop, response.completed or .incomplete), and the ids and
 * indexes a stream cut at that point needs to end in its own format.
 */


#include "ngx_http_classify.h"
#include "ngx_http_classify_jsonr.h"
#include "ngx_http_classify_stream.h"
#include "ngx_http_classify_verdict.h"


static ngx_int_t ngx_http_classify_sse_emit(ngx_http_classify_sse_t *sse,
    u_char *ev, u_char *span, u_char *end);
static ngx_int_t ngx_http_classify_sse_keep(ngx_http_classify_sse_t *sse,
    u_char *from, u_char *to);
static void ngx_http_classify_sse_type(ngx_http_classify_sse_t *sse,
    u_char *ev, u_char *span, u_char *nl);
static void ngx_http_classify_sse_reset(ngx_http_classify_sse_t *sse);
static ngx_int_t ngx_http_classify_stream_data(ngx_pool_t *pool,
    ngx_str_t *event, ngx_str_t *type, ngx_str_t *data);
static void ngx_http_classify_stream_json(ngx_str_t *data,
    ngx_http_classify_event_t *ev);
static void ngx_http_classify_stream_chat(ngx_http_classify_jsonr_field_t *f,
    ngx_http_classify_event_t *ev);
static void ngx_http_classify_stream_typed(ngx_str_t *type,
    ngx_http_classify_jsonr_field_t *f, ngx_http_classify_event_t *ev);
static ngx_uint_t ngx_http_classify_stream_of_type(
    ngx_http_classify_jsonr_field_t *f, const char *type);
static ngx_int_t ngx_http_classify_stream_sub(ngx_str_t *span,
    const char *name, ngx_str_t *raw);
static ngx_int_t ngx_http_classify_stream_num(ngx_str_t *span);
static ngx_int_t ngx_http_classify_stream_responses(ngx_pool_t *pool,
    ngx_http_classify_stream_t *st, ngx_http_classify_event_t *ev);
static ngx_int_t ngx_http_classify_stream_copy(ngx_pool_t *pool,
    ngx_str_t *raw, ngx_str_t *s);
static u_char *ngx_http_classify_copy_parts(ngx_str_t *array,
    const char *type, u_char *out);
static ngx_int_t ngx_http_classify_typed_text(ngx_http_classify_jsonr_t *jr,
    const char *type, ngx_str_t *raw);


/* the event names the guard follows, and what each one is */

typedef struct {
    ngx_str_t                      name;
    ngx_http_classify_event_e      kind;
    unsigned                       text:1;      /* may carry answer text */
    unsigned                       closing:1;
    unsigned                       done:1;
} ngx_http_classify_event_name_t;


static ngx_http_classify_event_name_t  ngx_http_classify_event_names[] = {
    { ngx_string("response.created"), NGX_HTTP_CLASSIFY_EV_RESP_CREATED,
      0, 0, 0 },
    { ngx_string("response.output_item.added"),
      NGX_HTTP_CLASSIFY_EV_RESP_ITEM_ADDED, 0, 0, 0 },
    { ngx_string("response.output_item.done"),
      NGX_HTTP_CLASSIFY_EV_RESP_ITEM_DONE, 0, 0, 0 },
    { ngx_string("response.content_part.added"),
      NGX_HTTP_CLASSIFY_EV_RESP_PART_ADDED, 0, 0, 0 },
    { ngx_string("response.content_part.done"),
      NGX_HTTP_CLASSIFY_EV_RESP_PART_DONE, 0, 0, 0 },
    { ngx_string("response.output_text.delta"),
      NGX_HTTP_CLASSIFY_EV_RESP_TEXT, 1, 0, 0 },
    { ngx_string("response.completed"), NGX_HTTP_CLASSIFY_EV_RESP_END,
      0, 1, 1 },
    { ngx_string("response.incomplete"), NGX_HTTP_CLASSIFY_EV_RESP_END,
      0, 1, 1 },
    { ngx_string("response.failed"), NGX_HTTP_CLASSIFY_EV_RESP_END,
      0, 1, 0 },
    { ngx_string("message_start"), NGX_HTTP_CLASSIFY_EV_ANT_START, 0, 0, 0 },
    { ngx_string("content_block_start"), NGX_HTTP_CLASSIFY_EV_ANT_BLOCK_START,
      0, 0, 0 },
    { ngx_string("content_block_delta"), NGX_HTTP_CLASSIFY_EV_ANT_BLOCK_DELTA,
      1, 0, 0 },
    { ngx_string("content_block_stop"), NGX_HTTP_CLASSIFY_EV_ANT_BLOCK_STOP,
      0, 0, 0 },
    { ngx_string("message_delta"), NGX_HTTP_CLASSIFY_EV_ANT_DELTA, 0, 1, 0 },
    { ngx_string("message_stop"), NGX_HTTP_CLASSIFY_EV_ANT_STOP, 0, 1, 1 },
    { ngx_string("ping"), NGX_HTTP_CLASSIFY_EV_OTHER, 0, 0, 0 },
    { ngx_null_string, NGX_HTTP_CLASSIFY_EV_OTHER, 0, 0, 0 }
};


/* the members of an event's object that are read */

enum {
    NGX_HTTP_CLASSIFY_F_TYPE = 0,
    NGX_HTTP_CLASSIFY_F_CHOICES,
    NGX_HTTP_CLASSIFY_F_DELTA,
    NGX_HTTP_CLASSIFY_F_INDEX,
    NGX_HTTP_CLASSIFY_F_SEQ,
    NGX_HTTP_CLASSIFY_F_OUTPUT_INDEX,
    NGX_HTTP_CLASSIFY_F_CONTENT_INDEX,
    NGX_HTTP_CLASSIFY_F_ITEM,
    NGX_HTTP_CLASSIFY_F_PART,
    NGX_HTTP_CLASSIFY_F_BLOCK,
    NGX_HTTP_CLASSIFY_F_RESPONSE,
    NGX_HTTP_CLASSIFY_F_ID,
    NGX_HTTP_CLASSIFY_F_MODEL,
    NGX_HTTP_CLASSIFY_F_CREATED,
    NGX_HTTP_CLASSIFY_F_USAGE,
    NGX_HTTP_CLASSIFY_NFIELDS
};

static ngx_str_t  ngx_http_classify_event_fields[] = {
    ngx_string("type"),
    ngx_string("choices"),
    ngx_string("delta"),
    ngx_string("index"),
    ngx_string("sequence_number"),
    ngx_string("output_index"),
    ngx_string("content_index"),
    ngx_string("item"),
    ngx_string("part"),
    ngx_string("content_block"),
    ngx_string("response"),
    ngx_string("id"),
    ngx_string("model"),
    ngx_string("created"),
    ngx_string("usage")
};


void
ngx_http_classify_sse_init(ngx_http_classify_sse_t *sse, ngx_pool_t *pool,
    size_t max)
{
    ngx_memzero(sse, sizeof(ngx_http_classify_sse_t));

    sse->pool = pool;
    sse->max = max;
    sse->first = 1;
}


/*
 * The next bytes of the stream.  ev is where the current event starts in
 * these bytes, NULL while its beginning is in sse->buf (or was dropped).
 */

ngx_int_t
ngx_http_classify_sse_feed(ngx_http_classify_sse_t *sse, u_char *p,
    size_t len)
{
    u_char  *span, *last, *nl, *q, *ev, *end;
    off_t    base;

    span = p;
    last = p + len;
    base = sse->offset;
    ev = (sse->start == base) ? p : NULL;

    while (p < last) {
        nl = ngx_strlchr(p, last, '\n');

        /* a line that is nothing but CR is blank */

        for (q = p; !sse->line && q < (nl ? nl : last); q++) {
            if (*q != '\r') {
                sse->line = 1;
            }
        }

        if (nl == NULL) {
            break;
        }

        end = nl + 1;

        if (sse->line) {
            if (sse->first) {
                ngx_http_classify_sse_type(sse, ev, span, nl);
                sse->first = 0;
            }

            sse->content = 1;
            sse->line = 0;

        } else {
            if (sse->content) {
                sse->end = base + (end - span);

                if (ngx_http_classify_sse_emit(sse, ev, span, end) != NGX_OK)
                {
                    return NGX_ERROR;
                }
            }

            /* the next event starts after the blank line */
            ngx_http_classify_sse_reset(sse);
            sse->start = base + (end - span);
            ev = end;
        }

        p = end;
    }

    sse->offset = base + len;

    /* the beginning of an event that goes on in the next bytes */

    if (ev != last) {
        return ngx_http_classify_sse_keep(sse, ev ? ev : span, last);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_classify_sse_emit(ngx_http_classify_sse_t *sse, u_char *ev,
    u_char *span, u_char *end)
{
    ngx_str_t  event;

    if (ev) {
        /* it came whole in these bytes: read in place */

        if ((size_t) (end - ev) > sse->max) {
            return sse->handler(sse, NULL);
        }

        event.data = ev;
        event.len = end - ev;

        return sse->handler(sse, &event);
    }

    if (ngx_http_classify_sse_keep(sse, span, end) != NGX_OK) {
        return NGX_ERROR;
    }

    if (sse->too_big) {
        return sse->handler(sse, NULL);
    }

    event.data = sse->buf;
    event.len = sse->len;

    return sse->handler(sse, &event);
}


/* bytes of an event in pieces, up to sse->max; the buffer grows doubling */

static ngx_int_t
ngx_http_classify_sse_keep(ngx_http_classify_sse_t *sse, u_char *from,
    u_char *to)
{
    size_t  n;

    n = to - from;

    if (sse->too_big || n == 0) {
        return NGX_OK;
    }

    if (sse->len + n > sse->max) {
        sse->too_big = 1;
        return NGX_OK;
    }

    if (ngx_http_classify_reserve(sse->pool, &sse->buf, sse->len, &sse->size,
                                  n, 1024, sse->max)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_memcpy(sse->buf + sse->len, from, n);
    sse->len += n;

    return NGX_OK;
}


/*
 * The type of the event from its first line, "event: TYPE": what an event
 * too big to be read is, and what an event not whole yet will be.
 */

static void
ngx_http_classify_sse_type(ngx_http_classify_sse_t *sse, u_char *ev,
    u_char *span, u_char *nl)
{
    u_char  *p, *from, line[NGX_HTTP_CLASSIFY_SSE_TYPE_LEN + 8];
    size_t   n, len;

    from = ev ? ev : span;

    /* a first line longer than an event may be is not read either */

    if (sse->too_big || (ev ? 0 : sse->len) + (nl - from) > sse->max) {
        return;
    }

    len = 0;

    if (ev == NULL) {
        len = ngx_min(sse->len, sizeof(line));
        ngx_memcpy(line, sse->buf, len);
    }

    n = ngx_min((size_t) (nl - from), sizeof(line) - len);
    ngx_memcpy(line + len, from, n);
    len += n;

    if (len && line[len - 1] == '\r') {
        len--;
    }

    if (len < 6 || ngx_strncmp(line, "event:", 6) != 0) {
        return;
    }

    p = line + 6;
    len -= 6;

    if (len && *p == ' ') {
        p++;
        len--;
    }

    if (len > NGX_HTTP_CLASSIFY_SSE_TYPE_LEN) {
        return;
    }

    ngx_memcpy(sse->type, p, len);
    sse->type_len = len;
    sse->typed = 1;
}


static void
ngx_http_classify_sse_reset(ngx_http_classify_sse_t *sse)
{
    sse->len = 0;
    sse->type_len = 0;
    sse->content = 0;
    sse->line = 0;
    sse->first = 1;
    sse->typed = 0;
    sse->too_big = 0;
}


/*
 * One whole event: what it is, its text and its ids, spans into the
 * event's bytes (or into the pool, for data in several lines).  An event
 * that is not one of the formats' (a comment, data that is not JSON) is
 * NGX_HTTP_CLASSIFY_EV_OTHER.
 */

ngx_int_t
ngx_http_classify_stream_event(ngx_pool_t *pool, ngx_str_t *event,
    ngx_str_t *type, ngx_http_classify_event_t *ev)
{
    ngx_str_t  data, line_type;

    ngx_memzero(ev, sizeof(ngx_http_classify_event_t));
    ev->created = -1;
    ev->seq = -1;
    ev->index = -1;
    ev->content = -1;

    if (ngx_http_classify_stream_data(pool, event, &line_type, &data)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (type) {
        *type = line_type;
    }

    if (data.data == NULL) {
        ngx_http_classify_stream_type(&line_type, ev);
        return NGX_OK;
    }

    if (data.len == 6 && ngx_strncmp(data.data, "[DONE]", 6) == 0) {
        ev->kind = NGX_HTTP_CLASSIFY_EV_CHAT_DONE;
        ev->closing = 1;
        ev->done = 1;
        return NGX_OK;
    }

    ngx_http_classify_stream_json(&data, ev);

    return NGX_OK;
}


/*
 * The event's "event:" type and its data: the "data:" lines joined by
 * LF, as SSE says; one line is a span of the event, more are joined into
 * the pool.
 */

static ngx_int_t
ngx_http_classify_stream_data(ngx_pool_t *pool, ngx_str_t *event,
    ngx_str_t *type, ngx_str_t *data)
{
    u_char      *p, *last, *eol, *line, *out;
    size_t       len, total;
    ngx_uint_t   lines, pass;

    ngx_str_null(type);
    ngx_str_null(data);

    out = NULL;
    total = 0;
    lines = 0;

    for (pass = 0; pass < 2; pass++) {

        last = event->data + event->len;

        for (p = event->data; p < last; p = eol + 1) {
            eol = ngx_strlchr(p, last, '\n');
            if (eol == NULL) {
                eol = last;
            }

            line = p;
            len = eol - p;

            if (len && line[len - 1] == '\r') {
                len--;
            }

            if (len >= 6 && ngx_strncmp(line, "event:", 6) == 0) {
                type->data = line + 6;
                type->len = len - 6;

                if (type->len && type->data[0] == ' ') {
                    type->data++;
                    type->len--;
                }

                continue;
            }

            if (len < 5 || ngx_strncmp(line, "data:", 5) != 0) {
                continue;
            }

            line += 5;
            len -= 5;

            if (len && *line == ' ') {
                line++;
                len--;
            }

            if (pass == 0) {
                if (lines++ == 0) {
                    data->data = line;
                    data->len = len;
                }

                total += len + 1;
                continue;
            }

            if (out != data->data) {
                *out++ = '\n';
            }

            out = ngx_cpymem(out, line, len);
        }

        if (lines < 2) {
            return NGX_OK;
        }

        if (pass == 0) {
            out = ngx_pnalloc(pool, total);
            if (out == NULL) {
                return NGX_ERROR;
            }

            data->data = out;
        }
    }

    data->len = out - data->data;

    return NGX_OK;
}


/* an event whose data is not read (too big): what its type says */

void
ngx_http_classify_stream_type(ngx_str_t *type,
    ngx_http_classify_event_t *ev)
{
    ngx_http_classify_event_name_t  *n;

    for (n = ngx_http_classify_event_names; n->name.len; n++) {
        if (n->name.len == type->len
            && ngx_strncmp(n->name.data, type->data, type->len) == 0)
        {
            ev->kind = n->kind;
            ev->closing = n->closing;
            ev->done = n->done;
            return;
        }
    }

    if (type->len > 9 && ngx_strncmp(type->data, "response.", 9) == 0) {
        ev->kind = NGX_HTTP_CLASSIFY_EV_RESP_OTHER;
    }
}


/* an event of that type never carries answer text (it may pass unread) */

ngx_uint_t
ngx_http_classify_stream_textless(ngx_str_t *type)
{
    ngx_http_classify_event_name_t  *n;

    for (n = ngx_http_classify_event_names; n->name.len; n++) {
        if (n->name.len == type->len
            && ngx_strncmp(n->name.data, type->data, type->len) == 0)
        {
            return !n->text;
        }
    }

    return type->len > 9 && ngx_strncmp(type->data, "response.", 9) == 0;
}


static void
ngx_http_classify_stream_json(ngx_str_t *data, ngx_http_classify_event_t *ev)
{
    ngx_uint_t                        i;
    ngx_str_t                         type;
    ngx_http_classify_jsonr_t         jr;
    ngx_http_classify_jsonr_field_t   f[NGX_HTTP_CLASSIFY_NFIELDS];

    ngx_memzero(f, sizeof(f));

    for (i = 0; i < NGX_HTTP_CLASSIFY_NFIELDS; i++) {
        f[i].name = ngx_http_classify_event_fields[i];
    }

    ngx_http_classify_jsonr_init(&jr, data->data, data->len);

    if (ngx_http_classify_jsonr_peek(&jr) != NGX_HTTP_CLASSIFY_JSON_OBJECT
        || ngx_http_classify_jsonr_fields(&jr, f, NGX_HTTP_CLASSIFY_NFIELDS)
           != NGX_OK
        || ngx_http_classify_jsonr_end(&jr) != NGX_OK)
    {
        /* not an event of a format: it passes as it is */
        return;
    }

    ev->seq = ngx_http_classify_stream_num(&f[NGX_HTTP_CLASSIFY_F_SEQ].value);

    if (f[NGX_HTTP_CLASSIFY_F_TYPE].type != NGX_HTTP_CLASSIFY_JSON_STRING) {
        if (f[NGX_HTTP_CLASSIFY_F_CHOICES].type
            == NGX_HTTP_CLASSIFY_JSON_ARRAY)
        {
            ngx_http_classify_stream_chat(f, ev);
        }

        return;
    }

    ngx_http_classify_jsonr_unquote(&f[NGX_HTTP_CLASSIFY_F_TYPE].value,
                                    &type);

    ngx_http_classify_stream_typed(&type, f, ev);
}


/* a chat.completion.chunk: choices[0]'s delta.content and finish_reason */

static void
ngx_http_classify_stream_chat(ngx_http_classify_jsonr_field_t *f,
    ngx_http_classify_event_t *ev)
{
    ngx_http_classify_jsonr_t         jr;
    ngx_http_classify_jsonr_field_t   c[2];

    ev->kind = NGX_HTTP_CLASSIFY_EV_CHAT;

    if (f[NGX_HTTP_CLASSIFY_F_ID].type == NGX_HTTP_CLASSIFY_JSON_STRING) {
        ngx_http_classify_jsonr_unquote(&f[NGX_HTTP_CLASSIFY_F_ID].value,
                                        &ev->id);
    }

    if (f[NGX_HTTP_CLASSIFY_F_MODEL].type == NGX_HTTP_CLASSIFY_JSON_STRING) {
        ngx_http_classify_jsonr_unquote(&f[NGX_HTTP_CLASSIFY_F_MODEL].value,
                                        &ev->model);
    }

    ev->created = ngx_http_classify_stream_num(
                                     &f[NGX_HTTP_CLASSIFY_F_CREATED].value);

    ngx_http_classify_jsonr_init(&jr, f[NGX_HTTP_CLASSIFY_F_CHOICES].value.data,
                                 f[NGX_HTTP_CLASSIFY_F_CHOICES].value.len);

    if (ngx_http_classify_jsonr_nth(&jr, 0) != NGX_OK) {
        /* the usage chunk, after the last one with a choice */
        ev->closing = (f[NGX_HTTP_CLASSIFY_F_USAGE].type
                       == NGX_HTTP_CLASSIFY_JSON_OBJECT);
        return;
    }

    if (ngx_http_classify_jsonr_peek(&jr) != NGX_HTTP_CLASSIFY_JSON_OBJECT) {
        return;
    }

    ngx_memzero(c, sizeof(c));
    ngx_str_set(&c[0].name, "delta");
    ngx_str_set(&c[1].name, "finish_reason");

    if (ngx_http_classify_jsonr_fields(&jr, c, 2) != NGX_OK) {
        return;
    }

    ev->closing = (c[1].type != NGX_HTTP_CLASSIFY_JSON_NONE
                   && c[1].type != NGX_HTTP_CLASSIFY_JSON_NULL);

    if (c[0].type == NGX_HTTP_CLASSIFY_JSON_OBJECT
        && ngx_http_classify_stream_sub(&c[0].value, "content", &ev->text)
           == NGX_OK)
    {
        ev->has_text = 1;
    }
}


/* an event with a "type": Responses' and Anthropic's */

static void
ngx_http_classify_stream_typed(ngx_str_t *type,
    ngx_http_classify_jsonr_field_t *f, ngx_http_classify_event_t *ev)
{
    ngx_str_t  *span;

    ngx_http_classify_stream_type(type, ev);

    ev->index = ngx_http_classify_stream_num(
                                       &f[NGX_HTTP_CLASSIFY_F_INDEX].value);

    switch (ev->kind) {

    case NGX_HTTP_CLASSIFY_EV_RESP_CREATED:
        span = &f[NGX_HTTP_CLASSIFY_F_RESPONSE].value;

        if (f[NGX_HTTP_CLASSIFY_F_RESPONSE].type
            == NGX_HTTP_CLASSIFY_JSON_OBJECT)
        {
            (void) ngx_http_classify_stream_sub(span, "id", &ev->id);
            (void) ngx_http_classify_stream_sub(span, "model", &ev->model);
        }

        break;

    case NGX_HTTP_CLASSIFY_EV_RESP_ITEM_ADDED:
        ev->index = ngx_http_classify_stream_num(
                                &f[NGX_HTTP_CLASSIFY_F_OUTPUT_INDEX].value);

        if (ngx_http_classify_stream_of_type(&f[NGX_HTTP_CLASSIFY_F_ITEM],
                                             "message"))
        {
            ev->is_text = 1;
            (void) ngx_http_classify_stream_sub(
                           &f[NGX_HTTP_CLASSIFY_F_ITEM].value, "id", &ev->id);
        }

        break;

    case NGX_HTTP_CLASSIFY_EV_RESP_PART_ADDED:
        ev->content = ngx_http_classify_stream_num(
                                &f[NGX_HTTP_CLASSIFY_F_CONTENT_INDEX].value);
        ev->is_text = ngx_http_classify_stream_of_type(
                                &f[NGX_HTTP_CLASSIFY_F_PART], "output_text");
        break;

    case NGX_HTTP_CLASSIFY_EV_RESP_TEXT:
        if (f[NGX_HTTP_CLASSIFY_F_DELTA].type == NGX_HTTP_CLASSIFY_JSON_STRING)
        {
            ngx_http_classify_jsonr_unquote(&f[NGX_HTTP_CLASSIFY_F_DELTA].value,
                                            &ev->text);
            ev->has_text = 1;
        }

        break;

    case NGX_HTTP_CLASSIFY_EV_ANT_BLOCK_START:
        ev->is_text = ngx_http_classify_stream_of_type(
                                       &f[NGX_HTTP_CLASSIFY_F_BLOCK], "text");
        break;

    case NGX_HTTP_CLASSIFY_EV_ANT_BLOCK_DELTA:
        if (ngx_http_classify_stream_of_type(&f[NGX_HTTP_CLASSIFY_F_DELTA],
                                             "text_delta")
            && ngx_http_classify_stream_sub(&f[NGX_HTTP_CLASSIFY_F_DELTA].value,
                                            "text", &ev->text)
               == NGX_OK)
        {
            ev->has_text = 1;
        }

        break;

    default:
        break;
    }
}


/* the member is an object whose "type" is that one */

static ngx_uint_t
ngx_http_classify_stream_of_type(ngx_http_classify_jsonr_field_t *f,
    const char *type)
{
    ngx_str_t  t;

    return f->type == NGX_HTTP_CLASSIFY_JSON_OBJECT
           && ngx_http_classify_stream_sub(&f->value, "type", &t) == NGX_OK
           && ngx_http_classify_jsonr_eq(&t, (u_char *) type,
                                         ngx_strlen(type));
}


/* the raw string of a member of the object in that span */

static ngx_int_t
ngx_http_classify_stream_sub(ngx_str_t *span, const char *name,
    ngx_str_t *raw)
{
    ngx_http_classify_jsonr_t  jr;

    ngx_http_classify_jsonr_init(&jr, span->data, span->len);

    if (ngx_http_classify_jsonr_get(&jr, (u_char *) name, ngx_strlen(name))
        != NGX_OK
        || ngx_http_classify_jsonr_peek(&jr) != NGX_HTTP_CLASSIFY_JSON_STRING)
    {
        return NGX_DECLINED;
    }

    return ngx_http_classify_jsonr_string(&jr, raw);
}


/* a number's span as a non-negative integer, -1 if it is not one */

static ngx_int_t
ngx_http_classify_stream_num(ngx_str_t *span)
{
    ngx_int_t  n;

    if (span->len == 0 || span->len > NGX_INT_T_LEN - 1) {
        return -1;
    }

    n = ngx_atoi(span->data, span->len);

    return n == NGX_ERROR ? -1 : n;
}


void
ngx_http_classify_stream_init(ngx_http_classify_stream_t *st)
{
    ngx_memzero(st, sizeof(ngx_http_classify_stream_t));

    st->item = -1;
    st->part = -1;
    st->block = -1;
}


/*
 * What the event changes in the stream's state; text is how many bytes
 * of answer text it added (decoded).  Ids are copied into the pool: the
 * event's bytes do not stay.
 */

ngx_int_t
ngx_http_classify_stream_apply(ngx_pool_t *pool,
    ngx_http_classify_stream_t *st, ngx_http_classify_event_t *ev,
    size_t text)
{
    st->text += text;
    st->closing |= ev->closing;
    st->done |= ev->done;

    switch (ev->kind) {

    case NGX_HTTP_CLASSIFY_EV_OTHER:
        return NGX_OK;

    case NGX_HTTP_CLASSIFY_EV_CHAT:
    case NGX_HTTP_CLASSIFY_EV_CHAT_DONE:
        st->format = NGX_HTTP_CLASSIFY_FORMAT_OPENAI;
        st->started = 1;

        if (st->created == 0 && ev->created > 0) {
            st->created = ev->created;
        }

        if (st->id.len == 0
            && ngx_http_classify_stream_copy(pool, &ev->id, &st->id)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (st->model.len == 0) {
            return ngx_http_classify_stream_copy(pool, &ev->model,
                                                 &st->model);
        }

        return NGX_OK;

    case NGX_HTTP_CLASSIFY_EV_ANT_START:
    case NGX_HTTP_CLASSIFY_EV_ANT_BLOCK_DELTA:
    case NGX_HTTP_CLASSIFY_EV_ANT_DELTA:
    case NGX_HTTP_CLASSIFY_EV_ANT_STOP:
        st->format = NGX_HTTP_CLASSIFY_FORMAT_ANTHROPIC;
        st->started = 1;
        return NGX_OK;

    case NGX_HTTP_CLASSIFY_EV_ANT_BLOCK_START:
        st->format = NGX_HTTP_CLASSIFY_FORMAT_ANTHROPIC;
        st->started = 1;
        st->block = ev->index >= 0 ? ev->index : (ngx_int_t) st->blocks;
        st->blocks = ngx_max(st->blocks, (ngx_uint_t) st->block + 1);
        st->block_text = ev->is_text;
        return NGX_OK;

    case NGX_HTTP_CLASSIFY_EV_ANT_BLOCK_STOP:
        st->block = -1;
        return NGX_OK;

    default:
        return ngx_http_classify_stream_responses(pool, st, ev);
    }
}


/* the same for a Responses event: each has the next sequence number */

static ngx_int_t
ngx_http_classify_stream_responses(ngx_pool_t *pool,
    ngx_http_classify_stream_t *st, ngx_http_classify_event_t *ev)
{
    st->format = NGX_HTTP_CLASSIFY_FORMAT_RESPONSES;
    st->started = 1;
    st->seq = ev->seq >= 0 ? (ngx_uint_t) ev->seq + 1 : st->seq + 1;

    switch (ev->kind) {

    case NGX_HTTP_CLASSIFY_EV_RESP_CREATED:
        if (ngx_http_classify_stream_copy(pool, &ev->id, &st->id) != NGX_OK) {
            return NGX_ERROR;
        }

        return ngx_http_classify_stream_copy(pool, &ev->model, &st->model);

    case NGX_HTTP_CLASSIFY_EV_RESP_ITEM_ADDED:
        st->item = -1;
        st->part = -1;
        st->parts = 0;

        if (ev->is_text) {
            st->item = ev->index >= 0 ? ev->index : (ngx_int_t) st->items;

            if (ngx_http_classify_stream_copy(pool, &ev->id, &st->item_id)
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

        st->items++;
        return NGX_OK;

    case NGX_HTTP_CLASSIFY_EV_RESP_ITEM_DONE:
        st->item = -1;
        st->part = -1;
        return NGX_OK;

    case NGX_HTTP_CLASSIFY_EV_RESP_PART_ADDED:
        if (st->item < 0) {
            return NGX_OK;
        }

        st->part = -1;

        if (ev->is_text) {
            st->part = ev->content >= 0 ? ev->content : (ngx_int_t) st->parts;
            st->part_text = st->text;
        }

        st->parts++;
        return NGX_OK;

    case NGX_HTTP_CLASSIFY_EV_RESP_PART_DONE:
        st->part = -1;
        return NGX_OK;

    default:
        return NGX_OK;
    }
}


/* a raw JSON string decoded into the pool (empty stays empty) */

static ngx_int_t
ngx_http_classify_stream_copy(ngx_pool_t *pool, ngx_str_t *raw, ngx_str_t *s)
{
    if (raw->len == 0) {
        ngx_str_null(s);
        return NGX_OK;
    }

    return ngx_http_classify_jsonr_decode(pool, raw, s);
}


/*
 * The text of a whole answer, copied to out: a chat.completion's
 * choices[0].message.content, the "output_text" parts of a Response's
 * "message" items, the "text" blocks of an Anthropic Message.  NULL when
 * it has none.  out has room for len bytes: a decoded string is never
 * longer than its JSON.
 */

u_char *
ngx_http_classify_answer_text(u_char *data, size_t len, u_char *out)
{
    u_char                           *start;
    ngx_str_t                         raw;
    const char                       *cause;
    ngx_http_classify_jsonr_t         jr;
    ngx_http_classify_jsonr_field_t   f[2], item[2];

    if (ngx_http_classify_openai_content(data, len, 0, &raw, &cause)
        == NGX_OK)
    {
        return ngx_http_classify_jsonr_copy(out, &raw);
    }

    ngx_memzero(f, sizeof(f));
    ngx_str_set(&f[0].name, "output");
    ngx_str_set(&f[1].name, "content");

    if (ngx_http_classify_jsonr_valid(data, len, &jr) != NGX_OK) {
        return NULL;
    }

    ngx_http_classify_jsonr_init(&jr, data, len);

    if (ngx_http_classify_jsonr_peek(&jr) != NGX_HTTP_CLASSIFY_JSON_OBJECT
        || ngx_http_classify_jsonr_fields(&jr, f, 2) != NGX_OK)
    {
        return NULL;
    }

    start = out;

    if (f[1].type == NGX_HTTP_CLASSIFY_JSON_ARRAY) {
        out = ngx_http_classify_copy_parts(&f[1].value, "text", out);
        return out == start ? NULL : out;
    }

    if (f[0].type != NGX_HTTP_CLASSIFY_JSON_ARRAY) {
        return NULL;
    }

    ngx_memzero(item, sizeof(item));
    ngx_str_set(&item[0].name, "type");
    ngx_str_set(&item[1].name, "content");

    ngx_http_classify_jsonr_init(&jr, f[0].value.data, f[0].value.len);
    (void) ngx_http_classify_jsonr_array(&jr);

    while (ngx_http_classify_jsonr_element(&jr) == NGX_OK) {

        if (ngx_http_classify_jsonr_peek(&jr) != NGX_HTTP_CLASSIFY_JSON_OBJECT)
        {
            (void) ngx_http_classify_jsonr_skip(&jr, NULL);
            continue;
        }

        if (ngx_http_classify_jsonr_fields(&jr, item, 2) != NGX_OK) {
            return NULL;
        }

        if (item[0].type != NGX_HTTP_CLASSIFY_JSON_STRING
            || item[1].type != NGX_HTTP_CLASSIFY_JSON_ARRAY)
        {
            continue;
        }

        ngx_http_classify_jsonr_unquote(&item[0].value, &raw);

        if (ngx_http_classify_jsonr_is(&raw, "message")) {
            out = ngx_http_classify_copy_parts(&item[1].value, "output_text",
                                               out);
        }
    }

    return out == start ? NULL : out;
}


/* the "text" of each part of that "type" in the array, copied to out */

static u_char *
ngx_http_classify_copy_parts(ngx_str_t *array, const char *type, u_char *out)
{
    ngx_str_t                   raw;
    ngx_http_classify_jsonr_t   jr;

    ngx_http_classify_jsonr_init(&jr, array->data, array->len);
    (void) ngx_http_classify_jsonr_array(&jr);

    while (ngx_http_classify_jsonr_element(&jr) == NGX_OK) {

        if (ngx_http_classify_jsonr_peek(&jr) != NGX_HTTP_CLASSIFY_JSON_OBJECT)
        {
            (void) ngx_http_classify_jsonr_skip(&jr, NULL);
            continue;
        }

        if (ngx_http_classify_typed_text(&jr, type, &raw) == NGX_OK) {
            out = ngx_http_classify_jsonr_copy(out, &raw);
        }
    }

    return out;
}


/* the "text" of the object at the reader, read whole, if of that "type" */

static ngx_int_t
ngx_http_classify_typed_text(ngx_http_classify_jsonr_t *jr, const char *type,
    ngx_str_t *raw)
{
    ngx_str_t                         t;
    ngx_http_classify_jsonr_field_t   f[2];

    ngx_memzero(f, sizeof(f));
    ngx_str_set(&f[0].name, "type");
    ngx_str_set(&f[1].name, "text");

    if (ngx_http_classify_jsonr_fields(jr, f, 2) != NGX_OK
        || f[0].type != NGX_HTTP_CLASSIFY_JSON_STRING
        || f[1].type != NGX_HTTP_CLASSIFY_JSON_STRING)
    {
        return NGX_DECLINED;
    }

    ngx_http_classify_jsonr_unquote(&f[0].value, &t);

    if (!ngx_http_classify_jsonr_eq(&t, (u_char *) type, ngx_strlen(type))) {
        return NGX_DECLINED;
    }

    ngx_http_classify_jsonr_unquote(&f[1].value, raw);

    return NGX_OK;
}

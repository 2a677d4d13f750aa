
/*
 * ngx_http_classify_module: the module's body filter.  It keeps the
 * answers of classifier subrequests (ngx_http_classify_answer_filter()),
 * hands a speculative generation's response to speculate.c (held, or
 * relayed to the main request, where it passes here again as a pass's
 * would) and, for classify_context_store, the generated answer.
 *
 * A body filter on a passed request copies the generation's response as
 * it goes by (nothing is held back: each buffer is passed on unchanged),
 * and when the response ends complete extracts the assistant's text, in
 * whichever of the three chat formats the backend answered: the text
 * deltas of a stream up to its last event (chat completions' "[DONE]",
 * Responses' response.completed, Anthropic's message_stop), or the text
 * of one whole answer.  A response that ends early (the client or the
 * backend went away, or the stream has no last event) stores nothing.
 */


#include "ngx_http_classify.h"
#include "ngx_http_classify_capture.h"
#include "ngx_http_classify_gate.h"
#include "ngx_http_classify_subreq.h"
#include "ngx_http_classify_redis.h"
#include "ngx_http_classify_jsonr.h"
#include "ngx_http_classify_speculate.h"
#include "ngx_http_classify_verdict.h"
#include "ngx_http_classify_stream.h"


#define NGX_HTTP_CLASSIFY_CAPTURE_MAX  (256 * 1024)


static ngx_int_t ngx_http_classify_request_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_http_classify_keep_body(ngx_http_request_t *r,
    ngx_http_classify_ctx_t *ctx, u_char *data, size_t len);
static ngx_int_t ngx_http_classify_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_classify_capture_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static void ngx_http_classify_capture_done(ngx_http_request_t *r,
    ngx_http_classify_ctx_t *ctx);
static ngx_int_t ngx_http_classify_capture_text(ngx_pool_t *pool,
    ngx_str_t *raw, ngx_str_t *text, const char **err);
static ngx_int_t ngx_http_classify_capture_event(ngx_http_classify_sse_t *sse,
    ngx_str_t *event);


static ngx_http_request_body_filter_pt   ngx_http_next_request_body_filter;
static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


ngx_int_t
ngx_http_classify_capture_init(ngx_conf_t *cf)
{
    ngx_http_next_request_body_filter = ngx_http_top_request_body_filter;
    ngx_http_top_request_body_filter = ngx_http_classify_request_body_filter;

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_classify_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_classify_capture_filter;

    return NGX_OK;
}


/*
 * The client's body as it arrives, for a gate whose body nginx may write
 * to a temporary file (ngx_http_classify_keep_body()): a copy in memory,
 * so that the gate never reads the file back with a blocking read.
 */

static ngx_int_t
ngx_http_classify_request_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_chain_t              *cl;
    ngx_http_classify_ctx_t  *ctx;

    ctx = (r == r->main) ? ngx_http_get_module_ctx(r, ngx_http_classify_module)
                         : NULL;

    if (ctx && ctx->keep_body) {
        for (cl = in; cl; cl = cl->next) {
            if (ngx_buf_in_memory(cl->buf)
                && ngx_http_classify_keep_body(r, ctx, cl->buf->pos,
                                           cl->buf->last - cl->buf->pos)
                   != NGX_OK)
            {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
        }
    }

    return ngx_http_next_request_body_filter(r, in);
}


/*
 * The copy grows as the body arrives (16 KiB, then doubling), never past
 * the Content-Length; nginx has checked client_max_body_size before.
 */

static ngx_int_t
ngx_http_classify_keep_body(ngx_http_request_t *r,
    ngx_http_classify_ctx_t *ctx, u_char *data, size_t len)
{
    if (len == 0) {
        return NGX_OK;
    }

    if (ngx_http_classify_reserve(r->pool, &ctx->body.data, ctx->body.len,
                                  &ctx->body_size, len, 16384,
                                  r->headers_in.content_length_n > 0
                                  ? (size_t) r->headers_in.content_length_n
                                  : 0)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_memcpy(ctx->body.data + ctx->body.len, data, len);
    ctx->body.len += len;

    return NGX_OK;
}


static ngx_int_t
ngx_http_classify_header_filter(ngx_http_request_t *r)
{
    ngx_http_classify_spec_t  *spec;

    if (r != r->main) {
        if (ngx_http_classify_is_call(r)) {
            ngx_http_classify_call_header(r);

        } else {
            spec = ngx_http_classify_speculation(r);

            if (spec) {
                /* held until the verdict, then the main request's */
                return ngx_http_classify_speculate_header(spec, r);
            }
        }
    }

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_classify_capture_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    size_t                          len;
    ngx_chain_t                    *cl;
    ngx_http_classify_ctx_t        *ctx;
    ngx_http_classify_spec_t       *spec;
    ngx_http_classify_main_conf_t  *cmcf;

    if (r != r->main) {
        if (ngx_http_classify_is_call(r)) {
            /* a classifier's answer: kept by the call, not sent on */
            return ngx_http_classify_call_collect(r, r->post_subrequest->data,
                                                  in);
        }

        spec = ngx_http_classify_speculation(r);

        if (spec) {
            /* a speculative generation: held, or relayed to the client */
            return ngx_http_classify_speculate_body(spec, r, in);
        }

        return ngx_http_next_body_filter(r, in);
    }

    cmcf = ngx_http_get_module_main_conf(r, ngx_http_classify_module);

    if (!cmcf->capture || in == NULL) {
        return ngx_http_next_body_filter(r, in);
    }

    ctx = ngx_http_classify_get_ctx(r);

    if (ctx == NULL
        || ctx->verdict != NGX_HTTP_CLASSIFY_PASS
        || !ctx->conf->context_store
        || ctx->redis_key.len == 0
        || ctx->capture_done)
    {
        return ngx_http_next_body_filter(r, in);
    }

    for (cl = in; cl; cl = cl->next) {

        if (ngx_buf_special(cl->buf)) {
            /* flush, last_buf: no data */

        } else if (!ngx_buf_in_memory(cl->buf)) {
            /* a file buffer: not a stream this module can read */
            ctx->capture_failed = 1;

        } else if (!ctx->capture_failed) {
            len = cl->buf->last - cl->buf->pos;

            if (ctx->capture.len + len > NGX_HTTP_CLASSIFY_CAPTURE_MAX) {
                ctx->capture_failed = 1;

            } else if (len) {
                if (ngx_http_classify_reserve(r->pool, &ctx->capture.data,
                                              ctx->capture.len,
                                              &ctx->capture_size, len, 4096,
                                              0)
                    != NGX_OK)
                {
                    return NGX_ERROR;
                }

                ngx_memcpy(ctx->capture.data + ctx->capture.len,
                           cl->buf->pos, len);
                ctx->capture.len += len;
            }
        }

        if (cl->buf->last_buf) {
            ctx->capture_done = 1;
            ngx_http_classify_capture_done(r, ctx);
        }
    }

    return ngx_http_next_body_filter(r, in);
}


static void
ngx_http_classify_capture_done(ngx_http_request_t *r,
    ngx_http_classify_ctx_t *ctx)
{
    ngx_str_t    text;
    ngx_uint_t   level;
    const char  *err;

    err = "out of memory";

    if (ctx->capture_failed) {
        err = "the answer is not in memory or over 256 KiB";

    } else if (r->connection->error) {
        err = "the client went away";

    } else if (r->headers_out.status != NGX_HTTP_OK) {
        err = "the generation did not answer 200";

    } else if (ngx_http_classify_capture_text(r->pool, &ctx->capture, &text,
                                              &err)
               == NGX_OK)
    {
        ngx_http_classify_redis_store(ctx->conf->redis, &ctx->redis_key,
                                      &ctx->conf->context, &ctx->input.query,
                                      &text, r->pool);
        return;
    }

    /* a client that went away is the client's business */
    level = r->connection->error ? NGX_LOG_INFO : NGX_LOG_WARN;

    ngx_log_error(level, r->connection->log, 0,
                  "classify: answer not stored in \"%V\": %s",
                  &ctx->redis_key, err);
}


/* what the capture reads of a stream, one event at a time */

typedef struct {
    u_char                      *out;
    ngx_uint_t                   done;
} ngx_http_classify_capture_read_t;


/*
 * The assistant's text of an SSE stream or of one whole answer, in any of
 * the three chat formats (stream.c reads them).  Each piece is decoded
 * into one buffer of the raw answer's size: a decoded string is never
 * longer than its JSON, so together they fit.
 */

static ngx_int_t
ngx_http_classify_capture_text(ngx_pool_t *pool, ngx_str_t *raw,
    ngx_str_t *text, const char **err)
{
    u_char                            *p, *last;
    ngx_http_classify_sse_t            sse;
    ngx_http_classify_capture_read_t   rd;

    p = raw->data;
    last = raw->data + raw->len;

    rd.out = ngx_pnalloc(pool, raw->len + 1);
    if (rd.out == NULL) {
        return NGX_ERROR;
    }

    text->data = rd.out;

    while (p < last && (*p == ' ' || *p == '\r' || *p == '\n')) {
        p++;
    }

    if (p < last && *p == '{') {
        rd.out = ngx_http_classify_answer_text(p, last - p, rd.out);

        if (rd.out == NULL) {
            *err = "no text in the answer";
            return NGX_DECLINED;
        }

        text->len = rd.out - text->data;

        return NGX_OK;
    }

    rd.done = 0;

    ngx_http_classify_sse_init(&sse, pool, raw->len);
    sse.handler = ngx_http_classify_capture_event;
    sse.data = &rd;

    if (ngx_http_classify_sse_feed(&sse, raw->data, raw->len) != NGX_OK) {
        return NGX_ERROR;
    }

    if (!rd.done) {
        *err = "the stream ended without \"data: [DONE]\", "
               "response.completed or message_stop";
        return NGX_DECLINED;
    }

    text->len = rd.out - text->data;

    return NGX_OK;
}


/* an event's text, up to the stream's last event */

static ngx_int_t
ngx_http_classify_capture_event(ngx_http_classify_sse_t *sse,
    ngx_str_t *event)
{
    ngx_http_classify_capture_read_t  *rd = sse->data;

    ngx_http_classify_event_t  ev;

    if (rd->done || event == NULL) {
        return NGX_OK;
    }

    if (ngx_http_classify_stream_event(sse->pool, event, NULL, &ev)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ev.has_text) {
        rd->out = ngx_http_classify_jsonr_copy(rd->out, &ev.text);
    }

    rd->done = ev.done;

    return NGX_OK;
}

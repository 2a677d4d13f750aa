
/*
 * ngx_http_classify_module: start, collect and abort classifier calls.
 *
 * Each call is an in-memory background subrequest (the pattern of njs's
 * r.subrequest()): its answer lands in sr->out, its post handler records
 * the verdict once and wakes the parent, and nginx keeps the main request
 * alive (r->main->count) until it ends.  A call the gate no longer needs
 * is aborted through its upstream's own cleanup, which closes the peer
 * connection and finalizes the subrequest with NGX_DONE.
 */


#include "ngx_http_classify.h"


static ngx_int_t ngx_http_classify_done(ngx_http_request_t *sr, void *data,
    ngx_int_t rc);
static void ngx_http_classify_record(ngx_http_classify_call_t *call,
    ngx_http_request_t *sr, ngx_int_t rc);


static ngx_str_t  ngx_http_classify_post = ngx_string("POST");
static ngx_str_t  ngx_http_classify_content_type =
    ngx_string("application/json");


ngx_int_t
ngx_http_classify_start(ngx_http_classify_ctx_t *ctx,
    ngx_http_classify_call_t *call)
{
    ngx_buf_t                       *b;
    ngx_str_t                        body;
    ngx_chain_t                     *out;
    ngx_table_elt_t                 *h;
    ngx_http_request_t              *r, *sr;
    ngx_http_request_body_t         *rb;
    ngx_http_classify_classifier_t  *cl;

    r = ctx->request;
    cl = call->classifier;

    call->started = 1;
    call->ctx = ctx;
    ngx_gettimeofday(&call->start);
    call->deadline = ngx_current_msec + cl->timeout;

    if (ngx_http_classify_build_body(r->pool, cl, &ctx->input, &body)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    call->ps.handler = ngx_http_classify_done;
    call->ps.data = call;

    if (ngx_http_subrequest(r, &cl->pass_uri,
                            cl->pass_args.len ? &cl->pass_args : NULL,
                            &sr, &call->ps,
                            NGX_HTTP_SUBREQUEST_IN_MEMORY
                            |NGX_HTTP_SUBREQUEST_BACKGROUND)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    call->sr = sr;

    /* a POST of our own body, not the client's */

    sr->method = NGX_HTTP_POST;
    sr->method_name = ngx_http_classify_post;

    rb = ngx_pcalloc(r->pool, sizeof(ngx_http_request_body_t));
    if (rb == NULL) {
        return NGX_ERROR;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->start = body.data;
    b->pos = body.data;
    b->last = body.data + body.len;
    b->end = b->last;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;

    out = ngx_alloc_chain_link(r->pool);
    if (out == NULL) {
        return NGX_ERROR;
    }

    out->buf = b;
    out->next = NULL;

    rb->bufs = out;
    rb->rest = 0;

    sr->request_body = rb;
    sr->headers_in.content_length_n = body.len;
    sr->headers_in.content_length = NULL;
    sr->headers_in.chunked = 0;

    /*
     * the subrequest's header list aliases the client's: give it a list of
     * its own, so that no client header (cookies, credentials) reaches a
     * classifier unless the operator's proxy_set_header sends it
     */

    if (ngx_list_init(&sr->headers_in.headers, r->pool, 2,
                      sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    h = ngx_list_push(&sr->headers_in.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    ngx_str_set(&h->key, "Content-Type");
    h->value = ngx_http_classify_content_type;
    h->lowcase_key = (u_char *) "content-type";
    h->hash = ngx_hash_key(h->lowcase_key, h->key.len);
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    sr->headers_in.content_type = h;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "classify: started \"%V\" -> \"%V\", body %uz",
                   &cl->name, &cl->pass_uri, body.len);

    return NGX_OK;
}


static ngx_int_t
ngx_http_classify_done(ngx_http_request_t *sr, void *data, ngx_int_t rc)
{
    ngx_http_classify_call_t  *call = data;

    ngx_http_classify_ctx_t  *ctx;

    if (call->done) {
        return NGX_OK;
    }

    call->done = 1;
    ctx = call->ctx;

    if (call->aborted) {
        /* a call the gate gave up on that had no upstream to close */
        return NGX_OK;
    }

    ngx_http_classify_record(call, sr, rc);

    if (call->classifier->shadow) {
        ngx_http_classify_metrics_shadow(ctx, call);
    }

    if (sr->connection->error) {
        return rc;
    }

    if (ctx->waiting) {
        ngx_http_classify_settled(ctx, call);

        /* resume the gate from the parent's write handler, not from here */

        if (ngx_http_post_request(ctx->request, NULL) != NGX_OK) {
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    /* the decision was made: a shadow classifier finished afterwards */

    if (ngx_http_classify_pending_shadows(ctx) == 0 && ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    return NGX_OK;
}


static void
ngx_http_classify_record(ngx_http_classify_call_t *call,
    ngx_http_request_t *sr, ngx_int_t rc)
{
    ngx_buf_t                       *b;
    ngx_http_classify_classifier_t  *cl;

    cl = call->classifier;

    ngx_http_classify_elapsed(call);

    call->status = sr->headers_out.status;

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        /* the upstream failed before a response: connect, timeout, 5xx */
        call->status = rc;
        call->verdict = NGX_HTTP_CLASSIFY_ERROR;
        call->cause = "no answer from the classifier";

    } else if (rc == NGX_ERROR) {
        call->verdict = NGX_HTTP_CLASSIFY_ERROR;
        call->cause = "answer was cut off or too big "
                      "for subrequest_output_buffer_size";

    } else if (call->status < 200 || call->status > 299) {
        call->verdict = NGX_HTTP_CLASSIFY_ERROR;
        call->cause = "classifier answered with a non-2xx status";

    } else {
        b = sr->out ? sr->out->buf : NULL;

        call->verdict = ngx_http_classify_parse_answer(cl,
                                                  b ? b->pos : NULL,
                                                  b ? b->last - b->pos : 0,
                                                  &call->cause);
    }

    if (call->verdict == NGX_HTTP_CLASSIFY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, sr->connection->log, 0,
                      "classifier \"%V\" failed: %s (status %ui), %s",
                      &cl->name, call->cause, call->status,
                      cl->on_error == NGX_HTTP_CLASSIFY_ON_ERROR_BLOCK
                      ? "blocking (on_error block)"
                      : "passing (on_error pass)");
        return;
    }

    if (cl->shadow) {
        ngx_log_error(NGX_LOG_INFO, sr->connection->log, 0,
                      "classify: shadow classifier \"%V\" answered %s "
                      "in %M.%03Mms", &cl->name,
                      call->verdict == NGX_HTTP_CLASSIFY_POSITIVE
                      ? "positive" : "negative",
                      call->usec / 1000, call->usec % 1000);
        return;
    }

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, sr->connection->log, 0,
                   "classify: \"%V\" answered %ui in %M.%03Mms",
                   &cl->name, call->verdict,
                   call->usec / 1000, call->usec % 1000);
}


void
ngx_http_classify_elapsed(ngx_http_classify_call_t *call)
{
    struct timeval  tv;

    ngx_gettimeofday(&tv);

    call->usec = (tv.tv_sec - call->start.tv_sec) * 1000000
                 + (tv.tv_usec - call->start.tv_usec);
}


/*
 * Gives up a call: the upstream's cleanup closes the peer connection (so
 * that the backend sees the client go and stops costing) and finalizes the
 * subrequest with NGX_DONE, which balances r->main->count without calling
 * the post handler.  Only from the parent's own handlers or a timer, never
 * from another subrequest's post handler.
 */

void
ngx_http_classify_abort(ngx_http_classify_call_t *call)
{
    ngx_http_request_t   *sr;
    ngx_http_upstream_t  *u;

    sr = call->sr;

    if (!call->started || call->done || call->aborted) {
        return;
    }

    call->aborted = 1;
    ngx_http_classify_elapsed(call);

    if (sr == NULL) {
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, sr->connection->log, 0,
                   "classify: aborting \"%V\"", &call->classifier->name);

    u = sr->upstream;

    if (u && u->cleanup && *u->cleanup) {
        (*u->cleanup)(sr);
    }
}

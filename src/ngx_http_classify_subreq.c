
/*
 * ngx_http_classify_module: start, collect and abort classifier calls.
 *
 * Each call is an in-memory background subrequest (the pattern of njs's
 * r.subrequest()): its post handler records the verdict once and wakes the
 * parent, and nginx keeps the main request alive (r->main->count) until it
 * ends.  The answer itself is collected by this module's body filter, not
 * by nginx's in-memory postpone filter: that one fails an answer bigger
 * than subrequest_output_buffer_size with NGX_ERROR, which
 * ngx_http_output_filter() turns into c->error on the connection the
 * subrequest shares with the client, and the client's request dies.  Here
 * a too big answer is only that classifier's error.
 *
 * A call the gate no longer needs is aborted through its upstream's own
 * cleanup, which closes the peer connection and finalizes the subrequest
 * with NGX_DONE.
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
     * client_max_body_size limits what a client sends, and the client's
     * body passed the gate's; the body built here (prompt, context and
     * query) must not be refused with a 413 by the classifier location's
     * limit.  nginx skips that check for a request whose body is being
     * discarded; a subrequest never reads the client connection, so the
     * flag has no other effect on it.
     */

    sr->discard_body = 1;

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
    ngx_http_classify_classifier_t  *cl;

    cl = call->classifier;

    ngx_http_classify_elapsed(call);

    call->status = sr->headers_out.status;

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        /* the upstream failed before a response: connect, timeout, 5xx */
        call->status = rc;
        call->verdict = NGX_HTTP_CLASSIFY_ERROR;
        call->cause = "no answer from the classifier";

    } else if (rc == NGX_ERROR
               || (sr->headers_out.content_length_n >= 0
                   && call->received < sr->headers_out.content_length_n))
    {
        /* the connection ended before the Content-Length it announced */
        call->verdict = NGX_HTTP_CLASSIFY_ERROR;
        call->cause = "answer was cut off";

    } else if (call->status < 200 || call->status > 299) {
        call->verdict = NGX_HTTP_CLASSIFY_ERROR;
        call->cause = "classifier answered with a non-2xx status";

    } else if (call->too_big) {
        call->verdict = NGX_HTTP_CLASSIFY_ERROR;
        call->cause = "answer bigger than subrequest_output_buffer_size";

    } else {
        call->verdict = ngx_http_classify_parse_answer(cl, call->answer.data,
                                                       call->answer.len,
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


/* whether r is one of this module's classifier subrequests */

ngx_int_t
ngx_http_classify_is_call(ngx_http_request_t *r)
{
    return r->post_subrequest
           && r->post_subrequest->handler == ngx_http_classify_done;
}


/*
 * The body filter of a classifier subrequest: the answer is copied into
 * the call, up to the classifier location's subrequest_output_buffer_size,
 * and consumed here.
 */

ngx_int_t
ngx_http_classify_answer_filter(ngx_http_request_t *r,
    ngx_http_classify_call_t *call, ngx_chain_t *in)
{
    size_t                     len;
    ssize_t                    n;
    ngx_buf_t                 *b;
    ngx_chain_t               *cl;
    ngx_http_core_loc_conf_t  *clcf;

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;

        if (ngx_buf_special(b)) {
            continue;
        }

        len = ngx_buf_in_memory(b) ? (size_t) (b->last - b->pos)
                                   : (size_t) (b->file_last - b->file_pos);

        call->received += len;

        if (call->too_big || len == 0) {
            goto consumed;
        }

        if (call->answer.data == NULL) {
            clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

            call->answer_size = clcf->subrequest_output_buffer_size;

            call->answer.data = ngx_pnalloc(r->pool, call->answer_size);
            if (call->answer.data == NULL) {
                return NGX_ERROR;
            }
        }

        if (call->answer.len + len > call->answer_size) {
            call->too_big = 1;
            goto consumed;
        }

        if (ngx_buf_in_memory(b)) {
            ngx_memcpy(call->answer.data + call->answer.len, b->pos, len);

        } else {
            /*
             * the proxy buffered a big answer to its temporary file; read
             * it back, as nginx's copy filter does for in-memory requests
             */

            n = ngx_read_file(b->file, call->answer.data + call->answer.len,
                              len, b->file_pos);
            if (n != (ssize_t) len) {
                call->too_big = 1;
                goto consumed;
            }
        }

        call->answer.len += len;

    consumed:

        if (ngx_buf_in_memory(b)) {
            b->pos = b->last;
        }

        if (b->in_file) {
            b->file_pos = b->file_last;
        }
    }

    return NGX_OK;
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

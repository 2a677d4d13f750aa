
/*
 * ngx_http_classify_module: the content handler's state machine.
 *
 *   handler -> read the body -> parse -> start the classifiers
 *           -> (post handlers wake the parent) resume -> resolve
 *           -> reply, or pass to classify_pass by internal redirect.
 *
 * While classifiers run, the main request holds one reference of its own
 * (the one nginx gave it), its read handler watches the client
 * (ngx_http_test_reading: a client that goes away terminates the request,
 * whose cleanups close every classifier upstream), and one timer enforces
 * the earliest of the per-classifier and the overall deadlines.
 */


#include "ngx_http_classify.h"
#include "ngx_http_classify_redis.h"


static void ngx_http_classify_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_classify_body(ngx_http_request_t *r,
    ngx_str_t *body);
static ngx_int_t ngx_http_classify_session(ngx_http_request_t *r,
    ngx_http_classify_ctx_t *ctx);
static ngx_int_t ngx_http_classify_fetch_context(ngx_http_classify_ctx_t *ctx);
static void ngx_http_classify_context_fetched(void *data, ngx_int_t rc);
static void ngx_http_classify_context_done(ngx_http_classify_ctx_t *ctx,
    ngx_uint_t ok);
static void ngx_http_classify_run(ngx_http_classify_ctx_t *ctx);
static void ngx_http_classify_resume(ngx_http_request_t *r);
static ngx_int_t ngx_http_classify_next(ngx_http_classify_ctx_t *ctx);
static void ngx_http_classify_expire(ngx_http_classify_ctx_t *ctx);
static void ngx_http_classify_abort_outranked(ngx_http_classify_ctx_t *ctx);
static void ngx_http_classify_set_timer(ngx_http_classify_ctx_t *ctx);
static void ngx_http_classify_timer_handler(ngx_event_t *ev);
static void ngx_http_classify_decided(ngx_http_classify_ctx_t *ctx);
static void ngx_http_classify_pass(ngx_http_request_t *r,
    ngx_http_classify_ctx_t *ctx);
static void ngx_http_classify_reply(ngx_http_request_t *r,
    ngx_http_classify_ctx_t *ctx);
static ngx_str_t *ngx_http_classify_header_in(ngx_http_request_t *r,
    const char *name, size_t len);
static void ngx_http_classify_cleanup(void *data);


ngx_int_t
ngx_http_classify_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_pool_cleanup_t            *cln;
    ngx_http_classify_ctx_t       *ctx;
    ngx_http_classify_loc_conf_t  *clcf;

    static ngx_str_t  post = ngx_string("POST");

    if (r != r->main) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "classify: the gate cannot run in a subrequest");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_classify_metrics_request(r);

    if (ngx_http_classify_get_ctx(r) != NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "classify: \"classify_pass\" leads back to a "
                      "\"classify\" location");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (r->method != NGX_HTTP_POST) {
        if (ngx_http_classify_add_header(r, "Allow", &post) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_classify_error(r, NGX_HTTP_NOT_ALLOWED,
                                       "method not allowed: use POST");
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_classify_module);

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_classify_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ctx->conf = clcf;
    ctx->verdict = NGX_HTTP_CLASSIFY_UNDECIDED;
    ctx->first_positive = -1;

    /* the cleanup also finds the context again after a redirect */

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_classify_cleanup;
    cln->data = ctx;

    ngx_http_set_ctx(r, ctx, ngx_http_classify_module);

    rc = ngx_http_read_client_request_body(r, ngx_http_classify_body_handler);

    if (rc == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
        return ngx_http_classify_error(r, rc,
                                     "request body over client_max_body_size");
    }

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


ngx_http_classify_ctx_t *
ngx_http_classify_get_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t       *cln;
    ngx_http_classify_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_classify_module);

    if (ctx || !r->internal) {
        return ctx;
    }

    /* an internal redirect zeroes r->ctx: the pool still has it */

    for (cln = r->main->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_classify_cleanup) {
            ctx = cln->data;
            ngx_http_set_ctx(r->main, ctx, ngx_http_classify_module);
            return ctx;
        }
    }

    return NULL;
}


static void
ngx_http_classify_body_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_str_t                      body;
    ngx_uint_t                     i;
    const char                    *err;
    ngx_http_classify_ctx_t       *ctx;
    ngx_http_classify_loc_conf_t  *clcf;
    ngx_http_classify_classifier_t  **cl;

    ctx = ngx_http_get_module_ctx(r, ngx_http_classify_module);
    clcf = ctx->conf;

    if (r->connection->error) {
        ngx_http_finalize_request(r, NGX_HTTP_CLIENT_CLOSED_REQUEST);
        return;
    }

    if (ngx_http_classify_body(r, &body) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    err = NULL;

    rc = ngx_http_classify_parse_input(r->pool, clcf, body.data, body.len,
                                       &ctx->input, &err);

    if (rc == NGX_ERROR) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "classify: bad request: %s", err);
        ngx_http_finalize_request(r,
                      ngx_http_classify_error(r, NGX_HTTP_BAD_REQUEST, err));
        return;
    }

    rc = ngx_http_classify_session(r, ctx);

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "classify: bad request: invalid session id");
        ngx_http_finalize_request(r,
                      ngx_http_classify_error(r, NGX_HTTP_BAD_REQUEST,
                                  "invalid session id: at most 128 printable "
                                  "bytes, no spaces"));
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, rc);
        return;
    }

    ctx->ncalls = clcf->classifiers->nelts;
    ctx->calls = ngx_pcalloc(r->pool,
                             ctx->ncalls * sizeof(ngx_http_classify_call_t));
    if (ctx->calls == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    cl = clcf->classifiers->elts;

    for (i = 0; i < ctx->ncalls; i++) {
        ctx->calls[i].classifier = cl[i];
        ctx->calls[i].ctx = ctx;
    }

    ctx->timer.handler = ngx_http_classify_timer_handler;
    ctx->timer.data = ctx;
    ctx->timer.log = r->connection->log;

    /*
     * the decision's clock (classify_timeout, $classify_time) starts once
     * the body is here, and includes the context read; the cached time may
     * be late after a slow event loop iteration
     */

    ngx_time_update();
    ngx_gettimeofday(&ctx->start);
    ctx->deadline = ngx_current_msec + clcf->timeout;

    if (clcf->redis != NULL
        && ctx->input.session.len
        && (clcf->max_context || clcf->context_store)
        && ctx->input.context.nelts == 0)
    {
        rc = ngx_http_classify_fetch_context(ctx);

        if (rc == NGX_AGAIN) {
            /* ngx_http_classify_context_fetched() continues */
            r->read_event_handler = ngx_http_test_reading;
            r->write_event_handler = ngx_http_request_empty_handler;
            return;
        }

        if (rc == NGX_ERROR) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        ngx_http_classify_context_done(ctx, rc == NGX_OK);
        return;
    }

    ngx_http_classify_run(ctx);
}


/*
 * The session's context from Redis: the body had a session and no history
 * of its own.  NGX_AGAIN: ngx_http_classify_context_fetched() continues;
 * NGX_OK: nothing to read (only stores need the key).
 */

static ngx_int_t
ngx_http_classify_fetch_context(ngx_http_classify_ctx_t *ctx)
{
    ngx_http_request_t            *r;
    ngx_http_classify_loc_conf_t  *clcf;

    r = ctx->request;
    clcf = ctx->conf;

    if (ngx_http_complex_value(r, clcf->redis_key, &ctx->redis_key)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (clcf->max_context == 0) {
        return NGX_OK;
    }

    ctx->redis_op = ngx_http_classify_redis_fetch(clcf->redis,
                                              &ctx->redis_key,
                                              clcf->max_context,
                                              &clcf->context,
                                              &ctx->input.context,
                                              ngx_http_classify_context_fetched,
                                              ctx);

    return ctx->redis_op ? NGX_AGAIN : NGX_ERROR;
}


static void
ngx_http_classify_context_fetched(void *data, ngx_int_t rc)
{
    ngx_http_classify_ctx_t  *ctx = data;

    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ctx->request;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "classify: context read: %i", rc);

    ctx->redis_op = NULL;

    if (rc == NGX_ERROR) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);

    } else {
        ngx_http_classify_context_done(ctx, rc == NGX_OK);
    }

    ngx_http_run_posted_requests(c);
}


/*
 * The conversation context is known (ok) or Redis failed: classify, or
 * refuse with 503 when classify_redis_on_error says block.
 */

static void
ngx_http_classify_context_done(ngx_http_classify_ctx_t *ctx, ngx_uint_t ok)
{
    ngx_http_request_t  *r;

    r = ctx->request;

    if (!ok) {
        ngx_http_classify_metrics_redis_error(r);
    }

    if (!ok && ctx->conf->redis_on_error == NGX_HTTP_CLASSIFY_ON_ERROR_BLOCK) {
        ngx_http_finalize_request(r,
                      ngx_http_classify_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                  "the conversation context is unavailable"));
        return;
    }

    ngx_http_classify_run(ctx);
}


static void
ngx_http_classify_run(ngx_http_classify_ctx_t *ctx)
{
    ngx_uint_t                 i;
    ngx_http_request_t        *r;
    ngx_http_classify_call_t  *call;

    r = ctx->request;

    ngx_time_update();

    ctx->waiting = 1;

    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_classify_resume;

    /* shadows always start now; the rest all at once, or the first */

    for (i = 0; i < ctx->ncalls; i++) {
        call = &ctx->calls[i];

        if (ctx->conf->mode == NGX_HTTP_CLASSIFY_MODE_SEQUENTIAL
            && !call->classifier->shadow)
        {
            continue;
        }

        if (ngx_http_classify_start(ctx, call) != NGX_OK) {
            ctx->waiting = 0;
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }
    }

    ngx_http_classify_resume(r);
}


/*
 * The body as one buffer.  A body nginx buffered to a temporary file (one
 * over client_body_buffer_size) is read back with one pread(), as proxy_pass
 * itself does without aio; size client_body_buffer_size so that chat bodies
 * stay in memory.
 */

static ngx_int_t
ngx_http_classify_body(ngx_http_request_t *r, ngx_str_t *body)
{
    off_t         len;
    u_char       *p;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    ngx_str_null(body);

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    cl = r->request_body->bufs;

    if (cl->next == NULL && !cl->buf->in_file) {
        body->data = cl->buf->pos;
        body->len = cl->buf->last - cl->buf->pos;
        return NGX_OK;
    }

    len = 0;

    for ( /* void */ ; cl; cl = cl->next) {
        b = cl->buf;
        len += b->in_file ? b->file_last - b->file_pos : b->last - b->pos;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (!b->in_file) {
            if (b->last > b->pos) {
                p = ngx_cpymem(p, b->pos, b->last - b->pos);
            }

            continue;
        }

        n = ngx_read_file(b->file, p, b->file_last - b->file_pos,
                          b->file_pos);

        if (n != b->file_last - b->file_pos) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "classify: could not read the buffered body "
                          "from \"%V\"", &b->file->name);
            return NGX_ERROR;
        }

        p += n;
    }

    body->len = p - body->data;

    return NGX_OK;
}


/*
 * classify_session overrides the body's field.  An id is at most 128
 * printable bytes without spaces (NGX_DECLINED otherwise), so that what
 * reaches Redis keys and logs is always sane.
 */

static ngx_int_t
ngx_http_classify_session(ngx_http_request_t *r, ngx_http_classify_ctx_t *ctx)
{
    u_char     *p, *last;
    ngx_str_t   value;

    if (ctx->conf->session) {
        if (ngx_http_complex_value(r, ctx->conf->session, &value) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (value.len) {
            ctx->input.session = value;
        }
    }

    if (ctx->input.session.len > 128) {
        goto invalid;
    }

    last = ctx->input.session.data + ctx->input.session.len;

    for (p = ctx->input.session.data; p < last; p++) {
        if (*p <= 0x20 || *p >= 0x7f) {
            goto invalid;
        }
    }

    return NGX_OK;

invalid:

    return NGX_DECLINED;
}


/*
 * The parent's write handler: run by ngx_http_run_posted_requests() after
 * a classifier's post handler posted it, by the deadline timer, and on
 * plain write readiness, so it must be idempotent.
 */

static void
ngx_http_classify_resume(ngx_http_request_t *r)
{
    ngx_int_t                 v;
    ngx_http_classify_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_classify_module);

    if (ctx == NULL || !ctx->waiting) {
        return;
    }

    ngx_http_classify_expire(ctx);
    ngx_http_classify_abort_outranked(ctx);

    for ( ;; ) {
        v = ngx_http_classify_resolve(ctx->calls, ctx->ncalls,
                                      ctx->conf->resolve,
                                      ctx->first_positive);

        if (v != NGX_HTTP_CLASSIFY_UNDECIDED) {
            break;
        }

        if (ctx->conf->mode == NGX_HTTP_CLASSIFY_MODE_PARALLEL
            || ngx_http_classify_next(ctx) != NGX_DECLINED)
        {
            ngx_http_classify_set_timer(ctx);
            return;
        }

        /* sequential: the next one could not start and counts as failed */
    }

    ctx->verdict = v;

    ngx_http_classify_decided(ctx);

    r->read_event_handler = ngx_http_block_reading;

    if (ngx_http_classify_pending_shadows(ctx)) {
        /*
         * a running shadow holds the connection after the answer; the
         * client's next request would wait behind it on a keep-alive
         * connection, so the client gets to open a new one
         */
        r->keepalive = 0;
    }

    if (v == NGX_HTTP_CLASSIFY_PASS) {
        ngx_http_classify_pass(r, ctx);
        return;
    }

    ngx_http_classify_reply(r, ctx);
}


/*
 * classify_mode sequential: start the first classifier not yet started
 * when none is running.  NGX_OK: one runs; NGX_DECLINED: one failed to
 * start (recorded as an error, resolve again).
 */

static ngx_int_t
ngx_http_classify_next(ngx_http_classify_ctx_t *ctx)
{
    ngx_uint_t                 i;
    ngx_http_classify_call_t  *call;

    for (i = 0; i < ctx->ncalls; i++) {
        call = &ctx->calls[i];

        if (call->classifier->shadow) {
            continue;
        }

        if (call->started && call->verdict == NGX_HTTP_CLASSIFY_PENDING) {
            return NGX_OK;
        }

        if (!call->started) {
            break;
        }
    }

    if (i == ctx->ncalls) {
        return NGX_OK;
    }

    if (ngx_http_classify_start(ctx, call) == NGX_OK) {
        return NGX_OK;
    }

    call->done = 1;
    call->verdict = NGX_HTTP_CLASSIFY_ERROR;
    call->cause = "could not start the subrequest";
    ngx_http_classify_settled(ctx, call);

    ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                  "classifier \"%V\" failed: %s",
                  &call->classifier->name, call->cause);

    return NGX_DECLINED;
}


/*
 * A call has its final verdict: in "first" mode the first positive (an
 * error with on_error block counts) is the answer.
 */

void
ngx_http_classify_settled(ngx_http_classify_ctx_t *ctx,
    ngx_http_classify_call_t *call)
{
    if (ctx->first_positive < 0
        && !call->classifier->shadow
        && ngx_http_classify_effective(call) == NGX_HTTP_CLASSIFY_POSITIVE)
    {
        ctx->first_positive = call - ctx->calls;
    }
}


/*
 * classify_resolve priority: once classifier k is positive, the ones listed
 * after it cannot change the answer; stop paying for them now, not only at
 * the decision.
 */

static void
ngx_http_classify_abort_outranked(ngx_http_classify_ctx_t *ctx)
{
    ngx_uint_t                 i, positive;
    ngx_http_classify_call_t  *call;

    if (ctx->conf->resolve != NGX_HTTP_CLASSIFY_RESOLVE_PRIORITY) {
        return;
    }

    positive = 0;

    for (i = 0; i < ctx->ncalls; i++) {
        call = &ctx->calls[i];

        if (call->classifier->shadow) {
            continue;
        }

        if (positive) {
            ngx_http_classify_abort(call);
            continue;
        }

        if (ngx_http_classify_effective(call) == NGX_HTTP_CLASSIFY_POSITIVE) {
            positive = 1;
        }
    }
}


ngx_uint_t
ngx_http_classify_pending_shadows(ngx_http_classify_ctx_t *ctx)
{
    ngx_uint_t  i, n;

    n = 0;

    for (i = 0; i < ctx->ncalls; i++) {
        if (ctx->calls[i].classifier->shadow
            && ctx->calls[i].started
            && !ctx->calls[i].done
            && !ctx->calls[i].aborted)
        {
            n++;
        }
    }

    return n;
}


/*
 * Calls past their own timeout, or all pending ones past classify_timeout,
 * end as errors (their on_error applies) and are aborted.
 */

static void
ngx_http_classify_expire(ngx_http_classify_ctx_t *ctx)
{
    ngx_uint_t                 i, overall;
    ngx_msec_int_t             left;
    ngx_http_classify_call_t  *call;

    left = (ngx_msec_int_t) (ctx->deadline - ngx_current_msec);
    overall = (left <= 0);

    for (i = 0; i < ctx->ncalls; i++) {
        call = &ctx->calls[i];

        if (call->verdict != NGX_HTTP_CLASSIFY_PENDING || call->aborted) {
            continue;
        }

        if (!call->started) {
            if (overall) {
                /* sequential: never got its turn */
                call->verdict = NGX_HTTP_CLASSIFY_ERROR;
                call->timedout = 1;
                call->cause = "classify_timeout expired before it started";
                ngx_http_classify_settled(ctx, call);
            }

            continue;
        }

        left = (ngx_msec_int_t) (call->deadline - ngx_current_msec);

        if (left > 0 && (!overall || call->classifier->shadow)) {
            continue;
        }

        call->verdict = NGX_HTTP_CLASSIFY_ERROR;
        call->timedout = 1;
        call->cause = left > 0 ? "classify_timeout expired" : "timed out";
        ngx_http_classify_settled(ctx, call);

        ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                      "classifier \"%V\" failed: %s, %s",
                      &call->classifier->name, call->cause,
                      call->classifier->on_error
                      == NGX_HTTP_CLASSIFY_ON_ERROR_BLOCK
                      ? "blocking (on_error block)"
                      : "passing (on_error pass)");

        ngx_http_classify_abort(call);
    }
}


static void
ngx_http_classify_set_timer(ngx_http_classify_ctx_t *ctx)
{
    ngx_uint_t                 i;
    ngx_msec_t                 deadline;
    ngx_msec_int_t             left;
    ngx_http_classify_call_t  *call;

    deadline = ctx->waiting ? ctx->deadline : 0;

    for (i = 0; i < ctx->ncalls; i++) {
        call = &ctx->calls[i];

        if (!call->started || call->done || call->aborted) {
            continue;
        }

        if (deadline == 0
            || (ngx_msec_int_t) (call->deadline - deadline) < 0)
        {
            deadline = call->deadline;
        }
    }

    if (deadline == 0) {
        if (ctx->timer.timer_set) {
            ngx_del_timer(&ctx->timer);
        }

        return;
    }

    left = (ngx_msec_int_t) (deadline - ngx_current_msec);

    if (left <= 0) {
        left = 1;
    }

    /* ngx_add_timer() ignores a move of less than NGX_TIMER_LAZY_DELAY */

    if (ctx->timer.timer_set
        && (ngx_msec_int_t) (ngx_current_msec + left - ctx->timer.timer.key)
           < 0)
    {
        ngx_del_timer(&ctx->timer);
    }

    ngx_add_timer(&ctx->timer, (ngx_msec_t) left);
}


static void
ngx_http_classify_timer_handler(ngx_event_t *ev)
{
    ngx_uint_t                 i;
    ngx_connection_t          *c;
    ngx_http_request_t        *r;
    ngx_http_classify_ctx_t   *ctx;
    ngx_http_classify_call_t  *call;

    ctx = ev->data;
    r = ctx->request;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, c->log, 0, "classify: timer");

    if (ctx->waiting) {
        ngx_http_classify_resume(r);
        ngx_http_run_posted_requests(c);
        return;
    }

    /*
     * after the decision only shadows run; aborting the last one may end
     * the request, so hold a reference while aborting and release it the
     * way a finishing subrequest would
     */

    r->main->count++;

    for (i = 0; i < ctx->ncalls; i++) {
        call = &ctx->calls[i];

        if (!call->started || call->done || call->aborted) {
            continue;
        }

        if ((ngx_msec_int_t) (call->deadline - ngx_current_msec) > 0) {
            continue;
        }

        call->verdict = NGX_HTTP_CLASSIFY_ERROR;
        call->timedout = 1;
        call->cause = "timed out";

        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "classifier \"%V\" failed: %s (shadow)",
                      &call->classifier->name, call->cause);

        ngx_http_classify_metrics_shadow(ctx, call);
        ngx_http_classify_abort(call);
    }

    ngx_http_classify_set_timer(ctx);

    ngx_http_finalize_request(r, NGX_DONE);
    ngx_http_run_posted_requests(c);
}


/* the outcome is known: stop what no longer matters, log the decision */

static void
ngx_http_classify_decided(ngx_http_classify_ctx_t *ctx)
{
    u_char                    *p;
    ngx_uint_t                 i;
    ngx_msec_int_t             saved, left;
    struct timeval             tv;
    ngx_http_classify_call_t  *call;
    u_char                     buf[NGX_MAX_ERROR_STR];

    ctx->waiting = 0;
    ctx->decided = 1;

    ngx_gettimeofday(&tv);
    ctx->usec = (tv.tv_sec - ctx->start.tv_sec) * 1000000
                + (tv.tv_usec - ctx->start.tv_usec);

    for (i = 0; i < ctx->ncalls; i++) {
        call = &ctx->calls[i];

        if (!call->classifier->shadow) {
            ngx_http_classify_abort(call);
        }
    }

    ngx_http_classify_set_timer(ctx);

    ngx_http_classify_metrics_decision(ctx);

    if (ctx->request->connection->log->log_level < NGX_LOG_INFO) {
        return;
    }

    p = buf;
    saved = 0;

    for (i = 0; i < ctx->ncalls; i++) {
        call = &ctx->calls[i];

        p = ngx_slprintf(p, buf + sizeof(buf), " %V:%s",
                         &call->classifier->name,
                         ngx_http_classify_outcome(call));

        if (call->started) {
            p = ngx_slprintf(p, buf + sizeof(buf), "/%M.%03Mms",
                             call->usec / 1000, call->usec % 1000);
        }

        /* an aborted call would have run until its timeout at most */

        if (call->aborted && !call->timedout) {
            left = (ngx_msec_int_t) (call->deadline - ngx_current_msec);
            saved += left > 0 ? left : 0;
        }
    }

    if (saved) {
        p = ngx_slprintf(p, buf + sizeof(buf),
                         ", aborts saved up to %Mms of classifier time",
                         saved);
    }

    ngx_log_error(NGX_LOG_INFO, ctx->request->connection->log, 0,
                  "classify: verdict %V in %M.%03Mms,%*s",
                  ngx_http_classify_verdict_name(ctx),
                  ctx->usec / 1000, ctx->usec % 1000, p - buf, buf);
}


static void
ngx_http_classify_pass(ngx_http_request_t *r, ngx_http_classify_ctx_t *ctx)
{
    ngx_str_t   uri, args;
    ngx_uint_t  flags;

    r->write_event_handler = ngx_http_request_empty_handler;

    uri = ctx->conf->pass;

    if (uri.data[0] == '@') {
        (void) ngx_http_named_location(r, &uri);

    } else {
        ngx_str_null(&args);
        flags = NGX_HTTP_LOG_UNSAFE;

        if (ngx_http_parse_unsafe_uri(r, &uri, &args, &flags) != NGX_OK) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        (void) ngx_http_internal_redirect(r, &uri, &args);
    }

    ngx_http_finalize_request(r, NGX_DONE);
}


static void
ngx_http_classify_reply(ngx_http_request_t *r, ngx_http_classify_ctx_t *ctx)
{
    u_char                          *p;
    ngx_str_t                        body, id, content_type;
    ngx_uint_t                       format, stream;
    ngx_http_classify_classifier_t  *cl;
    u_char                           idbuf[sizeof("chatcmpl-classify--")
                                           + 2 * NGX_ATOMIC_T_LEN];

    static ngx_str_t  no_cache = ngx_string("no-cache");

    cl = ctx->calls[ctx->verdict].classifier;

    p = ngx_sprintf(idbuf, "chatcmpl-classify-%uA-%ui",
                    r->connection->number, r->connection->requests);
    id.data = idbuf;
    id.len = p - idbuf;

    format = ngx_http_classify_reply_format(ctx->conf->reply_format,
                                       &ctx->input,
                                       ngx_http_classify_header_in(r,
                                             "accept", sizeof("accept") - 1));

    if (ngx_http_classify_render_reply(r->pool, format, cl, &ctx->input, &id,
                                       ngx_time(), &content_type, &body,
                                       &stream)
        != NGX_OK)
    {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (ctx->conf->context_store && ctx->redis_key.len) {
        ngx_http_classify_redis_store(ctx->conf->redis, &ctx->redis_key,
                                      &ctx->conf->context, &ctx->input.query,
                                      &cl->reply, r->pool);
    }

    if ((stream
         && ngx_http_classify_add_header(r, "Cache-Control", &no_cache)
            != NGX_OK)
        || ngx_http_classify_add_header(r, "X-Classify-Verdict", &cl->name)
           != NGX_OK)
    {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    /* an event stream goes out chunked, as a stream */

    ngx_http_finalize_request(r, ngx_http_classify_send(r, NGX_HTTP_OK,
                                                    &content_type, &body,
                                                    stream));
}


ngx_int_t
ngx_http_classify_add_header(ngx_http_request_t *r, const char *key,
    ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) key;
    h->key.len = ngx_strlen(key);
    h->value = *value;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return NGX_OK;
}


/*
 * A whole response from memory; without a length (chunked) for a stream.
 * Returns what the handler finalizes with.
 */

ngx_int_t
ngx_http_classify_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *content_type, ngx_str_t *body, ngx_uint_t stream)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    r->headers_out.status = status;
    r->headers_out.content_type = *content_type;
    r->headers_out.content_type_len = content_type->len;
    r->headers_out.content_type_lowcase = NULL;

    if (!stream) {
        r->headers_out.content_length_n = body->len;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = body->data;
    b->last = body->data + body->len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/*
 * A client error as a JSON body in OpenAI's error shape, so that any
 * chat client shows the message.  Returns what the handler should
 * finalize with.
 */

ngx_int_t
ngx_http_classify_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *message)
{
    size_t        len;
    u_char       *p;
    ngx_buf_t    *b;
    ngx_str_t     msg, type, body;

    static ngx_str_t  json = ngx_string("application/json");

    ngx_http_classify_metrics_error(r);

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /*
     * as nginx's own error pages do: after these the rest of the body may
     * still be on the wire (a chunked body over client_max_body_size),
     * and it must not be read as the next request
     */

    switch (status) {
    case NGX_HTTP_BAD_REQUEST:
    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
    case NGX_HTTP_INTERNAL_SERVER_ERROR:
        r->keepalive = 0;
        break;
    default:
        break;
    }

    if (status >= NGX_HTTP_INTERNAL_SERVER_ERROR) {
        ngx_str_set(&type, "server_error");

    } else {
        ngx_str_set(&type, "invalid_request_error");
    }

    msg.data = (u_char *) message;
    msg.len = ngx_strlen(message);

    len = sizeof("{\"error\":{\"message\":,\"type\":\"\",\"code\":}}\n") - 1
          + ngx_http_classify_json_str_len(&msg) + type.len + NGX_INT_T_LEN;

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(b->last, "{\"error\":{\"message\":",
                   sizeof("{\"error\":{\"message\":") - 1);
    p = ngx_http_classify_json_str(p, &msg);
    b->last = ngx_sprintf(p, ",\"type\":\"%V\",\"code\":%ui}}\n",
                          &type, status);
    body.data = b->pos;
    body.len = b->last - b->pos;

    return ngx_http_classify_send(r, status, &json, &body, 0);
}


static ngx_str_t *
ngx_http_classify_header_in(ngx_http_request_t *r, const char *name,
    size_t len)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
        {
            return &h[i].value;
        }
    }
}


static void
ngx_http_classify_cleanup(void *data)
{
    ngx_http_classify_ctx_t  *ctx = data;

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    if (ctx->redis_op) {
        ngx_http_classify_redis_cancel(ctx->redis_op);
        ctx->redis_op = NULL;
    }

    if (ctx->verdict == NGX_HTTP_CLASSIFY_PASS
        && ctx->conf->context_store
        && ctx->redis_key.len
        && !ctx->capture_done)
    {
        ngx_log_error(NGX_LOG_INFO, ctx->request->connection->log, 0,
                      "classify: answer not stored in \"%V\": the response "
                      "was interrupted", &ctx->redis_key);
    }
}

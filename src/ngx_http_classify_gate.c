
/*
 * ngx_http_classify_module: the gate, the request's state machine.
 *
 *   handler -> read the body -> parse -> [Redis context] -> start the
 *   classifiers -> (each call settles: its handler wakes the request)
 *   resume -> resolve -> reply, or pass to classify_pass by internal
 *   redirect.
 *
 * This file is the only one that knows the whole request; the layers under
 * it (calls, Redis, metrics, replies, input) never call it back by name.
 * While classifiers run, the main request holds one reference of its own
 * (the one nginx gave it), its read handler watches the client
 * (ngx_http_test_reading: a client that goes away terminates the request,
 * whose cleanups close every classifier upstream), each call has its own
 * timeout, and one timer, ctx->deadline, is classify_timeout.
 *
 * With classify_speculate the generation starts as soon as the body is
 * parsed, held until the verdict (speculate.c): a pass releases it instead
 * of redirecting, every other answer aborts it.  With classify_output the
 * generation is that subrequest too (started at the pass, if not before),
 * and its released response goes through the output guard (guard.c).
 */


#include "ngx_http_classify.h"
#include "ngx_http_classify_gate.h"
#include "ngx_http_classify_subreq.h"
#include "ngx_http_classify_verdict.h"
#include "ngx_http_classify_send.h"
#include "ngx_http_classify_metrics.h"
#include "ngx_http_classify_json.h"
#include "ngx_http_classify_reply.h"
#include "ngx_http_classify_redis.h"
#include "ngx_http_classify_cache.h"
#include "ngx_http_classify_speculate.h"
#include "ngx_http_classify_guard.h"


static void ngx_http_classify_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_classify_prepare(ngx_http_request_t *r,
    ngx_http_classify_ctx_t *ctx);
static ngx_int_t ngx_http_classify_refuse(ngx_http_request_t *r,
    ngx_uint_t status, const char *message);
static ngx_http_classify_format_e ngx_http_classify_error_format(
    ngx_http_request_t *r);
static void ngx_http_classify_fail(ngx_http_classify_ctx_t *ctx);
static void ngx_http_classify_keep(ngx_http_request_t *r,
    ngx_http_classify_ctx_t *ctx);
static ngx_int_t ngx_http_classify_body(ngx_http_request_t *r,
    ngx_str_t *body);
static ngx_int_t ngx_http_classify_session(ngx_http_request_t *r,
    ngx_http_classify_ctx_t *ctx);
static void ngx_http_classify_context_fetched(void *data, ngx_int_t rc);
static void ngx_http_classify_context_done(ngx_http_classify_ctx_t *ctx,
    ngx_uint_t ok);
static void ngx_http_classify_run(ngx_http_classify_ctx_t *ctx);
static ngx_int_t ngx_http_classify_start(ngx_http_classify_ctx_t *ctx,
    ngx_http_classify_call_t *call);
static ngx_uint_t ngx_http_classify_cached(ngx_http_classify_ctx_t *ctx,
    ngx_http_classify_call_t *call);
static void ngx_http_classify_cache_answer(ngx_http_classify_ctx_t *ctx,
    ngx_http_classify_call_t *call);
static void ngx_http_classify_call_settled(ngx_http_classify_call_t *call);
static void ngx_http_classify_settled(ngx_http_classify_ctx_t *ctx,
    ngx_http_classify_call_t *call);
static void ngx_http_classify_resume(ngx_http_request_t *r);
static ngx_int_t ngx_http_classify_next(ngx_http_classify_ctx_t *ctx);
static void ngx_http_classify_abort_outranked(ngx_http_classify_ctx_t *ctx);
static ngx_uint_t ngx_http_classify_pending_shadows(
    ngx_http_classify_ctx_t *ctx);
static void ngx_http_classify_deadline_handler(ngx_event_t *ev);
static void ngx_http_classify_decided(ngx_http_classify_ctx_t *ctx);
static void ngx_http_classify_log_decision(ngx_http_classify_ctx_t *ctx);
static void ngx_http_classify_pass(ngx_http_request_t *r,
    ngx_http_classify_ctx_t *ctx);
static void ngx_http_classify_reply(ngx_http_request_t *r,
    ngx_http_classify_ctx_t *ctx);
static void ngx_http_classify_cleanup(void *data);


static ngx_str_t  ngx_http_classify_pass_name = ngx_string("pass");
static ngx_str_t  ngx_http_classify_error_name = ngx_string("error");


ngx_int_t
ngx_http_classify_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_pool_cleanup_t            *cln;
    ngx_http_classify_ctx_t       *ctx;

    static ngx_str_t  post = ngx_string("POST");

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "classify handler");

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

        return ngx_http_classify_refuse(r, NGX_HTTP_NOT_ALLOWED,
                                        "method not allowed: use POST");
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_classify_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ctx->conf = ngx_http_get_module_loc_conf(r, ngx_http_classify_module);
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

    ngx_http_classify_keep(r, ctx);

    rc = ngx_http_read_client_request_body(r, ngx_http_classify_body_handler);

    if (rc == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
        return ngx_http_classify_refuse(r, rc,
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


/* a client error, counted, in OpenAI's error shape */

static ngx_int_t
ngx_http_classify_refuse(ngx_http_request_t *r, ngx_uint_t status,
    const char *message)
{
    ngx_http_classify_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_classify_module);

    if (ctx) {
        ngx_http_classify_speculate_abort(ctx->spec);
    }

    ngx_http_classify_metrics_error(r);

    return ngx_http_classify_error(r, ngx_http_classify_error_format(r),
                                   status, message);
}


/* an internal error once the gate is under way: no generation left held */

static void
ngx_http_classify_fail(ngx_http_classify_ctx_t *ctx)
{
    ngx_http_classify_speculate_abort(ctx->spec);
    ngx_http_finalize_request(ctx->request, NGX_HTTP_INTERNAL_SERVER_ERROR);
}


/*
 * The format whose error shape a client gets: the reply format when it is
 * set to one, else the body's chat format once known (even for a body
 * then refused) or the location's classify_input; for a fields body or
 * one not yet read, an "anthropic-version" header says Anthropic.
 */

static ngx_http_classify_format_e
ngx_http_classify_error_format(ngx_http_request_t *r)
{
    ngx_http_classify_ctx_t       *ctx;
    ngx_http_classify_format_e     format;
    ngx_http_classify_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_classify_module);

    switch (clcf->reply_format) {

    case NGX_HTTP_CLASSIFY_REPLY_ANTHROPIC:
        return NGX_HTTP_CLASSIFY_FORMAT_ANTHROPIC;

    case NGX_HTTP_CLASSIFY_REPLY_OPENAI:
    case NGX_HTTP_CLASSIFY_REPLY_RESPONSES:
        return NGX_HTTP_CLASSIFY_FORMAT_OPENAI;

    default:
        break;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_classify_module);

    format = ctx ? ctx->input.format : NGX_HTTP_CLASSIFY_FORMAT_NONE;

    if (format == NGX_HTTP_CLASSIFY_FORMAT_NONE) {
        format = clcf->input;
    }

    if (format != NGX_HTTP_CLASSIFY_FORMAT_NONE
        && format != NGX_HTTP_CLASSIFY_FORMAT_FIELDS)
    {
        return format;
    }

    if (ngx_http_classify_header_in(r, "anthropic-version",
                                    sizeof("anthropic-version") - 1)
        != NULL)
    {
        return NGX_HTTP_CLASSIFY_FORMAT_ANTHROPIC;
    }

    return NGX_HTTP_CLASSIFY_FORMAT_OPENAI;
}


static void
ngx_http_classify_body_handler(ngx_http_request_t *r)
{
    ngx_int_t                 rc;
    ngx_http_classify_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_classify_module);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "classify: body read, %O bytes",
                   r->request_body ? r->headers_in.content_length_n : 0);

    if (r->connection->error) {
        ngx_http_finalize_request(r, NGX_HTTP_CLIENT_CLOSED_REQUEST);
        return;
    }

    rc = ngx_http_classify_prepare(r, ctx);

    if (rc == NGX_DECLINED) {
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, rc);
        return;
    }

    /*
     * the decision's clock (classify_timeout, $classify_time) starts once
     * the body is here, and includes the context read; nginx's cached
     * time may be late after a slow event loop iteration, and the timer
     * must not fire before classify_timeout has passed on this clock
     */

    ngx_time_update();
    ctx->start = ngx_http_classify_usec();

    ctx->deadline.handler = ngx_http_classify_deadline_handler;
    ctx->deadline.data = ctx;
    ctx->deadline.log = r->connection->log;

    ngx_add_timer(&ctx->deadline, ctx->conf->timeout);

    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_request_empty_handler;

    if (ctx->conf->speculate) {
        /*
         * at once, before any context read: the generation is sent the
         * client's body, never what the gate reads from Redis; NULL when
         * it cannot start, and the request passes the usual way
         */

        ctx->spec = ngx_http_classify_speculate_start(r, &ctx->conf->pass,
                                                ctx->conf->speculate_buffer, 1);
    }

    if (ctx->redis_key.len
        && ctx->conf->max_context
        && ctx->input.context.nelts == 0)
    {
        /* the body has no history: the context is read from Redis */

        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "classify: reading the context from redis");

        ctx->redis_op = ngx_http_classify_redis_fetch(ctx->conf->redis,
                                              &ctx->redis_key,
                                              ctx->conf->max_context,
                                              &ctx->conf->context,
                                              &ctx->input.context,
                                              ngx_http_classify_context_fetched,
                                              ctx);

        if (ctx->redis_op == NULL) {
            ngx_http_classify_fail(ctx);
        }

        /* ngx_http_classify_context_fetched() continues */
        return;
    }

    ngx_http_classify_run(ctx);
}


/*
 * The body parsed into the query, session and context, and a call for
 * each classifier: NGX_OK; NGX_DECLINED when the client was answered with
 * an error; or what to finalize the request with.
 */

static ngx_int_t
ngx_http_classify_prepare(ngx_http_request_t *r, ngx_http_classify_ctx_t *ctx)
{
    ngx_int_t                        rc;
    ngx_str_t                        body;
    ngx_uint_t                       i;
    const char                      *err;
    ngx_http_classify_call_t        *call;
    ngx_http_classify_classifier_t **cl;

    if (ngx_http_classify_body(r, &body) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    err = NULL;

    rc = ngx_http_classify_parse_input(r->pool, ctx->conf,
                                       ngx_http_classify_header_in(r,
                                           "anthropic-version",
                                           sizeof("anthropic-version") - 1)
                                       != NULL,
                                       body.data, body.len, &ctx->input, &err);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "classify: %V body, %ui context messages, "
                   "%ui non-text parts skipped%s",
                   &ngx_http_classify_format_names[ctx->input.format],
                   ctx->input.context.nelts, ctx->input.skipped,
                   ctx->input.previous ? ", previous_response_id" : "");

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "classify: bad request: %s", err);
        ngx_http_finalize_request(r,
                        ngx_http_classify_refuse(r, NGX_HTTP_BAD_REQUEST, err));
        return NGX_DECLINED;
    }

    rc = ngx_http_classify_session(r, ctx);

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "classify: bad request: invalid session id");
        ngx_http_finalize_request(r,
                        ngx_http_classify_refuse(r, NGX_HTTP_BAD_REQUEST,
                                  "invalid session id: at most 128 printable "
                                  "bytes, no spaces"));
        return NGX_DECLINED;
    }

    if (rc != NGX_OK) {
        return rc;
    }

    /* the session's list: read for context, or written by context_store */

    if (ctx->conf->redis
        && ctx->input.session.len
        && ngx_http_complex_value(r, ctx->conf->redis_key, &ctx->redis_key)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->ncalls = ctx->conf->classifiers->nelts;
    ctx->calls = ngx_pcalloc(r->pool,
                             ctx->ncalls * sizeof(ngx_http_classify_call_t));
    if (ctx->calls == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cl = ctx->conf->classifiers->elts;

    for (i = 0; i < ctx->ncalls; i++) {
        call = &ctx->calls[i];

        call->classifier = cl[i];
        call->request = r;
        call->handler = ngx_http_classify_call_settled;
        call->data = ctx;
    }

    return NGX_OK;
}


/* the context read from Redis: NGX_OK, NGX_DECLINED (unavailable) */

static void
ngx_http_classify_context_fetched(void *data, ngx_int_t rc)
{
    ngx_http_classify_ctx_t  *ctx = data;

    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ctx->request;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    ctx->redis_op = NULL;

    if (rc == NGX_ERROR) {
        ngx_http_classify_fail(ctx);

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

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "classify: context %s", ok ? "read" : "unavailable");

    if (!ok) {
        ngx_http_classify_metrics_redis_error(r);
    }

    if (!ok && ctx->conf->redis_on_error == NGX_HTTP_CLASSIFY_ON_ERROR_BLOCK) {
        ngx_http_finalize_request(r,
                      ngx_http_classify_refuse(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                  "the conversation context is unavailable"));
        return;
    }

    ngx_http_classify_run(ctx);
}


/*
 * Shadows always start now; the rest all at once, or the first of them
 * in sequential mode.  In parallel mode the cached verdicts come first:
 * they may decide (then no call starts but the shadows) or outrank some
 * calls (which never start).  Past classify_timeout (the context read
 * took it all) none starts: each ends as timed out and the decision comes
 * now.
 */

static void
ngx_http_classify_run(ngx_http_classify_ctx_t *ctx)
{
    ngx_uint_t                 i, parallel, decided;
    ngx_http_request_t        *r;
    ngx_http_classify_call_t  *call;

    r = ctx->request;

    ctx->waiting = 1;

    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_classify_resume;

    parallel = (ctx->conf->mode == NGX_HTTP_CLASSIFY_MODE_PARALLEL);
    decided = 0;

    if (parallel && ctx->conf->cache_zone && ctx->deadline.timer_set) {

        /*
         * in priority order: a cached positive decides (it outranks the
         * rest, and in "first" mode it is the first), so the ones after
         * it are not looked up
         */

        for (i = 0; i < ctx->ncalls; i++) {
            if (ngx_http_classify_cached(ctx, &ctx->calls[i])
                && ctx->calls[i].verdict == NGX_HTTP_CLASSIFY_POSITIVE)
            {
                break;
            }
        }

        decided = ngx_http_classify_resolve(ctx->calls, ctx->ncalls,
                                            ctx->conf->resolve,
                                            ctx->first_positive)
                  != NGX_HTTP_CLASSIFY_UNDECIDED;

        ngx_http_classify_abort_outranked(ctx);
    }

    for (i = 0; i < ctx->ncalls; i++) {
        call = &ctx->calls[i];

        if (call->state != NGX_HTTP_CLASSIFY_CALL_IDLE) {
            /* a cached verdict, or outranked by one */
            continue;
        }

        if (!ctx->deadline.timer_set) {
            ngx_http_classify_call_expire(call,
                                 "classify_timeout expired before it started");
            ngx_http_classify_settled(ctx, call);
            continue;
        }

        if (!call->classifier->shadow && (!parallel || decided)) {
            continue;
        }

        if (ngx_http_classify_start(ctx, call) != NGX_OK) {
            ctx->waiting = 0;
            ngx_http_classify_fail(ctx);
            return;
        }
    }

    ngx_http_classify_resume(r);
}


static ngx_int_t
ngx_http_classify_start(ngx_http_classify_ctx_t *ctx,
    ngx_http_classify_call_t *call)
{
    ngx_str_t  body;

    if (ngx_http_classify_build_body(ctx->request->pool, call->classifier,
                                     &ctx->input, &body)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_classify_call_start(call, &body);
}


/*
 * A verdict from classify_cache: the call ends answered without a
 * subrequest, in microseconds.  On a miss the call keeps the key, for
 * ngx_http_classify_cache_answer().
 */

static ngx_uint_t
ngx_http_classify_cached(ngx_http_classify_ctx_t *ctx,
    ngx_http_classify_call_t *call)
{
    ngx_uint_t                  verdict;
    ngx_msec_int_t              start;
    ngx_http_classify_cache_t  *cache;

    if (ngx_http_classify_cache_valid(ctx->conf, call->classifier) == 0) {
        return 0;
    }

    cache = ctx->conf->cache_zone->data;
    start = ngx_http_classify_usec();

    if (ngx_http_classify_cache_lookup(cache, ctx->request->pool,
                                       call->classifier, &ctx->input,
                                       &call->cache_key, &verdict)
        != NGX_OK)
    {
        return 0;
    }

    call->cached = 1;
    call->verdict = verdict;
    call->start = start;

    ngx_http_classify_call_set(call, NGX_HTTP_CLASSIFY_CALL_ANSWERED, NULL);

    call->usec = ngx_http_classify_usec() - start;

    ngx_http_classify_settled(ctx, call);

    return 1;
}


/* only an answer goes to the cache: no error, timeout, abort or shadow */

static void
ngx_http_classify_cache_answer(ngx_http_classify_ctx_t *ctx,
    ngx_http_classify_call_t *call)
{
    if (call->cache_key == NULL
        || call->state != NGX_HTTP_CLASSIFY_CALL_ANSWERED)
    {
        return;
    }

    ngx_http_classify_cache_store(ctx->conf->cache_zone->data,
                                  call->classifier, call->cache_key,
                                  call->verdict,
                                  ngx_http_classify_cache_valid(ctx->conf,
                                                           call->classifier));
}


/*
 * A call settled by itself (an answer, an error, its own timeout).  It may
 * run inside the call's post handler, so the gate only records it and
 * wakes the main request: ngx_http_classify_resume() runs from
 * ngx_http_run_posted_requests(), where aborting other calls is safe.
 */

static void
ngx_http_classify_call_settled(ngx_http_classify_call_t *call)
{
    ngx_http_classify_ctx_t  *ctx = call->data;

    ngx_http_classify_cache_answer(ctx, call);

    if (!ctx->waiting) {
        /* after the decision only shadows run */
        ngx_http_classify_metrics_shadow(ctx, call);
        return;
    }

    ngx_http_classify_settled(ctx, call);

    if (call->classifier->shadow) {
        ngx_http_classify_metrics_shadow(ctx, call);
        return;
    }

    (void) ngx_http_post_request(ctx->request, NULL);
}


/* in "first" mode the first positive (on_error block counts) is the answer */

static void
ngx_http_classify_settled(ngx_http_classify_ctx_t *ctx,
    ngx_http_classify_call_t *call)
{
    ngx_http_classify_note_positive(ctx->calls, call, &ctx->first_positive);
}


/*
 * The main request's write handler: run by ngx_http_run_posted_requests()
 * after a call settled, after the deadline, and on plain write readiness,
 * so it must be idempotent.
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

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "classify: resume");

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
 * when none is running.  NGX_OK: one runs, or none is left; NGX_DECLINED:
 * one settled at once (a cached verdict, or it failed to start and is
 * recorded as an error): resolve again.
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

        if (call->state == NGX_HTTP_CLASSIFY_CALL_RUNNING) {
            return NGX_OK;
        }

        if (call->state == NGX_HTTP_CLASSIFY_CALL_IDLE) {
            break;
        }
    }

    if (i == ctx->ncalls) {
        return NGX_OK;
    }

    if (ctx->conf->cache_zone && ngx_http_classify_cached(ctx, call)) {
        return NGX_DECLINED;
    }

    if (ngx_http_classify_start(ctx, call) == NGX_OK) {
        return NGX_OK;
    }

    ngx_http_classify_call_set(call, NGX_HTTP_CLASSIFY_CALL_FAILED,
                               "could not start the subrequest");
    ngx_http_classify_settled(ctx, call);

    ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                  "classifier \"%V\" failed: %s, %s",
                  &call->classifier->name, call->cause,
                  ngx_http_classify_on_error_name(call->classifier));

    return NGX_DECLINED;
}


static void
ngx_http_classify_abort_outranked(ngx_http_classify_ctx_t *ctx)
{
    ngx_http_classify_calls_abort_outranked(ctx->calls, ctx->ncalls,
                                            ctx->conf->resolve);
}


static ngx_uint_t
ngx_http_classify_pending_shadows(ngx_http_classify_ctx_t *ctx)
{
    ngx_uint_t  i, n;

    n = 0;

    for (i = 0; i < ctx->ncalls; i++) {
        if (ctx->calls[i].classifier->shadow
            && ctx->calls[i].state == NGX_HTTP_CLASSIFY_CALL_RUNNING)
        {
            n++;
        }
    }

    return n;
}


/*
 * classify_timeout: every call still pending (shadows aside, which keep
 * their own timeout) ends as timed out and follows its on_error; a context
 * read still in flight is given up.
 */

static void
ngx_http_classify_deadline_handler(ngx_event_t *ev)
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

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "classify: classify_timeout expired");

    if (ctx->redis_op) {
        ngx_http_classify_redis_cancel(ctx->redis_op);
        ctx->redis_op = NULL;

        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "classify: classify_timeout expired while reading the "
                      "context of \"%V\" from redis", &ctx->redis_key);

        ngx_http_classify_context_done(ctx, 0);
        ngx_http_run_posted_requests(c);
        return;
    }

    if (!ctx->waiting) {
        return;
    }

    for (i = 0; i < ctx->ncalls; i++) {
        call = &ctx->calls[i];

        if (call->classifier->shadow
            || (call->state != NGX_HTTP_CLASSIFY_CALL_RUNNING
                && call->state != NGX_HTTP_CLASSIFY_CALL_IDLE))
        {
            continue;
        }

        ngx_http_classify_call_expire(call,
                                call->state == NGX_HTTP_CLASSIFY_CALL_RUNNING
                                ? "classify_timeout expired"
                                : "classify_timeout expired before it started");
        ngx_http_classify_settled(ctx, call);
    }

    ngx_http_classify_resume(r);
    ngx_http_run_posted_requests(c);
}


/* the outcome is known: stop what no longer matters, log the decision */

static void
ngx_http_classify_decided(ngx_http_classify_ctx_t *ctx)
{
    ngx_uint_t  i;

    ctx->waiting = 0;
    ctx->decided = 1;
    ctx->usec = ngx_http_classify_usec() - ctx->start;

    if (ctx->deadline.timer_set) {
        ngx_del_timer(&ctx->deadline);
    }

    for (i = 0; i < ctx->ncalls; i++) {
        if (!ctx->calls[i].classifier->shadow) {
            ngx_http_classify_call_abort(&ctx->calls[i]);
        }
    }

    if (ctx->verdict != NGX_HTTP_CLASSIFY_PASS) {
        ngx_http_classify_speculate_abort(ctx->spec);
    }

    ngx_http_classify_metrics_decision(ctx);

    ngx_http_classify_log_decision(ctx);
}


static void
ngx_http_classify_log_decision(ngx_http_classify_ctx_t *ctx)
{
    u_char                    *p, *last, *ms_last;
    ngx_str_t                 *outcome;
    ngx_uint_t                 i;
    ngx_msec_int_t             saved, left;
    ngx_http_classify_call_t  *call;
    u_char                     buf[NGX_MAX_ERROR_STR];
    u_char                     ms[NGX_HTTP_CLASSIFY_MS_LEN];

    if (ctx->request->connection->log->log_level < NGX_LOG_INFO) {
        return;
    }

    p = buf;
    last = buf + sizeof(buf);
    saved = 0;

    for (i = 0; i < ctx->ncalls; i++) {
        call = &ctx->calls[i];
        outcome = ngx_http_classify_outcome_label(call);

        p = ngx_slprintf(p, last, " %V:%V", &call->classifier->name,
                         outcome);

        if (call->start) {
            p = ngx_slprintf(p, last, "/");
            p = ngx_http_classify_print_ms(p, last, call->usec);
            p = ngx_slprintf(p, last, "ms");
        }

        /* an aborted call would have run until its timeout at most */

        if (call->state == NGX_HTTP_CLASSIFY_CALL_ABORTED) {
            left = (ngx_msec_int_t) call->classifier->timeout * 1000
                   - call->usec;
            saved += left > 0 ? left : 0;
        }
    }

    if (saved >= 1000) {
        p = ngx_slprintf(p, last,
                         ", aborts saved up to %Mms of classifier time",
                         saved / 1000);
    }

    if (ctx->spec) {
        p = ngx_http_classify_speculate_print(ctx->spec, p, last);
    }

    ms_last = ngx_http_classify_print_ms(ms, ms + sizeof(ms), ctx->usec);

    ngx_log_error(NGX_LOG_INFO, ctx->request->connection->log, 0,
                  "classify: verdict %V in %*sms,%*s",
                  ngx_http_classify_verdict_name(ctx), ms_last - ms, ms,
                  p - buf, buf);
}


ngx_str_t *
ngx_http_classify_verdict_name(ngx_http_classify_ctx_t *ctx)
{
    if (ctx->verdict == NGX_HTTP_CLASSIFY_PASS) {
        return &ngx_http_classify_pass_name;
    }

    if (ctx->verdict >= 0) {
        return &ctx->calls[ctx->verdict].classifier->name;
    }

    return &ngx_http_classify_error_name;
}


static void
ngx_http_classify_pass(ngx_http_request_t *r, ngx_http_classify_ctx_t *ctx)
{
    ngx_str_t   uri, args;
    ngx_uint_t  flags;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "classify: pass to \"%V\"", &ctx->conf->pass);

    if (ctx->conf->output && ctx->spec == NULL) {
        /* the guard stands between the generation and the client */
        ctx->spec = ngx_http_classify_speculate_start(r, &ctx->conf->pass,
                                                ctx->conf->speculate_buffer,
                                                0);
        if (ctx->spec == NULL) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }
    }

    if (ctx->spec) {
        if (ctx->conf->output) {
            ctx->guard = ngx_http_classify_guard_attach(ctx, ctx->spec);

            if (ctx->guard == NULL) {
                ngx_http_classify_speculate_abort(ctx->spec);
                ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
                return;
            }
        }

        /* the generation runs already: its response is the answer */
        ngx_http_classify_speculate_release(ctx->spec);
        return;
    }

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
    ngx_http_classify_classifier_t  *cl;

    cl = ctx->calls[ctx->verdict].classifier;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "classify: reply of \"%V\"", &cl->name);

    if (ctx->conf->context_store && ctx->redis_key.len) {
        ngx_http_classify_redis_store(ctx->conf->redis, &ctx->redis_key,
                                      &ctx->conf->context, &ctx->input.query,
                                      &cl->reply, r->pool);
    }

    ngx_http_finalize_request(r,
                              ngx_http_classify_send_reply(r,
                                                     ctx->conf->reply_format,
                                                     &ctx->input, cl));
}


/*
 * A body nginx may buffer to a temporary file (over client_body_buffer_size,
 * chunked, or client_body_in_file_only) is kept in memory as it arrives by
 * the module's request body filter, so that the gate never reads the file
 * back with a blocking read; the file stays nginx's, for classify_pass.
 */

static void
ngx_http_classify_keep(ngx_http_request_t *r, ngx_http_classify_ctx_t *ctx)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    ctx->keep_body = r->headers_in.chunked
                     || clcf->client_body_in_file_only
                     || r->headers_in.content_length_n
                        > (off_t) clcf->client_body_buffer_size;
}


/* the body as one buffer: the kept copy, or nginx's buffers in memory */

static ngx_int_t
ngx_http_classify_body(ngx_http_request_t *r, ngx_str_t *body)
{
    u_char                   *p;
    size_t                    len;
    ngx_chain_t              *cl;
    ngx_http_classify_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_classify_module);

    if (ctx->keep_body) {
        *body = ctx->body;
        return NGX_OK;
    }

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
        if (cl->buf->in_file) {
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                          "classify: the body is in a file, not kept");
            return NGX_ERROR;
        }

        len += cl->buf->last - cl->buf->pos;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;
    body->len = len;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        p = ngx_cpymem(p, cl->buf->pos, cl->buf->last - cl->buf->pos);
    }

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
        return NGX_DECLINED;
    }

    last = ctx->input.session.data + ctx->input.session.len;

    for (p = ctx->input.session.data; p < last; p++) {
        if (*p <= 0x20 || *p >= 0x7f) {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


static void
ngx_http_classify_cleanup(void *data)
{
    ngx_http_classify_ctx_t  *ctx = data;

    if (ctx->deadline.timer_set) {
        ngx_del_timer(&ctx->deadline);
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

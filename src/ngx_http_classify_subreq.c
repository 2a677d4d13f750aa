
/*
 * ngx_http_classify_module: one classifier call - start, collect, abort.
 *
 * Each call is an in-memory background subrequest (the pattern of njs's
 * r.subrequest()).  A call has one state (ngx_http_classify_call_state_e)
 * and changes it only through ngx_http_classify_call_set(); it tells its
 * owner that it settled by itself (an answer, an error, its own timeout)
 * through call->handler, and never calls the gate by name.
 *
 * The answer is collected by this module's body filter into a buffer that
 * grows as the answer arrives, capped by the classifier location's
 * subrequest_output_buffer_size; nginx's own in-memory postpone filter is
 * not used, because it fails a too big answer with NGX_ERROR, which
 * ngx_http_output_filter() turns into c->error on the connection the
 * subrequest shares with the client, and the client's request dies.
 *
 * A call the gate no longer needs is aborted through its upstream's own
 * cleanup, which closes the peer connection and finalizes the subrequest
 * with NGX_DONE; a call posted but not yet run is finalized when its turn
 * comes, before it reaches a location.
 */


#include "ngx_http_classify.h"
#include "ngx_http_classify_subreq.h"
#include "ngx_http_classify_verdict.h"


#define NGX_HTTP_CLASSIFY_ANSWER_START  1024


static void ngx_http_classify_call_run(ngx_http_request_t *sr);
static ngx_int_t ngx_http_classify_call_done(ngx_http_request_t *sr,
    void *data, ngx_int_t rc);
static void ngx_http_classify_call_record(ngx_http_classify_call_t *call,
    ngx_http_request_t *sr, ngx_int_t rc);
static void ngx_http_classify_call_timeout(ngx_event_t *ev);
static void ngx_http_classify_call_close(ngx_http_classify_call_t *call);
static void ngx_http_classify_call_drop(ngx_http_request_t *sr);
static void ngx_http_classify_call_cleanup(void *data);
static ngx_int_t ngx_http_classify_call_headers(ngx_http_request_t *r,
    ngx_http_request_t *sr, ngx_str_t *body);
static ngx_int_t ngx_http_classify_call_phase(ngx_http_request_t *r);


static ngx_str_t  ngx_http_classify_post = ngx_string("POST");
static ngx_str_t  ngx_http_classify_content_type =
    ngx_string("application/json");


static const char  *ngx_http_classify_state_names[] = {
    "idle", "running", "answered", "failed", "timed out", "aborted",
    "skipped"
};


/*
 * The one place a call changes state; a call that leaves "running" stops
 * its own timer and records how long it took.
 */

void
ngx_http_classify_call_set(ngx_http_classify_call_t *call,
    ngx_http_classify_call_state_e state, const char *cause)
{
    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, call->request->connection->log, 0,
                   "classify: call \"%V\" %s -> %s %s",
                   &call->classifier->name,
                   ngx_http_classify_state_names[call->state],
                   ngx_http_classify_state_names[state],
                   cause ? cause : "");

    if (call->state == NGX_HTTP_CLASSIFY_CALL_RUNNING) {
        call->usec = ngx_http_classify_usec() - call->start;

        if (call->timer.timer_set) {
            ngx_del_timer(&call->timer);
        }
    }

    call->state = state;

    if (cause) {
        call->cause = cause;
    }
}


ngx_int_t
ngx_http_classify_call_start(ngx_http_classify_call_t *call, ngx_str_t *body)
{
    ngx_buf_t                       *b;
    ngx_chain_t                     *out;
    ngx_pool_cleanup_t              *cln;
    ngx_http_request_t              *r, *sr;
    ngx_http_request_body_t         *rb;
    ngx_http_classify_classifier_t  *cl;

    r = call->request;
    cl = call->classifier;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_classify_call_cleanup;
    cln->data = call;

    call->ps.handler = ngx_http_classify_call_done;
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

    /* posted: it runs at the next ngx_http_run_posted_requests() */
    sr->write_event_handler = ngx_http_classify_call_run;

    /* a POST of our own body, not the client's */

    sr->method = NGX_HTTP_POST;
    sr->method_name = ngx_http_classify_post;

    rb = ngx_pcalloc(r->pool, sizeof(ngx_http_request_body_t));
    b = ngx_calloc_buf(r->pool);
    out = ngx_alloc_chain_link(r->pool);

    if (rb == NULL || b == NULL || out == NULL) {
        return NGX_ERROR;
    }

    b->start = body->data;
    b->pos = body->data;
    b->last = body->data + body->len;
    b->end = b->last;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;

    out->buf = b;
    out->next = NULL;

    rb->bufs = out;
    rb->rest = 0;

    sr->request_body = rb;

    if (ngx_http_classify_call_headers(r, sr, body) != NGX_OK) {
        return NGX_ERROR;
    }

    call->timer.handler = ngx_http_classify_call_timeout;
    call->timer.data = call;
    call->timer.log = r->connection->log;

    /* as for classify_timeout: the timer counts from this very moment */

    ngx_time_update();
    call->start = ngx_http_classify_usec();
    ngx_http_classify_call_set(call, NGX_HTTP_CLASSIFY_CALL_RUNNING, NULL);

    ngx_add_timer(&call->timer, cl->timeout);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "classify: started \"%V\" -> \"%V\", body %uz",
                   &cl->name, &cl->pass_uri, body->len);

    return NGX_OK;
}


static ngx_int_t
ngx_http_classify_call_headers(ngx_http_request_t *r, ngx_http_request_t *sr,
    ngx_str_t *body)
{
    ngx_table_elt_t  *h;

    /*
     * client_max_body_size limits what a client sends, and the client's
     * body passed the gate's; the body built here (prompt, context and
     * query) must not be refused with a 413 by the classifier location's
     * limit.  nginx checks a request's Content-Length against it when the
     * location is found: the length is unknown until then, and set once
     * the location is (ngx_http_classify_call_phase(), before any content
     * handler reads it).  Not discard_body, which skips the check too: a
     * subrequest ending with that flag makes ngx_http_finalize_connection()
     * arm the client connection's read timer with lingering_timeout, and
     * when that fires during a slow decision the client's next keep-alive
     * request is closed unanswered.
     */

    sr->headers_in.content_length_n = -1;
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

    return NGX_OK;
}


/*
 * A call's subrequest gets its turn: one given up before it ran (the
 * decision came first, or classify_timeout) never reaches its location.
 */

static void
ngx_http_classify_call_run(ngx_http_request_t *sr)
{
    ngx_http_classify_call_t  *call;

    call = sr->post_subrequest->data;

    if (call->state != NGX_HTTP_CLASSIFY_CALL_RUNNING) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, sr->connection->log, 0,
                       "classify: \"%V\" dropped before it ran",
                       &call->classifier->name);

        /* balances the r->main->count of ngx_http_subrequest() */
        ngx_http_classify_call_drop(sr);
        return;
    }

    call->ran = 1;

    ngx_http_handler(sr);
}


/*
 * A PREACCESS phase handler: the location of a classifier call is found
 * (client_max_body_size was not checked against the body the gate built),
 * so its length can be known now, before the proxy's content handler sends
 * it as Content-Length.
 */

static ngx_int_t
ngx_http_classify_call_phase(ngx_http_request_t *r)
{
    ngx_buf_t  *b;

    if (r->headers_in.content_length_n == -1
        && r->request_body
        && r->request_body->bufs
        && ngx_http_classify_is_call(r))
    {
        b = r->request_body->bufs->buf;
        r->headers_in.content_length_n = b->last - b->pos;
    }

    return NGX_DECLINED;
}


ngx_int_t
ngx_http_classify_call_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PREACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_classify_call_phase;

    return NGX_OK;
}


static ngx_int_t
ngx_http_classify_call_done(ngx_http_request_t *sr, void *data, ngx_int_t rc)
{
    ngx_http_classify_call_t  *call = data;

    if (call->state != NGX_HTTP_CLASSIFY_CALL_RUNNING) {
        /* a second finalization, or a call the gate gave up on */
        return NGX_OK;
    }

    ngx_http_classify_call_record(call, sr, rc);

    if (sr->connection->error) {
        return rc;
    }

    call->handler(call);

    return NGX_OK;
}


static void
ngx_http_classify_call_record(ngx_http_classify_call_t *call,
    ngx_http_request_t *sr, ngx_int_t rc)
{
    u_char                          *p;
    ngx_uint_t                       verdict;
    const char                      *cause;
    ngx_http_classify_classifier_t  *cl;
    u_char                           ms[NGX_HTTP_CLASSIFY_MS_LEN];

    cl = call->classifier;
    cause = NULL;
    verdict = NGX_HTTP_CLASSIFY_ERROR;

    call->status = sr->headers_out.status;

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        /* the upstream failed before a response: connect, timeout, 5xx */
        call->status = rc;
        cause = "no answer from the classifier";

    } else if (rc == NGX_ERROR
               || (sr->headers_out.content_length_n >= 0
                   && call->received < sr->headers_out.content_length_n))
    {
        /* the connection ended before the Content-Length it announced */
        cause = "answer was cut off";

    } else if (call->status < 200 || call->status > 299) {
        cause = "classifier answered with a non-2xx status";

    } else if (call->in_file) {
        cause = "answer was buffered to a temporary file (bigger than "
                "the classifier location's proxy buffers)";

    } else if (call->too_big) {
        cause = "answer bigger than subrequest_output_buffer_size";

    } else {
        verdict = ngx_http_classify_parse_answer(cl, call->answer.data,
                                                 call->answer.len, &cause);
    }

    if (verdict == NGX_HTTP_CLASSIFY_ERROR) {
        ngx_http_classify_call_set(call, NGX_HTTP_CLASSIFY_CALL_FAILED,
                                   cause);

        ngx_log_error(NGX_LOG_ERR, sr->connection->log, 0,
                      "classifier \"%V\" failed: %s (status %ui), %s%s",
                      &cl->name, call->cause, call->status,
                      ngx_http_classify_on_error_name(cl),
                      cl->shadow ? " (shadow)" : "");
        return;
    }

    call->verdict = verdict;
    ngx_http_classify_call_set(call, NGX_HTTP_CLASSIFY_CALL_ANSWERED, NULL);

    if (cl->shadow) {
        p = ngx_http_classify_print_ms(ms, ms + sizeof(ms), call->usec);

        ngx_log_error(NGX_LOG_INFO, sr->connection->log, 0,
                      "classify: shadow classifier \"%V\" answered %V in "
                      "%*sms", &cl->name,
                      &ngx_http_classify_outcome_names[
                                              ngx_http_classify_outcome(call)],
                      p - ms, ms);
    }
}


/* the call's own timeout: it fails, follows its on_error, and is closed */

static void
ngx_http_classify_call_timeout(ngx_event_t *ev)
{
    ngx_connection_t          *c;
    ngx_http_request_t        *r;
    ngx_http_classify_call_t  *call;

    call = ev->data;
    r = call->request;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    /*
     * after the answer only shadows still run, and closing the last one
     * may end the request: hold a reference meanwhile, and release it the
     * way a finishing subrequest would
     */

    r->count++;

    ngx_http_classify_call_expire(call, "timed out");

    call->handler(call);

    ngx_http_finalize_request(r, NGX_DONE);
    ngx_http_run_posted_requests(c);
}


/*
 * A running call past its own timeout, or past classify_timeout (cause
 * says which): it ends as an error, its on_error applies, and its upstream
 * is closed.  A call that never started only ends.
 */

void
ngx_http_classify_call_expire(ngx_http_classify_call_t *call,
    const char *cause)
{
    ngx_uint_t                       running;
    ngx_http_classify_classifier_t  *cl;

    cl = call->classifier;
    running = (call->state == NGX_HTTP_CLASSIFY_CALL_RUNNING);

    ngx_http_classify_call_set(call, NGX_HTTP_CLASSIFY_CALL_TIMEDOUT, cause);

    if (!running) {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, call->request->connection->log, 0,
                  "classifier \"%V\" failed: %s, %s%s",
                  &cl->name, cause, ngx_http_classify_on_error_name(cl),
                  cl->shadow ? " (shadow)" : "");

    ngx_http_classify_call_close(call);
}


/*
 * The gate gives up a call: a running one is closed (an abort the gate
 * chose is not an error), one never started is skipped.
 */

void
ngx_http_classify_call_abort(ngx_http_classify_call_t *call)
{
    switch (call->state) {

    case NGX_HTTP_CLASSIFY_CALL_RUNNING:
        ngx_http_classify_call_set(call, NGX_HTTP_CLASSIFY_CALL_ABORTED,
                                   NULL);
        ngx_http_classify_call_close(call);
        return;

    case NGX_HTTP_CLASSIFY_CALL_IDLE:
        ngx_http_classify_call_set(call, NGX_HTTP_CLASSIFY_CALL_SKIPPED,
                                   NULL);
        return;

    default:
        return;
    }
}


/*
 * classify_resolve priority: once classifier k is positive, the ones listed
 * after it cannot change the answer; stop paying for them now, not only at
 * the decision.  Shadows are never outranked.
 */

void
ngx_http_classify_calls_abort_outranked(ngx_http_classify_call_t *calls,
    ngx_uint_t n, ngx_uint_t resolve)
{
    ngx_uint_t                 i, positive;
    ngx_http_classify_call_t  *call;

    if (resolve != NGX_HTTP_CLASSIFY_RESOLVE_PRIORITY) {
        return;
    }

    positive = 0;

    for (i = 0; i < n; i++) {
        call = &calls[i];

        if (call->classifier->shadow) {
            continue;
        }

        if (positive) {
            /* running: closed; outranked by a cached verdict: skipped */
            ngx_http_classify_call_abort(call);
            continue;
        }

        if (ngx_http_classify_effective(call) == NGX_HTTP_CLASSIFY_POSITIVE) {
            positive = 1;
        }
    }
}


/*
 * The upstream's cleanup closes the peer connection (so that the backend
 * sees the client go and stops costing) and finalizes the subrequest with
 * NGX_DONE, which balances r->main->count without calling the post
 * handler.  Only from the parent's own handlers or a timer, never from
 * another subrequest's post handler.  A subrequest that has not run yet
 * has no upstream: ngx_http_classify_call_run() drops it.
 */

static void
ngx_http_classify_call_close(ngx_http_classify_call_t *call)
{
    ngx_http_request_t   *sr;
    ngx_http_upstream_t  *u;

    sr = call->sr;

    if (sr == NULL || !call->ran) {
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, sr->connection->log, 0,
                   "classify: closing \"%V\"", &call->classifier->name);

    u = sr->upstream;

    if (u && u->cleanup && *u->cleanup) {
        (*u->cleanup)(sr);
        return;
    }

    /*
     * it ran and waits for something else than an upstream: a limit_req
     * delay, whose timer wakes the main request and never this one; at
     * its next turn it is finalized, and its reference goes
     */

    sr->write_event_handler = ngx_http_classify_call_drop;

    (void) ngx_http_post_request(sr, NULL);
}


static void
ngx_http_classify_call_drop(ngx_http_request_t *sr)
{
    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, sr->connection->log, 0,
                   "classify: a call closed while it waited");

    ngx_http_finalize_request(sr, NGX_DONE);
}


static void
ngx_http_classify_call_cleanup(void *data)
{
    ngx_http_classify_call_t  *call = data;

    if (call->timer.timer_set) {
        ngx_del_timer(&call->timer);
    }
}


/*
 * A classifier's response header: its body is read unbuffered (as with
 * proxy_buffering off), into the upstream's one proxy_buffer_size buffer
 * and on to ngx_http_classify_call_collect(), which consumes it at once.
 * Buffered, the event pipe would hold proxy_buffers per call and spool a
 * big answer to a temporary file, to be read back with a blocking read.
 * nginx chooses the mode after sending the header, so this is in time.
 */

void
ngx_http_classify_call_header(ngx_http_request_t *sr)
{
    if (sr->upstream) {
        sr->upstream->buffering = 0;
    }
}


/* whether r is one of this module's classifier subrequests */

ngx_int_t
ngx_http_classify_is_call(ngx_http_request_t *r)
{
    return r->post_subrequest
           && r->post_subrequest->handler == ngx_http_classify_call_done;
}


/*
 * The body filter of a classifier subrequest: the answer is copied into
 * the call and consumed here.  The buffer is sized by the answer's
 * Content-Length, or grows as the answer arrives, and is never bigger than
 * the classifier location's subrequest_output_buffer_size; an answer nginx
 * buffered to a temporary file is refused rather than read back with a
 * blocking read.
 */

ngx_int_t
ngx_http_classify_call_collect(ngx_http_request_t *r,
    ngx_http_classify_call_t *call, ngx_chain_t *in)
{
    size_t                     len, start;
    ngx_buf_t                 *b;
    ngx_chain_t               *cl;
    ngx_http_core_loc_conf_t  *clcf;

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;

        if (ngx_buf_special(b)) {
            continue;
        }

        if (!ngx_buf_in_memory(b)) {
            call->received += b->file_last - b->file_pos;
            call->in_file = 1;
            b->file_pos = b->file_last;
            continue;
        }

        len = b->last - b->pos;
        call->received += len;

        if (call->too_big || len == 0) {
            b->pos = b->last;
            continue;
        }

        if (call->answer.len + len > call->answer_size) {
            clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

            if (call->answer.len + len > clcf->subrequest_output_buffer_size)
            {
                call->too_big = 1;
                b->pos = b->last;
                continue;
            }

            /* the whole answer at once when its length is known */
            start = NGX_HTTP_CLASSIFY_ANSWER_START;

            if (r->headers_out.content_length_n > 0
                && (size_t) r->headers_out.content_length_n
                   <= clcf->subrequest_output_buffer_size)
            {
                start = r->headers_out.content_length_n;
            }

            if (ngx_http_classify_reserve(r->pool, &call->answer.data,
                                          call->answer.len,
                                          &call->answer_size, len, start,
                                          clcf->subrequest_output_buffer_size)
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

        ngx_memcpy(call->answer.data + call->answer.len, b->pos, len);
        call->answer.len += len;
        b->pos = b->last;
    }

    return NGX_OK;
}

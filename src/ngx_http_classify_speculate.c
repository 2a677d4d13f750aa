
/*
 * ngx_http_classify_module: speculative generation (classify_speculate).
 *
 * The generation starts as soon as the body has been read, beside the
 * classifiers: a background subrequest to classify_pass, with the client's
 * method, body and headers, as the internal redirect of a pass would send
 * them.  (With classify_output and no speculation the same subrequest is
 * started at the pass, and released at once: the output guard then sits
 * between it and the client, through the release's handlers.)  Its
 * response is held by this module's filters, before any other: the status
 * and headers stay in the subrequest, the body is held (hold.c): copied
 * into the request's pool up to classify_speculate_buffer, and past that
 * its buffers are kept as they came, unconsumed, so that the backend is
 * not read until the verdict.  The upstream is read unbuffered whatever
 * the location says, since a buffered one would spool what is not
 * consumed to a temporary file instead of stopping.
 *
 * Pass (ngx_http_classify_speculate_release()): the status and headers
 * become the main request's, which takes the generation location's
 * configuration (as the internal redirect of a pass would give it: its
 * add_header, its access log), and go out through the main request's
 * header filters; the held bytes follow through its body filters, then
 * every buffer the generation gives is relayed there as it comes.  While
 * it streams, the main request's write handler runs the generation's, as
 * the connection would if the subrequest were its active request.
 *
 * Block (ngx_http_classify_speculate_abort()): the upstream is closed
 * through its own cleanup (the backend sees its client go away) and what
 * was held is dropped with the request's pool.
 */


#include "ngx_http_classify.h"
#include "ngx_http_classify_speculate.h"
#include "ngx_http_classify_gate.h"
#include "ngx_http_classify_metrics.h"


static void ngx_http_classify_speculate_run(ngx_http_request_t *sr);
static void ngx_http_classify_speculate_drop(ngx_http_request_t *sr);
static ngx_int_t ngx_http_classify_speculate_done(ngx_http_request_t *sr,
    void *data, ngx_int_t rc);
static ngx_int_t ngx_http_classify_speculate_hold(
    ngx_http_classify_spec_t *spec, ngx_chain_t *in);
static void ngx_http_classify_speculate_own_list(ngx_list_t *list,
    ngx_list_t *from);
static void ngx_http_classify_speculate_write(ngx_http_request_t *r);
static void ngx_http_classify_speculate_stop(ngx_http_classify_spec_t *spec);
static void ngx_http_classify_speculate_saved(ngx_http_classify_spec_t *spec);


static const char  *ngx_http_classify_spec_state_names[] = {
    "holding", "released", "aborted"
};


/*
 * The generation of one request, or NULL when its subrequest cannot be
 * made (logged): the request then passes the usual way.  Speculative: it
 * starts before the verdict (classify_speculate), and is counted so.
 */

ngx_http_classify_spec_t *
ngx_http_classify_speculate_start(ngx_http_request_t *r, ngx_str_t *pass,
    size_t buffer, ngx_uint_t speculative)
{
    ngx_str_t                  uri, args;
    ngx_uint_t                 flags;
    ngx_http_request_t        *sr;
    ngx_http_classify_spec_t  *spec;

    spec = ngx_pcalloc(r->pool, sizeof(ngx_http_classify_spec_t));
    if (spec == NULL) {
        return NULL;
    }

    spec->request = r;
    spec->speculative = speculative;

    ngx_http_classify_hold_init(&spec->hold, r->pool, buffer);

    spec->header_handler = ngx_http_classify_speculate_send_header;
    spec->body_handler = ngx_http_classify_speculate_relay;
    spec->end_handler = ngx_http_classify_speculate_finish;

    spec->ps.handler = ngx_http_classify_speculate_done;
    spec->ps.data = spec;

    /*
     * a named location keeps the client's URI, as ngx_http_named_location()
     * does for a pass; a URI replaces it, as ngx_http_internal_redirect()
     */

    if (pass->data[0] == '@') {
        spec->name = *pass;
        uri = r->uri;
        args = r->args;

    } else {
        uri = *pass;
        ngx_str_null(&args);
        flags = NGX_HTTP_LOG_UNSAFE;

        if (ngx_http_parse_unsafe_uri(r, &uri, &args, &flags) != NGX_OK) {
            goto failed;
        }
    }

    if (ngx_http_subrequest(r, &uri, args.len ? &args : NULL, &sr, &spec->ps,
                            NGX_HTTP_SUBREQUEST_BACKGROUND)
        != NGX_OK)
    {
        goto failed;
    }

    spec->sr = sr;

    /* the client's request, body included (shared with the subrequest) */

    sr->method = r->method;
    sr->method_name = r->method_name;

    if (spec->name.len) {
        sr->valid_unparsed_uri = r->valid_unparsed_uri;
    }

    /* posted: it runs at the next ngx_http_run_posted_requests() */
    sr->write_event_handler = ngx_http_classify_speculate_run;

    spec->start = ngx_http_classify_usec();

    if (speculative) {
        ngx_http_classify_metrics_speculated(r);
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "classify: %sgeneration -> \"%V\"",
                   speculative ? "speculative " : "", pass);

    return spec;

failed:

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "classify: %sgeneration to \"%V\" could not start%s",
                  speculative ? "speculative " : "", pass,
                  speculative ? ", passing after the decision" : "");

    return NULL;
}


/* its turn: one given up before it ran never reaches its location */

static void
ngx_http_classify_speculate_run(ngx_http_request_t *sr)
{
    ngx_http_classify_spec_t  *spec;

    spec = sr->post_subrequest->data;

    if (spec->ran) {
        return;
    }

    if (spec->state == NGX_HTTP_CLASSIFY_SPEC_ABORTED) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, sr->connection->log, 0,
                       "classify: generation dropped before it ran");

        spec->ended = 1;

        /* balances the r->main->count of ngx_http_subrequest() */
        ngx_http_finalize_request(sr, NGX_DONE);
        return;
    }

    spec->ran = 1;

    if (spec->name.len == 0) {
        ngx_http_handler(sr);
        return;
    }

    (void) ngx_http_named_location(sr, &spec->name);

    ngx_http_finalize_request(sr, NGX_DONE);
}


/*
 * The generation's post handler.  Without a response yet, nginx makes one
 * of its status (an error page: held like any response) and finalizes the
 * subrequest again.  While held, the way it ended is kept for the verdict
 * and is not the client's; once released it ends the client's response,
 * as it would end a pass's.
 */

static ngx_int_t
ngx_http_classify_speculate_done(ngx_http_request_t *sr, void *data,
    ngx_int_t rc)
{
    ngx_http_classify_spec_t  *spec = data;

    if (spec->state == NGX_HTTP_CLASSIFY_SPEC_ABORTED || spec->ended) {
        return NGX_OK;
    }

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE
        && rc != NGX_HTTP_CLOSE
        && !spec->has_header)
    {
        return rc;
    }

    spec->ended = 1;
    spec->rc = rc;

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, sr->connection->log, 0,
                   "classify: generation ended %i, %s, %O bytes, %s",
                   rc, spec->complete ? "complete" : "cut off",
                   spec->received,
                   ngx_http_classify_spec_state_names[spec->state]);

    if (spec->state == NGX_HTTP_CLASSIFY_SPEC_HOLDING) {
        return NGX_OK;
    }

    /* released: the main request's write handler ends the response */

    (void) ngx_http_post_request(spec->request, NULL);

    return rc;
}


/* the generation's response header: held, sent, or refused once aborted */

ngx_int_t
ngx_http_classify_speculate_header(ngx_http_classify_spec_t *spec,
    ngx_http_request_t *sr)
{
    ngx_int_t  rc;

    /* as ngx_http_header_filter() marks any subrequest's */
    sr->header_sent = 1;

    if (sr->upstream) {
        sr->upstream->buffering = 0;
    }

    spec->has_header = 1;
    spec->header = ngx_http_classify_usec() - spec->start;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, sr->connection->log, 0,
                   "classify: generation header %ui, %s",
                   sr->headers_out.status,
                   ngx_http_classify_spec_state_names[spec->state]);

    switch (spec->state) {

    case NGX_HTTP_CLASSIFY_SPEC_HOLDING:
        return NGX_OK;

    case NGX_HTTP_CLASSIFY_SPEC_RELEASED:
        ngx_http_classify_speculate_saved(spec);
        rc = spec->header_handler(spec);
        return (rc == NGX_ERROR || rc > NGX_OK) ? NGX_ERROR : rc;

    default:
        /* it reached its upstream after the block: closed now */
        return NGX_ERROR;
    }
}


ngx_int_t
ngx_http_classify_speculate_body(ngx_http_classify_spec_t *spec,
    ngx_http_request_t *sr, ngx_chain_t *in)
{
    ngx_chain_t  *cl;

    switch (spec->state) {

    case NGX_HTTP_CLASSIFY_SPEC_HOLDING:
        return ngx_http_classify_speculate_hold(spec, in);

    case NGX_HTTP_CLASSIFY_SPEC_RELEASED:
        for (cl = in; cl; cl = cl->next) {
            if (cl->buf->last_in_chain) {
                spec->complete = 1;
            }

            spec->received += ngx_buf_size(cl->buf);
        }

        return spec->body_handler(spec, in);

    default:
        /*
         * past its refused header, dropped; NGX_ERROR here would flag the
         * connection it shares with the client (ngx_http_output_filter())
         */

        for (cl = in; cl; cl = cl->next) {
            cl->buf->pos = cl->buf->last;
        }

        return NGX_OK;
    }
}


/*
 * Held (hold.c): copied while classify_speculate_buffer has room, then
 * kept as it came, so that nothing is reordered and the upstream's buffer
 * fills.
 */

static ngx_int_t
ngx_http_classify_speculate_hold(ngx_http_classify_spec_t *spec,
    ngx_chain_t *in)
{
    ngx_chain_t  *cl;

    for (cl = in; cl; cl = cl->next) {
        if (cl->buf->last_in_chain || cl->buf->last_buf) {
            spec->complete = 1;
        }

        spec->received += ngx_buf_size(cl->buf);
    }

    if (ngx_http_classify_hold_add(&spec->hold, in) != NGX_OK) {
        return NGX_ERROR;
    }

    if (spec->hold.kept && !spec->full) {
        spec->full = 1;

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, spec->request->connection->log, 0,
                       "classify: generation holds %O bytes, the rest "
                       "waits at %O", spec->hold.copied, spec->received);
    }

    return NGX_OK;
}


/*
 * Released: the generation's buffers go through the main request's body
 * filters (as a pass's would, context_store's capture included).  Its
 * upstream does not watch the connection for writing, since the main
 * request is the connection's active one: this does it in its place.
 */

ngx_int_t
ngx_http_classify_speculate_relay(ngx_http_classify_spec_t *spec,
    ngx_chain_t *in)
{
    ngx_int_t                  rc;
    ngx_http_request_t        *r;
    ngx_http_core_loc_conf_t  *clcf;

    r = spec->request;

    rc = ngx_http_output_filter(r, in);

    if (rc == NGX_AGAIN) {
        clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

        if (ngx_handle_write_event(r->connection->write, clcf->send_lowat)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return rc;
}


/*
 * Pass: what is held goes out at once, and the generation streams on to
 * the client.  From here the main request's life is the generation's: it
 * ends when the generation does (ngx_http_classify_speculate_finish()).
 */

void
ngx_http_classify_speculate_release(ngx_http_classify_spec_t *spec)
{
    ngx_int_t            rc;
    ngx_chain_t         *out;
    ngx_http_request_t  *r;

    r = spec->request;

    spec->state = NGX_HTTP_CLASSIFY_SPEC_RELEASED;
    spec->decided = ngx_http_classify_usec() - spec->start;

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "classify: generation released: header %d, %O bytes "
                   "held, %O given, %s", spec->has_header, spec->hold.copied,
                   spec->received, spec->ended ? "ended" : "running");

    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_classify_speculate_write;

    if (!spec->has_header) {
        if (spec->ended) {
            spec->end_handler(spec);
            return;
        }

        /*
         * the header goes out when it comes; a generation not at its
         * upstream yet may wait on the connection's events (a limit_req
         * delay), which went to the gate until now: its turn again
         */

        if (spec->ran && spec->sr->upstream == NULL) {
            /* through the main request: its write handler runs the
             * generation's only while it has not ended */
            (void) ngx_http_post_request(r, NULL);
        }

        return;
    }

    ngx_http_classify_speculate_saved(spec);

    rc = spec->header_handler(spec);

    out = ngx_http_classify_hold_all(&spec->hold);

    if (rc != NGX_ERROR && rc <= NGX_OK && out) {
        rc = spec->body_handler(spec, out);
    }

    if (rc == NGX_ERROR || rc > NGX_OK) {
        /* terminated: the generation's upstream is closed too */
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    if (spec->ended) {
        spec->end_handler(spec);
        return;
    }

    if (spec->full) {
        /*
         * its upstream waits for the buffers it gave to be sent: woken
         * through the main request, never directly, since the body handler
         * may have posted the main request already, and the generation may
         * end in that run (a finalized subrequest keeps its write handler)
         */
        (void) ngx_http_post_request(r, NULL);
    }
}


/*
 * The generation's status and headers become the main request's.  The
 * main request takes the generation location's configuration, so that
 * its header and body filters (add_header, gzip...) run once, with the
 * settings a pass would have, and $upstream_* reach its access log.
 */

ngx_int_t
ngx_http_classify_speculate_send_header(ngx_http_classify_spec_t *spec)
{
    ngx_http_request_t  *r, *sr;

    r = spec->request;
    sr = spec->sr;

    r->headers_out = sr->headers_out;

    ngx_http_classify_speculate_own_list(&r->headers_out.headers,
                                         &sr->headers_out.headers);
    ngx_http_classify_speculate_own_list(&r->headers_out.trailers,
                                         &sr->headers_out.trailers);

    r->loc_conf = sr->loc_conf;
    ngx_http_update_location_config(r);

    r->upstream_states = sr->upstream_states;

    /* streamed as with proxy_buffering off */
    r->limit_rate = 0;
    r->limit_rate_set = 1;

    return ngx_http_send_header(r);
}


/*
 * A list copied by value still ends in its original's first part: what is
 * added to the copy must go to the copy's own.
 */

static void
ngx_http_classify_speculate_own_list(ngx_list_t *list, ngx_list_t *from)
{
    if (list->last == &from->part) {
        list->last = &list->part;
    }
}


/*
 * The main request's write handler once released: the connection's write
 * events are the generation's, as they would be if it were the active
 * request (its upstream waits for its buffers to be sent, a limit_req
 * delay ends), or the generation has ended.
 */

static void
ngx_http_classify_speculate_write(ngx_http_request_t *r)
{
    ngx_http_classify_ctx_t   *ctx;
    ngx_http_classify_spec_t  *spec;

    ctx = ngx_http_get_module_ctx(r, ngx_http_classify_module);
    spec = ctx->spec;

    if (spec->ended) {
        spec->end_handler(spec);
        return;
    }

    spec->sr->write_event_handler(spec->sr);
}


/*
 * The generation has ended: so does the client's response, as a pass's
 * would.  Complete: the last buffer.  Cut off after its header: the
 * response stops there and the connection closes.  Without any response
 * (its location closed the connection, or failed inside nginx): the
 * connection closes.
 */

void
ngx_http_classify_speculate_finish(ngx_http_classify_spec_t *spec)
{
    ngx_http_request_t  *r;

    r = spec->request;

    /* the generation has nothing more to write */
    r->write_event_handler = ngx_http_request_empty_handler;

    if (!spec->has_header) {
        ngx_http_finalize_request(r, spec->rc == NGX_HTTP_CLOSE
                                     ? NGX_HTTP_CLOSE : NGX_ERROR);
        return;
    }

    if (!spec->complete) {
        r->keepalive = 0;
        ngx_http_finalize_request(r, ngx_http_send_special(r,
                                                           NGX_HTTP_FLUSH));
        return;
    }

    /* trailers come at the end (grpc's) */
    r->headers_out.trailers = spec->sr->headers_out.trailers;
    ngx_http_classify_speculate_own_list(&r->headers_out.trailers,
                                         &spec->sr->headers_out.trailers);

    ngx_http_finalize_request(r, ngx_http_send_special(r, NGX_HTTP_LAST));
}


/*
 * Block: the generation's upstream is closed through its own cleanup,
 * which finalizes the subrequest with NGX_DONE (as a classifier call is
 * closed).  One that has not run yet is dropped at its turn.  One that
 * waits in its location before any upstream (a limit_req delay, an
 * auth_request) would wait on the connection's events, which are the
 * main request's: it is dropped at its next turn, now.
 */

void
ngx_http_classify_speculate_abort(ngx_http_classify_spec_t *spec)
{
    if (spec == NULL || spec->state != NGX_HTTP_CLASSIFY_SPEC_HOLDING) {
        return;
    }

    spec->decided = ngx_http_classify_usec() - spec->start;

    if (spec->speculative) {
        ngx_http_classify_metrics_speculation_aborted(spec->request,
                                                      spec->received,
                                                      spec->decided);
    }

    ngx_http_classify_speculate_stop(spec);
}


/*
 * A released generation the client gets no more of (the output guard
 * cut it): closed the same way.  The caller ends the client's response;
 * the main request's write handler must no longer run the generation's.
 */

void
ngx_http_classify_speculate_close(ngx_http_classify_spec_t *spec)
{
    if (spec->state != NGX_HTTP_CLASSIFY_SPEC_RELEASED) {
        return;
    }

    ngx_http_classify_speculate_stop(spec);
}


static void
ngx_http_classify_speculate_stop(ngx_http_classify_spec_t *spec)
{
    ngx_http_upstream_t  *u;

    spec->state = NGX_HTTP_CLASSIFY_SPEC_ABORTED;

    ngx_http_classify_hold_drop(&spec->hold);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, spec->request->connection->log, 0,
                   "classify: generation aborted, %O bytes given, %s",
                   spec->received, spec->ended ? "ended" : "running");

    if (spec->ended || !spec->ran) {
        return;
    }

    u = spec->sr->upstream;

    if (u && u->cleanup && *u->cleanup) {
        (*u->cleanup)(spec->sr);
        return;
    }

    spec->sr->write_event_handler = ngx_http_classify_speculate_drop;
    (void) ngx_http_post_request(spec->sr, NULL);
}


/* a generation aborted before its upstream, at its next turn */

static void
ngx_http_classify_speculate_drop(ngx_http_request_t *sr)
{
    ngx_http_classify_spec_t  *spec;

    spec = sr->post_subrequest->data;

    if (spec->ended) {
        return;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, sr->connection->log, 0,
                   "classify: generation dropped before its upstream");

    spec->ended = 1;

    /* balances the r->main->count of ngx_http_subrequest() */
    ngx_http_finalize_request(sr, NGX_DONE);
}


/*
 * The time to first byte a pass saved: the generation's header reached
 * the client at the decision instead of its own time after it, or its
 * time after its start instead of after the decision.
 */

static void
ngx_http_classify_speculate_saved(ngx_http_classify_spec_t *spec)
{
    ngx_http_classify_metrics_speculation_saved(spec->request,
                                         ngx_min(spec->header, spec->decided));
}


/* for the decision's log line: how far the generation got */

u_char *
ngx_http_classify_speculate_print(ngx_http_classify_spec_t *spec, u_char *p,
    u_char *last)
{
    if (spec->state == NGX_HTTP_CLASSIFY_SPEC_ABORTED) {
        p = ngx_slprintf(p, last, ", generation aborted after ");
        p = ngx_http_classify_print_ms(p, last, spec->decided);
        return ngx_slprintf(p, last, "ms, %O bytes thrown away",
                            spec->received);
    }

    p = ngx_slprintf(p, last, ", generation released after ");
    p = ngx_http_classify_print_ms(p, last,
                                   ngx_http_classify_usec() - spec->start);

    return ngx_slprintf(p, last, "ms, %O bytes held%s", spec->received,
                        spec->ended ? " (ended)" : "");
}


/* whether r is a generation subrequest of this module */

ngx_http_classify_spec_t *
ngx_http_classify_speculation(ngx_http_request_t *r)
{
    if (r->post_subrequest
        && r->post_subrequest->handler == ngx_http_classify_speculate_done)
    {
        return r->post_subrequest->data;
    }

    return NULL;
}

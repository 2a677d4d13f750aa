
/*
 * ngx_http_classify_module: the streaming output guard (classify_output).
 *
 * The passed generation runs as the subrequest speculate.c makes (started
 * at the pass, or speculatively before it), and the guard stands between
 * its released response and the client, through the release's handlers.
 *
 * An event stream (text/event-stream) is fed through hold.c, which copies
 * it within classify_output_buffer and keeps the rest unconsumed (the
 * backend is then not read), and through stream.c's reader, which splits
 * it into events and reads each one's text into the answer.  At each
 * window of classify_output_window bytes of text, at the end of the
 * message and when the hold is full, the output classifiers judge the
 * answer so far: concurrent calls of subreq.c, resolved by verdict.c as
 * the gate resolves input classifiers.  Stream offsets say what may go
 * out: in hold mode an event with text goes out once a negative judgement
 * covers it, the events between (role, tool calls, usage) as soon as no
 * unjudged text is before them; in release mode every event goes out
 * when it is whole, but for the events that end the message, which wait
 * for the last judgement.  A positive verdict ends the stream after what
 * the client was given, in its own format (reply.c), and closes the
 * generation's upstream.  A whole answer (any other 200) is held whole,
 * header included, judged once, and sent or replaced by the reply.
 *
 * Nothing that could end the generation's subrequest is done inside its
 * own filters: the verdicts and the errors that need a decision are taken
 * by a posted event (g->wake), the end of the response when the
 * subrequest has ended (its end handler, from the main request's write
 * handler).
 */


#include "ngx_http_classify.h"
#include "ngx_http_classify_jsonr.h"
#include "ngx_http_classify_guard.h"
#include "ngx_http_classify_gate.h"
#include "ngx_http_classify_subreq.h"
#include "ngx_http_classify_json.h"
#include "ngx_http_classify_metrics.h"
#include "ngx_http_classify_send.h"
#include "ngx_http_classify_reply.h"


/* a call sees the newest text, at most this much or four windows */
#define NGX_HTTP_CLASSIFY_GUARD_SEEN      8192

/* the answer's text kept for the judgements and the end of a cut */
#define NGX_HTTP_CLASSIFY_GUARD_TEXT_MAX  (1024 * 1024)


static ngx_int_t ngx_http_classify_guard_header(ngx_http_classify_spec_t *spec);
static ngx_int_t ngx_http_classify_guard_body(ngx_http_classify_spec_t *spec,
    ngx_chain_t *in);
static void ngx_http_classify_guard_end(ngx_http_classify_spec_t *spec);
static ngx_int_t ngx_http_classify_guard_feed(void *data, u_char *p,
    size_t len);
static ngx_int_t ngx_http_classify_guard_event(ngx_http_classify_sse_t *sse,
    ngx_str_t *event);
static ngx_int_t ngx_http_classify_guard_text(ngx_http_classify_guard_t *g,
    ngx_str_t *raw, size_t *len);
static ngx_int_t ngx_http_classify_guard_advance(ngx_http_classify_guard_t *g,
    ngx_uint_t may_end);
static ngx_int_t ngx_http_classify_guard_release(ngx_http_classify_guard_t *g);
static off_t ngx_http_classify_guard_clear(ngx_http_classify_guard_t *g,
    ngx_http_classify_stream_t **st);
static ngx_uint_t ngx_http_classify_guard_due(ngx_http_classify_guard_t *g);
static ngx_int_t ngx_http_classify_guard_whole(ngx_http_classify_guard_t *g);
static ngx_int_t ngx_http_classify_guard_judge(ngx_http_classify_guard_t *g);
static void ngx_http_classify_guard_view(ngx_http_classify_guard_t *g,
    ngx_str_t *view);
static void ngx_http_classify_guard_call_settled(
    ngx_http_classify_call_t *call);
static void ngx_http_classify_guard_wake_handler(ngx_event_t *ev);
static void ngx_http_classify_guard_deadline_handler(ngx_event_t *ev);
static void ngx_http_classify_guard_resume(ngx_http_classify_guard_t *g);
static void ngx_http_classify_guard_judged(ngx_http_classify_guard_t *g,
    ngx_int_t v);
static void ngx_http_classify_guard_unreadable(ngx_http_classify_guard_t *g);
static void ngx_http_classify_guard_stop_calls(ngx_http_classify_guard_t *g);
static void ngx_http_classify_guard_cut(ngx_http_classify_guard_t *g,
    ngx_uint_t i);
static ngx_int_t ngx_http_classify_guard_tail(ngx_http_classify_guard_t *g,
    ngx_http_classify_classifier_t *cl);
static void ngx_http_classify_guard_finish(ngx_http_classify_guard_t *g);
static void ngx_http_classify_guard_log(ngx_http_classify_guard_t *g);
static void ngx_http_classify_guard_fail(ngx_http_classify_guard_t *g,
    const char *error);
static void ngx_http_classify_guard_cleanup(void *data);


static ngx_str_t  ngx_http_classify_guard_pass = ngx_string("pass");
static ngx_str_t  ngx_http_classify_guard_error = ngx_string("error");


/*
 * The guard of a generation about to be released: its handlers take the
 * generation's header, body and end.  NULL when out of memory.
 */

ngx_http_classify_guard_t *
ngx_http_classify_guard_attach(ngx_http_classify_ctx_t *ctx,
    ngx_http_classify_spec_t *spec)
{
    ngx_uint_t                     n;
    ngx_pool_t                    *pool;
    ngx_pool_cleanup_t            *cln;
    ngx_http_classify_msg_t       *msg;
    ngx_http_classify_guard_t     *g;
    ngx_http_classify_loc_conf_t  *conf;

    conf = ctx->conf;
    pool = ctx->request->pool;

    g = ngx_pcalloc(pool, sizeof(ngx_http_classify_guard_t));
    if (g == NULL) {
        return NULL;
    }

    g->request = ctx->request;
    g->ctx = ctx;
    g->spec = spec;
    g->verdict = NGX_HTTP_CLASSIFY_UNDECIDED;
    g->unjudged = -1;
    g->after = -1;
    g->closing = -1;
    g->start = ngx_http_classify_usec();

    g->cl = ngx_pcalloc(pool, conf->output->nelts
                              * sizeof(ngx_http_classify_guard_cl_t));
    if (g->cl == NULL) {
        return NULL;
    }

    for (n = 0; n < conf->output->nelts; n++) {
        g->cl[n].outcome = NGX_HTTP_CLASSIFY_OUTCOME_SKIPPED;
    }

    /* what the calls see as context: the conversation, then the query */

    n = ctx->input.context.nelts;

    if (ngx_array_init(&g->context, pool, n + 1,
                       sizeof(ngx_http_classify_msg_t))
        != NGX_OK)
    {
        return NULL;
    }

    msg = ngx_array_push_n(&g->context, n + 1);
    if (msg == NULL) {
        return NULL;
    }

    ngx_memcpy(msg, ctx->input.context.elts,
               n * sizeof(ngx_http_classify_msg_t));
    ngx_str_set(&msg[n].role, "user");
    msg[n].content = ctx->input.query;

    ngx_http_classify_hold_init(&g->hold, pool, conf->output_buffer);
    g->hold.feed = ngx_http_classify_guard_feed;
    g->hold.data = g;

    ngx_http_classify_sse_init(&g->sse, pool, conf->output_buffer);
    g->sse.handler = ngx_http_classify_guard_event;
    g->sse.data = g;

    ngx_http_classify_stream_init(&g->now);
    g->sent = g->now;
    g->at_closing = g->now;

    g->deadline.handler = ngx_http_classify_guard_deadline_handler;
    g->deadline.data = g;
    g->deadline.log = ctx->request->connection->log;

    g->wake.handler = ngx_http_classify_guard_wake_handler;
    g->wake.data = g;
    g->wake.log = ctx->request->connection->log;

    cln = ngx_pool_cleanup_add(pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_classify_guard_cleanup;
    cln->data = g;

    spec->header_handler = ngx_http_classify_guard_header;
    spec->body_handler = ngx_http_classify_guard_body;
    spec->end_handler = ngx_http_classify_guard_end;
    spec->data = g;

    return g;
}


/*
 * The generation's header, to the client or not yet: an event stream's
 * goes out at once, a whole answer's waits for the verdict on it, any
 * other response (not a 200, or compressed: not text the guard reads)
 * passes unjudged, or waits for the decision of the output classifiers'
 * on_error when it is a 200 the guard cannot read.
 */

static ngx_int_t
ngx_http_classify_guard_header(ngx_http_classify_spec_t *spec)
{
    ngx_http_classify_guard_t *g = spec->data;

    ngx_http_request_t  *sr;

    sr = spec->sr;

    if (sr->headers_out.status != NGX_HTTP_OK) {
        g->state = NGX_HTTP_CLASSIFY_GUARD_PASSING;
        g->verdict = NGX_HTTP_CLASSIFY_OUTPUT_UNJUDGED;

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, sr->connection->log, 0,
                       "classify: output not judged: status %ui",
                       sr->headers_out.status);

        return ngx_http_classify_speculate_send_header(spec);
    }

    if (sr->headers_out.content_encoding
        && sr->headers_out.content_encoding->value.len)
    {
        g->state = NGX_HTTP_CLASSIFY_GUARD_WHOLE;
        g->header_held = 1;
        ngx_http_classify_guard_fail(g, "the answer is compressed");
        return NGX_OK;
    }

    if (sr->headers_out.content_type.len >= sizeof("text/event-stream") - 1
        && ngx_strncasecmp(sr->headers_out.content_type.data,
                           (u_char *) "text/event-stream",
                           sizeof("text/event-stream") - 1)
           == 0)
    {
        g->state = NGX_HTTP_CLASSIFY_GUARD_STREAM;

        /* a cut stream is not the length the backend announced */
        sr->headers_out.content_length_n = -1;

        if (sr->headers_out.content_length) {
            sr->headers_out.content_length->hash = 0;
            sr->headers_out.content_length = NULL;
        }

        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, sr->connection->log, 0,
                       "classify: output judged as an event stream");

        return ngx_http_classify_speculate_send_header(spec);
    }

    g->state = NGX_HTTP_CLASSIFY_GUARD_WHOLE;
    g->header_held = 1;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, sr->connection->log, 0,
                   "classify: output judged whole, length %O",
                   sr->headers_out.content_length_n);

    if (sr->headers_out.content_length_n > (off_t) g->hold.limit) {
        ngx_http_classify_guard_fail(g, "the answer is bigger than "
                                        "classify_output_buffer");
    }

    return NGX_OK;
}


/*
 * The generation's body, in the generation's own filter: held and read,
 * released as far as it is judged.  in NULL: the client's connection can
 * take more (what was given may have been sent, making room).
 */

static ngx_int_t
ngx_http_classify_guard_body(ngx_http_classify_spec_t *spec, ngx_chain_t *in)
{
    ngx_http_classify_guard_t *g = spec->data;

    ngx_uint_t    kept;
    ngx_chain_t  *cl;

    switch (g->state) {

    case NGX_HTTP_CLASSIFY_GUARD_PASSING:
        return ngx_http_classify_speculate_relay(spec, in);

    case NGX_HTTP_CLASSIFY_GUARD_STREAM:
    case NGX_HTTP_CLASSIFY_GUARD_WHOLE:
        break;

    default:
        for (cl = in; cl; cl = cl->next) {
            cl->buf->pos = cl->buf->last;
        }

        return NGX_OK;
    }

    for (cl = in; cl; cl = cl->next) {
        if (cl->buf->last_buf || cl->buf->last_in_chain) {
            g->last = 1;
        }

        if (!ngx_buf_special(cl->buf) && !ngx_buf_in_memory(cl->buf)) {
            /* a cached or static answer: its bytes are not read here */
            ngx_http_classify_guard_fail(g, "the answer is in a file");
        }
    }

    /* held even when it cannot be judged: what is not kept would be lost */

    kept = (g->hold.kept != NULL);

    if (ngx_http_classify_hold_add(&g->hold, in) != NGX_OK) {
        return NGX_ERROR;
    }

    g->held = ngx_max(g->held, g->hold.size);

    if (g->hold.kept && !kept) {
        /* the upstream's buffer is not consumed: it reads no more */
        g->waits++;
    }

    if (g->state == NGX_HTTP_CLASSIFY_GUARD_WHOLE && g->hold.kept
        && g->error == NULL)
    {
        ngx_http_classify_guard_fail(g, "the answer is bigger than "
                                        "classify_output_buffer");
    }

    if (in == NULL
        && ngx_http_classify_speculate_relay(spec, NULL) == NGX_ERROR)
    {
        return NGX_ERROR;
    }

    return ngx_http_classify_guard_advance(g, 0);
}


/* the generation's subrequest has ended: the response may end with it */

static void
ngx_http_classify_guard_end(ngx_http_classify_spec_t *spec)
{
    ngx_http_classify_guard_t *g = spec->data;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, g->request->connection->log, 0,
                   "classify: output guard, generation ended, %O of %O "
                   "bytes given, %s", g->hold.given, g->hold.copied,
                   g->in_flight ? "judging" : "idle");

    switch (g->state) {

    case NGX_HTTP_CLASSIFY_GUARD_ENDED:
        return;

    case NGX_HTTP_CLASSIFY_GUARD_WAITING:
    case NGX_HTTP_CLASSIFY_GUARD_PASSING:
        ngx_http_classify_guard_finish(g);
        return;

    default:
        break;
    }

    /* what was given and not sent yet goes on (a write event) */

    if (ngx_http_classify_speculate_relay(spec, NULL) == NGX_ERROR
        || ngx_http_classify_guard_advance(g, 1) == NGX_ERROR)
    {
        ngx_http_finalize_request(g->request, NGX_ERROR);
    }
}


/* bytes just held: the events they complete */

static ngx_int_t
ngx_http_classify_guard_feed(void *data, u_char *p, size_t len)
{
    ngx_http_classify_guard_t *g = data;

    if (g->state != NGX_HTTP_CLASSIFY_GUARD_STREAM || g->error) {
        return NGX_OK;
    }

    return ngx_http_classify_sse_feed(&g->sse, p, len);
}


/*
 * One whole event: its text goes to the answer, and the stream's state
 * and offsets move past it.  One too big to read is fine when its type
 * says it has no text (Responses' done events repeat the whole text);
 * else the answer cannot be judged.
 */

static ngx_int_t
ngx_http_classify_guard_event(ngx_http_classify_sse_t *sse, ngx_str_t *event)
{
    ngx_http_classify_guard_t *g = sse->data;

    size_t                     len;
    ngx_str_t                  type;
    ngx_http_classify_event_t  ev;

    if (event) {
        if (ngx_http_classify_stream_event(sse->pool, event, NULL, &ev)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

    } else {
        type.data = sse->type;
        type.len = sse->type_len;

        if (!sse->typed || !ngx_http_classify_stream_textless(&type)) {
            ngx_http_classify_guard_fail(g, "an event of the answer is "
                                            "bigger than "
                                            "classify_output_buffer");
            return NGX_OK;
        }

        ngx_memzero(&ev, sizeof(ngx_http_classify_event_t));
        ev.seq = -1;
        ev.index = -1;
        ngx_http_classify_stream_type(&type, &ev);
    }

    len = 0;

    if (ev.has_text
        && ngx_http_classify_guard_text(g, &ev.text, &len) != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* the state before the events the guard may have to stop at */

    if (ev.closing && g->closing < 0) {
        g->closing = sse->start;
        g->at_closing = g->now;
    }

    if (len && g->unjudged < 0) {
        g->unjudged = sse->start;
        g->at_unjudged = g->now;
    }

    if (len && g->in_flight && g->after < 0) {
        g->after = sse->start;
        g->at_after = g->now;
    }

    if (ngx_http_classify_stream_apply(sse->pool, &g->now, &ev, len)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    g->complete = sse->end;

    return NGX_OK;
}


/* an event's text, decoded onto the answer's */

static ngx_int_t
ngx_http_classify_guard_text(ngx_http_classify_guard_t *g, ngx_str_t *raw,
    size_t *len)
{
    u_char  *last;

    if (g->text.len + raw->len > NGX_HTTP_CLASSIFY_GUARD_TEXT_MAX) {
        ngx_http_classify_guard_fail(g, "the answer is longer than "
                                        "1 MiB of text");
        return NGX_OK;
    }

    if (ngx_http_classify_reserve(g->request->pool, &g->text.data,
                                  g->text.len, &g->text_size, raw->len, 1024,
                                  NGX_HTTP_CLASSIFY_GUARD_TEXT_MAX)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    last = ngx_http_classify_jsonr_copy(g->text.data + g->text.len, raw);

    *len = last - (g->text.data + g->text.len);
    g->text.len += *len;

    return NGX_OK;
}


/*
 * The guard's step: what the client's filters consumed makes room, the
 * kept buffers are read, what is judged goes out, a judgement starts when
 * one is due; may_end: the response may end here (never inside the
 * generation's own filters).
 */

static ngx_int_t
ngx_http_classify_guard_advance(ngx_http_classify_guard_t *g,
    ngx_uint_t may_end)
{
    ngx_int_t  rc;

    for ( ;; ) {
        ngx_http_classify_hold_update(&g->hold);

        if (g->hold.kept && ngx_http_classify_hold_room(&g->hold)) {
            if (ngx_http_classify_hold_add(&g->hold, NULL) != NGX_OK) {
                return NGX_ERROR;
            }

            if (g->hold.kept == NULL && !g->spec->ended) {
                /*
                 * its upstream may reuse its buffer and read again: woken
                 * through the main request, whose write handler runs the
                 * generation's only while it has not ended (it may end
                 * before the posted request runs, this being its filter)
                 */
                (void) ngx_http_post_request(g->request, NULL);
            }
        }

        if (g->error) {
            if (!g->wake.posted) {
                ngx_post_event(&g->wake, &ngx_posted_events);
            }

            return NGX_OK;
        }

        rc = ngx_http_classify_guard_release(g);

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (rc == NGX_OK) {
            /* given: perhaps sent already, and there is room again */
            continue;
        }

        if (g->in_flight || !ngx_http_classify_guard_due(g)) {
            break;
        }

        rc = (g->state == NGX_HTTP_CLASSIFY_GUARD_WHOLE)
             ? ngx_http_classify_guard_whole(g)
             : ngx_http_classify_guard_judge(g);

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }
    }

    if (g->state == NGX_HTTP_CLASSIFY_GUARD_STREAM
        && !g->in_flight
        && g->hold.kept
        && g->hold.busy == NULL
        && ngx_http_classify_hold_room(&g->hold) == 0)
    {
        /* full of an event not whole yet, which cannot go out unread */
        ngx_http_classify_guard_fail(g, "an event of the answer is bigger "
                                        "than classify_output_buffer");
        return NGX_OK;
    }

    /* a stream: what was whole went out; a whole answer: it was judged */

    if (may_end
        && g->spec->ended
        && !g->in_flight
        && g->hold.kept == NULL
        && (g->state == NGX_HTTP_CLASSIFY_GUARD_STREAM
            || (g->state == NGX_HTTP_CLASSIFY_GUARD_WHOLE && g->judgements)))
    {
        ngx_http_classify_guard_finish(g);
    }

    return NGX_OK;
}


/*
 * What may go out now goes: NGX_OK when something was given, NGX_DECLINED
 * when nothing could be.
 */

static ngx_int_t
ngx_http_classify_guard_release(ngx_http_classify_guard_t *g)
{
    off_t                        clear;
    ngx_int_t                    rc;
    ngx_chain_t                 *out;
    ngx_http_classify_stream_t  *st;

    if (g->state != NGX_HTTP_CLASSIFY_GUARD_STREAM) {
        return NGX_DECLINED;
    }

    clear = ngx_http_classify_guard_clear(g, &st);

    if (clear <= g->hold.given) {
        return NGX_DECLINED;
    }

    if (ngx_http_classify_hold_give(&g->hold, clear, &out) != NGX_OK) {
        return NGX_ERROR;
    }

    g->sent = *st;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, g->request->connection->log, 0,
                   "classify: output given up to %O, %uz bytes of text",
                   g->hold.given, g->sent.text);

    rc = ngx_http_classify_speculate_relay(g->spec, out);

    return rc == NGX_ERROR ? NGX_ERROR : NGX_OK;
}


/*
 * How far the stream may go out, and its state there.  Every text judged:
 * all that is whole, and an event not whole yet whose type says it has no
 * text.  Else, hold: up to the first event whose text is not judged yet;
 * release: all that is whole but the events that end the message, from
 * the first of them.
 */

static off_t
ngx_http_classify_guard_clear(ngx_http_classify_guard_t *g,
    ngx_http_classify_stream_t **st)
{
    ngx_str_t                  type;
    ngx_uint_t                 partial;
    ngx_http_classify_event_t  ev;

    type.data = g->sse.type;
    type.len = g->sse.type_len;

    partial = g->sse.typed
              && g->sse.start < g->sse.offset
              && ngx_http_classify_stream_textless(&type);

    *st = &g->now;

    if (g->unjudged < 0) {
        return partial ? g->sse.offset : g->complete;
    }

    if (g->ctx->conf->output_mode == NGX_HTTP_CLASSIFY_OUTPUT_HOLD) {
        *st = &g->at_unjudged;
        return g->unjudged;
    }

    if (g->closing >= 0) {
        *st = &g->at_closing;
        return g->closing;
    }

    if (partial) {
        ngx_memzero(&ev, sizeof(ngx_http_classify_event_t));
        ngx_http_classify_stream_type(&type, &ev);

        if (!ev.closing) {
            return g->sse.offset;
        }
    }

    return g->complete;
}


/*
 * A judgement is due: a window of new text, or new text and the end of
 * the message, of the generation, or of the room to hold more.  A whole
 * answer: once all of it came.
 */

static ngx_uint_t
ngx_http_classify_guard_due(ngx_http_classify_guard_t *g)
{
    size_t  unjudged;

    if (g->state == NGX_HTTP_CLASSIFY_GUARD_WHOLE) {
        return (g->last || g->spec->ended) && g->judgements == 0;
    }

    if (g->state != NGX_HTTP_CLASSIFY_GUARD_STREAM) {
        return 0;
    }

    unjudged = g->text.len - g->judged_text;

    if (unjudged >= g->ctx->conf->output_window) {
        return 1;
    }

    return unjudged
           && (g->now.closing || g->last || g->spec->ended
               || ngx_http_classify_hold_room(&g->hold) == 0);
}


/* a whole answer, all of it here: its text is judged */

static ngx_int_t
ngx_http_classify_guard_whole(ngx_http_classify_guard_t *g)
{
    u_char     *last;
    ngx_str_t   raw;

    if (ngx_http_classify_hold_flatten(&g->hold, &raw) != NGX_OK) {
        return NGX_ERROR;
    }

    g->text.data = ngx_pnalloc(g->request->pool, raw.len + 1);
    if (g->text.data == NULL) {
        return NGX_ERROR;
    }

    last = ngx_http_classify_answer_text(raw.data, raw.len, g->text.data);

    if (last == NULL) {
        ngx_http_classify_guard_fail(g, "no text in the answer");
        return NGX_OK;
    }

    g->text.len = last - g->text.data;

    return ngx_http_classify_guard_judge(g);
}


/*
 * The output classifiers, all at once, on the answer so far; each call's
 * body is json.c's, with the answer as the query and the conversation and
 * the user's query as the context.
 */

static ngx_int_t
ngx_http_classify_guard_judge(ngx_http_classify_guard_t *g)
{
    ngx_str_t                         body;
    ngx_uint_t                        i, waited;
    ngx_http_request_t               *r;
    ngx_http_classify_call_t         *call;
    ngx_http_classify_input_t         in;
    ngx_http_classify_classifier_t  **cl;

    r = g->request;
    cl = g->ctx->conf->output->elts;

    g->ncalls = g->ctx->conf->output->nelts;
    g->calls = ngx_pcalloc(r->pool,
                           g->ncalls * sizeof(ngx_http_classify_call_t));
    if (g->calls == NULL) {
        return NGX_ERROR;
    }

    g->in_flight = 1;
    g->first_positive = -1;
    g->after = -1;
    g->judging_text = g->text.len;
    g->judgements++;

    in = g->ctx->input;
    in.context = g->context;
    ngx_http_classify_guard_view(g, &in.query);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "classify: output judgement %ui, %uz bytes of text, "
                   "%uz seen", g->judgements, g->text.len, in.query.len);

    ngx_time_update();
    g->judge_start = ngx_http_classify_usec();
    waited = 0;

    for (i = 0; i < g->ncalls; i++) {
        call = &g->calls[i];

        call->classifier = cl[i];
        call->request = r;
        call->handler = ngx_http_classify_guard_call_settled;
        call->data = g;

        if (ngx_http_classify_build_body(r->pool, cl[i], &in, &body)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (ngx_http_classify_call_start(call, &body) == NGX_OK) {
            /* a shadow's end decides nothing: it is not waited for */
            waited += !cl[i]->shadow;
            continue;
        }

        ngx_http_classify_call_set(call, NGX_HTTP_CLASSIFY_CALL_FAILED,
                                   "could not start the subrequest");
        ngx_http_classify_note_positive(g->calls, call, &g->first_positive);

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "output classifier \"%V\" failed: %s, %s",
                      &cl[i]->name, call->cause,
                      ngx_http_classify_on_error_name(cl[i]));
    }

    ngx_add_timer(&g->deadline, g->ctx->conf->timeout);

    /*
     * a call that failed to start, or no call to wait for at all (only
     * shadows): the judgement may be decided now, outside this filter
     */

    if (waited < g->ncalls && !g->wake.posted) {
        ngx_post_event(&g->wake, &ngx_posted_events);
    }

    return NGX_OK;
}


/*
 * What a call is shown: the newest text of the answer so far, at most
 * NGX_HTTP_CLASSIFY_GUARD_SEEN bytes or four windows, but never less than
 * all the text no judgement has seen yet (what came during a slow one),
 * from a character's first byte.
 */

static void
ngx_http_classify_guard_view(ngx_http_classify_guard_t *g, ngx_str_t *view)
{
    u_char  *p, *last;
    size_t   seen, start;

    seen = ngx_max(NGX_HTTP_CLASSIFY_GUARD_SEEN,
                   4 * g->ctx->conf->output_window);

    start = g->text.len > seen ? g->text.len - seen : 0;
    start = ngx_min(start, g->judged_text);

    last = g->text.data + g->text.len;
    p = g->text.data + start;

    while (p < last && (*p & 0xc0) == 0x80) {
        p++;
    }

    view->data = p;
    view->len = last - p;
}


/*
 * A call settled by itself, inside its post handler: noted; the decision
 * is taken by the posted event.  A shadow's verdict is only counted (as
 * is a call of a judgement already decided, which only shadows outlive).
 */

static void
ngx_http_classify_guard_call_settled(ngx_http_classify_call_t *call)
{
    ngx_http_classify_guard_t *g = call->data;

    if (call->classifier->shadow || !g->in_flight) {
        ngx_http_classify_metrics_output_call(g->request, call);
        return;
    }

    ngx_http_classify_note_positive(g->calls, call, &g->first_positive);

    if (!g->wake.posted) {
        ngx_post_event(&g->wake, &ngx_posted_events);
    }
}


static void
ngx_http_classify_guard_wake_handler(ngx_event_t *ev)
{
    ngx_connection_t           *c;
    ngx_http_classify_guard_t  *g;

    g = ev->data;
    c = g->request->connection;

    ngx_http_set_log_request(c->log, g->request);

    ngx_http_classify_guard_resume(g);

    ngx_http_run_posted_requests(c);
}


/* classify_timeout, for one judgement: what still runs fails */

static void
ngx_http_classify_guard_deadline_handler(ngx_event_t *ev)
{
    ngx_uint_t                  i;
    ngx_connection_t           *c;
    ngx_http_classify_guard_t  *g;

    g = ev->data;
    c = g->request->connection;

    ngx_http_set_log_request(c->log, g->request);

    for (i = 0; i < g->ncalls; i++) {
        if (!g->calls[i].classifier->shadow
            && g->calls[i].state == NGX_HTTP_CLASSIFY_CALL_RUNNING)
        {
            ngx_http_classify_call_expire(&g->calls[i],
                                          "classify_timeout expired");
            ngx_http_classify_note_positive(g->calls, &g->calls[i],
                                            &g->first_positive);
        }
    }

    ngx_http_classify_guard_resume(g);

    ngx_http_run_posted_requests(c);
}


/* the decisions to take: an answer that cannot be judged, a verdict */

static void
ngx_http_classify_guard_resume(ngx_http_classify_guard_t *g)
{
    ngx_int_t  v;

    if (g->state == NGX_HTTP_CLASSIFY_GUARD_ENDED) {
        return;
    }

    if (g->error) {
        ngx_http_classify_guard_unreadable(g);
        return;
    }

    if (g->in_flight) {
        ngx_http_classify_calls_abort_outranked(g->calls, g->ncalls,
                                                g->ctx->conf->resolve);

        v = ngx_http_classify_resolve(g->calls, g->ncalls,
                                      g->ctx->conf->resolve,
                                      g->first_positive);

        if (v == NGX_HTTP_CLASSIFY_UNDECIDED) {
            return;
        }

        ngx_http_classify_guard_judged(g, v);

        if (v != NGX_HTTP_CLASSIFY_PASS) {
            ngx_http_classify_guard_cut(g, v);
            return;
        }
    }

    if (ngx_http_classify_guard_advance(g, 1) == NGX_ERROR) {
        ngx_http_finalize_request(g->request, NGX_ERROR);
    }
}


/* a judgement is decided: what no longer matters stops, it is counted */

static void
ngx_http_classify_guard_judged(ngx_http_classify_guard_t *g, ngx_int_t v)
{
    ngx_uint_t                 i;
    ngx_msec_int_t             usec;
    ngx_http_classify_call_t  *call;

    g->in_flight = 0;

    if (g->deadline.timer_set) {
        ngx_del_timer(&g->deadline);
    }

    ngx_http_classify_guard_stop_calls(g);

    usec = ngx_http_classify_usec() - g->judge_start;
    g->usec += usec;

    ngx_http_classify_metrics_output_judgement(g->request, usec);

    for (i = 0; i < g->ncalls; i++) {
        call = &g->calls[i];

        g->cl[i].usec += call->usec;
        g->cl[i].outcome = ngx_http_classify_outcome(call);
        g->cl[i].calls++;

        if (!call->classifier->shadow) {
            ngx_http_classify_metrics_output_call(g->request, call);
        }
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, g->request->connection->log, 0,
                   "classify: output judgement %ui: %i in %M us",
                   g->judgements, v, usec);

    if (v == NGX_HTTP_CLASSIFY_PASS) {
        /* the text it judged may go: up to the first after it */
        g->unjudged = g->after;
        g->at_unjudged = g->at_after;
        g->judged_text = g->judging_text;
    }
}


/*
 * The answer cannot be judged (g->error): the output classifiers' on_error
 * decides, as for a call that failed: the first of them that blocks cuts
 * it with its reply, else it passes as it is, and what comes next too.
 */

static void
ngx_http_classify_guard_unreadable(ngx_http_classify_guard_t *g)
{
    ngx_int_t                         i, block;
    ngx_chain_t                      *out;
    ngx_http_request_t               *r;
    ngx_http_classify_classifier_t  **cl;

    r = g->request;
    cl = g->ctx->conf->output->elts;
    block = -1;

    for (i = 0; i < (ngx_int_t) g->ctx->conf->output->nelts; i++) {
        if (!cl[i]->shadow
            && cl[i]->on_error == NGX_HTTP_CLASSIFY_ON_ERROR_BLOCK)
        {
            block = i;
            break;
        }
    }

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "classify: the answer cannot be judged: %s, %s", g->error,
                  block >= 0 ? "blocking (an output classifier's on_error "
                               "is block)"
                             : "passing (on_error pass)");

    if (g->in_flight) {
        g->in_flight = 0;
        ngx_http_classify_guard_stop_calls(g);

        if (g->deadline.timer_set) {
            ngx_del_timer(&g->deadline);
        }
    }

    if (block >= 0) {
        ngx_http_classify_guard_cut(g, block);
        return;
    }

    g->verdict = NGX_HTTP_CLASSIFY_OUTPUT_ERROR;
    g->state = NGX_HTTP_CLASSIFY_GUARD_PASSING;

    if (g->header_held) {
        g->header_held = 0;

        if (ngx_http_classify_speculate_send_header(g->spec) == NGX_ERROR) {
            ngx_http_finalize_request(r, NGX_ERROR);
            return;
        }
    }

    out = ngx_http_classify_hold_all(&g->hold);

    if (ngx_http_classify_speculate_relay(g->spec, out) == NGX_ERROR) {
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    if (!g->spec->ended) {
        /* the kept buffers went with it: the upstream goes on */
        (void) ngx_http_post_request(r, NULL);
        return;
    }

    ngx_http_classify_guard_finish(g);
}


/*
 * The calls of the judgement in flight that no longer matter stop; a
 * shadow runs to its end (within its timeout), as an input one does
 */

static void
ngx_http_classify_guard_stop_calls(ngx_http_classify_guard_t *g)
{
    ngx_uint_t  i;

    for (i = 0; i < g->ncalls; i++) {
        if (!g->calls[i].classifier->shadow) {
            ngx_http_classify_call_abort(&g->calls[i]);
        }
    }
}


/*
 * A positive verdict by output classifier i: no further byte of the
 * generation reaches the client, its upstream is closed, and the response
 * ends with the classifier's reply: after what was given of a stream, in
 * the stream's format; in place of a whole answer whose header was held.
 */

static void
ngx_http_classify_guard_cut(ngx_http_classify_guard_t *g, ngx_uint_t i)
{
    ngx_int_t                         rc;
    ngx_http_request_t               *r;
    ngx_http_classify_classifier_t  **cl;

    r = g->request;
    cl = g->ctx->conf->output->elts;

    g->verdict = i;
    g->state = NGX_HTTP_CLASSIFY_GUARD_ENDED;

    ngx_http_classify_guard_stop_calls(g);

    if (g->deadline.timer_set) {
        ngx_del_timer(&g->deadline);
    }

    ngx_http_classify_speculate_close(g->spec);
    ngx_http_classify_hold_drop(&g->hold);

    /* the generation has no more to write */
    r->write_event_handler = ngx_http_request_empty_handler;

    ngx_http_classify_metrics_output_decision(r, 0, cl[i]);
    ngx_http_classify_guard_log(g);

    if (g->header_held) {
        r->read_event_handler = ngx_http_block_reading;
        ngx_http_finalize_request(r,
                          ngx_http_classify_send_reply(r,
                                              g->ctx->conf->reply_format,
                                              &g->ctx->input, cl[i]));
        return;
    }

    rc = ngx_http_classify_guard_tail(g, cl[i]);

    ngx_http_finalize_request(r, rc);
}


/* the end of a stream cut after what the client was given */

static ngx_int_t
ngx_http_classify_guard_tail(ngx_http_classify_guard_t *g,
    ngx_http_classify_classifier_t *cl)
{
    ngx_str_t            id, body, part, *pp;
    ngx_buf_t           *b;
    ngx_chain_t          out;
    ngx_http_request_t  *r;
    u_char               idbuf[NGX_HTTP_CLASSIFY_ID_LEN];

    r = g->request;

    ngx_http_classify_reply_id(r, idbuf, &id);

    pp = NULL;

    if (g->sent.part >= 0 && g->sent.text >= g->sent.part_text) {
        part.data = g->text.data + g->sent.part_text;
        part.len = g->sent.text - g->sent.part_text;
        pp = &part;
    }

    if (ngx_http_classify_render_cut(r->pool, g->ctx->input.format, &g->sent,
                                     pp, cl, &g->ctx->input, &id, ngx_time(),
                                     &body)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = body.data;
    b->last = body.data + body.len;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* the generation ended and all of it that may go out went: so does this */

static void
ngx_http_classify_guard_finish(ngx_http_classify_guard_t *g)
{
    if (g->state == NGX_HTTP_CLASSIFY_GUARD_ENDED) {
        return;
    }

    if (g->verdict == NGX_HTTP_CLASSIFY_UNDECIDED) {
        g->verdict = g->judgements ? NGX_HTTP_CLASSIFY_PASS
                                   : NGX_HTTP_CLASSIFY_OUTPUT_UNJUDGED;
    }

    g->state = NGX_HTTP_CLASSIFY_GUARD_ENDED;

    if (g->verdict != NGX_HTTP_CLASSIFY_OUTPUT_UNJUDGED) {
        ngx_http_classify_metrics_output_decision(g->request,
                                     g->verdict == NGX_HTTP_CLASSIFY_PASS,
                                     NULL);
        ngx_http_classify_guard_log(g);
    }

    if (g->header_held
        && ngx_http_classify_speculate_send_header(g->spec) == NGX_ERROR)
    {
        ngx_http_finalize_request(g->request, NGX_ERROR);
        return;
    }

    if (g->header_held
        && ngx_http_classify_speculate_relay(g->spec,
                                        ngx_http_classify_hold_all(&g->hold))
           == NGX_ERROR)
    {
        ngx_http_finalize_request(g->request, NGX_ERROR);
        return;
    }

    g->header_held = 0;

    ngx_http_classify_speculate_finish(g->spec);
}


/*
 * The output's info line, as the decision's: the verdict, each output
 * classifier's last outcome and its calls' time, what the cut left.
 */

static void
ngx_http_classify_guard_log(ngx_http_classify_guard_t *g)
{
    u_char                           *p, *last;
    ngx_uint_t                        i;
    ngx_http_classify_classifier_t  **cl;
    u_char                            buf[NGX_MAX_ERROR_STR];

    if (g->request->connection->log->log_level < NGX_LOG_INFO) {
        return;
    }

    p = buf;
    last = buf + sizeof(buf);
    cl = g->ctx->conf->output->elts;

    p = ngx_slprintf(p, last, ", judgements: %ui in ", g->judgements);
    p = ngx_http_classify_print_ms(p, last, g->usec);
    p = ngx_slprintf(p, last, "ms,");

    for (i = 0; i < g->ctx->conf->output->nelts; i++) {
        p = ngx_slprintf(p, last, " %V:%V/", &cl[i]->name,
                         &ngx_http_classify_outcome_names[g->cl[i].outcome]);
        p = ngx_http_classify_print_ms(p, last, g->cl[i].usec);
        p = ngx_slprintf(p, last, "ms");
    }

    p = ngx_slprintf(p, last, ", held at most %uz bytes, the backend "
                     "waited %ui times", g->held, g->waits);

    if (g->verdict >= 0) {
        p = ngx_slprintf(p, last, ", cut after %uz bytes of text of %uz, "
                         "generation closed after ", g->sent.text,
                         g->text.len);
        p = ngx_http_classify_print_ms(p, last,
                                       ngx_http_classify_usec() - g->start);
        p = ngx_slprintf(p, last, "ms");
    }

    ngx_log_error(NGX_LOG_INFO, g->request->connection->log, 0,
                  "classify: output verdict %V%*s",
                  ngx_http_classify_guard_verdict_name(g), p - buf, buf);
}


/* the answer cannot be judged: decided outside the generation's filters */

static void
ngx_http_classify_guard_fail(ngx_http_classify_guard_t *g, const char *error)
{
    if (g->error == NULL) {
        g->error = error;
    }

    if (!g->wake.posted) {
        ngx_post_event(&g->wake, &ngx_posted_events);
    }
}


ngx_str_t *
ngx_http_classify_guard_verdict_name(ngx_http_classify_guard_t *g)
{
    ngx_http_classify_classifier_t  **cl;

    switch (g->verdict) {

    case NGX_HTTP_CLASSIFY_PASS:
        return &ngx_http_classify_guard_pass;

    case NGX_HTTP_CLASSIFY_OUTPUT_ERROR:
        return &ngx_http_classify_guard_error;

    default:
        if (g->verdict < 0) {
            return NULL;
        }

        cl = g->ctx->conf->output->elts;

        return &cl[g->verdict]->name;
    }
}


static void
ngx_http_classify_guard_cleanup(void *data)
{
    ngx_http_classify_guard_t *g = data;

    if (g->deadline.timer_set) {
        ngx_del_timer(&g->deadline);
    }

    if (g->wake.posted) {
        ngx_delete_posted_event(&g->wake);
    }
}

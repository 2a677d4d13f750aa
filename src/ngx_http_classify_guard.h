
/*
 * ngx_http_classify_module: the streaming output guard (classify_output).
 */


#ifndef _NGX_HTTP_CLASSIFY_GUARD_H_INCLUDED_
#define _NGX_HTTP_CLASSIFY_GUARD_H_INCLUDED_


#include "ngx_http_classify.h"
#include "ngx_http_classify_verdict.h"
#include "ngx_http_classify_hold.h"
#include "ngx_http_classify_stream.h"
#include "ngx_http_classify_speculate.h"


#define NGX_HTTP_CLASSIFY_OUTPUT_HOLD      0
#define NGX_HTTP_CLASSIFY_OUTPUT_RELEASE   1

/* the output verdict, besides UNDECIDED, PASS and a classifier's index */
#define NGX_HTTP_CLASSIFY_OUTPUT_UNJUDGED  -3  /* not an answer: as it came */
#define NGX_HTTP_CLASSIFY_OUTPUT_ERROR     -4  /* not judged, failed open */


/* the life of the guard of one generation */
typedef enum {
    NGX_HTTP_CLASSIFY_GUARD_WAITING = 0, /* the generation's header is due */
    NGX_HTTP_CLASSIFY_GUARD_STREAM,      /* an event stream, window by window */
    NGX_HTTP_CLASSIFY_GUARD_WHOLE,       /* one answer, held whole */
    NGX_HTTP_CLASSIFY_GUARD_PASSING,     /* not judged: passes as it comes */
    NGX_HTTP_CLASSIFY_GUARD_ENDED        /* cut by the guard, or finished */
} ngx_http_classify_guard_state_e;


/* an output classifier over the whole answer */
typedef struct {
    ngx_msec_int_t                   usec;      /* its calls' time */
    ngx_http_classify_outcome_e      outcome;   /* of its last call */
    ngx_uint_t                       calls;
} ngx_http_classify_guard_cl_t;


struct ngx_http_classify_guard_s {
    ngx_http_request_t              *request;
    ngx_http_classify_ctx_t         *ctx;       /* the gate's */
    ngx_http_classify_spec_t        *spec;      /* the generation */
    ngx_http_classify_guard_state_e  state;

    ngx_http_classify_hold_t         hold;      /* not the client's yet */
    ngx_http_classify_sse_t          sse;

    /*
     * what the stream's events said: after the last whole event, at what
     * the client was given, and before the events the offsets below name
     */
    ngx_http_classify_stream_t       now;
    ngx_http_classify_stream_t       sent;
    ngx_http_classify_stream_t       at_unjudged;
    ngx_http_classify_stream_t       at_after;
    ngx_http_classify_stream_t       at_closing;

    ngx_str_t                        text;      /* the answer so far */
    size_t                           text_size;

    /*
     * stream offsets (-1: none): the end of the last whole event; the
     * start of the first event with text no negative judgement covers
     * yet, of the first after the judgement in flight's, of the first
     * event that ends the message
     */
    off_t                            complete;
    off_t                            unjudged;
    off_t                            after;
    off_t                            closing;
    size_t                           judged_text;   /* text judged negative */

    /* the judgement in flight */
    ngx_http_classify_call_t        *calls;
    ngx_uint_t                       ncalls;
    ngx_int_t                        first_positive;
    size_t                           judging_text;
    ngx_msec_int_t                   judge_start;

    ngx_event_t                      deadline;  /* classify_timeout */
    ngx_event_t                      wake;      /* something to decide */

    ngx_array_t                      context;   /* conversation + query */
    ngx_http_classify_guard_cl_t    *cl;        /* per output classifier */
    ngx_uint_t                       judgements;
    ngx_msec_int_t                   usec;      /* judgements' time */
    ngx_msec_int_t                   start;
    ngx_int_t                        verdict;
    const char                      *error;     /* why it cannot judge */
    size_t                           held;      /* most bytes held */
    ngx_uint_t                       waits;     /* times the backend waited */

    unsigned                         in_flight:1;
    unsigned                         last:1;    /* the last buffer came */
    unsigned                         header_held:1;
};


ngx_http_classify_guard_t *ngx_http_classify_guard_attach(
    ngx_http_classify_ctx_t *ctx, ngx_http_classify_spec_t *spec);
ngx_str_t *ngx_http_classify_guard_verdict_name(ngx_http_classify_guard_t *g);


#endif /* _NGX_HTTP_CLASSIFY_GUARD_H_INCLUDED_ */

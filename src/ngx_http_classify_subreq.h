
/*
 * ngx_http_classify_module: one classifier call (subreq.c).
 *
 * A call owns its subrequest, its own timeout timer and its answer; its
 * state changes only through ngx_http_classify_call_set(), and it tells
 * its owner that it settled by itself through call->handler.
 */


#ifndef _NGX_HTTP_CLASSIFY_SUBREQ_H_INCLUDED_
#define _NGX_HTTP_CLASSIFY_SUBREQ_H_INCLUDED_


#include "ngx_http_classify.h"


/* the life of one classifier call (ngx_http_classify_call_set()) */
typedef enum {
    NGX_HTTP_CLASSIFY_CALL_IDLE = 0,     /* not started (sequential mode) */
    NGX_HTTP_CLASSIFY_CALL_RUNNING,      /* its subrequest is posted or runs */
    NGX_HTTP_CLASSIFY_CALL_ANSWERED,     /* a verdict: positive or negative */
    NGX_HTTP_CLASSIFY_CALL_FAILED,       /* an error: its on_error applies */
    NGX_HTTP_CLASSIFY_CALL_TIMEDOUT,     /* its timeout or classify_timeout */
    NGX_HTTP_CLASSIFY_CALL_ABORTED,      /* given up by the gate */
    NGX_HTTP_CLASSIFY_CALL_SKIPPED       /* decided without it */
} ngx_http_classify_call_state_e;


typedef void (*ngx_http_classify_call_handler_pt)(
    ngx_http_classify_call_t *call);


/* one classifier call of one request */
struct ngx_http_classify_call_s {
    ngx_http_classify_classifier_t  *classifier;
    ngx_http_request_t              *request;     /* the main request */
    ngx_http_request_t              *sr;
    ngx_http_post_subrequest_t       ps;
    ngx_event_t                      timer;       /* its own timeout */

    /* it settled by itself: an answer, an error, its own timeout */
    ngx_http_classify_call_handler_pt  handler;
    void                            *data;

    ngx_msec_int_t                   start;       /* monotonic usec */
    ngx_msec_int_t                   usec;        /* time it ran */

    ngx_str_t                        answer;      /* the raw answer */
    size_t                           answer_size; /* allocated */
    off_t                            received;    /* answer bytes */
    ngx_uint_t                       status;      /* upstream status */

    ngx_http_classify_call_state_e   state;
    ngx_uint_t                       verdict;     /* when answered */
    const char                      *cause;       /* why it failed */

    ngx_http_classify_cache_key_t   *cache_key;   /* a miss, to store */

    unsigned                         ran:1;       /* its subrequest ran */
    unsigned                         cached:1;    /* answered by the cache */
    unsigned                         too_big:1;
    unsigned                         in_file:1;
};


ngx_int_t ngx_http_classify_call_init(ngx_conf_t *cf);
void ngx_http_classify_call_set(ngx_http_classify_call_t *call,
    ngx_http_classify_call_state_e state, const char *cause);
ngx_int_t ngx_http_classify_call_start(ngx_http_classify_call_t *call,
    ngx_str_t *body);
void ngx_http_classify_call_expire(ngx_http_classify_call_t *call,
    const char *cause);
void ngx_http_classify_call_abort(ngx_http_classify_call_t *call);
void ngx_http_classify_calls_abort_outranked(ngx_http_classify_call_t *calls,
    ngx_uint_t n, ngx_uint_t resolve);
ngx_int_t ngx_http_classify_call_collect(ngx_http_request_t *r,
    ngx_http_classify_call_t *call, ngx_chain_t *in);
void ngx_http_classify_call_header(ngx_http_request_t *sr);
ngx_int_t ngx_http_classify_is_call(ngx_http_request_t *r);


#endif /* _NGX_HTTP_CLASSIFY_SUBREQ_H_INCLUDED_ */


/*
 * ngx_http_classify_module: the gate (gate.c), the request's state
 * machine and the only part that knows the whole request: its context.
 */


#ifndef _NGX_HTTP_CLASSIFY_GATE_H_INCLUDED_
#define _NGX_HTTP_CLASSIFY_GATE_H_INCLUDED_


#include "ngx_http_classify_input.h"
#include "ngx_http_classify_subreq.h"


struct ngx_http_classify_ctx_s {
    ngx_http_request_t              *request;
    ngx_http_classify_loc_conf_t    *conf;

    ngx_http_classify_input_t        input;

    ngx_http_classify_call_t        *calls;
    ngx_uint_t                       ncalls;
    ngx_int_t                        first_positive;  /* resolve first */

    ngx_event_t                      deadline;    /* classify_timeout */

    ngx_http_classify_redis_op_t    *redis_op;    /* context read */
    ngx_str_t                        redis_key;

    ngx_msec_int_t                   start;       /* monotonic usec */
    ngx_msec_int_t                   usec;        /* decision time */
    ngx_int_t                        verdict;     /* index, PASS or ... */

    ngx_str_t                        body;        /* kept as it came */
    size_t                           body_size;

    ngx_http_classify_spec_t        *spec;        /* classify_speculate */
    ngx_http_classify_guard_t       *guard;       /* classify_output */

    ngx_str_t                        capture;     /* generated answer */
    size_t                           capture_size;

    unsigned                         keep_body:1;
    unsigned                         capture_done:1;
    unsigned                         capture_failed:1;
    unsigned                         waiting:1;   /* classifiers running */
    unsigned                         decided:1;
};


ngx_int_t ngx_http_classify_handler(ngx_http_request_t *r);
ngx_http_classify_ctx_t *ngx_http_classify_get_ctx(ngx_http_request_t *r);
ngx_str_t *ngx_http_classify_verdict_name(ngx_http_classify_ctx_t *ctx);


#endif /* _NGX_HTTP_CLASSIFY_GATE_H_INCLUDED_ */

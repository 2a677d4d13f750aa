
/*
 * ngx_http_classify_module: speculative generation (classify_speculate).
 */


#ifndef _NGX_HTTP_CLASSIFY_SPECULATE_H_INCLUDED_
#define _NGX_HTTP_CLASSIFY_SPECULATE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_classify_hold.h"


/* the life of a speculative generation */
typedef enum {
    NGX_HTTP_CLASSIFY_SPEC_HOLDING = 0,  /* started, the verdict unknown */
    NGX_HTTP_CLASSIFY_SPEC_RELEASED,     /* passed: it is the client's answer */
    NGX_HTTP_CLASSIFY_SPEC_ABORTED       /* blocked: closed, bytes dropped */
} ngx_http_classify_spec_state_e;


/*
 * Where a released response goes: by default its header, its body and its
 * end go to the client (ngx_http_classify_speculate_send_header(), _relay(),
 * _finish()); the output guard puts itself on the way.
 */
typedef ngx_int_t (*ngx_http_classify_spec_header_pt)(
    ngx_http_classify_spec_t *spec);
typedef ngx_int_t (*ngx_http_classify_spec_body_pt)(
    ngx_http_classify_spec_t *spec, ngx_chain_t *in);
typedef void (*ngx_http_classify_spec_end_pt)(ngx_http_classify_spec_t *spec);


struct ngx_http_classify_spec_s {
    ngx_http_request_t              *request;     /* the main request */
    ngx_http_request_t              *sr;
    ngx_http_post_subrequest_t       ps;
    ngx_str_t                        name;        /* a named classify_pass */

    ngx_http_classify_hold_t         hold;        /* before the verdict */
    off_t                            received;    /* body bytes it gave */

    ngx_http_classify_spec_header_pt header_handler;
    ngx_http_classify_spec_body_pt   body_handler;
    ngx_http_classify_spec_end_pt    end_handler;
    void                            *data;

    ngx_msec_int_t                   start;       /* monotonic usec */
    ngx_msec_int_t                   header;      /* its header, from start */
    ngx_msec_int_t                   decided;     /* the verdict, from start */

    ngx_int_t                        rc;          /* how it ended */
    ngx_http_classify_spec_state_e   state;

    unsigned                         speculative:1;  /* before a verdict */
    unsigned                         ran:1;       /* its subrequest ran */
    unsigned                         has_header:1;
    unsigned                         full:1;      /* copies stopped */
    unsigned                         ended:1;
    unsigned                         complete:1;  /* its last buffer came */
};


ngx_http_classify_spec_t *ngx_http_classify_speculate_start(
    ngx_http_request_t *r, ngx_str_t *pass, size_t buffer,
    ngx_uint_t speculative);
void ngx_http_classify_speculate_release(ngx_http_classify_spec_t *spec);
void ngx_http_classify_speculate_abort(ngx_http_classify_spec_t *spec);
void ngx_http_classify_speculate_close(ngx_http_classify_spec_t *spec);
ngx_int_t ngx_http_classify_speculate_send_header(
    ngx_http_classify_spec_t *spec);
ngx_int_t ngx_http_classify_speculate_relay(ngx_http_classify_spec_t *spec,
    ngx_chain_t *in);
void ngx_http_classify_speculate_finish(ngx_http_classify_spec_t *spec);
u_char *ngx_http_classify_speculate_print(ngx_http_classify_spec_t *spec,
    u_char *p, u_char *last);

/* the module's filters, for a generation subrequest */
ngx_http_classify_spec_t *ngx_http_classify_speculation(
    ngx_http_request_t *r);
ngx_int_t ngx_http_classify_speculate_header(ngx_http_classify_spec_t *spec,
    ngx_http_request_t *sr);
ngx_int_t ngx_http_classify_speculate_body(ngx_http_classify_spec_t *spec,
    ngx_http_request_t *sr, ngx_chain_t *in);


#endif /* _NGX_HTTP_CLASSIFY_SPECULATE_H_INCLUDED_ */

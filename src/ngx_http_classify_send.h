
/*
 * ngx_http_classify_module: whole responses from memory (send.c): the
 * gate's replies and errors, and the status page.
 */


#ifndef _NGX_HTTP_CLASSIFY_SEND_H_INCLUDED_
#define _NGX_HTTP_CLASSIFY_SEND_H_INCLUDED_


#include "ngx_http_classify.h"
#include "ngx_http_classify_input.h"


ngx_int_t ngx_http_classify_error(ngx_http_request_t *r,
    ngx_http_classify_format_e format, ngx_uint_t status,
    const char *message);
ngx_int_t ngx_http_classify_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *content_type, ngx_str_t *body, ngx_uint_t stream);
ngx_int_t ngx_http_classify_send_chain(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *content_type, ngx_chain_t *out, size_t len,
    ngx_uint_t stream);
ngx_int_t ngx_http_classify_send_reply(ngx_http_request_t *r,
    ngx_uint_t reply_format, ngx_http_classify_input_t *in,
    ngx_http_classify_classifier_t *cl);
void ngx_http_classify_reply_id(ngx_http_request_t *r, u_char *buf,
    ngx_str_t *id);

#define NGX_HTTP_CLASSIFY_ID_LEN  (sizeof("classify--") + 2 * NGX_ATOMIC_T_LEN)
ngx_int_t ngx_http_classify_add_header(ngx_http_request_t *r,
    const char *key, ngx_str_t *value);
ngx_str_t *ngx_http_classify_header_in(ngx_http_request_t *r,
    const char *name, size_t len);


#endif /* _NGX_HTTP_CLASSIFY_SEND_H_INCLUDED_ */

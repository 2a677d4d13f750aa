
/*
 * ngx_http_classify_module: the JSON the module writes (json.c, pure):
 * classifier request bodies and Redis context elements.
 */


#ifndef _NGX_HTTP_CLASSIFY_JSON_H_INCLUDED_
#define _NGX_HTTP_CLASSIFY_JSON_H_INCLUDED_


#include "ngx_http_classify.h"


size_t ngx_http_classify_json_str_len(ngx_str_t *s);
u_char *ngx_http_classify_json_str(u_char *p, ngx_str_t *s);
ngx_int_t ngx_http_classify_build_body(ngx_pool_t *pool,
    ngx_http_classify_classifier_t *cl, ngx_http_classify_input_t *in,
    ngx_str_t *body);
ngx_int_t ngx_http_classify_build_prefix(ngx_pool_t *pool,
    ngx_http_classify_classifier_t *cl);
ngx_int_t ngx_http_classify_build_message(ngx_pool_t *pool, ngx_str_t *role,
    ngx_str_t *content, ngx_str_t *json);


#endif /* _NGX_HTTP_CLASSIFY_JSON_H_INCLUDED_ */


/*
 * ngx_http_classify_module: a classifier's reply in the client's wire
 * format (reply.c, pure).
 */


#ifndef _NGX_HTTP_CLASSIFY_REPLY_H_INCLUDED_
#define _NGX_HTTP_CLASSIFY_REPLY_H_INCLUDED_


#include "ngx_http_classify.h"


#define NGX_HTTP_CLASSIFY_REPLY_AUTO       0
#define NGX_HTTP_CLASSIFY_REPLY_OPENAI     1
#define NGX_HTTP_CLASSIFY_REPLY_SSE        2
#define NGX_HTTP_CLASSIFY_REPLY_TEXT       3
#define NGX_HTTP_CLASSIFY_REPLY_JSON       4
#define NGX_HTTP_CLASSIFY_REPLY_RESPONSES  5
#define NGX_HTTP_CLASSIFY_REPLY_ANTHROPIC  6


ngx_uint_t ngx_http_classify_reply_format(ngx_uint_t conf,
    ngx_http_classify_input_t *in, ngx_str_t *accept);
ngx_int_t ngx_http_classify_render_reply(ngx_pool_t *pool,
    ngx_uint_t format, ngx_http_classify_classifier_t *cl,
    ngx_http_classify_input_t *in, ngx_str_t *id, time_t now,
    ngx_str_t *content_type, ngx_str_t *body, ngx_uint_t *stream);
/* a stream cut short: ngx_http_classify_render_cut(), stream.h */


#endif /* _NGX_HTTP_CLASSIFY_REPLY_H_INCLUDED_ */


/*
 * ngx_http_classify_module: a generation's bytes held back from the
 * client, within a bound (classify_speculate's hold before the verdict,
 * the output guard's windows before their judgement).
 */


#ifndef _NGX_HTTP_CLASSIFY_HOLD_H_INCLUDED_
#define _NGX_HTTP_CLASSIFY_HOLD_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


typedef struct ngx_http_classify_hold_block_s  ngx_http_classify_hold_block_t;
typedef struct ngx_http_classify_hold_piece_s  ngx_http_classify_hold_piece_t;

/* the bytes just copied in, in stream order */
typedef ngx_int_t (*ngx_http_classify_hold_feed_pt)(void *data, u_char *p,
    size_t len);


typedef struct {
    ngx_pool_t                      *pool;
    size_t                           limit;    /* copied, not yet consumed */
    size_t                           size;     /* ... now */

    off_t                            copied;   /* stream bytes copied in */
    off_t                            given;    /* ... given out */

    ngx_http_classify_hold_block_t  *head;     /* in stream order */
    ngx_http_classify_hold_block_t  *tail;
    ngx_http_classify_hold_block_t  *free_blocks;

    ngx_http_classify_hold_piece_t  *busy;     /* given, not consumed */
    ngx_http_classify_hold_piece_t **busy_last;
    ngx_http_classify_hold_piece_t  *free;

    ngx_chain_t                     *kept;     /* left as they came */
    ngx_chain_t                    **kept_last;

    ngx_http_classify_hold_feed_pt   feed;
    void                            *data;
} ngx_http_classify_hold_t;


void ngx_http_classify_hold_init(ngx_http_classify_hold_t *h,
    ngx_pool_t *pool, size_t limit);
ngx_int_t ngx_http_classify_hold_add(ngx_http_classify_hold_t *h,
    ngx_chain_t *in);
ngx_int_t ngx_http_classify_hold_give(ngx_http_classify_hold_t *h,
    off_t upto, ngx_chain_t **out);
ngx_chain_t *ngx_http_classify_hold_all(ngx_http_classify_hold_t *h);
void ngx_http_classify_hold_update(ngx_http_classify_hold_t *h);
void ngx_http_classify_hold_drop(ngx_http_classify_hold_t *h);
ngx_int_t ngx_http_classify_hold_flatten(ngx_http_classify_hold_t *h,
    ngx_str_t *s);


#define ngx_http_classify_hold_room(h)                                        \
    ((h)->size < (h)->limit ? (h)->limit - (h)->size : 0)


#endif /* _NGX_HTTP_CLASSIFY_HOLD_H_INCLUDED_ */

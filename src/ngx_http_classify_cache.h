
/*
 * ngx_http_classify_module: the verdict cache (classify_cache_zone).
 *
 * One shared zone per classify_cache_zone: an rbtree of answered verdicts
 * keyed by a SHA-1 digest of the whole key (the classifier's identity, the
 * query, the context slice it sees), checked against the full key, an LRU
 * queue, and per classifier name the counters the status prints.
 */


#ifndef _NGX_HTTP_CLASSIFY_CACHE_H_INCLUDED_
#define _NGX_HTTP_CLASSIFY_CACHE_H_INCLUDED_


#include "ngx_http_classify.h"


#define NGX_HTTP_CLASSIFY_DIGEST_LEN  20      /* SHA-1 */


/* the counters of one classifier name in one zone */
typedef struct {
    ngx_atomic_t                   hits;
    ngx_atomic_t                   misses;
    ngx_atomic_t                   evictions;
    ngx_atomic_t                   entries;
} ngx_http_classify_cache_stats_t;


typedef struct ngx_http_classify_cache_sh_s  ngx_http_classify_cache_sh_t;


/* one classify_cache_zone, as this configuration sees it */
struct ngx_http_classify_cache_s {
    ngx_str_t                      name;
    ngx_shm_zone_t                *shm_zone;
    ngx_slab_pool_t               *shpool;
    ngx_http_classify_cache_sh_t  *sh;
    ngx_http_classify_main_conf_t *cmcf;
    size_t                         max_entry;    /* bytes of one entry */

    /* by classifier index; NULL when the zone had no room for them */
    ngx_http_classify_cache_stats_t  **stats;
};


/* the key of one call, kept from its lookup (a miss) to its store */
struct ngx_http_classify_cache_key_s {
    ngx_str_t                      key;
    u_char                         digest[NGX_HTTP_CLASSIFY_DIGEST_LEN];
};


char *ngx_http_classify_cache_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_classify_cache_set(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_classify_cache_valid_set(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_classify_cache_merge(ngx_conf_t *cf,
    ngx_http_classify_loc_conf_t *prev, ngx_http_classify_loc_conf_t *conf);
ngx_int_t ngx_http_classify_cache_init(ngx_conf_t *cf);

ngx_msec_t ngx_http_classify_cache_valid(ngx_http_classify_loc_conf_t *clcf,
    ngx_http_classify_classifier_t *cl);
ngx_int_t ngx_http_classify_cache_lookup(ngx_http_classify_cache_t *cache,
    ngx_pool_t *pool, ngx_http_classify_classifier_t *cl,
    ngx_http_classify_input_t *in, ngx_http_classify_cache_key_t **key,
    ngx_uint_t *verdict);
void ngx_http_classify_cache_store(ngx_http_classify_cache_t *cache,
    ngx_http_classify_classifier_t *cl, ngx_http_classify_cache_key_t *key,
    ngx_uint_t verdict, ngx_msec_t valid);

void ngx_http_classify_cache_fill(ngx_http_classify_cache_t *cache,
    ngx_uint_t *pages, ngx_uint_t *pages_free, ngx_uint_t *entries);


#endif /* _NGX_HTTP_CLASSIFY_CACHE_H_INCLUDED_ */


/*
 * ngx_http_classify_module: shared types.
 *
 * The configuration (classifiers, the main and location settings), the
 * helpers every file uses, and the entry of the body parser, which reads
 * the location's settings.  Each file's own types and prototypes are in
 * its own header (ngx_http_classify_<file>.h), which says what it owns.
 */


#ifndef _NGX_HTTP_CLASSIFY_H_INCLUDED_
#define _NGX_HTTP_CLASSIFY_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_classify_input.h"


#define NGX_HTTP_CLASSIFY_PROTO_OPENAI     0
#define NGX_HTTP_CLASSIFY_PROTO_JSON       1

#define NGX_HTTP_CLASSIFY_ON_ERROR_PASS    0
#define NGX_HTTP_CLASSIFY_ON_ERROR_BLOCK   1

#define NGX_HTTP_CLASSIFY_MODE_PARALLEL    0
#define NGX_HTTP_CLASSIFY_MODE_SEQUENTIAL  1

#define NGX_HTTP_CLASSIFY_RESOLVE_PRIORITY 0
#define NGX_HTTP_CLASSIFY_RESOLVE_FIRST    1

#define NGX_HTTP_CLASSIFY_ORDER_RPUSH      0   /* newest last */
#define NGX_HTTP_CLASSIFY_ORDER_LPUSH      1   /* newest first */

#define NGX_HTTP_CLASSIFY_DEFAULT_MAX_TOKENS  5


/* monotonic microseconds, for every duration the module reports */
static ngx_inline ngx_msec_int_t
ngx_http_classify_usec(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (ngx_msec_int_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


/* microseconds as milliseconds with three decimals: "12.345" */
#define NGX_HTTP_CLASSIFY_MS_LEN  (NGX_INT64_LEN + 4)

static ngx_inline u_char *
ngx_http_classify_print_ms(u_char *p, u_char *last, ngx_msec_int_t usec)
{
    return ngx_slprintf(p, last, "%M.%03M", usec / 1000, usec % 1000);
}


/*
 * Room for "need" more bytes after the "used" of *data, *size allocated:
 * the buffers that grow as bytes arrive (the kept body, an answer, a
 * stream's text) double from "start", never past "max" (0: no bound) nor
 * short of the need; the bytes so far are copied, the old block is left to
 * the pool.  Callers check their own limit first.
 */

static ngx_inline ngx_int_t
ngx_http_classify_reserve(ngx_pool_t *pool, u_char **data, size_t used,
    size_t *size, size_t need, size_t start, size_t max)
{
    u_char  *p;
    size_t   n;

    if (used + need <= *size) {
        return NGX_OK;
    }

    n = ngx_max(2 * *size, start);

    if (max && n > max) {
        n = max;
    }

    n = ngx_max(n, used + need);

    p = ngx_pnalloc(pool, n);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (used) {
        ngx_memcpy(p, *data, used);
    }

    *data = p;
    *size = n;

    return NGX_OK;
}


#define ngx_http_classify_isalnum(c)                                          \
    (((c) >= '0' && (c) <= '9') || ((c) >= 'a' && (c) <= 'z')                 \
     || ((c) >= 'A' && (c) <= 'Z'))


typedef struct ngx_http_classify_metrics_s  ngx_http_classify_metrics_t;
typedef struct ngx_http_classify_spec_s     ngx_http_classify_spec_t;
typedef struct ngx_http_classify_guard_s    ngx_http_classify_guard_t;

/* the verdict cache: ngx_http_classify_cache.h */
typedef struct ngx_http_classify_cache_s      ngx_http_classify_cache_t;
typedef struct ngx_http_classify_cache_key_s  ngx_http_classify_cache_key_t;


typedef struct {
    ngx_str_t                      name;
    ngx_uint_t                     index;         /* in the http{} block */

    ngx_str_t                      pass_uri;
    ngx_str_t                      pass_args;

    ngx_uint_t                     protocol;
    ngx_str_t                      model;
    ngx_str_t                      prompt;
    ngx_uint_t                     context;
    ngx_uint_t                     max_tokens;
    ngx_array_t                   *positive;      /* of ngx_str_t, lowercase */
    ngx_msec_t                     timeout;
    ngx_uint_t                     on_error;
    ngx_str_t                      reply;
    ngx_flag_t                     shadow;
    ngx_msec_t                     cache_valid;   /* unset, 0: off, time */
    ngx_flag_t                     output;        /* in a classify_output */

    /* built once at configuration time */
    ngx_str_t                      body_prefix;   /* openai: up to messages */
    u_char                         cache_id[20];  /* SHA-1 of the settings */

} ngx_http_classify_classifier_t;


/* one Redis server and this worker's connection to it (redis.c) */
typedef struct ngx_http_classify_redis_s     ngx_http_classify_redis_t;
typedef struct ngx_http_classify_redis_op_s  ngx_http_classify_redis_op_t;

/* a classify_redis_sentinel master in the metrics (metrics.c) */
typedef struct ngx_http_classify_master_s    ngx_http_classify_master_t;


/* how a session's list is kept: the classify_context_* settings */
typedef struct {
    ngx_uint_t                     order;         /* classify_context_order */
    ngx_uint_t                     max;           /* classify_context_max */
    size_t                         max_size;      /* bytes a read keeps */
    ngx_msec_t                     ttl;           /* classify_context_ttl */
} ngx_http_classify_redis_list_t;


typedef struct {
    ngx_array_t                    classifiers;   /* of classifier_t */
    ngx_array_t                    redis;         /* of redis_t * */
    ngx_array_t                    masters;       /* of master_t * */
    ngx_flag_t                     capture;       /* any context_store */
    ngx_flag_t                     output;        /* any classify_output */
    ngx_shm_zone_t                *metrics_zone;
    ngx_http_classify_metrics_t   *metrics;       /* in the zone */
    ngx_array_t                   *caches;        /* of cache_t * */
    ngx_array_t                   *cache_refs;    /* checked at the end */
    ngx_pool_t                    *pool;
} ngx_http_classify_main_conf_t;


/* the classifiers a directive names, and where it is */
typedef struct {
    ngx_array_t                   *names;         /* of ngx_str_t */
    u_char                        *file;
    ngx_uint_t                     line;
} ngx_http_classify_listed_t;


typedef struct {
    ngx_http_classify_listed_t     listed;        /* "classify" */
    ngx_array_t                   *classifiers;   /* of classifier_t * */

    ngx_str_t                      pass;          /* "classify_pass" */

    ngx_uint_t                     mode;
    ngx_uint_t                     resolve;
    ngx_uint_t                     input;
    ngx_uint_t                     reply_format;
    ngx_str_t                      query_field;
    ngx_str_t                      session_field;
    ngx_http_complex_value_t      *session;
    ngx_msec_t                     timeout;
    ngx_uint_t                     max_context;   /* largest "context" */

    ngx_http_classify_redis_t     *redis;
    ngx_http_complex_value_t      *redis_key;
    ngx_uint_t                     redis_on_error;
    ngx_flag_t                     context_store;
    ngx_http_classify_redis_list_t context;

    ngx_shm_zone_t                *cache_zone;    /* "classify_cache" */
    ngx_msec_t                     cache_valid;

    ngx_flag_t                     speculate;
    size_t                         speculate_buffer;

    ngx_http_classify_listed_t     output_listed; /* "classify_output" */
    ngx_array_t                   *output;        /* of classifier_t * */
    size_t                         output_window;
    ngx_uint_t                     output_mode;
    size_t                         output_buffer;
} ngx_http_classify_loc_conf_t;


/* the body's types: ngx_http_classify_input.h */


typedef struct ngx_http_classify_ctx_s   ngx_http_classify_ctx_t;
typedef struct ngx_http_classify_call_s  ngx_http_classify_call_t;


extern ngx_module_t  ngx_http_classify_module;


/* the classifier{} block */
char *ngx_http_classifier_block(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

extern ngx_conf_enum_t  ngx_http_classify_on_errors[];

/* input (pure): the body's types are in ngx_http_classify_input.h */
ngx_int_t ngx_http_classify_parse_input(ngx_pool_t *pool,
    ngx_http_classify_loc_conf_t *clcf, ngx_flag_t anthropic, u_char *data,
    size_t len, ngx_http_classify_input_t *in, const char **err);
ngx_int_t ngx_http_classify_parse_message(ngx_pool_t *pool, u_char *data,
    size_t len, ngx_http_classify_msg_t *msg);


#endif /* _NGX_HTTP_CLASSIFY_H_INCLUDED_ */

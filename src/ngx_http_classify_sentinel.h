
/*
 * ngx_http_classify_module: where a Redis master is, asked of Sentinels.
 *
 * A layer under redis.c, for classify_redis_sentinel.  Per worker:
 *
 *     ngx_http_classify_sentinel_ask(sn, found, data);
 *
 * asks the Sentinels one after another (the one that answered last
 * first) for the master's address, and calls found(data, addr, why) from
 * a posted event: addr is the master (an IP, never a name to resolve), or
 * NULL when no Sentinel gave it, why saying what each one answered.
 * ngx_http_classify_sentinel_cancel(sn) lets go of an ask.  One ask at a
 * time: an ask while one runs is ignored.
 *
 * ngx_http_classify_sentinel_init() also subscribes, on one Sentinel, to
 * +switch-master, and calls switched(data, addr) with the new address of
 * this master when a failover ends; a lost subscription is made again on
 * the next Sentinel, with backoff.
 */


#ifndef _NGX_HTTP_CLASSIFY_SENTINEL_H_INCLUDED_
#define _NGX_HTTP_CLASSIFY_SENTINEL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/* the longest master name; Redis allows A-z, 0-9 and ".-_" in one */
#define NGX_HTTP_CLASSIFY_SENTINEL_NAME_MAX  128


typedef struct ngx_http_classify_sentinel_s  ngx_http_classify_sentinel_t;


typedef struct {
    ngx_str_t                            host;      /* IP, null-terminated */
    ngx_int_t                            port;
    ngx_str_t                            name;      /* host:port, for logs */
} ngx_http_classify_sentinel_addr_t;


typedef void (*ngx_http_classify_sentinel_found_pt)(void *data,
    ngx_http_classify_sentinel_addr_t *addr, ngx_str_t *why);
typedef void (*ngx_http_classify_sentinel_switched_pt)(void *data,
    ngx_http_classify_sentinel_addr_t *addr);


ngx_http_classify_sentinel_t *ngx_http_classify_sentinel_create(
    ngx_conf_t *cf, ngx_str_t *master, ngx_str_t *password,
    ngx_msec_t connect_timeout, ngx_msec_t timeout);
char *ngx_http_classify_sentinel_add(ngx_conf_t *cf,
    ngx_http_classify_sentinel_t *sn, ngx_str_t *value);

void ngx_http_classify_sentinel_init(ngx_http_classify_sentinel_t *sn,
    ngx_log_t *log, ngx_http_classify_sentinel_switched_pt switched,
    void *data);
void ngx_http_classify_sentinel_exit(ngx_http_classify_sentinel_t *sn);

void ngx_http_classify_sentinel_ask(ngx_http_classify_sentinel_t *sn,
    ngx_http_classify_sentinel_found_pt found, void *data);
void ngx_http_classify_sentinel_cancel(ngx_http_classify_sentinel_t *sn);


#endif /* _NGX_HTTP_CLASSIFY_SENTINEL_H_INCLUDED_ */

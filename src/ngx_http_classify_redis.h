
/*
 * ngx_http_classify_module: conversation context in Redis.
 *
 * A layer under the gate: redis.c owns each worker's connection to each
 * classify_redis server, and offers two operations on a session's list.
 *
 *     op = ngx_http_classify_redis_fetch(rs, &key, n, &list, messages,
 *                                        handler, data);
 *
 * reads the newest n elements within list->max_size bytes, parses them
 * into messages (its pool, oldest first) and calls handler(data, rc) from
 * a posted event: NGX_OK, NGX_DECLINED (Redis down, slow or failing:
 * already logged) or NGX_ERROR.  ngx_http_classify_redis_cancel(op) before
 * that lets go of it; after the handler ran, op is gone.
 *
 *     ngx_http_classify_redis_store(rs, &key, &list, &query, &answer, pool);
 *
 * appends a user turn and its answer, trims the list and sets its expiry,
 * in one transaction that is kept, and sent again after a reconnect,
 * until Redis acknowledged it; what cannot be kept is logged and counted.
 *
 * A classify_redis_sentinel server is the same to the caller: where the
 * master is, and that it moved, is redis.c's own business.
 */


#ifndef _NGX_HTTP_CLASSIFY_REDIS_H_INCLUDED_
#define _NGX_HTTP_CLASSIFY_REDIS_H_INCLUDED_


#include "ngx_http_classify.h"


typedef void (*ngx_http_classify_redis_handler_pt)(void *data, ngx_int_t rc);


char *ngx_http_classify_redis_set(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_classify_redis_sentinel_set(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_classify_redis_init_process(ngx_cycle_t *cycle);
void ngx_http_classify_redis_exit_process(ngx_cycle_t *cycle);

ngx_http_classify_redis_op_t *ngx_http_classify_redis_fetch(
    ngx_http_classify_redis_t *rs, ngx_str_t *key, ngx_uint_t n,
    ngx_http_classify_redis_list_t *list, ngx_array_t *messages,
    ngx_http_classify_redis_handler_pt handler, void *data);
void ngx_http_classify_redis_cancel(ngx_http_classify_redis_op_t *op);

void ngx_http_classify_redis_store(ngx_http_classify_redis_t *rs,
    ngx_str_t *key, ngx_http_classify_redis_list_t *list, ngx_str_t *query,
    ngx_str_t *answer, ngx_pool_t *pool);


#endif /* _NGX_HTTP_CLASSIFY_REDIS_H_INCLUDED_ */

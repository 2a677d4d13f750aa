
/*
 * ngx_http_classify_module: hiredis's async API on nginx's event loop.
 *
 * One hiredis connection whose socket is an nginx connection, shared by
 * the connection to Redis (redis.c) and those to Sentinels (sentinel.c):
 *
 *     h->log = log; h->data = owner; h->closed = handler;
 *     rc = ngx_http_classify_hiredis_connect(h, host, port, unix_path);
 *
 * starts connect(2) (host is an IP: hiredis would resolve a name with a
 * blocking getaddrinfo()); NGX_ERROR leaves h->ac NULL and h->errstr
 * saying why.  Commands are sent with redisAsyncCommandArgv(h->ac, ...);
 * h->ac->data is the owner's.  When hiredis frees the context (an error,
 * a disconnect, redisAsyncFree()), after every pending callback ran with
 * a NULL reply, h->closed(h, err) runs with h->ac already NULL and err the
 * cause of an error (NULL after a plain close).
 */


#ifndef _NGX_HTTP_CLASSIFY_HIREDIS_H_INCLUDED_
#define _NGX_HTTP_CLASSIFY_HIREDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>


typedef struct ngx_http_classify_hiredis_s  ngx_http_classify_hiredis_t;

typedef void (*ngx_http_classify_hiredis_closed_pt)(
    ngx_http_classify_hiredis_t *h, const char *err);


struct ngx_http_classify_hiredis_s {
    redisAsyncContext                    *ac;
    ngx_connection_t                     *connection;
    ngx_log_t                            *log;
    void                                 *data;       /* the owner */
    ngx_http_classify_hiredis_closed_pt   closed;
    ngx_event_t                           flush;      /* posted: write now */
    char                                  errstr[128];
    unsigned                              writing:1;  /* in HandleWrite */
};


ngx_int_t ngx_http_classify_hiredis_connect(ngx_http_classify_hiredis_t *h,
    const char *host, int port, const char *unix_path);


/*
 * The backoff of every reconnect (Redis, Sentinel, the subscription): the
 * timer armed after *backoff, which then doubles up to the maximum; the
 * owner sets it back to the minimum once connected.
 */

#define NGX_HTTP_CLASSIFY_BACKOFF_MIN  100
#define NGX_HTTP_CLASSIFY_BACKOFF_MAX  1000

void ngx_http_classify_hiredis_backoff(ngx_event_t *ev, ngx_msec_t *backoff);


#endif /* _NGX_HTTP_CLASSIFY_HIREDIS_H_INCLUDED_ */

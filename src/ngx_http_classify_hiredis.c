
/*
 * ngx_http_classify_module: hiredis's async API on nginx's event loop.
 *
 * The socket is an nginx connection with level-triggered events (hiredis
 * reads at most 16 KB a call).  hiredis closes the socket itself in
 * redisFree(): the cleanup hook only gives the nginx connection back.
 */


#include "ngx_http_classify_hiredis.h"


static void ngx_http_classify_hiredis_read_handler(ngx_event_t *ev);
static void ngx_http_classify_hiredis_write_handler(ngx_event_t *ev);
static void ngx_http_classify_hiredis_flush_handler(ngx_event_t *ev);
static void ngx_http_classify_hiredis_add_read(void *data);
static void ngx_http_classify_hiredis_del_read(void *data);
static void ngx_http_classify_hiredis_add_write(void *data);
static void ngx_http_classify_hiredis_del_write(void *data);
static void ngx_http_classify_hiredis_cleanup(void *data);


ngx_int_t
ngx_http_classify_hiredis_connect(ngx_http_classify_hiredis_t *h,
    const char *host, int port, const char *unix_path)
{
    ngx_connection_t   *c;
    redisAsyncContext  *ac;

    h->ac = NULL;
    h->connection = NULL;

    if (unix_path) {
        ac = redisAsyncConnectUnix(unix_path);

    } else {
        ac = redisAsyncConnect(host, port);
    }

    if (ac == NULL || ac->err) {
        ngx_cpystrn((u_char *) h->errstr,
                    (u_char *) (ac ? ac->errstr : "out of memory"),
                    sizeof(h->errstr));

        if (ac) {
            redisAsyncFree(ac);
        }

        return NGX_ERROR;
    }

    c = ngx_get_connection(ac->c.fd, h->log);
    if (c == NULL) {
        /* redisAsyncFree() closes the socket; the cleanup hook is not set */
        redisAsyncFree(ac);
        ngx_cpystrn((u_char *) h->errstr, (u_char *) "no free connection",
                    sizeof(h->errstr));
        return NGX_ERROR;
    }

    c->data = h;
    c->read->handler = ngx_http_classify_hiredis_read_handler;
    c->write->handler = ngx_http_classify_hiredis_write_handler;
    c->read->log = h->log;
    c->write->log = h->log;

    h->ac = ac;
    h->connection = c;
    h->writing = 0;

    h->flush.handler = ngx_http_classify_hiredis_flush_handler;
    h->flush.data = h;
    h->flush.log = h->log;

    ac->ev.data = c;
    ac->ev.addRead = ngx_http_classify_hiredis_add_read;
    ac->ev.delRead = ngx_http_classify_hiredis_del_read;
    ac->ev.addWrite = ngx_http_classify_hiredis_add_write;
    ac->ev.delWrite = ngx_http_classify_hiredis_del_write;
    ac->ev.cleanup = ngx_http_classify_hiredis_cleanup;

    /* connect(2) is in progress: its end shows as writability */

    ngx_http_classify_hiredis_add_write(c);

    return NGX_OK;
}


/* nginx events -> hiredis */

static void
ngx_http_classify_hiredis_read_handler(ngx_event_t *ev)
{
    ngx_connection_t             *c = ev->data;
    ngx_http_classify_hiredis_t  *h = c->data;

    redisAsyncHandleRead(h->ac);
}


static void
ngx_http_classify_hiredis_write_handler(ngx_event_t *ev)
{
    ngx_connection_t             *c = ev->data;
    ngx_http_classify_hiredis_t  *h = c->data;

    h->writing = 1;
    redisAsyncHandleWrite(h->ac);
    h->writing = 0;
}


/* commands appended since: written now, outside any hiredis callback */

static void
ngx_http_classify_hiredis_flush_handler(ngx_event_t *ev)
{
    ngx_http_classify_hiredis_t  *h = ev->data;

    if (h->ac == NULL || h->connection->write->active) {
        return;
    }

    h->writing = 1;
    redisAsyncHandleWrite(h->ac);
    h->writing = 0;
}


/* hiredis -> nginx events: level-triggered, hiredis reads 16 KB a call */

static void
ngx_http_classify_hiredis_add_read(void *data)
{
    ngx_connection_t  *c = data;

    if (!c->read->active) {
        (void) ngx_add_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT);
    }
}


static void
ngx_http_classify_hiredis_del_read(void *data)
{
    ngx_connection_t  *c = data;

    if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }
}


/*
 * A command was appended.  Once connected, the socket is written at once
 * from a posted event (in this loop iteration, outside hiredis) instead of
 * asking the kernel for writability first, which costs two epoll_ctl()
 * calls and a loop turn per command; only a connect in progress and a
 * partial write (from inside redisAsyncHandleWrite()) wait for readiness.
 */

static void
ngx_http_classify_hiredis_add_write(void *data)
{
    ngx_connection_t  *c = data;

    ngx_http_classify_hiredis_t  *h;

    h = c->data;

    if (c->write->active) {
        return;
    }

    if (h->writing || h->ac == NULL || !(h->ac->c.flags & REDIS_CONNECTED)) {
        (void) ngx_add_event(c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT);
        return;
    }

    if (!h->flush.posted) {
        ngx_post_event(&h->flush, &ngx_posted_events);
    }
}


static void
ngx_http_classify_hiredis_del_write(void *data)
{
    ngx_connection_t  *c = data;

    if (c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }
}


/*
 * hiredis is freeing the context, after every pending callback ran with
 * NULL.  It closes the socket itself, so only the nginx connection is
 * given back here; then the owner learns of it.
 */

static void
ngx_http_classify_hiredis_cleanup(void *data)
{
    ngx_connection_t  *c = data;

    const char                   *err;
    redisAsyncContext            *ac;
    ngx_http_classify_hiredis_t  *h;

    h = c->data;
    ac = h->ac;

    err = NULL;

    if (ac && ac->err) {
        ngx_cpystrn((u_char *) h->errstr, (u_char *) ac->errstr,
                    sizeof(h->errstr));
        err = h->errstr;
    }

    ngx_http_classify_hiredis_del_read(c);
    ngx_http_classify_hiredis_del_write(c);

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    if (h->flush.posted) {
        ngx_delete_posted_event(&h->flush);
    }

    c->fd = (ngx_socket_t) -1;
    ngx_free_connection(c);

    h->ac = NULL;
    h->connection = NULL;

    if (h->closed) {
        h->closed(h, err);
    }
}


void
ngx_http_classify_hiredis_backoff(ngx_event_t *ev, ngx_msec_t *backoff)
{
    ngx_add_timer(ev, *backoff);

    *backoff = ngx_min(*backoff * 2, NGX_HTTP_CLASSIFY_BACKOFF_MAX);
}


/*
 * ngx_http_classify_module: conversation context from Redis.
 *
 * hiredis's async API driven by nginx's event loop: each worker keeps one
 * connection per configured Redis server, whose socket is an nginx
 * connection with level-triggered events (hiredis reads at most 16 KB a
 * call).  hiredis 0.14 has no async timeouts, so connect and command
 * deadlines are nginx timers.  hiredis closes the socket itself: the
 * cleanup hook only gives the nginx connection back.
 *
 * A command's callback runs exactly once (with a NULL reply when the
 * connection goes), so its private data is a heap-allocated op that a
 * request can detach from; the request is never continued inside the
 * callback, but from a posted event.
 */


#include "ngx_http_classify.h"

#include <hiredis/hiredis.h>
#include <hiredis/async.h>


#define NGX_HTTP_CLASSIFY_REDIS_BACKOFF_MIN   100
#define NGX_HTTP_CLASSIFY_REDIS_BACKOFF_MAX   1000


struct ngx_http_classify_redis_op_s {
    ngx_http_classify_ctx_t    *ctx;     /* NULL: the request let go */
    ngx_http_classify_redis_t  *redis;
};


static void ngx_http_classify_redis_connect(ngx_http_classify_redis_t *rs);
static void ngx_http_classify_redis_reconnect_handler(ngx_event_t *ev);
static void ngx_http_classify_redis_connect_timeout(ngx_event_t *ev);
static void ngx_http_classify_redis_on_connect(const redisAsyncContext *ac,
    int status);
static void ngx_http_classify_redis_reply_logged(redisAsyncContext *ac,
    void *reply, void *data);
static void ngx_http_classify_redis_lrange_done(redisAsyncContext *ac,
    void *reply, void *data);
static void ngx_http_classify_redis_ready(ngx_event_t *ev);
static void ngx_http_classify_redis_read_handler(ngx_event_t *ev);
static void ngx_http_classify_redis_write_handler(ngx_event_t *ev);
static void ngx_http_classify_redis_add_read(void *data);
static void ngx_http_classify_redis_del_read(void *data);
static void ngx_http_classify_redis_add_write(void *data);
static void ngx_http_classify_redis_del_write(void *data);
static void ngx_http_classify_redis_cleanup(void *data);


/*
 * classify_redis host:port | unix:/path [db=N] [password=P]
 *                [connect_timeout=T] [timeout=T];
 *
 * Names are resolved here, at configuration time, so that no worker ever
 * calls getaddrinfo(); one server entry per distinct line.
 */

char *
ngx_http_classify_redis_set(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_classify_loc_conf_t *clcf = conf;

    u_char                         *p;
    ngx_int_t                       n;
    ngx_str_t                      *value, s;
    ngx_uint_t                      i;
    ngx_url_t                       u;
    ngx_http_classify_redis_t      *rs, **rsp;
    ngx_http_classify_main_conf_t  *cmcf;

    if (clcf->redis != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    rs = ngx_pcalloc(cf->pool, sizeof(ngx_http_classify_redis_t));
    if (rs == NULL) {
        return NGX_CONF_ERROR;
    }

    rs->connect_timeout = 1000;
    rs->timeout = 1000;


    /* the whole line names the server */

    n = 0;
    for (i = 1; i < cf->args->nelts; i++) {
        n += value[i].len + 1 + sizeof("password=...");
    }

    rs->name.data = ngx_pnalloc(cf->pool, n);
    if (rs->name.data == NULL) {
        return NGX_CONF_ERROR;
    }

    p = rs->name.data;
    for (i = 1; i < cf->args->nelts; i++) {
        if (i > 1) {
            *p++ = ' ';
        }

        if (ngx_strncmp(value[i].data, "password=", 9) == 0) {
            p = ngx_cpymem(p, "password=...", sizeof("password=...") - 1);
            continue;
        }

        p = ngx_cpymem(p, value[i].data, value[i].len);
    }
    rs->name.len = p - rs->name.data;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "db=", 3) == 0) {
            n = ngx_atoi(value[i].data + 3, value[i].len - 3);
            if (n == NGX_ERROR) {
                goto invalid;
            }

            rs->db = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "password=", 9) == 0) {
            if (rs->password.data || value[i].len == 9) {
                goto invalid;
            }

            rs->password.data = value[i].data + 9;
            rs->password.len = value[i].len - 9;
            continue;
        }

        if (ngx_strncmp(value[i].data, "connect_timeout=", 16) == 0) {
            s.data = value[i].data + 16;
            s.len = value[i].len - 16;

            rs->connect_timeout = ngx_parse_time(&s, 0);
            if (rs->connect_timeout == (ngx_msec_t) NGX_ERROR
                || rs->connect_timeout == 0)
            {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;

            rs->timeout = ngx_parse_time(&s, 0);
            if (rs->timeout == (ngx_msec_t) NGX_ERROR || rs->timeout == 0) {
                goto invalid;
            }

            continue;
        }

        goto invalid;
    }

    if (ngx_strncmp(value[1].data, "unix:", 5) == 0) {
        if (value[1].len < 6) {
            goto invalid_address;
        }

        rs->unix_path.len = value[1].len - 5;
        rs->unix_path.data = ngx_pnalloc(cf->pool, rs->unix_path.len + 1);
        if (rs->unix_path.data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_cpystrn(rs->unix_path.data, value[1].data + 5,
                    rs->unix_path.len + 1);

    } else {
        ngx_memzero(&u, sizeof(ngx_url_t));

        u.url = value[1];
        u.default_port = 6379;
        u.no_resolve = 0;

        if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid address \"%V\" in "
                               "\"classify_redis\"%s%s", &value[1],
                               u.err ? ": " : "", u.err ? u.err : "");
            return NGX_CONF_ERROR;
        }

        if (u.addrs[0].sockaddr->sa_family != AF_INET
#if (NGX_HAVE_INET6)
            && u.addrs[0].sockaddr->sa_family != AF_INET6
#endif
           )
        {
            goto invalid_address;
        }

        rs->host.data = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
        if (rs->host.data == NULL) {
            return NGX_CONF_ERROR;
        }

        rs->host.len = ngx_sock_ntop(u.addrs[0].sockaddr,
                                     u.addrs[0].socklen, rs->host.data,
                                     NGX_SOCKADDR_STRLEN, 0);
        rs->host.data[rs->host.len] = '\0';
        rs->port = u.port;
    }

    /* the same line elsewhere shares this worker's connection */

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_classify_module);

    rsp = cmcf->redis.elts;

    for (i = 0; i < cmcf->redis.nelts; i++) {
        if (rsp[i]->name.len == rs->name.len
            && ngx_strncmp(rsp[i]->name.data, rs->name.data, rs->name.len)
               == 0
            && rsp[i]->password.len == rs->password.len
            && ngx_strncmp(rsp[i]->password.data, rs->password.data,
                           rs->password.len) == 0)
        {
            clcf->redis = rsp[i];
            return NGX_CONF_OK;
        }
    }

    rsp = ngx_array_push(&cmcf->redis);
    if (rsp == NULL) {
        return NGX_CONF_ERROR;
    }

    *rsp = rs;
    clcf->redis = rs;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" in \"classify_redis\"",
                       &value[i]);
    return NGX_CONF_ERROR;

invalid_address:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid address \"%V\" in \"classify_redis\"",
                       &value[1]);
    return NGX_CONF_ERROR;
}


ngx_int_t
ngx_http_classify_redis_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                      i;
    ngx_http_classify_redis_t     **rsp, *rs;
    ngx_http_classify_main_conf_t  *cmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        /* no connections from the cache manager and loader */
        return NGX_OK;
    }

    cmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_classify_module);
    if (cmcf == NULL) {
        return NGX_OK;
    }

    rsp = cmcf->redis.elts;

    for (i = 0; i < cmcf->redis.nelts; i++) {
        rs = rsp[i];

        rs->log = cycle->log;
        rs->backoff = NGX_HTTP_CLASSIFY_REDIS_BACKOFF_MIN;

        rs->reconnect.handler = ngx_http_classify_redis_reconnect_handler;
        rs->reconnect.data = rs;
        rs->reconnect.log = cycle->log;
        rs->reconnect.cancelable = 1;

        rs->connect_timer.handler = ngx_http_classify_redis_connect_timeout;
        rs->connect_timer.data = rs;
        rs->connect_timer.log = cycle->log;
        rs->connect_timer.cancelable = 1;

        ngx_http_classify_redis_connect(rs);
    }

    return NGX_OK;
}


void
ngx_http_classify_redis_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                      i;
    ngx_http_classify_redis_t     **rsp, *rs;
    ngx_http_classify_main_conf_t  *cmcf;

    cmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_classify_module);
    if (cmcf == NULL) {
        return;
    }

    rsp = cmcf->redis.elts;

    for (i = 0; i < cmcf->redis.nelts; i++) {
        rs = rsp[i];
        rs->exiting = 1;

        if (rs->reconnect.timer_set) {
            ngx_del_timer(&rs->reconnect);
        }

        if (rs->ac) {
            redisAsyncFree(rs->ac);
        }
    }
}


static void
ngx_http_classify_redis_connect(ngx_http_classify_redis_t *rs)
{
    const char          *argv[2];
    size_t               argvlen[2];
    u_char               db[NGX_INT_T_LEN];
    ngx_connection_t    *c;
    redisAsyncContext   *ac;

    if (rs->unix_path.len) {
        ac = redisAsyncConnectUnix((char *) rs->unix_path.data);

    } else {
        ac = redisAsyncConnect((char *) rs->host.data, (int) rs->port);
    }

    if (ac == NULL || ac->err) {
        if (!rs->down) {
            ngx_log_error(NGX_LOG_ERR, rs->log, 0,
                          "classify_redis \"%V\": cannot connect: %s",
                          &rs->name, ac ? ac->errstr : "out of memory");
            rs->down = 1;
        }

        if (ac) {
            redisAsyncFree(ac);
        }

        goto retry;
    }

    c = ngx_get_connection(ac->c.fd, rs->log);
    if (c == NULL) {
        /* redisAsyncFree() closes the socket; the cleanup hook is not set */
        redisAsyncFree(ac);
        goto retry;
    }

    c->data = rs;
    c->read->handler = ngx_http_classify_redis_read_handler;
    c->write->handler = ngx_http_classify_redis_write_handler;
    c->read->log = rs->log;
    c->write->log = rs->log;

    rs->ac = ac;
    rs->connection = c;

    ac->data = rs;
    ac->ev.data = c;
    ac->ev.addRead = ngx_http_classify_redis_add_read;
    ac->ev.delRead = ngx_http_classify_redis_del_read;
    ac->ev.addWrite = ngx_http_classify_redis_add_write;
    ac->ev.delWrite = ngx_http_classify_redis_del_write;
    ac->ev.cleanup = ngx_http_classify_redis_cleanup;

    redisAsyncSetConnectCallback(ac, ngx_http_classify_redis_on_connect);

    /* queued now, sent first once connected */

    if (rs->password.len) {
        argv[0] = "AUTH";
        argvlen[0] = 4;
        argv[1] = (char *) rs->password.data;
        argvlen[1] = rs->password.len;

        redisAsyncCommandArgv(ac, ngx_http_classify_redis_reply_logged,
                              (void *) "AUTH", 2, argv, argvlen);
    }

    if (rs->db) {
        argv[0] = "SELECT";
        argvlen[0] = 6;
        argv[1] = (char *) db;
        argvlen[1] = ngx_sprintf(db, "%ui", rs->db) - db;

        redisAsyncCommandArgv(ac, ngx_http_classify_redis_reply_logged,
                              (void *) "SELECT", 2, argv, argvlen);
    }

    /* connect(2) is in progress: its end shows as writability */

    ngx_http_classify_redis_add_write(c);
    ngx_add_timer(&rs->connect_timer, rs->connect_timeout);

    return;

retry:

    if (!rs->exiting) {
        ngx_add_timer(&rs->reconnect, rs->backoff);
        rs->backoff = ngx_min(rs->backoff * 2,
                              NGX_HTTP_CLASSIFY_REDIS_BACKOFF_MAX);
    }
}


static void
ngx_http_classify_redis_reconnect_handler(ngx_event_t *ev)
{
    ngx_http_classify_redis_t  *rs = ev->data;

    if (rs->ac == NULL && !rs->exiting && !ngx_exiting) {
        ngx_http_classify_redis_connect(rs);
    }
}


static void
ngx_http_classify_redis_connect_timeout(ngx_event_t *ev)
{
    ngx_http_classify_redis_t  *rs = ev->data;

    if (!rs->down) {
        ngx_log_error(NGX_LOG_ERR, rs->log, 0,
                      "classify_redis \"%V\": connect timed out", &rs->name);
        rs->down = 1;
    }

    if (rs->ac) {
        redisAsyncFree(rs->ac);
    }
}


static void
ngx_http_classify_redis_on_connect(const redisAsyncContext *ac, int status)
{
    ngx_http_classify_redis_t  *rs = ac->data;

    if (rs->connect_timer.timer_set) {
        ngx_del_timer(&rs->connect_timer);
    }

    if (status != REDIS_OK) {
        /* hiredis frees the context next; the cleanup hook retries */

        if (!rs->down) {
            ngx_log_error(NGX_LOG_ERR, rs->log, 0,
                          "classify_redis \"%V\": cannot connect: %s",
                          &rs->name, ac->errstr);
            rs->down = 1;
        }

        return;
    }

    rs->backoff = NGX_HTTP_CLASSIFY_REDIS_BACKOFF_MIN;

    if (rs->down) {
        ngx_log_error(NGX_LOG_NOTICE, rs->log, 0,
                      "classify_redis \"%V\": connected again", &rs->name);
        rs->down = 0;
    }
}


/* AUTH, SELECT and stores: only a failure matters, and it is logged */

static void
ngx_http_classify_redis_reply_logged(redisAsyncContext *ac, void *reply,
    void *data)
{
    redisReply                 *rr = reply;
    ngx_http_classify_redis_t  *rs = ac->data;

    if (rr && rr->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, rs->log, 0,
                      "classify_redis \"%V\": %s failed: %s",
                      &rs->name, (char *) data, rr->str);
    }
}


/*
 * One LRANGE for the largest "context" of the location's classifiers.
 * NGX_AGAIN: the reply will come; NGX_DECLINED: Redis is unavailable now.
 */

ngx_int_t
ngx_http_classify_redis_fetch(ngx_http_classify_ctx_t *ctx)
{
    u_char                         start[NGX_INT_T_LEN + 1],
                                   stop[NGX_INT_T_LEN + 1];
    const char                    *argv[4];
    size_t                         argvlen[4];
    ngx_http_request_t            *r;
    ngx_http_classify_redis_t     *rs;
    ngx_http_classify_redis_op_t  *op;
    ngx_http_classify_loc_conf_t  *clcf;

    r = ctx->request;
    clcf = ctx->conf;
    rs = clcf->redis;

    /*
     * while a connect is in progress hiredis queues the command and sends
     * it once connected; the request's timer bounds the wait either way
     */

    if (rs->ac == NULL) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "classify: redis \"%V\" is down", &rs->name);
        return NGX_DECLINED;
    }

    op = ngx_alloc(sizeof(ngx_http_classify_redis_op_t), r->connection->log);
    if (op == NULL) {
        return NGX_ERROR;
    }

    op->ctx = ctx;
    op->redis = rs;

    argv[0] = "LRANGE";
    argvlen[0] = 6;
    argv[1] = (char *) ctx->redis_key.data;
    argvlen[1] = ctx->redis_key.len;
    argv[2] = (char *) start;
    argv[3] = (char *) stop;

    if (clcf->context_order == NGX_HTTP_CLASSIFY_ORDER_RPUSH) {
        argvlen[2] = ngx_sprintf(start, "-%ui", clcf->max_context) - start;
        argvlen[3] = ngx_sprintf(stop, "-1") - stop;

    } else {
        argvlen[2] = ngx_sprintf(start, "0") - start;
        argvlen[3] = ngx_sprintf(stop, "%ui", clcf->max_context - 1) - stop;
    }

    if (redisAsyncCommandArgv(rs->ac, ngx_http_classify_redis_lrange_done, op,
                              4, argv, argvlen)
        != REDIS_OK)
    {
        ngx_free(op);
        return NGX_DECLINED;
    }

    ctx->redis_op = op;
    ctx->fetching = 1;

    ctx->redis_done.handler = ngx_http_classify_redis_ready;
    ctx->redis_done.data = ctx;
    ctx->redis_done.log = r->connection->log;

    ngx_add_timer(&ctx->redis_timer, rs->timeout);

    return NGX_AGAIN;
}


static void
ngx_http_classify_redis_lrange_done(redisAsyncContext *ac, void *reply,
    void *data)
{
    ngx_http_classify_redis_op_t  *op = data;

    size_t                     i, n;
    ngx_uint_t                 skipped;
    redisReply                *rr, *e;
    ngx_http_request_t        *r;
    ngx_http_classify_msg_t   *msg, tmp;
    ngx_http_classify_ctx_t   *ctx;

    rr = reply;
    ctx = op->ctx;

    if (ctx == NULL) {
        /* the request timed out or went away */
        ngx_free(op);
        return;
    }

    ctx->redis_op = NULL;
    r = ctx->request;

    if (rr == NULL || rr->type != REDIS_REPLY_ARRAY) {

        if (rr == NULL) {
            /* the connection went; its loss is logged once by the cleanup */
            ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "classify: redis connection lost");

        } else {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "classify_redis \"%V\": LRANGE \"%V\" failed: %s",
                          &op->redis->name, &ctx->redis_key,
                          rr->type == REDIS_REPLY_ERROR ? rr->str
                                                        : "not a list");
        }

        ngx_free(op);
        ngx_post_event(&ctx->redis_done, &ngx_posted_events);
        return;
    }

    ngx_free(op);

    skipped = 0;

    for (n = 0; n < rr->elements; n++) {
        i = ctx->conf->context_order == NGX_HTTP_CLASSIFY_ORDER_RPUSH
            ? n : rr->elements - 1 - n;

        e = rr->element[i];

        if (e->type != REDIS_REPLY_STRING
            || ngx_http_classify_parse_message(r->pool, (u_char *) e->str,
                                               e->len, &tmp)
               != NGX_OK)
        {
            skipped++;
            continue;
        }

        msg = ngx_array_push(&ctx->input.context);
        if (msg == NULL) {
            break;
        }

        *msg = tmp;
    }

    if (skipped) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "classify: skipped %ui element(s) of \"%V\" that are "
                      "not {\"role\",\"content\"} JSON",
                      skipped, &ctx->redis_key);
    }

    ctx->redis_ok = 1;

    ngx_post_event(&ctx->redis_done, &ngx_posted_events);
}


/* the posted continuation of an LRANGE reply, outside hiredis's callback */

static void
ngx_http_classify_redis_ready(ngx_event_t *ev)
{
    ngx_connection_t         *c;
    ngx_http_classify_ctx_t  *ctx;

    ctx = ev->data;
    c = ctx->request->connection;

    ngx_http_set_log_request(c->log, ctx->request);

    ctx->fetching = 0;

    if (ctx->redis_timer.timer_set) {
        ngx_del_timer(&ctx->redis_timer);
    }

    ngx_http_classify_context_done(ctx, ctx->redis_ok);
    ngx_http_run_posted_requests(c);
}


/*
 * The request's Redis deadline.  A Redis that does not answer in time is
 * hung (stopped, or a black-holed path): the connection is dropped, which
 * answers every command still queued on it with NULL, frees their ops and
 * bounds what a worker holds for it; the backoff reconnect takes over.
 */

void
ngx_http_classify_redis_timeout(ngx_http_classify_ctx_t *ctx)
{
    ngx_http_classify_redis_t  *rs;

    if (ctx->redis_done.posted) {
        /* the reply came in this very event loop iteration */
        ngx_delete_posted_event(&ctx->redis_done);
        ctx->fetching = 0;
        ngx_http_classify_context_done(ctx, ctx->redis_ok);
        return;
    }

    rs = ctx->conf->redis;

    if (!rs->down) {
        ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                      "classify_redis \"%V\": LRANGE \"%V\" timed out, "
                      "reconnecting", &rs->name, &ctx->redis_key);
        rs->down = 1;
    }

    ngx_http_classify_redis_detach(ctx);
    ctx->fetching = 0;

    if (rs->ac) {
        redisAsyncFree(rs->ac);
    }

    ngx_http_classify_context_done(ctx, 0);
}


/* the request no longer waits: a late reply only frees its op */

void
ngx_http_classify_redis_detach(ngx_http_classify_ctx_t *ctx)
{
    if (ctx->redis_op) {
        ctx->redis_op->ctx = NULL;
        ctx->redis_op = NULL;
    }

    if (ctx->redis_done.posted) {
        ngx_delete_posted_event(&ctx->redis_done);
    }
}


/*
 * classify_context_store: the user turn and the answer go to the end of
 * the list (RPUSH, or LPUSH for a newest-first list), which is trimmed to
 * classify_context_max and expires after classify_context_ttl.  Fire and
 * forget: a failure is logged by the reply callback.
 */

void
ngx_http_classify_redis_store(ngx_http_classify_ctx_t *ctx, ngx_str_t *answer)
{
    u_char                         max[NGX_INT_T_LEN + 1],
                                   ttl[NGX_INT_T_LEN];
    ngx_str_t                      user, assistant, role;
    const char                    *argv[4];
    size_t                         argvlen[4];
    ngx_http_request_t            *r;
    ngx_http_classify_redis_t     *rs;
    ngx_http_classify_loc_conf_t  *clcf;

    r = ctx->request;
    clcf = ctx->conf;
    rs = clcf->redis;

    if (!clcf->context_store || rs == NULL || ctx->redis_key.len == 0) {
        return;
    }

    if (rs->ac == NULL) {
        /* the outage itself is logged once, not per request */
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "classify: context of \"%V\" not stored: redis "
                       "\"%V\" is down", &ctx->redis_key, &rs->name);
        return;
    }

    ngx_str_set(&role, "user");

    if (ngx_http_classify_build_message(r->pool, &role, &ctx->input.query,
                                        &user)
        != NGX_OK)
    {
        return;
    }

    ngx_str_set(&role, "assistant");

    if (ngx_http_classify_build_message(r->pool, &role, answer, &assistant)
        != NGX_OK)
    {
        return;
    }

    /* LPUSH of user then assistant leaves the assistant newest-first */

    argv[0] = clcf->context_order == NGX_HTTP_CLASSIFY_ORDER_RPUSH
              ? "RPUSH" : "LPUSH";
    argvlen[0] = 5;
    argv[1] = (char *) ctx->redis_key.data;
    argvlen[1] = ctx->redis_key.len;
    argv[2] = (char *) user.data;
    argvlen[2] = user.len;
    argv[3] = (char *) assistant.data;
    argvlen[3] = assistant.len;

    redisAsyncCommandArgv(rs->ac, ngx_http_classify_redis_reply_logged,
                          (void *) argv[0], 4, argv, argvlen);

    argv[0] = "LTRIM";
    argvlen[0] = 5;
    argv[2] = (char *) max;
    argv[3] = (char *) ttl;

    if (clcf->context_order == NGX_HTTP_CLASSIFY_ORDER_RPUSH) {
        argvlen[2] = ngx_sprintf(max, "-%ui", clcf->context_max) - max;
        argvlen[3] = ngx_sprintf(ttl, "-1") - ttl;

    } else {
        argvlen[2] = ngx_sprintf(max, "0") - max;
        argvlen[3] = ngx_sprintf(ttl, "%ui", clcf->context_max - 1) - ttl;
    }

    redisAsyncCommandArgv(rs->ac, ngx_http_classify_redis_reply_logged,
                          (void *) "LTRIM", 4, argv, argvlen);

    argv[0] = "EXPIRE";
    argvlen[0] = 6;
    argvlen[2] = ngx_sprintf(ttl, "%M", clcf->context_ttl / 1000) - ttl;
    argv[2] = (char *) ttl;

    redisAsyncCommandArgv(rs->ac, ngx_http_classify_redis_reply_logged,
                          (void *) "EXPIRE", 3, argv, argvlen);
}


/* nginx events -> hiredis */

static void
ngx_http_classify_redis_read_handler(ngx_event_t *ev)
{
    ngx_connection_t           *c = ev->data;
    ngx_http_classify_redis_t  *rs = c->data;

    redisAsyncHandleRead(rs->ac);
}


static void
ngx_http_classify_redis_write_handler(ngx_event_t *ev)
{
    ngx_connection_t           *c = ev->data;
    ngx_http_classify_redis_t  *rs = c->data;

    redisAsyncHandleWrite(rs->ac);
}


/* hiredis -> nginx events: level-triggered, hiredis reads 16 KB a call */

static void
ngx_http_classify_redis_add_read(void *data)
{
    ngx_connection_t  *c = data;

    if (!c->read->active) {
        (void) ngx_add_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT);
    }
}


static void
ngx_http_classify_redis_del_read(void *data)
{
    ngx_connection_t  *c = data;

    if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }
}


static void
ngx_http_classify_redis_add_write(void *data)
{
    ngx_connection_t  *c = data;

    if (!c->write->active) {
        (void) ngx_add_event(c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT);
    }
}


static void
ngx_http_classify_redis_del_write(void *data)
{
    ngx_connection_t  *c = data;

    if (c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }
}


/*
 * hiredis is freeing the context (an error, a disconnect, our own free):
 * it closes the socket itself, so only the nginx connection is given back
 * here; then a reconnect is scheduled.
 */

static void
ngx_http_classify_redis_cleanup(void *data)
{
    ngx_connection_t  *c = data;

    redisAsyncContext          *ac;
    ngx_http_classify_redis_t  *rs;

    rs = c->data;
    ac = rs->ac;

    if (ac && ac->err && !rs->down && !rs->exiting) {
        ngx_log_error(NGX_LOG_ERR, rs->log, 0,
                      "classify_redis \"%V\": connection lost: %s",
                      &rs->name, ac->errstr);
        rs->down = 1;

    } else if (!rs->exiting && !rs->down) {
        ngx_log_error(NGX_LOG_ERR, rs->log, 0,
                      "classify_redis \"%V\": connection closed", &rs->name);
        rs->down = 1;
    }

    ngx_http_classify_redis_del_read(c);
    ngx_http_classify_redis_del_write(c);

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    if (rs->connect_timer.timer_set) {
        ngx_del_timer(&rs->connect_timer);
    }

    c->fd = (ngx_socket_t) -1;
    ngx_free_connection(c);

    rs->ac = NULL;
    rs->connection = NULL;

    if (!rs->exiting && !ngx_exiting && !rs->reconnect.timer_set) {
        ngx_add_timer(&rs->reconnect, rs->backoff);
        rs->backoff = ngx_min(rs->backoff * 2,
                              NGX_HTTP_CLASSIFY_REDIS_BACKOFF_MAX);
    }
}

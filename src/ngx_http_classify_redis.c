
/*
 * ngx_http_classify_module: conversation context from Redis.
 *
 * Each worker keeps one connection per configured Redis server: hiredis's
 * async API driven by nginx's event loop (hiredis.c).  The connection's
 * life is one state with one transition function:
 *
 *   DOWN -> [ASKING] -> CONNECTING -> AUTH -> SELECT -> [ROLE] -> SCRIPT
 *        -> READY -> DOWN ...
 *
 * AUTH and SELECT are sent only when configured, each after the previous
 * step's reply, so that a refused password or database is a failed
 * connect (logged once, retried with backoff) and no command of a request
 * ever runs before them.  SCRIPT loads the Lua script that reads a list
 * within a byte budget on the server (where scripting is not allowed, the
 * budget is applied to an LRANGE's reply instead).
 *
 * With classify_redis_sentinel, every connect starts by asking the
 * Sentinels where the master is (ASKING, sentinel.c), and ROLE checks
 * that the server found is the master.  A failover is followed by itself:
 * the connection's loss, a -READONLY reply, or a +switch-master message
 * drops the connection, and the next connect asks again.
 *
 * hiredis 0.14 has no async timeouts: every deadline is an nginx timer
 * with one purpose.  A read's own deadline only lets that read go; the
 * connection is dropped only when Redis answers nothing at all for twice
 * "timeout" while commands wait (a stopped server, a black-holed path).
 * Stores are kept until Redis acknowledged them, in a bounded queue, and
 * are sent again after a reconnect (to the new master after a failover);
 * a store that cannot be kept is logged and counted
 * (classify_redis_stores_lost_total).
 *
 * A command's callback runs exactly once (with a NULL reply when the
 * connection goes), so its private data is heap memory that its request
 * can let go of; results reach the caller from a posted event, never from
 * inside hiredis.
 */


#include "ngx_http_classify_redis.h"
#include "ngx_http_classify_hiredis.h"
#include "ngx_http_classify_sentinel.h"
#include "ngx_http_classify_metrics.h"
#include "ngx_http_classify_json.h"



/* stores kept per worker and server while Redis has not acknowledged them */
#define NGX_HTTP_CLASSIFY_REDIS_STORES_MAX     4096
#define NGX_HTTP_CLASSIFY_REDIS_STORE_BYTES    (16 * 1024 * 1024)


typedef enum {
    NGX_HTTP_CLASSIFY_REDIS_DOWN = 0,     /* a reconnect is scheduled */
    NGX_HTTP_CLASSIFY_REDIS_ASKING,       /* the Sentinels are asked */
    NGX_HTTP_CLASSIFY_REDIS_CONNECTING,   /* connect(2) in progress */
    NGX_HTTP_CLASSIFY_REDIS_AUTH,         /* AUTH sent */
    NGX_HTTP_CLASSIFY_REDIS_SELECT,       /* SELECT sent */
    NGX_HTTP_CLASSIFY_REDIS_ROLE,         /* ROLE sent: is it the master? */
    NGX_HTTP_CLASSIFY_REDIS_SCRIPT,       /* SCRIPT LOAD sent */
    NGX_HTTP_CLASSIFY_REDIS_READY
} ngx_http_classify_redis_state_e;


/* how a read is sent: the script by digest, the script itself, or LRANGE */
typedef enum {
    NGX_HTTP_CLASSIFY_REDIS_EVALSHA = 0,
    NGX_HTTP_CLASSIFY_REDIS_EVAL,
    NGX_HTTP_CLASSIFY_REDIS_LRANGE
} ngx_http_classify_redis_read_e;


struct ngx_http_classify_redis_s {
    ngx_str_t                            name;      /* for logs */
    ngx_str_t                            host;      /* IP, null-terminated */
    ngx_int_t                            port;
    ngx_str_t                            unix_path; /* null-terminated */
    ngx_uint_t                           db;
    ngx_str_t                            password;
    ngx_msec_t                           connect_timeout;
    ngx_msec_t                           timeout;

    /* classify_redis_sentinel: the master's name, who knows where it is */
    ngx_str_t                            master;
    ngx_http_classify_sentinel_t        *sentinel;
    ngx_http_classify_master_t          *metrics;
    ngx_str_t                            addr;      /* in name: host:port */
    ngx_str_t                            last;      /* the master before */

    ngx_http_classify_hiredis_t          conn;
    ngx_http_classify_redis_state_e      state;
    ngx_log_t                           *log;
    ngx_http_classify_main_conf_t       *cmcf;      /* the metrics */

    ngx_event_t                          reconnect;
    ngx_event_t                          connect_timer;
    ngx_event_t                          stall;     /* no reply at all */
    ngx_msec_t                           backoff;
    ngx_msec_t                           progress;  /* last reply */
    ngx_uint_t                           outstanding;  /* without reply */

    ngx_queue_t                          waiting;   /* reads until READY */
    ngx_queue_t                          stores;    /* until acknowledged */
    ngx_uint_t                           nstores;
    size_t                               store_bytes;
    ngx_uint_t                           resent;    /* after an outage */
    ngx_uint_t                           lost;      /* during it */

    u_char                               sha[40];   /* of the script */

    unsigned                             scripting:1;
    unsigned                             script_logged:1;
    unsigned                             down:1;    /* outage logged */
    unsigned                             slow:1;    /* a timeout logged */
    unsigned                             lost_logged:1;
    unsigned                             unknown:1; /* no Sentinel: logged */
    unsigned                             role_logged:1;
    unsigned                             exiting:1;
};


struct ngx_http_classify_redis_op_s {
    ngx_queue_t                          queue;     /* in rs->waiting */
    ngx_http_classify_redis_t           *redis;
    ngx_http_classify_redis_handler_pt   handler;   /* NULL: nobody waits */
    void                                *data;
    ngx_array_t                         *messages;
    ngx_log_t                           *log;
    ngx_event_t                          done;      /* posted with rc */
    ngx_event_t                          timer;     /* this read's deadline */
    ngx_int_t                            rc;
    ngx_str_t                            key;
    ngx_uint_t                           count;
    ngx_uint_t                           order;
    size_t                               max_size;
    ngx_http_classify_redis_read_e       read;

    unsigned                             sent:1;    /* hiredis holds it */
    unsigned                             waiting:1;
    unsigned                             finished:1;   /* rc is known */
};


typedef struct {
    ngx_queue_t                          queue;     /* in rs->stores */
    ngx_str_t                            key;
    ngx_str_t                            user;      /* the two messages */
    ngx_str_t                            assistant;
    ngx_http_classify_redis_list_t       list;
    size_t                               size;
    unsigned                             sent:1;    /* hiredis holds it */
} ngx_http_classify_redis_store_t;


/*
 * The newest n elements (ARGV[1]) within ARGV[2] bytes, newest first,
 * from the tail of the list (ARGV[3] "1": RPUSH) or its head; an element
 * is fetched only while the budget lasts, so no more than the budget and
 * one element is ever held, and only the budget crosses the wire.
 */

static char  ngx_http_classify_redis_script[] =
    "local n, budget = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local tail = ARGV[3] == '1'\n"
    "local out, size = {}, 0\n"
    "for i = 1, n do\n"
    "    local e = redis.call('LINDEX', KEYS[1], tail and -i or i - 1)\n"
    "    if not e then break end\n"
    "    size = size + #e\n"
    "    if size > budget then break end\n"
    "    out[i] = e\n"
    "end\n"
    "return out\n";


static char *ngx_http_classify_redis_name(ngx_conf_t *cf,
    ngx_http_classify_redis_t *rs);
static ngx_int_t ngx_http_classify_redis_param(ngx_http_classify_redis_t *rs,
    ngx_str_t *value, ngx_uint_t *seen, ngx_str_t *sentinel_password);
static char *ngx_http_classify_redis_address(ngx_conf_t *cf,
    ngx_http_classify_redis_t *rs, ngx_str_t *value);
static char *ngx_http_classify_redis_new(ngx_conf_t *cf,
    ngx_http_classify_loc_conf_t *clcf, ngx_uint_t sentinel,
    ngx_http_classify_redis_t **rsp);
static char *ngx_http_classify_redis_add(ngx_conf_t *cf,
    ngx_http_classify_redis_t *rs);

static void ngx_http_classify_redis_connect(ngx_http_classify_redis_t *rs);
static void ngx_http_classify_redis_open(ngx_http_classify_redis_t *rs);
static void ngx_http_classify_redis_found(void *data,
    ngx_http_classify_sentinel_addr_t *addr, ngx_str_t *why);
static void ngx_http_classify_redis_switched(void *data,
    ngx_http_classify_sentinel_addr_t *addr);
static void ngx_http_classify_redis_set_state(ngx_http_classify_redis_t *rs,
    ngx_http_classify_redis_state_e state);
static void ngx_http_classify_redis_retry(ngx_http_classify_redis_t *rs);
static void ngx_http_classify_redis_reconnect_handler(ngx_event_t *ev);
static void ngx_http_classify_redis_connect_timeout(ngx_event_t *ev);
static void ngx_http_classify_redis_on_connect(const redisAsyncContext *ac,
    int status);
static void ngx_http_classify_redis_handshake(ngx_http_classify_redis_t *rs);
static void ngx_http_classify_redis_handshake_reply(redisAsyncContext *ac,
    void *reply, void *data);
static ngx_int_t ngx_http_classify_redis_role(ngx_http_classify_redis_t *rs,
    redisReply *rr);
static ngx_uint_t ngx_http_classify_redis_readonly(
    ngx_http_classify_redis_t *rs, redisReply *rr);
static void ngx_http_classify_redis_master_ready(
    ngx_http_classify_redis_t *rs);
static void ngx_cdecl ngx_http_classify_redis_failed(
    ngx_http_classify_redis_t *rs, const char *fmt, ...);
static void ngx_http_classify_redis_ready(ngx_http_classify_redis_t *rs);
static void ngx_http_classify_redis_stall_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_classify_redis_command(
    ngx_http_classify_redis_t *rs, redisCallbackFn *fn, void *data,
    int argc, const char **argv, const size_t *argvlen);
static void ngx_http_classify_redis_answered(ngx_http_classify_redis_t *rs);
static u_char *ngx_http_classify_redis_range(u_char *p, ngx_uint_t order,
    ngx_uint_t n, ngx_str_t *start, ngx_str_t *stop);

static ngx_int_t ngx_http_classify_redis_send_read(
    ngx_http_classify_redis_op_t *op);
static void ngx_http_classify_redis_read_reply(redisAsyncContext *ac,
    void *reply, void *data);
static ngx_uint_t ngx_http_classify_redis_refused(const char *err);
static ngx_int_t ngx_http_classify_redis_read_again(
    ngx_http_classify_redis_op_t *op, redisReply *rr);
static ngx_int_t ngx_http_classify_redis_parse(
    ngx_http_classify_redis_op_t *op, redisReply *rr);
static void ngx_http_classify_redis_read_timeout(ngx_event_t *ev);
static void ngx_http_classify_redis_finish(ngx_http_classify_redis_op_t *op,
    ngx_int_t rc);
static void ngx_http_classify_redis_done(ngx_event_t *ev);
static void ngx_http_classify_redis_release(ngx_http_classify_redis_op_t *op);

static ngx_int_t ngx_http_classify_redis_send_store(
    ngx_http_classify_redis_t *rs, ngx_http_classify_redis_store_t *st);
static void ngx_http_classify_redis_queued(redisAsyncContext *ac,
    void *reply, void *data);
static void ngx_http_classify_redis_stored(redisAsyncContext *ac,
    void *reply, void *data);
static void ngx_http_classify_redis_forget(ngx_http_classify_redis_t *rs,
    ngx_http_classify_redis_store_t *st);
static void ngx_http_classify_redis_lost(ngx_http_classify_redis_t *rs,
    ngx_log_t *log, ngx_str_t *key, const char *why);

static void ngx_http_classify_redis_closed(ngx_http_classify_hiredis_t *h,
    const char *err);
static void ngx_http_classify_redis_down(ngx_http_classify_redis_t *rs);


static const char  *ngx_http_classify_redis_states[] = {
    "down", "asking", "connecting", "auth", "select", "role", "script",
    "ready"
};


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

    char                           *rv;
    ngx_str_t                      *value;
    ngx_uint_t                      i, seen;
    ngx_http_classify_redis_t      *rs, **rsp;
    ngx_http_classify_main_conf_t  *cmcf;

    rv = ngx_http_classify_redis_new(cf, clcf, 0, &rs);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    value = cf->args->elts;

    rv = ngx_http_classify_redis_name(cf, rs);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    seen = 0;

    for (i = 2; i < cf->args->nelts; i++) {
        if (ngx_http_classify_redis_param(rs, &value[i], &seen, NULL)
            != NGX_OK)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" in "
                               "\"classify_redis\"", &value[i]);
            return NGX_CONF_ERROR;
        }
    }

    rv = ngx_http_classify_redis_address(cf, rs, &value[1]);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    /* the same line elsewhere shares this worker's connection */

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_classify_module);

    rsp = cmcf->redis.elts;

    for (i = 0; i < cmcf->redis.nelts; i++) {
        if (rsp[i]->sentinel == NULL
            && rsp[i]->name.len == rs->name.len
            && ngx_strncmp(rsp[i]->name.data, rs->name.data, rs->name.len)
               == 0
            && rsp[i]->password.len == rs->password.len
            && (rs->password.len == 0
                || ngx_strncmp(rsp[i]->password.data, rs->password.data,
                               rs->password.len) == 0))
        {
            clcf->redis = rsp[i];
            return NGX_CONF_OK;
        }
    }

    clcf->redis = rs;

    return ngx_http_classify_redis_add(cf, rs);
}


/*
 * classify_redis_sentinel master_name host:port ... [db=N] [password=P]
 *                         [sentinel_password=P] [connect_timeout=T]
 *                         [timeout=T];
 *
 * The Sentinels' names are resolved here; the master's address comes
 * from them at run time, as an IP.
 */

char *
ngx_http_classify_redis_sentinel_set(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_classify_loc_conf_t *clcf = conf;

    char                       *rv;
    u_char                     *p;
    ngx_str_t                  *value, password;
    ngx_uint_t                  i, seen, n;
    ngx_http_classify_redis_t  *rs;

    rv = ngx_http_classify_redis_new(cf, clcf, 1, &rs);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    value = cf->args->elts;

    seen = 0;
    n = 0;
    ngx_str_null(&password);

    for (i = 2; i < cf->args->nelts; i++) {
        if (ngx_strlchr(value[i].data, value[i].data + value[i].len, '=')
            == NULL)
        {
            n++;
            continue;
        }

        if (ngx_http_classify_redis_param(rs, &value[i], &seen, &password)
            != NGX_OK)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" in "
                               "\"classify_redis_sentinel\"", &value[i]);
            return NGX_CONF_ERROR;
        }
    }

    rs->sentinel = ngx_http_classify_sentinel_create(cf, &value[1], &password,
                                                     rs->connect_timeout,
                                                     rs->timeout);
    if (rs->sentinel == NULL) {
        return NGX_CONF_ERROR;
    }

    if (n == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "no Sentinel address in "
                           "\"classify_redis_sentinel\"");
        return NGX_CONF_ERROR;
    }

    for (i = 2; i < cf->args->nelts; i++) {
        if (ngx_strlchr(value[i].data, value[i].data + value[i].len, '=')
            == NULL
            && ngx_http_classify_sentinel_add(cf, rs->sentinel, &value[i])
               != NGX_CONF_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    /* logs name the master, and where it is once that is known */

    rs->master = value[1];

    p = ngx_pnalloc(cf->pool, value[1].len + sizeof(" at ") - 1
                              + NGX_SOCKADDR_STRLEN);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    rs->name.data = p;
    rs->name.len = ngx_cpymem(p, value[1].data, value[1].len) - p;

    rs->host.data = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
    rs->last.data = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN);

    if (rs->host.data == NULL || rs->last.data == NULL) {
        return NGX_CONF_ERROR;
    }

    rs->metrics = ngx_http_classify_metrics_add_master(cf, &rs->master);
    if (rs->metrics == NULL) {
        return NGX_CONF_ERROR;
    }

    clcf->redis = rs;

    return ngx_http_classify_redis_add(cf, rs);
}


/* a location has one Redis: either directive, once */

static char *
ngx_http_classify_redis_new(ngx_conf_t *cf,
    ngx_http_classify_loc_conf_t *clcf, ngx_uint_t sentinel,
    ngx_http_classify_redis_t **rsp)
{
    ngx_http_classify_redis_t  *rs;

    if (clcf->redis != NGX_CONF_UNSET_PTR) {
        if ((clcf->redis->sentinel != NULL) == sentinel) {
            return "is duplicate";
        }

        return sentinel ? "is not allowed with \"classify_redis\""
                        : "is not allowed with \"classify_redis_sentinel\"";
    }

    rs = ngx_pcalloc(cf->pool, sizeof(ngx_http_classify_redis_t));
    if (rs == NULL) {
        return NGX_CONF_ERROR;
    }

    rs->connect_timeout = 1000;
    rs->timeout = 1000;

    *rsp = rs;

    return NGX_CONF_OK;
}


/* one server entry, connected to by each worker */

static char *
ngx_http_classify_redis_add(ngx_conf_t *cf, ngx_http_classify_redis_t *rs)
{
    ngx_http_classify_redis_t      **rsp;
    ngx_http_classify_main_conf_t   *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_classify_module);

    rsp = ngx_array_push(&cmcf->redis);
    if (rsp == NULL) {
        return NGX_CONF_ERROR;
    }

    *rsp = rs;

    return NGX_CONF_OK;
}


/* the whole line names the server in logs, its password masked */

static char *
ngx_http_classify_redis_name(ngx_conf_t *cf, ngx_http_classify_redis_t *rs)
{
    u_char      *p;
    size_t       n;
    ngx_str_t   *value;
    ngx_uint_t   i;

    value = cf->args->elts;

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

    return NGX_CONF_OK;
}


/*
 * One optional parameter, each at most once.  db= is checked for what
 * nginx -t can know: a number that SELECT accepts (Redis's "databases"
 * is an int); a number past the server's own "databases" is refused on
 * connect, and that connect then fails like any other.
 */

static ngx_int_t
ngx_http_classify_redis_param(ngx_http_classify_redis_t *rs, ngx_str_t *value,
    ngx_uint_t *seen, ngx_str_t *sentinel_password)
{
    ngx_int_t    n;
    ngx_str_t    s;
    ngx_uint_t   bit;
    ngx_msec_t  *msp;

    if (ngx_strncmp(value->data, "db=", 3) == 0) {
        n = ngx_atoi(value->data + 3, value->len - 3);
        if (n == NGX_ERROR || n >= NGX_MAX_INT32_VALUE) {
            return NGX_DECLINED;
        }

        rs->db = n;
        bit = 1;

    } else if (ngx_strncmp(value->data, "password=", 9) == 0) {
        if (value->len == 9) {
            return NGX_DECLINED;
        }

        rs->password.data = value->data + 9;
        rs->password.len = value->len - 9;
        bit = 2;

    } else if (sentinel_password
               && ngx_strncmp(value->data, "sentinel_password=", 18) == 0)
    {
        if (value->len == 18) {
            return NGX_DECLINED;
        }

        sentinel_password->data = value->data + 18;
        sentinel_password->len = value->len - 18;
        bit = 16;

    } else {
        if (ngx_strncmp(value->data, "connect_timeout=", 16) == 0) {
            s.data = value->data + 16;
            s.len = value->len - 16;
            msp = &rs->connect_timeout;
            bit = 4;

        } else if (ngx_strncmp(value->data, "timeout=", 8) == 0) {
            s.data = value->data + 8;
            s.len = value->len - 8;
            msp = &rs->timeout;
            bit = 8;

        } else {
            return NGX_DECLINED;
        }

        *msp = ngx_parse_time(&s, 0);
        if (*msp == (ngx_msec_t) NGX_ERROR || *msp == 0) {
            return NGX_DECLINED;
        }
    }

    if (*seen & bit) {
        return NGX_DECLINED;
    }

    *seen |= bit;

    return NGX_OK;
}


static char *
ngx_http_classify_redis_address(ngx_conf_t *cf, ngx_http_classify_redis_t *rs,
    ngx_str_t *value)
{
    ngx_url_t  u;

    if (ngx_strncmp(value->data, "unix:", 5) == 0) {
        if (value->len < 6) {
            goto invalid;
        }

        rs->unix_path.len = value->len - 5;
        rs->unix_path.data = ngx_pnalloc(cf->pool, rs->unix_path.len + 1);
        if (rs->unix_path.data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_cpystrn(rs->unix_path.data, value->data + 5,
                    rs->unix_path.len + 1);

        return NGX_CONF_OK;
    }

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = *value;
    u.default_port = 6379;
    u.no_resolve = 0;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid address \"%V\" in \"classify_redis\"%s%s",
                           value, u.err ? ": " : "", u.err ? u.err : "");
        return NGX_CONF_ERROR;
    }

    if (u.addrs[0].sockaddr->sa_family != AF_INET
#if (NGX_HAVE_INET6)
        && u.addrs[0].sockaddr->sa_family != AF_INET6
#endif
       )
    {
        goto invalid;
    }

    rs->host.data = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
    if (rs->host.data == NULL) {
        return NGX_CONF_ERROR;
    }

    rs->host.len = ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen,
                                 rs->host.data, NGX_SOCKADDR_STRLEN, 0);
    rs->host.data[rs->host.len] = '\0';
    rs->port = u.port;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid address \"%V\" in \"classify_redis\"", value);
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
        rs->cmcf = cmcf;
        rs->backoff = NGX_HTTP_CLASSIFY_BACKOFF_MIN;

        ngx_queue_init(&rs->waiting);
        ngx_queue_init(&rs->stores);

        rs->reconnect.handler = ngx_http_classify_redis_reconnect_handler;
        rs->reconnect.data = rs;
        rs->reconnect.log = cycle->log;
        rs->reconnect.cancelable = 1;

        rs->connect_timer.handler = ngx_http_classify_redis_connect_timeout;
        rs->connect_timer.data = rs;
        rs->connect_timer.log = cycle->log;
        rs->connect_timer.cancelable = 1;

        /* not cancelable: a worker that exits waits for its stores */
        rs->stall.handler = ngx_http_classify_redis_stall_handler;
        rs->stall.data = rs;
        rs->stall.log = cycle->log;

        rs->conn.log = cycle->log;
        rs->conn.data = rs;
        rs->conn.closed = ngx_http_classify_redis_closed;

        if (rs->sentinel) {
            ngx_http_classify_sentinel_init(rs->sentinel, cycle->log,
                                            ngx_http_classify_redis_switched,
                                            rs);
        }

        ngx_http_classify_redis_connect(rs);
    }

    return NGX_OK;
}


/* what is still queued now is lost: counted, and said once */

void
ngx_http_classify_redis_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                        i, n;
    ngx_queue_t                      *q;
    ngx_http_classify_redis_t       **rsp, *rs;
    ngx_http_classify_redis_store_t  *st;
    ngx_http_classify_main_conf_t    *cmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return;
    }

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

        if (rs->sentinel) {
            ngx_http_classify_sentinel_exit(rs->sentinel);
        }

        if (rs->conn.ac) {
            redisAsyncFree(rs->conn.ac);
        }

        n = 0;

        while (!ngx_queue_empty(&rs->stores)) {
            q = ngx_queue_head(&rs->stores);
            st = ngx_queue_data(q, ngx_http_classify_redis_store_t, queue);
            ngx_http_classify_redis_forget(rs, st);
            n++;
        }

        if (n) {
            ngx_log_error(NGX_LOG_ERR, cycle->log, 0,
                          "classify_redis \"%V\": %ui context store(s) lost "
                          "at exit, not acknowledged by Redis", &rs->name, n);
            ngx_http_classify_metrics_stores_lost(cmcf, n);
        }
    }
}


/* with Sentinels, every connect starts by asking where the master is */

static void
ngx_http_classify_redis_connect(ngx_http_classify_redis_t *rs)
{
    if (rs->sentinel) {
        ngx_http_classify_redis_set_state(rs, NGX_HTTP_CLASSIFY_REDIS_ASKING);
        ngx_http_classify_sentinel_ask(rs->sentinel,
                                       ngx_http_classify_redis_found, rs);
        return;
    }

    ngx_http_classify_redis_open(rs);
}


static void
ngx_http_classify_redis_open(ngx_http_classify_redis_t *rs)
{
    if (ngx_http_classify_hiredis_connect(&rs->conn, (char *) rs->host.data,
                                          (int) rs->port,
                                          rs->unix_path.len
                                          ? (char *) rs->unix_path.data
                                          : NULL)
        != NGX_OK)
    {
        if (!rs->down) {
            ngx_log_error(NGX_LOG_ERR, rs->log, 0,
                          "classify_redis \"%V\": cannot connect: %s",
                          &rs->name, rs->conn.errstr);
            rs->down = 1;
        }

        ngx_http_classify_redis_down(rs);
        return;
    }

    rs->conn.ac->data = rs;

    redisAsyncSetConnectCallback(rs->conn.ac,
                                 ngx_http_classify_redis_on_connect);

    ngx_http_classify_redis_set_state(rs, NGX_HTTP_CLASSIFY_REDIS_CONNECTING);

    ngx_add_timer(&rs->connect_timer, rs->connect_timeout);
}


/*
 * What the Sentinels said: where the master is, or why none said it (once
 * an outage, apart from the connection's own failures).
 */

static void
ngx_http_classify_redis_found(void *data,
    ngx_http_classify_sentinel_addr_t *addr, ngx_str_t *why)
{
    ngx_http_classify_redis_t  *rs = data;

    u_char  *p;

    if (addr == NULL) {
        if (!rs->unknown) {
            ngx_log_error(NGX_LOG_ERR, rs->log, 0,
                          "classify_redis_sentinel \"%V\": no Sentinel gave "
                          "the master's address: %V", &rs->master, why);
            rs->unknown = 1;
        }

        rs->down = 1;
        ngx_http_classify_redis_down(rs);
        return;
    }

    p = ngx_cpymem(rs->host.data, addr->host.data, addr->host.len);
    *p = '\0';
    rs->host.len = addr->host.len;
    rs->port = addr->port;

    p = rs->name.data + rs->master.len;
    p = ngx_cpymem(p, " at ", sizeof(" at ") - 1);
    rs->addr.data = p;
    rs->addr.len = addr->name.len;
    p = ngx_cpymem(p, addr->name.data, addr->name.len);
    rs->name.len = p - rs->name.data;

    ngx_http_classify_redis_open(rs);
}


/*
 * +switch-master: the connection moves unless it is already there; an
 * ask in progress may have been answered before the switch, so it is
 * made again.
 */

static void
ngx_http_classify_redis_switched(void *data,
    ngx_http_classify_sentinel_addr_t *addr)
{
    ngx_http_classify_redis_t  *rs = data;

    rs->backoff = NGX_HTTP_CLASSIFY_BACKOFF_MIN;

    switch (rs->state) {

    case NGX_HTTP_CLASSIFY_REDIS_DOWN:
        if (rs->reconnect.timer_set) {
            ngx_del_timer(&rs->reconnect);
        }

        ngx_http_classify_redis_retry(rs);
        break;

    case NGX_HTTP_CLASSIFY_REDIS_ASKING:
        ngx_http_classify_sentinel_cancel(rs->sentinel);
        ngx_http_classify_sentinel_ask(rs->sentinel,
                                       ngx_http_classify_redis_found, rs);
        break;

    default:
        if (rs->port == addr->port
            && rs->host.len == addr->host.len
            && ngx_strncmp(rs->host.data, addr->host.data, addr->host.len)
               == 0)
        {
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, rs->log, 0,
                           "classify_redis \"%V\": already there",
                           &rs->name);
            break;
        }

        ngx_http_classify_redis_failed(rs, "the Sentinels switched the "
                                       "master to %V", &addr->name);
    }
}


static void
ngx_http_classify_redis_set_state(ngx_http_classify_redis_t *rs,
    ngx_http_classify_redis_state_e state)
{
    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, rs->log, 0,
                   "classify_redis \"%V\": %s -> %s", &rs->name,
                   ngx_http_classify_redis_states[rs->state],
                   ngx_http_classify_redis_states[state]);

    rs->state = state;
}


/* the backoff: 100 ms after a failure, doubling to 1 s, reset on READY */

static void
ngx_http_classify_redis_retry(ngx_http_classify_redis_t *rs)
{
    if (rs->exiting || ngx_exiting || rs->reconnect.timer_set) {
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, rs->log, 0,
                   "classify_redis \"%V\": reconnecting in %Mms",
                   &rs->name, rs->backoff);

    ngx_http_classify_hiredis_backoff(&rs->reconnect, &rs->backoff);
}


static void
ngx_http_classify_redis_reconnect_handler(ngx_event_t *ev)
{
    ngx_http_classify_redis_t  *rs = ev->data;

    if (rs->conn.ac == NULL && !rs->exiting && !ngx_exiting) {
        ngx_http_classify_redis_connect(rs);
    }
}


static void
ngx_http_classify_redis_connect_timeout(ngx_event_t *ev)
{
    ngx_http_classify_redis_t  *rs = ev->data;

    ngx_http_classify_redis_failed(rs, "connect timed out");
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

    ngx_http_classify_redis_handshake(rs);
}


/* the next step of the handshake after rs->state, or READY */

static void
ngx_http_classify_redis_handshake(ngx_http_classify_redis_t *rs)
{
    int          argc;
    u_char       db[NGX_INT_T_LEN];
    size_t       argvlen[3];
    const char  *argv[3];

    if (rs->state < NGX_HTTP_CLASSIFY_REDIS_AUTH && rs->password.len) {
        ngx_http_classify_redis_set_state(rs, NGX_HTTP_CLASSIFY_REDIS_AUTH);

        argv[0] = "AUTH";
        argvlen[0] = 4;
        argv[1] = (char *) rs->password.data;
        argvlen[1] = rs->password.len;
        argc = 2;

        goto send;
    }

    if (rs->state < NGX_HTTP_CLASSIFY_REDIS_SELECT && rs->db) {
        ngx_http_classify_redis_set_state(rs, NGX_HTTP_CLASSIFY_REDIS_SELECT);

        argv[0] = "SELECT";
        argvlen[0] = 6;
        argv[1] = (char *) db;
        argvlen[1] = ngx_sprintf(db, "%ui", rs->db) - db;
        argc = 2;

        goto send;
    }

    if (rs->state < NGX_HTTP_CLASSIFY_REDIS_ROLE && rs->sentinel) {
        ngx_http_classify_redis_set_state(rs, NGX_HTTP_CLASSIFY_REDIS_ROLE);

        argv[0] = "ROLE";
        argvlen[0] = 4;
        argc = 1;

        goto send;
    }

    if (rs->state < NGX_HTTP_CLASSIFY_REDIS_SCRIPT) {
        ngx_http_classify_redis_set_state(rs, NGX_HTTP_CLASSIFY_REDIS_SCRIPT);

        argv[0] = "SCRIPT";
        argvlen[0] = 6;
        argv[1] = "LOAD";
        argvlen[1] = 4;
        argv[2] = ngx_http_classify_redis_script;
        argvlen[2] = sizeof(ngx_http_classify_redis_script) - 1;
        argc = 3;

        goto send;
    }

    ngx_http_classify_redis_ready(rs);
    return;

send:

    if (ngx_http_classify_redis_command(rs,
                                        ngx_http_classify_redis_handshake_reply,
                                        NULL, argc, argv, argvlen)
        != NGX_OK)
    {
        ngx_http_classify_redis_failed(rs, "out of memory");
    }
}


static void
ngx_http_classify_redis_handshake_reply(redisAsyncContext *ac, void *reply,
    void *data)
{
    redisReply                 *rr = reply;
    ngx_str_t                   err;
    ngx_http_classify_redis_t  *rs = ac->data;

    if (rr == NULL) {
        /* the connection went; the cleanup hook says so */
        return;
    }

    ngx_http_classify_redis_answered(rs);

    if (rs->state == NGX_HTTP_CLASSIFY_REDIS_ROLE) {
        if (ngx_http_classify_redis_role(rs, rr) == NGX_OK) {
            ngx_http_classify_redis_handshake(rs);
        }

        return;
    }

    if (rr->type == REDIS_REPLY_ERROR) {
        err.data = (u_char *) rr->str;
        err.len = rr->len;

        if (rs->state == NGX_HTTP_CLASSIFY_REDIS_AUTH) {
            ngx_http_classify_redis_failed(rs, "AUTH failed: %V", &err);
            return;
        }

        if (rs->state == NGX_HTTP_CLASSIFY_REDIS_SELECT) {
            ngx_http_classify_redis_failed(rs, "SELECT %ui failed: %V",
                                           rs->db, &err);
            return;
        }

        if (!ngx_http_classify_redis_refused(rr->str)) {
            /* LOADING, BUSY...: this server is not ready yet */
            ngx_http_classify_redis_failed(rs, "SCRIPT LOAD failed: %V",
                                           &err);
            return;
        }

        /* scripting refused (ACL, a proxy): reads use LRANGE instead */

        if (!rs->script_logged) {
            ngx_log_error(NGX_LOG_WARN, rs->log, 0,
                          "classify_redis \"%V\": SCRIPT LOAD failed: %V; "
                          "context reads use LRANGE, and "
                          "classify_context_max_size is applied to its "
                          "reply", &rs->name, &err);
            rs->script_logged = 1;
        }

        rs->scripting = 0;

    } else if (rs->state == NGX_HTTP_CLASSIFY_REDIS_SCRIPT) {

        if (rr->type != REDIS_REPLY_STRING || rr->len != sizeof(rs->sha)) {
            ngx_http_classify_redis_failed(rs, "SCRIPT LOAD: "
                                           "unexpected reply");
            return;
        }

        ngx_memcpy(rs->sha, rr->str, sizeof(rs->sha));
        rs->scripting = 1;
    }

    ngx_http_classify_redis_handshake(rs);
}


/*
 * The server the Sentinels named must be the master: one that is still a
 * replica (a Sentinel that has not seen the failover yet) is left, and
 * the Sentinels are asked again.  Where ROLE is not allowed (an ACL
 * without it), the Sentinels are trusted: a replica then shows by its
 * -READONLY at the first store.
 */

static ngx_int_t
ngx_http_classify_redis_role(ngx_http_classify_redis_t *rs, redisReply *rr)
{
    ngx_str_t    role;
    redisReply  *e;

    if (rr->type == REDIS_REPLY_ERROR) {
        if (!ngx_http_classify_redis_refused(rr->str)) {
            ngx_http_classify_redis_failed(rs, "ROLE failed: %s", rr->str);
            return NGX_ERROR;
        }

        if (!rs->role_logged) {
            ngx_log_error(NGX_LOG_WARN, rs->log, 0,
                          "classify_redis \"%V\": ROLE refused (%s); the "
                          "Sentinels' answer is taken as the master, a "
                          "replica shows by -READONLY", &rs->name, rr->str);
            rs->role_logged = 1;
        }

        return NGX_OK;
    }

    ngx_str_set(&role, "?");

    if (rr->type == REDIS_REPLY_ARRAY && rr->elements > 0) {
        e = rr->element[0];

        if (e->type == REDIS_REPLY_STRING) {
            if (e->len == 6 && ngx_strncmp(e->str, "master", 6) == 0) {
                return NGX_OK;
            }

            role.data = (u_char *) e->str;
            role.len = ngx_min(e->len, 32);
        }
    }

    ngx_http_classify_redis_failed(rs, "not the master, its ROLE is \"%V\"",
                                   &role);
    return NGX_ERROR;
}


/* a write refused by a replica: the master it was is one no longer */

static ngx_uint_t
ngx_http_classify_redis_readonly(ngx_http_classify_redis_t *rs,
    redisReply *rr)
{
    if (rs->sentinel == NULL
        || rr->type != REDIS_REPLY_ERROR
        || ngx_strncmp(rr->str, "READONLY", 8) != 0)
    {
        return 0;
    }

    ngx_http_classify_redis_failed(rs, "%s", rr->str);

    return 1;
}


/*
 * The connection failed (a refused handshake, a timeout, a stall): said
 * once per outage, then dropped; the cleanup hook schedules the reconnect.
 * Inside a hiredis callback, redisAsyncFree() waits for it to return.
 */

static void ngx_cdecl
ngx_http_classify_redis_failed(ngx_http_classify_redis_t *rs,
    const char *fmt, ...)
{
    u_char   *p;
    va_list   args;
    u_char    buf[NGX_MAX_ERROR_STR];

    if (!rs->down) {
        va_start(args, fmt);
        p = ngx_vslprintf(buf, buf + sizeof(buf), fmt, args);
        va_end(args);

        ngx_log_error(NGX_LOG_ERR, rs->log, 0,
                      "classify_redis \"%V\": %*s, reconnecting",
                      &rs->name, p - buf, buf);
        rs->down = 1;
    }

    if (rs->conn.ac) {
        redisAsyncFree(rs->conn.ac);
    }
}


/* the handshake is done: what waited goes out, stores first */

static void
ngx_http_classify_redis_ready(ngx_http_classify_redis_t *rs)
{
    ngx_queue_t                      *q;
    ngx_http_classify_redis_op_t     *op;
    ngx_http_classify_redis_store_t  *st;

    ngx_http_classify_redis_set_state(rs, NGX_HTTP_CLASSIFY_REDIS_READY);

    rs->backoff = NGX_HTTP_CLASSIFY_BACKOFF_MIN;
    rs->slow = 0;
    rs->unknown = 0;

    if (rs->sentinel) {
        ngx_http_classify_redis_master_ready(rs);
    }

    for (q = ngx_queue_head(&rs->stores);
         q != ngx_queue_sentinel(&rs->stores);
         q = ngx_queue_next(q))
    {
        st = ngx_queue_data(q, ngx_http_classify_redis_store_t, queue);

        if (ngx_http_classify_redis_send_store(rs, st) != NGX_OK) {
            return;
        }

        rs->resent++;
    }

    if (rs->down) {
        ngx_log_error(NGX_LOG_NOTICE, rs->log, 0,
                      "classify_redis \"%V\": connected again; "
                      "%ui context store(s) sent after the outage, "
                      "%ui lost meanwhile",
                      &rs->name, rs->resent, rs->lost);
        rs->down = 0;
    }

    rs->resent = 0;
    rs->lost = 0;
    rs->lost_logged = 0;

    while (!ngx_queue_empty(&rs->waiting) && rs->conn.ac) {
        q = ngx_queue_head(&rs->waiting);
        op = ngx_queue_data(q, ngx_http_classify_redis_op_t, queue);

        ngx_queue_remove(q);
        op->waiting = 0;

        if (ngx_http_classify_redis_send_read(op) != NGX_OK) {
            ngx_http_classify_redis_finish(op, NGX_DECLINED);
        }
    }
}


/*
 * The master is known to be one: another than the last one is a failover
 * followed, said by each worker, and counted once for all of them in the
 * metrics zone.
 */

static void
ngx_http_classify_redis_master_ready(ngx_http_classify_redis_t *rs)
{
    if (rs->last.len
        && (rs->last.len != rs->addr.len
            || ngx_strncmp(rs->last.data, rs->addr.data, rs->addr.len) != 0))
    {
        ngx_log_error(NGX_LOG_NOTICE, rs->log, 0,
                      "classify_redis_sentinel \"%V\": the master is now "
                      "%V, was %V", &rs->master, &rs->addr, &rs->last);
    }

    ngx_memcpy(rs->last.data, rs->addr.data, rs->addr.len);
    rs->last.len = rs->addr.len;

    ngx_http_classify_metrics_master(rs->metrics, &rs->addr);
}


/*
 * Redis answered nothing at all for twice "timeout" while commands wait:
 * it is stalled (stopped, or the path black-holed).  Twice, so that one
 * request that gives up at its own deadline never costs the others the
 * connection; a reply in between moves the deadline (rs->progress).
 */

static void
ngx_http_classify_redis_stall_handler(ngx_event_t *ev)
{
    ngx_msec_int_t              left;
    ngx_http_classify_redis_t  *rs = ev->data;

    left = (ngx_msec_int_t) (rs->progress + 2 * rs->timeout
                             - ngx_current_msec);

    if (left > 0) {
        ngx_add_timer(&rs->stall, (ngx_msec_t) left);
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, rs->log, 0,
                   "classify_redis \"%V\": %ui command(s) without a reply",
                   &rs->name, rs->outstanding);

    ngx_http_classify_redis_failed(rs, "no reply in %Mms",
                                   (ngx_msec_t) (ngx_current_msec
                                                 - rs->progress));
}


/* every command goes out here: the stall timer watches what it awaits */

static ngx_int_t
ngx_http_classify_redis_command(ngx_http_classify_redis_t *rs,
    redisCallbackFn *fn, void *data, int argc, const char **argv,
    const size_t *argvlen)
{
    if (rs->conn.ac == NULL
        || redisAsyncCommandArgv(rs->conn.ac, fn, data, argc, argv, argvlen)
           != REDIS_OK)
    {
        return NGX_ERROR;
    }

    if (rs->outstanding++ == 0) {
        rs->progress = ngx_current_msec;

        if (!rs->stall.timer_set) {
            ngx_add_timer(&rs->stall, 2 * rs->timeout);
        }
    }

    return NGX_OK;
}


static void
ngx_http_classify_redis_answered(ngx_http_classify_redis_t *rs)
{
    rs->progress = ngx_current_msec;

    if (rs->outstanding && --rs->outstanding == 0 && rs->stall.timer_set) {
        ngx_del_timer(&rs->stall);
    }
}


/*
 * The newest n elements of a list as an LRANGE/LTRIM range: the tail of
 * an RPUSH list, the head of an LPUSH one.  p has 2 * NGX_INT_T_LEN + 2.
 */

static u_char *
ngx_http_classify_redis_range(u_char *p, ngx_uint_t order, ngx_uint_t n,
    ngx_str_t *start, ngx_str_t *stop)
{
    start->data = p;

    if (order == NGX_HTTP_CLASSIFY_ORDER_RPUSH) {
        p = ngx_sprintf(p, "-%ui", n);
        start->len = p - start->data;
        stop->data = p;
        p = ngx_sprintf(p, "-1");

    } else {
        p = ngx_sprintf(p, "0");
        start->len = p - start->data;
        stop->data = p;
        p = ngx_sprintf(p, "%ui", n - 1);
    }

    stop->len = p - stop->data;

    return p;
}


/*
 * A read of the newest n elements of key within list->max_size bytes.
 * Returns the op, whose handler runs later in every case; NULL when out of
 * memory.
 */

ngx_http_classify_redis_op_t *
ngx_http_classify_redis_fetch(ngx_http_classify_redis_t *rs, ngx_str_t *key,
    ngx_uint_t n, ngx_http_classify_redis_list_t *list, ngx_array_t *messages,
    ngx_http_classify_redis_handler_pt handler, void *data)
{
    ngx_log_t                     *log;
    ngx_http_classify_redis_op_t  *op;

    log = messages->pool->log;

    op = ngx_alloc(sizeof(ngx_http_classify_redis_op_t) + key->len, log);
    if (op == NULL) {
        return NULL;
    }

    ngx_memzero(op, sizeof(ngx_http_classify_redis_op_t));

    op->redis = rs;
    op->handler = handler;
    op->data = data;
    op->messages = messages;
    op->log = log;
    op->key.data = (u_char *) op + sizeof(ngx_http_classify_redis_op_t);
    op->key.len = key->len;
    ngx_memcpy(op->key.data, key->data, key->len);
    op->count = n;
    op->order = list->order;
    op->max_size = list->max_size;

    op->done.handler = ngx_http_classify_redis_done;
    op->done.data = op;
    op->done.log = log;

    op->timer.handler = ngx_http_classify_redis_read_timeout;
    op->timer.data = op;
    op->timer.log = log;

    switch (rs->state) {

    case NGX_HTTP_CLASSIFY_REDIS_READY:
        if (ngx_http_classify_redis_send_read(op) != NGX_OK) {
            ngx_http_classify_redis_finish(op, NGX_DECLINED);
            return op;
        }

        break;

    case NGX_HTTP_CLASSIFY_REDIS_DOWN:
        /* the outage itself is logged once, not per request */
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, log, 0,
                       "classify_redis \"%V\" is down", &rs->name);
        ngx_http_classify_redis_finish(op, NGX_DECLINED);
        return op;

    default:
        /* sent once connected; the read's deadline bounds the wait */
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, log, 0,
                       "classify_redis \"%V\": reading \"%V\" once connected",
                       &rs->name, &op->key);
        ngx_queue_insert_tail(&rs->waiting, &op->queue);
        op->waiting = 1;
        break;
    }

    ngx_add_timer(&op->timer, rs->timeout);

    return op;
}


static ngx_int_t
ngx_http_classify_redis_send_read(ngx_http_classify_redis_op_t *op)
{
    int                         argc;
    u_char                     *p, num[2 * NGX_INT_T_LEN + 2];
    size_t                      argvlen[7];
    ngx_str_t                   start, stop;
    const char                 *argv[7];
    ngx_http_classify_redis_t  *rs;

    rs = op->redis;

    if (op->read == NGX_HTTP_CLASSIFY_REDIS_EVALSHA && !rs->scripting) {
        op->read = NGX_HTTP_CLASSIFY_REDIS_LRANGE;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, op->log, 0,
                   "classify_redis \"%V\": reading \"%V\" (%s)",
                   &rs->name, &op->key,
                   op->read == NGX_HTTP_CLASSIFY_REDIS_EVALSHA ? "evalsha"
                   : op->read == NGX_HTTP_CLASSIFY_REDIS_EVAL ? "eval"
                   : "lrange");

    if (op->read == NGX_HTTP_CLASSIFY_REDIS_LRANGE) {
        (void) ngx_http_classify_redis_range(num, op->order, op->count,
                                             &start, &stop);
        argv[0] = "LRANGE";
        argvlen[0] = 6;
        argv[1] = (char *) op->key.data;
        argvlen[1] = op->key.len;
        argv[2] = (char *) start.data;
        argvlen[2] = start.len;
        argv[3] = (char *) stop.data;
        argvlen[3] = stop.len;
        argc = 4;

        goto send;
    }

    if (op->read == NGX_HTTP_CLASSIFY_REDIS_EVALSHA) {
        argv[0] = "EVALSHA";
        argvlen[0] = 7;
        argv[1] = (char *) rs->sha;
        argvlen[1] = sizeof(rs->sha);

    } else {
        argv[0] = "EVAL";
        argvlen[0] = 4;
        argv[1] = ngx_http_classify_redis_script;
        argvlen[1] = sizeof(ngx_http_classify_redis_script) - 1;
    }

    argv[2] = "1";
    argvlen[2] = 1;
    argv[3] = (char *) op->key.data;
    argvlen[3] = op->key.len;

    /* ARGV: how many, how many bytes, from the tail */

    p = ngx_sprintf(num, "%ui", op->count);
    argv[4] = (char *) num;
    argvlen[4] = p - num;
    argv[5] = (char *) p;
    argvlen[5] = ngx_sprintf(p, "%uz", op->max_size) - p;
    argv[6] = op->order == NGX_HTTP_CLASSIFY_ORDER_RPUSH ? "1" : "0";
    argvlen[6] = 1;
    argc = 7;

send:

    if (ngx_http_classify_redis_command(rs,
                                        ngx_http_classify_redis_read_reply, op,
                                        argc, argv, argvlen)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    op->sent = 1;

    return NGX_OK;
}


static void
ngx_http_classify_redis_read_reply(redisAsyncContext *ac, void *reply,
    void *data)
{
    ngx_http_classify_redis_op_t  *op = data;

    ngx_str_t                   err;
    redisReply                 *rr;
    ngx_http_classify_redis_t  *rs;

    rr = reply;
    rs = op->redis;

    op->sent = 0;

    if (rr == NULL) {
        /* the connection went; its loss is logged once by the cleanup */
        ngx_http_classify_redis_finish(op, NGX_DECLINED);
        ngx_http_classify_redis_release(op);
        return;
    }

    ngx_http_classify_redis_answered(rs);

    if (op->finished || op->handler == NULL) {
        /* too late: the read timed out, or the request went away */
        ngx_http_classify_redis_release(op);
        return;
    }

    if (rr->type == REDIS_REPLY_ERROR) {
        if (ngx_http_classify_redis_readonly(rs, rr)) {
            ngx_http_classify_redis_finish(op, NGX_DECLINED);
            return;
        }

        if (ngx_http_classify_redis_read_again(op, rr) == NGX_OK) {
            return;
        }

        err.data = (u_char *) rr->str;
        err.len = rr->len;

        ngx_log_error(NGX_LOG_ERR, op->log, 0,
                      "classify_redis \"%V\": reading \"%V\" failed: %V",
                      &rs->name, &op->key, &err);

        ngx_http_classify_redis_finish(op, NGX_DECLINED);
        return;
    }

    if (rr->type != REDIS_REPLY_ARRAY) {
        ngx_log_error(NGX_LOG_ERR, op->log, 0,
                      "classify_redis \"%V\": reading \"%V\" failed: "
                      "not a list", &rs->name, &op->key);
        ngx_http_classify_redis_finish(op, NGX_DECLINED);
        return;
    }

    if (rs->slow) {
        ngx_log_error(NGX_LOG_NOTICE, op->log, 0,
                      "classify_redis \"%V\": reads answered in time again",
                      &rs->name);
        rs->slow = 0;
    }

    ngx_http_classify_redis_finish(op, ngx_http_classify_redis_parse(op, rr));
}


/*
 * A script the server lost (NOSCRIPT: restarted, SCRIPT FLUSH) is sent
 * once in full, which also caches it again; scripting refused (NOPERM, a
 * renamed command) falls back to LRANGE from now on.  NGX_OK: sent again.
 */

static ngx_int_t
ngx_http_classify_redis_read_again(ngx_http_classify_redis_op_t *op,
    redisReply *rr)
{
    ngx_http_classify_redis_t  *rs;

    rs = op->redis;

    if (op->read == NGX_HTTP_CLASSIFY_REDIS_LRANGE) {
        return NGX_DECLINED;
    }

    if (op->read == NGX_HTTP_CLASSIFY_REDIS_EVALSHA
        && ngx_strncmp(rr->str, "NOSCRIPT", 8) == 0)
    {
        op->read = NGX_HTTP_CLASSIFY_REDIS_EVAL;

    } else if (ngx_http_classify_redis_refused(rr->str)) {
        if (rs->scripting) {
            ngx_log_error(NGX_LOG_WARN, rs->log, 0,
                          "classify_redis \"%V\": scripts refused (%s); "
                          "context reads use LRANGE, and "
                          "classify_context_max_size is applied to its "
                          "reply", &rs->name, rr->str);
            rs->scripting = 0;
        }

        op->read = NGX_HTTP_CLASSIFY_REDIS_LRANGE;

    } else {
        return NGX_DECLINED;
    }

    return ngx_http_classify_redis_send_read(op);
}


/* a command refused by ACL (NOPERM), renamed away or unknown to a proxy */

static ngx_uint_t
ngx_http_classify_redis_refused(const char *err)
{
    return ngx_strncmp(err, "NOPERM", 6) == 0
           || ngx_strncmp(err, "ERR unknown command", 19) == 0;
}


/*
 * The reply into the caller's pool, oldest first: the newest elements
 * within the byte budget (the script already kept to it and answers newest
 * first; an LRANGE reply is in list order and is cut here).
 */

static ngx_int_t
ngx_http_classify_redis_parse(ngx_http_classify_redis_op_t *op,
    redisReply *rr)
{
    size_t                    i, k, n, size;
    ngx_uint_t                newest_first, skipped;
    redisReply               *e;
    ngx_http_classify_msg_t  *msg, tmp;

    newest_first = op->read != NGX_HTTP_CLASSIFY_REDIS_LRANGE
                   || op->order == NGX_HTTP_CLASSIFY_ORDER_LPUSH;

    size = 0;

    for (n = 0; n < rr->elements; n++) {
        e = rr->element[newest_first ? n : rr->elements - 1 - n];

        size += e->len;

        if (size > op->max_size) {
            break;
        }
    }

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, op->log, 0,
                   "classify_redis \"%V\": \"%V\": %uz element(s), "
                   "%uz within the budget", &op->redis->name, &op->key,
                   rr->elements, n);

    skipped = 0;

    for (k = n; k-- > 0; /* void */) {
        i = newest_first ? k : rr->elements - 1 - k;
        e = rr->element[i];

        if (e->type != REDIS_REPLY_STRING
            || ngx_http_classify_parse_message(op->messages->pool,
                                               (u_char *) e->str, e->len,
                                               &tmp)
               != NGX_OK)
        {
            skipped++;
            continue;
        }

        msg = ngx_array_push(op->messages);
        if (msg == NULL) {
            return NGX_ERROR;
        }

        *msg = tmp;
    }

    if (skipped) {
        ngx_log_error(NGX_LOG_WARN, op->log, 0,
                      "classify: skipped %ui element(s) of \"%V\" that are "
                      "not {\"role\",\"content\"} JSON", skipped, &op->key);
    }

    return NGX_OK;
}


/* this read's own deadline: only this read lets go */

static void
ngx_http_classify_redis_read_timeout(ngx_event_t *ev)
{
    ngx_http_classify_redis_op_t  *op = ev->data;

    ngx_http_classify_redis_t  *rs;

    rs = op->redis;

    if (!rs->slow && !rs->down) {
        ngx_log_error(NGX_LOG_ERR, op->log, 0,
                      "classify_redis \"%V\": reading \"%V\" timed out",
                      &rs->name, &op->key);
        rs->slow = 1;

    } else {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, op->log, 0,
                       "classify_redis \"%V\": reading \"%V\" timed out",
                       &rs->name, &op->key);
    }

    ngx_http_classify_redis_finish(op, NGX_DECLINED);
}


/* the result is known: the handler runs from a posted event */

static void
ngx_http_classify_redis_finish(ngx_http_classify_redis_op_t *op, ngx_int_t rc)
{
    if (op->finished) {
        return;
    }

    op->finished = 1;
    op->rc = rc;

    if (op->timer.timer_set) {
        ngx_del_timer(&op->timer);
    }

    if (op->waiting) {
        ngx_queue_remove(&op->queue);
        op->waiting = 0;
    }

    if (op->handler) {
        ngx_post_event(&op->done, &ngx_posted_events);
    }
}


static void
ngx_http_classify_redis_done(ngx_event_t *ev)
{
    ngx_http_classify_redis_op_t  *op = ev->data;

    void                                *data;
    ngx_int_t                            rc;
    ngx_http_classify_redis_handler_pt   handler;

    handler = op->handler;
    data = op->data;
    rc = op->rc;

    op->handler = NULL;
    ngx_http_classify_redis_release(op);

    handler(data, rc);
}


/* the caller lets go: a late reply only frees the op */

void
ngx_http_classify_redis_cancel(ngx_http_classify_redis_op_t *op)
{
    op->handler = NULL;
    op->finished = 1;

    if (op->timer.timer_set) {
        ngx_del_timer(&op->timer);
    }

    if (op->done.posted) {
        ngx_delete_posted_event(&op->done);
    }

    if (op->waiting) {
        ngx_queue_remove(&op->queue);
        op->waiting = 0;
    }

    ngx_http_classify_redis_release(op);
}


static void
ngx_http_classify_redis_release(ngx_http_classify_redis_op_t *op)
{
    if (!op->sent && op->handler == NULL && !op->done.posted) {
        ngx_free(op);
    }
}


/*
 * classify_context_store: the user turn and the answer go to the end of
 * the list (RPUSH, or LPUSH for a newest-first list), which is trimmed to
 * classify_context_max and expires after classify_context_ttl, all in one
 * MULTI/EXEC, so that a list is never left without its expiry.  The store
 * is kept until EXEC is answered and sent again after a reconnect.
 */

void
ngx_http_classify_redis_store(ngx_http_classify_redis_t *rs, ngx_str_t *key,
    ngx_http_classify_redis_list_t *list, ngx_str_t *query, ngx_str_t *answer,
    ngx_pool_t *pool)
{
    u_char                           *p;
    size_t                            size;
    ngx_str_t                         user, assistant, role;
    ngx_http_classify_redis_store_t  *st;

    ngx_str_set(&role, "user");

    if (ngx_http_classify_build_message(pool, &role, query, &user)
        != NGX_OK)
    {
        return;
    }

    ngx_str_set(&role, "assistant");

    if (ngx_http_classify_build_message(pool, &role, answer, &assistant)
        != NGX_OK)
    {
        return;
    }

    size = sizeof(ngx_http_classify_redis_store_t)
           + key->len + user.len + assistant.len;

    if (rs->exiting
        || rs->nstores == NGX_HTTP_CLASSIFY_REDIS_STORES_MAX
        || rs->store_bytes + size > NGX_HTTP_CLASSIFY_REDIS_STORE_BYTES)
    {
        ngx_http_classify_redis_lost(rs, pool->log, key,
                                     rs->exiting ? "the worker is exiting"
                                     : "the queue of stores is full");
        return;
    }

    st = ngx_alloc(size, pool->log);
    if (st == NULL) {
        ngx_http_classify_redis_lost(rs, pool->log, key, "out of memory");
        return;
    }

    ngx_memzero(st, sizeof(ngx_http_classify_redis_store_t));

    p = (u_char *) st + sizeof(ngx_http_classify_redis_store_t);

    st->key.data = p;
    st->key.len = key->len;
    p = ngx_cpymem(p, key->data, key->len);
    st->user.data = p;
    st->user.len = user.len;
    p = ngx_cpymem(p, user.data, user.len);
    st->assistant.data = p;
    st->assistant.len = assistant.len;
    ngx_memcpy(p, assistant.data, assistant.len);

    st->list = *list;
    st->size = size;

    ngx_queue_insert_tail(&rs->stores, &st->queue);
    rs->nstores++;
    rs->store_bytes += size;

    if (rs->state == NGX_HTTP_CLASSIFY_REDIS_READY) {
        (void) ngx_http_classify_redis_send_store(rs, st);

    } else {
        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                       "classify_redis \"%V\": store of \"%V\" queued, "
                       "%ui waiting", &rs->name, key, rs->nstores);
    }
}


static ngx_int_t
ngx_http_classify_redis_send_store(ngx_http_classify_redis_t *rs,
    ngx_http_classify_redis_store_t *st)
{
    u_char       num[2 * NGX_INT_T_LEN + 2];
    size_t       argvlen[4];
    ngx_str_t    start, stop;
    const char  *argv[4];

    if (st->sent) {
        return NGX_OK;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, rs->log, 0,
                   "classify_redis \"%V\": storing \"%V\"",
                   &rs->name, &st->key);

    argv[0] = "MULTI";
    argvlen[0] = 5;

    if (ngx_http_classify_redis_command(rs, ngx_http_classify_redis_queued,
                                        NULL, 1, argv, argvlen)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* LPUSH of user then assistant leaves the assistant newest-first */

    argv[0] = st->list.order == NGX_HTTP_CLASSIFY_ORDER_RPUSH
              ? "RPUSH" : "LPUSH";
    argvlen[0] = 5;
    argv[1] = (char *) st->key.data;
    argvlen[1] = st->key.len;
    argv[2] = (char *) st->user.data;
    argvlen[2] = st->user.len;
    argv[3] = (char *) st->assistant.data;
    argvlen[3] = st->assistant.len;

    if (ngx_http_classify_redis_command(rs, ngx_http_classify_redis_queued,
                                        NULL, 4, argv, argvlen)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    (void) ngx_http_classify_redis_range(num, st->list.order, st->list.max,
                                         &start, &stop);
    argv[0] = "LTRIM";
    argv[2] = (char *) start.data;
    argvlen[2] = start.len;
    argv[3] = (char *) stop.data;
    argvlen[3] = stop.len;

    if (ngx_http_classify_redis_command(rs, ngx_http_classify_redis_queued,
                                        NULL, 4, argv, argvlen)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    argv[0] = "EXPIRE";
    argvlen[0] = 6;
    argv[2] = (char *) num;
    argvlen[2] = ngx_sprintf(num, "%M", st->list.ttl / 1000) - num;

    if (ngx_http_classify_redis_command(rs, ngx_http_classify_redis_queued,
                                        NULL, 3, argv, argvlen)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    argv[0] = "EXEC";
    argvlen[0] = 4;

    if (ngx_http_classify_redis_command(rs, ngx_http_classify_redis_stored,
                                        st, 1, argv, argvlen)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    st->sent = 1;

    return NGX_OK;
}


/* MULTI and the +QUEUED of a store: EXEC's reply says how it went */

static void
ngx_http_classify_redis_queued(redisAsyncContext *ac, void *reply,
    void *data)
{
    if (reply) {
        ngx_http_classify_redis_answered(ac->data);

        /* the rest of the transaction comes back NULL: the store is kept */
        (void) ngx_http_classify_redis_readonly(ac->data, reply);
    }
}


static void
ngx_http_classify_redis_stored(redisAsyncContext *ac, void *reply,
    void *data)
{
    ngx_http_classify_redis_store_t  *st = data;

    size_t                      i;
    redisReply                 *rr, *e;
    ngx_http_classify_redis_t  *rs = ac->data;

    rr = reply;
    st->sent = 0;

    if (rr == NULL) {
        /* the connection went: the store stays queued, sent again */
        return;
    }

    ngx_http_classify_redis_answered(rs);

    e = rr;

    if (rr->type == REDIS_REPLY_ARRAY) {
        for (i = 0; i < rr->elements; i++) {
            if (rr->element[i]->type == REDIS_REPLY_ERROR) {
                e = rr->element[i];
                break;
            }
        }
    }

    if (ngx_http_classify_redis_readonly(rs, e)) {
        /* kept, and sent to the master the Sentinels give next */
        return;
    }

    if (e->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, rs->log, 0,
                      "classify_redis \"%V\": storing \"%V\" failed: %s",
                      &rs->name, &st->key, e->str);
        ngx_http_classify_metrics_stores_lost(rs->cmcf, 1);

    } else if (rr->type != REDIS_REPLY_ARRAY) {
        ngx_log_error(NGX_LOG_ERR, rs->log, 0,
                      "classify_redis \"%V\": storing \"%V\" failed: "
                      "the transaction was not run", &rs->name, &st->key);
        ngx_http_classify_metrics_stores_lost(rs->cmcf, 1);

    } else {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, rs->log, 0,
                       "classify_redis \"%V\": stored \"%V\"",
                       &rs->name, &st->key);
    }

    ngx_http_classify_redis_forget(rs, st);
}


static void
ngx_http_classify_redis_forget(ngx_http_classify_redis_t *rs,
    ngx_http_classify_redis_store_t *st)
{
    ngx_queue_remove(&st->queue);
    rs->nstores--;
    rs->store_bytes -= st->size;

    if (rs->nstores == 0) {
        rs->lost_logged = 0;
    }

    ngx_free(st);
}


/* a store that cannot be kept: counted always, logged once per outage */

static void
ngx_http_classify_redis_lost(ngx_http_classify_redis_t *rs, ngx_log_t *log,
    ngx_str_t *key, const char *why)
{
    ngx_http_classify_metrics_stores_lost(rs->cmcf, 1);
    rs->lost++;

    if (rs->lost_logged) {
        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, log, 0,
                       "classify_redis \"%V\": context of \"%V\" lost: %s",
                       &rs->name, key, why);
        return;
    }

    ngx_log_error(NGX_LOG_ERR, log, 0,
                  "classify_redis \"%V\": context of \"%V\" lost: %s "
                  "(%ui stores, %uz bytes waiting); further losses are "
                  "counted in classify_redis_stores_lost_total",
                  &rs->name, key, why, rs->nstores, rs->store_bytes);
    rs->lost_logged = 1;
}


/*
 * hiredis freed the connection (an error, a disconnect, our own free),
 * after every pending callback ran with NULL: reads have failed, stores
 * are queued again; reads that waited for the connection fail, and a
 * reconnect is scheduled.
 */

static void
ngx_http_classify_redis_closed(ngx_http_classify_hiredis_t *h,
    const char *err)
{
    ngx_http_classify_redis_t  *rs = h->data;

    if (!rs->down && !rs->exiting) {
        if (err) {
            ngx_log_error(NGX_LOG_ERR, rs->log, 0,
                          "classify_redis \"%V\": connection lost: %s",
                          &rs->name, err);

        } else {
            ngx_log_error(NGX_LOG_ERR, rs->log, 0,
                          "classify_redis \"%V\": connection closed",
                          &rs->name);
        }

        rs->down = 1;
    }

    if (rs->connect_timer.timer_set) {
        ngx_del_timer(&rs->connect_timer);
    }

    if (rs->stall.timer_set) {
        ngx_del_timer(&rs->stall);
    }

    rs->outstanding = 0;

    ngx_http_classify_redis_down(rs);
}


/* no connection: reads that waited for one fail, and a retry comes */

static void
ngx_http_classify_redis_down(ngx_http_classify_redis_t *rs)
{
    ngx_queue_t                   *q;
    ngx_http_classify_redis_op_t  *op;

    ngx_http_classify_redis_set_state(rs, NGX_HTTP_CLASSIFY_REDIS_DOWN);

    while (!ngx_queue_empty(&rs->waiting)) {
        q = ngx_queue_head(&rs->waiting);
        op = ngx_queue_data(q, ngx_http_classify_redis_op_t, queue);
        ngx_http_classify_redis_finish(op, NGX_DECLINED);
    }

    ngx_http_classify_redis_retry(rs);
}


/*
 * ngx_http_classify_module: where a Redis master is, asked of Sentinels.
 *
 * An ask is one short hiredis connection to one Sentinel at a time:
 * AUTH (with sentinel_password=), then SENTINEL get-master-addr-by-name;
 * a refused connection, an error, an unknown master, an answer that is
 * not an IP address, or no answer within connect_timeout + timeout moves
 * on to the next Sentinel.  Each step's result is taken up from a posted
 * event, never from inside hiredis.
 *
 * The subscription is one hiredis connection per worker, to one Sentinel,
 * in subscribed mode: nothing but +switch-master messages arrive on it.
 * hiredis 0.14 mishandles replies to PING in subscribed mode, so the
 * connection is not probed: a Sentinel that goes away is noticed by its
 * socket, and the next one is subscribed to.
 */


#include "ngx_http_classify_sentinel.h"
#include "ngx_http_classify_hiredis.h"




/* an address a Sentinel gave, in buffers of its own */

typedef struct {
    ngx_http_classify_sentinel_addr_t    addr;
    u_char                               host[NGX_INET6_ADDRSTRLEN + 1];
    u_char                               name[NGX_INET6_ADDRSTRLEN
                                              + sizeof("[]:65535")];
} ngx_http_classify_sentinel_ip_t;


struct ngx_http_classify_sentinel_s {
    ngx_str_t                                master;
    ngx_array_t                              addrs;    /* of sentinel_addr_t */
    ngx_str_t                                password;
    ngx_msec_t                               connect_timeout;
    ngx_msec_t                               timeout;

    ngx_log_t                               *log;

    /* the ask */
    ngx_http_classify_hiredis_t              ask;
    ngx_event_t                              ask_timer;  /* one Sentinel */
    ngx_event_t                              ask_step;   /* posted */
    ngx_http_classify_sentinel_found_pt      found;      /* NULL: no ask */
    void                                    *found_data;
    ngx_uint_t                               current;    /* answered last */
    ngx_uint_t                               asking;
    ngx_uint_t                               tried;
    ngx_http_classify_sentinel_ip_t          answer;
    u_char                                   why[512];
    size_t                                   why_len;

    /* the subscription */
    ngx_http_classify_hiredis_t              sub;
    ngx_event_t                              sub_retry;
    ngx_msec_t                               sub_backoff;
    ngx_uint_t                               sub_index;
    ngx_http_classify_sentinel_switched_pt   switched;
    void                                    *switched_data;
    ngx_http_classify_sentinel_ip_t          switched_to;

    unsigned                                 answered:1;
    unsigned                                 sub_lost:1;  /* logged */
    unsigned                                 exiting:1;
};


static ngx_int_t ngx_http_classify_sentinel_parse_addr(
    ngx_http_classify_sentinel_ip_t *ip, u_char *host, size_t hlen,
    u_char *port, size_t plen);
static void ngx_http_classify_sentinel_try(ngx_http_classify_sentinel_t *sn);
static void ngx_http_classify_sentinel_ask_auth(redisAsyncContext *ac,
    void *reply, void *data);
static void ngx_http_classify_sentinel_ask_reply(redisAsyncContext *ac,
    void *reply, void *data);
static void ngx_http_classify_sentinel_ask_timeout(ngx_event_t *ev);
static void ngx_http_classify_sentinel_ask_closed(
    ngx_http_classify_hiredis_t *h, const char *err);
static void ngx_http_classify_sentinel_ask_next(ngx_event_t *ev);
static void ngx_cdecl ngx_http_classify_sentinel_why(
    ngx_http_classify_sentinel_t *sn, const char *fmt, ...);
static ngx_int_t ngx_http_classify_sentinel_auth(
    ngx_http_classify_sentinel_t *sn, ngx_http_classify_hiredis_t *h,
    redisCallbackFn *fn);

static void ngx_http_classify_sentinel_subscribe(
    ngx_http_classify_sentinel_t *sn);
static void ngx_http_classify_sentinel_sub_auth(redisAsyncContext *ac,
    void *reply, void *data);
static void ngx_http_classify_sentinel_sub_message(redisAsyncContext *ac,
    void *reply, void *data);
static void ngx_http_classify_sentinel_switch(
    ngx_http_classify_sentinel_t *sn, redisReply *msg);
static void ngx_http_classify_sentinel_sub_closed(
    ngx_http_classify_hiredis_t *h, const char *err);
static void ngx_http_classify_sentinel_sub_again(
    ngx_http_classify_sentinel_t *sn);
static void ngx_http_classify_sentinel_sub_handler(ngx_event_t *ev);


#define ngx_http_classify_sentinel_at(sn, i)                                  \
    (&((ngx_http_classify_sentinel_addr_t *) (sn)->addrs.elts)[i])


/* configuration: the master's name, checked as Redis checks it */

ngx_http_classify_sentinel_t *
ngx_http_classify_sentinel_create(ngx_conf_t *cf, ngx_str_t *master,
    ngx_str_t *password, ngx_msec_t connect_timeout, ngx_msec_t timeout)
{
    u_char                         c;
    ngx_uint_t                     i;
    ngx_http_classify_sentinel_t  *sn;

    for (i = 0; i < master->len; i++) {
        c = master->data[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_'))
        {
            break;
        }
    }

    if (master->len == 0 || i < master->len
        || master->len > NGX_HTTP_CLASSIFY_SENTINEL_NAME_MAX)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid master name \"%V\" in "
                           "\"classify_redis_sentinel\": at most %d of "
                           "A-z, 0-9 and \".-_\"", master,
                           NGX_HTTP_CLASSIFY_SENTINEL_NAME_MAX);
        return NULL;
    }

    sn = ngx_pcalloc(cf->pool, sizeof(ngx_http_classify_sentinel_t));
    if (sn == NULL) {
        return NULL;
    }

    if (ngx_array_init(&sn->addrs, cf->pool, 3,
                       sizeof(ngx_http_classify_sentinel_addr_t))
        != NGX_OK)
    {
        return NULL;
    }

    sn->master = *master;
    sn->password = *password;
    sn->connect_timeout = connect_timeout;
    sn->timeout = timeout;

    return sn;
}


/*
 * One Sentinel's host:port (26379 by default), resolved here, at
 * configuration time: every address of a name is a Sentinel.
 */

char *
ngx_http_classify_sentinel_add(ngx_conf_t *cf,
    ngx_http_classify_sentinel_t *sn, ngx_str_t *value)
{
    u_char                             *p;
    ngx_url_t                           u;
    ngx_uint_t                          i;
    ngx_http_classify_sentinel_addr_t  *a;

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = *value;
    u.default_port = 26379;

    if (ngx_strncmp(value->data, "unix:", 5) == 0
        || ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid Sentinel address \"%V\" in "
                           "\"classify_redis_sentinel\"%s%s",
                           value, u.err ? ": " : "", u.err ? u.err : "");
        return NGX_CONF_ERROR;
    }

    for (i = 0; i < u.naddrs; i++) {
        a = ngx_array_push(&sn->addrs);
        if (a == NULL) {
            return NGX_CONF_ERROR;
        }

        p = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
        if (p == NULL) {
            return NGX_CONF_ERROR;
        }

        a->host.data = p;
        a->host.len = ngx_sock_ntop(u.addrs[i].sockaddr, u.addrs[i].socklen,
                                    p, NGX_SOCKADDR_STRLEN, 0);
        p[a->host.len] = '\0';
        a->port = u.port;

        a->name.data = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN);
        if (a->name.data == NULL) {
            return NGX_CONF_ERROR;
        }

        a->name.len = ngx_sock_ntop(u.addrs[i].sockaddr, u.addrs[i].socklen,
                                    a->name.data, NGX_SOCKADDR_STRLEN, 1);
    }

    return NGX_CONF_OK;
}


void
ngx_http_classify_sentinel_init(ngx_http_classify_sentinel_t *sn,
    ngx_log_t *log, ngx_http_classify_sentinel_switched_pt switched,
    void *data)
{
    sn->log = log;
    sn->switched = switched;
    sn->switched_data = data;

    sn->ask.log = log;
    sn->ask.data = sn;
    sn->ask.closed = ngx_http_classify_sentinel_ask_closed;

    sn->ask_timer.handler = ngx_http_classify_sentinel_ask_timeout;
    sn->ask_timer.data = sn;
    sn->ask_timer.log = log;
    sn->ask_timer.cancelable = 1;

    sn->ask_step.handler = ngx_http_classify_sentinel_ask_next;
    sn->ask_step.data = sn;
    sn->ask_step.log = log;

    sn->sub.log = log;
    sn->sub.data = sn;
    sn->sub.closed = ngx_http_classify_sentinel_sub_closed;

    sn->sub_retry.handler = ngx_http_classify_sentinel_sub_handler;
    sn->sub_retry.data = sn;
    sn->sub_retry.log = log;
    sn->sub_retry.cancelable = 1;

    sn->sub_backoff = NGX_HTTP_CLASSIFY_BACKOFF_MIN;

    ngx_http_classify_sentinel_subscribe(sn);
}


/* the worker exits: every callback still pending runs now, with NULL */

void
ngx_http_classify_sentinel_exit(ngx_http_classify_sentinel_t *sn)
{
    sn->exiting = 1;

    ngx_http_classify_sentinel_cancel(sn);

    if (sn->sub_retry.timer_set) {
        ngx_del_timer(&sn->sub_retry);
    }

    if (sn->sub.ac) {
        redisAsyncFree(sn->sub.ac);
    }
}


/* a master name and an address of the master, as a Sentinel sends them */

static ngx_int_t
ngx_http_classify_sentinel_parse_addr(ngx_http_classify_sentinel_ip_t *ip,
    u_char *host, size_t hlen, u_char *port, size_t plen)
{
    u_char     *p;
    ngx_int_t   n;
#if (NGX_HAVE_INET6)
    u_char      a6[16];
#endif

    if (hlen == 0 || hlen > NGX_INET6_ADDRSTRLEN) {
        return NGX_DECLINED;
    }

    if (ngx_inet_addr(host, hlen) == INADDR_NONE
#if (NGX_HAVE_INET6)
        && ngx_inet6_addr(host, hlen, a6) != NGX_OK
#endif
       )
    {
        return NGX_DECLINED;
    }

    n = ngx_atoi(port, plen);
    if (n < 1 || n > 65535) {
        return NGX_DECLINED;
    }

    p = ngx_cpymem(ip->host, host, hlen);
    *p = '\0';

    ip->addr.host.data = ip->host;
    ip->addr.host.len = hlen;
    ip->addr.port = n;

    ip->addr.name.data = ip->name;
    ip->addr.name.len = ngx_sprintf(ip->name,
                                    ngx_strlchr(host, host + hlen, ':')
                                    ? "[%*s]:%i" : "%*s:%i",
                                    hlen, host, n)
                        - ip->name;

    return NGX_OK;
}


void
ngx_http_classify_sentinel_ask(ngx_http_classify_sentinel_t *sn,
    ngx_http_classify_sentinel_found_pt found, void *data)
{
    if (sn->found || sn->exiting) {
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, sn->log, 0,
                   "classify_redis_sentinel \"%V\": asking the Sentinels",
                   &sn->master);

    sn->found = found;
    sn->found_data = data;
    sn->tried = 0;
    sn->why_len = 0;

    ngx_http_classify_sentinel_try(sn);
}


void
ngx_http_classify_sentinel_cancel(ngx_http_classify_sentinel_t *sn)
{
    sn->found = NULL;

    if (sn->ask_step.posted) {
        ngx_delete_posted_event(&sn->ask_step);
    }

    if (sn->ask_timer.timer_set) {
        ngx_del_timer(&sn->ask_timer);
    }

    if (sn->ask.ac) {
        redisAsyncFree(sn->ask.ac);
    }
}


/* the next Sentinel that can be connected to, or the end of the ask */

static void
ngx_http_classify_sentinel_try(ngx_http_classify_sentinel_t *sn)
{
    size_t                              argvlen[3];
    const char                         *argv[3];
    ngx_http_classify_sentinel_addr_t  *a;

    while (sn->tried < sn->addrs.nelts) {
        sn->asking = (sn->current + sn->tried++) % sn->addrs.nelts;
        sn->answered = 0;

        a = ngx_http_classify_sentinel_at(sn, sn->asking);

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, sn->log, 0,
                       "classify_redis_sentinel \"%V\": asking %V",
                       &sn->master, &a->name);

        if (ngx_http_classify_hiredis_connect(&sn->ask,
                                              (char *) a->host.data,
                                              (int) a->port, NULL)
            != NGX_OK)
        {
            ngx_http_classify_sentinel_why(sn, "%V: %s", &a->name,
                                           sn->ask.errstr);
            continue;
        }

        sn->ask.ac->data = sn;

        argv[0] = "SENTINEL";
        argvlen[0] = 8;
        argv[1] = "get-master-addr-by-name";
        argvlen[1] = 23;
        argv[2] = (char *) sn->master.data;
        argvlen[2] = sn->master.len;

        /* sent once connected: hiredis keeps them until then */

        if (ngx_http_classify_sentinel_auth(sn, &sn->ask,
                                        ngx_http_classify_sentinel_ask_auth)
               != NGX_OK
            || redisAsyncCommandArgv(sn->ask.ac,
                                     ngx_http_classify_sentinel_ask_reply,
                                     NULL, 3, argv, argvlen)
               != REDIS_OK)
        {
            ngx_http_classify_sentinel_why(sn, "%V: out of memory",
                                           &a->name);
            redisAsyncFree(sn->ask.ac);
            return;
        }

        ngx_add_timer(&sn->ask_timer, sn->connect_timeout + sn->timeout);
        return;
    }

    /* none could be connected to: the end, from a posted event too */

    ngx_post_event(&sn->ask_step, &ngx_posted_events);
}


static ngx_int_t
ngx_http_classify_sentinel_auth(ngx_http_classify_sentinel_t *sn,
    ngx_http_classify_hiredis_t *h, redisCallbackFn *fn)
{
    size_t       argvlen[2];
    const char  *argv[2];

    if (sn->password.len == 0) {
        return NGX_OK;
    }

    argv[0] = "AUTH";
    argvlen[0] = 4;
    argv[1] = (char *) sn->password.data;
    argvlen[1] = sn->password.len;

    if (redisAsyncCommandArgv(h->ac, fn, NULL, 2, argv, argvlen)
        != REDIS_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_classify_sentinel_ask_auth(redisAsyncContext *ac, void *reply,
    void *data)
{
    redisReply                         *rr = reply;
    ngx_http_classify_sentinel_t       *sn = ac->data;
    ngx_http_classify_sentinel_addr_t  *a;

    if (rr == NULL || rr->type != REDIS_REPLY_ERROR) {
        return;
    }

    a = ngx_http_classify_sentinel_at(sn, sn->asking);

    ngx_http_classify_sentinel_why(sn, "%V: AUTH failed: %s", &a->name,
                                   rr->str);

    /* freed once this callback returns; the closed hook goes on */
    redisAsyncFree(ac);
}


static void
ngx_http_classify_sentinel_ask_reply(redisAsyncContext *ac, void *reply,
    void *data)
{
    redisReply                         *rr = reply;
    ngx_http_classify_sentinel_t       *sn = ac->data;
    ngx_http_classify_sentinel_addr_t  *a;

    if (rr == NULL) {
        return;
    }

    a = ngx_http_classify_sentinel_at(sn, sn->asking);

    if (rr->type == REDIS_REPLY_ERROR) {
        ngx_http_classify_sentinel_why(sn, "%V: %s", &a->name, rr->str);

    } else if (rr->type != REDIS_REPLY_ARRAY || rr->elements != 2) {
        ngx_http_classify_sentinel_why(sn, "%V: does not know master \"%V\"",
                                       &a->name, &sn->master);

    } else if (rr->element[0]->type != REDIS_REPLY_STRING
               || rr->element[1]->type != REDIS_REPLY_STRING
               || ngx_http_classify_sentinel_parse_addr(&sn->answer,
                                          (u_char *) rr->element[0]->str,
                                          rr->element[0]->len,
                                          (u_char *) rr->element[1]->str,
                                          rr->element[1]->len)
                  != NGX_OK)
    {
        ngx_http_classify_sentinel_why(sn, "%V: answered \"%*s\" \"%*s\", "
                       "not an IP address and port (a worker resolves no "
                       "names: set the Sentinels' announce-hostnames no)",
                       &a->name,
                       ngx_min(rr->element[0]->len, 64), rr->element[0]->str,
                       ngx_min(rr->element[1]->len, 16), rr->element[1]->str);

    } else {
        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, sn->log, 0,
                       "classify_redis_sentinel \"%V\": %V says the master "
                       "is %V", &sn->master, &a->name, &sn->answer.addr.name);
        sn->answered = 1;
    }

    redisAsyncFree(ac);
}


static void
ngx_http_classify_sentinel_ask_timeout(ngx_event_t *ev)
{
    ngx_http_classify_sentinel_t       *sn = ev->data;
    ngx_http_classify_sentinel_addr_t  *a;

    a = ngx_http_classify_sentinel_at(sn, sn->asking);

    ngx_http_classify_sentinel_why(sn, "%V: no answer in %Mms", &a->name,
                                   sn->connect_timeout + sn->timeout);

    if (sn->ask.ac) {
        redisAsyncFree(sn->ask.ac);
    }
}


/* the Sentinel's connection is gone: its answer is taken up, posted */

static void
ngx_http_classify_sentinel_ask_closed(ngx_http_classify_hiredis_t *h,
    const char *err)
{
    ngx_http_classify_sentinel_t       *sn = h->data;
    ngx_http_classify_sentinel_addr_t  *a;

    if (sn->ask_timer.timer_set) {
        ngx_del_timer(&sn->ask_timer);
    }

    if (sn->found == NULL || sn->exiting) {
        return;
    }

    if (!sn->answered && err) {
        a = ngx_http_classify_sentinel_at(sn, sn->asking);
        ngx_http_classify_sentinel_why(sn, "%V: %s", &a->name, err);
    }

    ngx_post_event(&sn->ask_step, &ngx_posted_events);
}


/* the next Sentinel, or the end of the ask: an address, or why none */

static void
ngx_http_classify_sentinel_ask_next(ngx_event_t *ev)
{
    ngx_http_classify_sentinel_t  *sn = ev->data;

    ngx_str_t                             why;
    ngx_http_classify_sentinel_found_pt   found;

    if (sn->found == NULL) {
        return;
    }

    if (!sn->answered && sn->tried < sn->addrs.nelts) {
        ngx_http_classify_sentinel_try(sn);
        return;
    }

    found = sn->found;
    sn->found = NULL;

    if (!sn->answered) {
        why.data = sn->why;
        why.len = sn->why_len;

        found(sn->found_data, NULL, &why);
        return;
    }

    /* the one that answered is asked first next time */

    sn->current = sn->asking;

    found(sn->found_data, &sn->answer.addr, NULL);
}


/* what each Sentinel answered, for the one line that says it */

static void ngx_cdecl
ngx_http_classify_sentinel_why(ngx_http_classify_sentinel_t *sn,
    const char *fmt, ...)
{
    u_char   *p, *last;
    va_list   args;

    p = sn->why + sn->why_len;
    last = sn->why + sizeof(sn->why);

    if (sn->why_len) {
        p = ngx_slprintf(p, last, "; ");
    }

    va_start(args, fmt);
    p = ngx_vslprintf(p, last, fmt, args);
    va_end(args);

    sn->why_len = p - sn->why;
}


/* SUBSCRIBE +switch-master on the Sentinel at sn->sub_index */

static void
ngx_http_classify_sentinel_subscribe(ngx_http_classify_sentinel_t *sn)
{
    size_t                              argvlen[2];
    const char                         *argv[2];
    ngx_http_classify_sentinel_addr_t  *a;

    if (sn->exiting || ngx_exiting) {
        return;
    }

    a = ngx_http_classify_sentinel_at(sn, sn->sub_index);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, sn->log, 0,
                   "classify_redis_sentinel \"%V\": subscribing on %V",
                   &sn->master, &a->name);

    if (ngx_http_classify_hiredis_connect(&sn->sub, (char *) a->host.data,
                                          (int) a->port, NULL)
        != NGX_OK)
    {
        ngx_http_classify_sentinel_sub_closed(&sn->sub, sn->sub.errstr);
        return;
    }

    sn->sub.ac->data = sn;

    argv[0] = "SUBSCRIBE";
    argvlen[0] = 9;
    argv[1] = "+switch-master";
    argvlen[1] = 14;

    if (ngx_http_classify_sentinel_auth(sn, &sn->sub,
                                        ngx_http_classify_sentinel_sub_auth)
           != NGX_OK
        || redisAsyncCommandArgv(sn->sub.ac,
                                 ngx_http_classify_sentinel_sub_message,
                                 NULL, 2, argv, argvlen)
           != REDIS_OK)
    {
        redisAsyncFree(sn->sub.ac);
    }
}


static void
ngx_http_classify_sentinel_sub_auth(redisAsyncContext *ac, void *reply,
    void *data)
{
    redisReply                         *rr = reply;
    ngx_http_classify_sentinel_t       *sn = ac->data;
    ngx_http_classify_sentinel_addr_t  *a;

    if (rr == NULL || rr->type != REDIS_REPLY_ERROR) {
        return;
    }

    if (!sn->sub_lost) {
        a = ngx_http_classify_sentinel_at(sn, sn->sub_index);

        ngx_log_error(NGX_LOG_WARN, sn->log, 0,
                      "classify_redis_sentinel \"%V\": AUTH failed on "
                      "Sentinel %V: %s", &sn->master, &a->name, rr->str);
    }

    /* said: the closed hook only moves on */
    sn->sub_lost = 1;

    redisAsyncFree(ac);
}


/* ["subscribe", channel, n] once, then ["message", channel, text] */

static void
ngx_http_classify_sentinel_sub_message(redisAsyncContext *ac, void *reply,
    void *data)
{
    redisReply                         *rr = reply;
    ngx_http_classify_sentinel_t       *sn = ac->data;
    ngx_http_classify_sentinel_addr_t  *a;

    if (rr == NULL
        || rr->type != REDIS_REPLY_ARRAY
        || rr->elements != 3
        || rr->element[0]->type != REDIS_REPLY_STRING)
    {
        return;
    }

    if (ngx_strcmp(rr->element[0]->str, "subscribe") == 0) {
        a = ngx_http_classify_sentinel_at(sn, sn->sub_index);

        if (sn->sub_lost) {
            ngx_log_error(NGX_LOG_NOTICE, sn->log, 0,
                          "classify_redis_sentinel \"%V\": subscribed to "
                          "+switch-master on Sentinel %V again",
                          &sn->master, &a->name);
            sn->sub_lost = 0;

        } else {
            ngx_log_debug2(NGX_LOG_DEBUG_HTTP, sn->log, 0,
                           "classify_redis_sentinel \"%V\": subscribed on %V",
                           &sn->master, &a->name);
        }

        sn->sub_backoff = NGX_HTTP_CLASSIFY_BACKOFF_MIN;
        return;
    }

    if (ngx_strcmp(rr->element[0]->str, "message") == 0
        && rr->element[2]->type == REDIS_REPLY_STRING)
    {
        ngx_http_classify_sentinel_switch(sn, rr->element[2]);
    }
}


/* "<master name> <old ip> <old port> <new ip> <new port>" */

static void
ngx_http_classify_sentinel_switch(ngx_http_classify_sentinel_t *sn,
    redisReply *msg)
{
    u_char      *p, *last, *field[5];
    size_t       len[5];
    ngx_uint_t   n;

    p = (u_char *) msg->str;
    last = p + msg->len;

    for (n = 0; n < 5 && p < last; n++) {
        field[n] = p;

        while (p < last && *p != ' ') {
            p++;
        }

        len[n] = p - field[n];

        if (p < last) {
            p++;
        }
    }

    if (n < 5 || len[0] != sn->master.len
        || ngx_strncmp(field[0], sn->master.data, len[0]) != 0)
    {
        /* another master of the same Sentinels */
        return;
    }

    if (ngx_http_classify_sentinel_parse_addr(&sn->switched_to, field[3],
                                              len[3], field[4], len[4])
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_WARN, sn->log, 0,
                      "classify_redis_sentinel \"%V\": +switch-master to "
                      "\"%*s\" \"%*s\", not an IP address and port, ignored",
                      &sn->master, ngx_min(len[3], 64), field[3],
                      ngx_min(len[4], 16), field[4]);
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, sn->log, 0,
                   "classify_redis_sentinel \"%V\": +switch-master to %V",
                   &sn->master, &sn->switched_to.addr.name);

    sn->switched(sn->switched_data, &sn->switched_to.addr);
}


/* the subscription is gone: the next Sentinel, after a backoff */

static void
ngx_http_classify_sentinel_sub_closed(ngx_http_classify_hiredis_t *h,
    const char *err)
{
    ngx_http_classify_sentinel_t       *sn = h->data;
    ngx_http_classify_sentinel_addr_t  *a;

    if (sn->exiting) {
        return;
    }

    if (!sn->sub_lost) {
        a = ngx_http_classify_sentinel_at(sn, sn->sub_index);

        ngx_log_error(NGX_LOG_WARN, sn->log, 0,
                      "classify_redis_sentinel \"%V\": no subscription to "
                      "+switch-master on Sentinel %V: %s; trying the next "
                      "Sentinel", &sn->master, &a->name,
                      err ? err : "connection closed");
        sn->sub_lost = 1;
    }

    sn->sub_index = (sn->sub_index + 1) % sn->addrs.nelts;

    ngx_http_classify_sentinel_sub_again(sn);
}


static void
ngx_http_classify_sentinel_sub_again(ngx_http_classify_sentinel_t *sn)
{
    if (sn->exiting || ngx_exiting || sn->sub_retry.timer_set) {
        return;
    }

    ngx_http_classify_hiredis_backoff(&sn->sub_retry, &sn->sub_backoff);
}


static void
ngx_http_classify_sentinel_sub_handler(ngx_event_t *ev)
{
    ngx_http_classify_sentinel_t  *sn = ev->data;

    if (sn->sub.ac == NULL) {
        ngx_http_classify_sentinel_subscribe(sn);
    }
}

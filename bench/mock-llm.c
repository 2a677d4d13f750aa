/*
 * mock-llm.c -- the benchmark's mock LLM backends, in C.
 *
 * One thread, epoll, HTTP/1.1 keep-alive, timers on a timerfd (nanosecond
 * deadlines, so a "50 ms" classifier answers at 50.0x ms, not at the next
 * millisecond tick).  It speaks the same URL contract as the test suite's
 * Lua mock (t/mock/mock.lua) for the parts the benchmark uses:
 *
 *   POST /v1/chat/completions?verdict=V&delay=S[&tag=T]
 *        after S seconds, 200 application/json, an OpenAI chat.completion
 *        whose choices[0].message.content is V (default "no")
 *   POST /classify/json?verdict=true|false&delay=S[&tag=T]
 *        after S seconds, 200 {"verdict":true|false}
 *   POST /v1/generate?chunks=K&gap=S[&delay=S][&tag=T]
 *        200 text/event-stream: K chat.completion.chunk events, S seconds
 *        apart (the first after delay), then a finish_reason "stop" event
 *        and "data: [DONE]"; chunked transfer encoding under HTTP/1.1,
 *        connection close under HTTP/1.0
 *   GET /_mock/stats
 *        200 text/plain "conns=N busy=B hung=H\n": open connections, those
 *        with a request in progress (read whole, its answer not all sent),
 *        and those among them in mode=hang (the soak's leak check)
 *   GET /_mock/close-idle
 *        closes every idle keep-alive connection (no request in progress,
 *        nothing buffered) but this one, answers "closed=N\n" (the soak
 *        empties nginx's upstream keepalive caches before counting fds)
 *   anything else: 404
 *
 * Fault injection, on the three POST endpoints (the contract of the test
 * suite's Lua mock, t/mock/mock.lua):
 *   status=N   a non-2xx N answers {"error":{"message":"mock error N",
 *              "type":"mock_error","code":N}} with status N after the
 *              delay; a 2xx N replaces the normal answer's status
 *   mode=ok      (default) the normal answer
 *   mode=garbage 200 application/json, a body that is not JSON
 *   mode=empty   {"choices":[]} (classify/json: {})
 *   mode=noword  content "???" (classify/json: {"verdict":"maybe"})
 *   mode=big     content V and 140000 bytes of padding (size=BYTES)
 *   mode=hang    no answer for 3600 s (a close by nginx is noticed and
 *                logged 499 as with a delay), then 504
 *   mode=reset   the status line, headers announcing the full
 *                Content-Length, half the body, then the connection is
 *                closed (generation: the headers and the first event)
 *   mode=rst     the connection is reset (SO_LINGER 0), no answer
 *   mode=close   the connection is closed without any answer
 *   an unknown mode answers 400; the generation knows only ok, hang,
 *   reset, rst and close
 *
 * The request body is read completely before the delay starts.  A client
 * (the nginx under test) that closes its connection while a request is
 * pending or streaming is noticed at once (the socket stays in epoll for
 * reading) and the request is logged with status 499.
 *
 * Log (-l FILE), one line per request when it ends, space separated:
 *   end_us first_us status time_ms tag rid path served_ms
 * end_us/first_us: CLOCK_MONOTONIC microseconds of the request's end (the
 * answer's last byte written, or the close noticed) and of its first byte
 * read; time_ms = end - first (what nginx calls $request_time), with
 * microsecond precision; rid: the number after the first "rid-" in the
 * request body (the load client puts one in each question), or -1;
 * served_ms: from the request read whole (when the delay starts) to its end.
 * The log is flushed every 100 ms and on SIGTERM/SIGINT.
 *
 *   mock-llm -p PORT [-l LOGFILE]
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define HEAD_MAX   65536
#define BODY_MAX   (4 << 20)

enum { K_CHAT, K_JSON, K_GEN, K_404, K_STATS, K_CLOSE_IDLE };
enum { M_OK, M_GARBAGE, M_EMPTY, M_NOWORD, M_BIG, M_HANG, M_RESET, M_RST,
       M_CLOSE };

#define HANG_SECONDS  3600
enum { S_READ, S_WAIT, S_SEND };

typedef struct conn_s conn_t;

struct conn_s {
    conn_t    *prev, *next;       /* every open connection */
    int        fd;
    int        state;
    int        heap_idx;          /* -1: no timer */
    uint64_t   due;               /* ns, CLOCK_MONOTONIC */

    char      *in;
    size_t     in_len, in_cap;
    char      *out;
    size_t     out_len, out_pos, out_cap;

    /* the current request */
    uint64_t   first;             /* ns of its first byte */
    uint64_t   ready;             /* ns when it was read whole */
    size_t     req_len;           /* head + body, consumed when it ends */
    int        kind;
    int        mode;
    int        status;            /* status=N, 0: none */
    int        answered;          /* the status logged when it ends */
    int        doomed;            /* /_mock/close-idle closes it */
    long       big;               /* mode=big padding bytes */
    int        http10;
    int        close_after;
    int        finish_when_sent;
    double     delay, gap;
    int        chunks, chunk_i;
    long       rid;
    char       verdict[64];
    char       tag[32];
    char       path[64];
};

static int        ep, lfd, tfd;
static FILE      *logf;
static conn_t   **heap;
static size_t     heap_len, heap_cap;
static volatile sig_atomic_t stop;
static uint64_t   armed = UINT64_MAX;
static conn_t    *conns;          /* the list of open connections */
static long       nconns;
static int        close_idle;     /* some connections are doomed */


static uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}


static void
die(const char *what)
{
    perror(what);
    exit(1);
}


/* timers: a binary min-heap of connections by due time */

static void
heap_swap(size_t a, size_t b)
{
    conn_t *t = heap[a];

    heap[a] = heap[b];
    heap[b] = t;
    heap[a]->heap_idx = (int) a;
    heap[b]->heap_idx = (int) b;
}


static void
heap_up(size_t i)
{
    while (i > 0 && heap[(i - 1) / 2]->due > heap[i]->due) {
        heap_swap(i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}


static void
heap_down(size_t i)
{
    size_t l, r, m;

    for ( ;; ) {
        l = 2 * i + 1;
        r = l + 1;
        m = i;
        if (l < heap_len && heap[l]->due < heap[m]->due) m = l;
        if (r < heap_len && heap[r]->due < heap[m]->due) m = r;
        if (m == i) return;
        heap_swap(i, m);
        i = m;
    }
}


static void
timer_del(conn_t *c)
{
    size_t i;

    if (c->heap_idx < 0) {
        return;
    }

    i = (size_t) c->heap_idx;
    c->heap_idx = -1;
    heap_len--;

    if (i != heap_len) {
        heap[i] = heap[heap_len];
        heap[i]->heap_idx = (int) i;
        heap_up(i);
        heap_down((size_t) heap[i]->heap_idx);
    }
}


static void
timer_add(conn_t *c, uint64_t due)
{
    timer_del(c);

    if (heap_len == heap_cap) {
        heap_cap = heap_cap ? heap_cap * 2 : 1024;
        heap = realloc(heap, heap_cap * sizeof(conn_t *));
        if (heap == NULL) die("realloc");
    }

    c->due = due;
    c->heap_idx = (int) heap_len;
    heap[heap_len++] = c;
    heap_up(heap_len - 1);
}


static void
timer_arm(void)
{
    struct itimerspec its;
    uint64_t          due;

    due = heap_len ? heap[0]->due : 0;

    if (due == armed) {
        return;
    }

    memset(&its, 0, sizeof(its));

    if (due) {
        its.it_value.tv_sec = (time_t) (due / 1000000000ULL);
        its.it_value.tv_nsec = (long) (due % 1000000000ULL);
    }

    if (timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL) == -1) {
        die("timerfd_settime");
    }

    armed = due;
}


/* buffers */

static void
buf_reserve(char **b, size_t *cap, size_t need)
{
    if (need <= *cap) {
        return;
    }

    while (*cap < need) {
        *cap = *cap ? *cap * 2 : 4096;
    }

    *b = realloc(*b, *cap);
    if (*b == NULL) die("realloc");
}


static void
out_add(conn_t *c, const char *p, size_t n)
{
    buf_reserve(&c->out, &c->out_cap, c->out_len + n);
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
}


static void
out_printf(conn_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
out_printf(conn_t *c, const char *fmt, ...)
{
    char     buf[4096];
    int      n;
    va_list  ap;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);

    if (n > 0) {
        out_add(c, buf, (size_t) n < sizeof(buf) ? (size_t) n : sizeof(buf) - 1);
    }
}


/* one chunk of a chunked body (HTTP/1.1) or raw bytes (HTTP/1.0) */

static void
out_body(conn_t *c, const char *p, size_t n)
{
    if (c->http10) {
        out_add(c, p, n);
        return;
    }

    out_printf(c, "%zx\r\n", n);
    out_add(c, p, n);
    out_add(c, "\r\n", 2);
}


static void
log_req(conn_t *c, int status)
{
    uint64_t end = now_ns();

    if (logf == NULL) {
        return;
    }

    fprintf(logf, "%llu %llu %d %.3f %s %ld %s %.3f\n",
            (unsigned long long) (end / 1000),
            (unsigned long long) (c->first / 1000),
            status, (double) (end - c->first) / 1e6,
            c->tag, c->rid, c->path,
            c->ready ? (double) (end - c->ready) / 1e6 : -1.0);
}


static void
conn_close(conn_t *c, int aborted)
{
    if (aborted && c->state != S_READ) {
        log_req(c, 499);
    }

    timer_del(c);
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);

    if (c->prev) c->prev->next = c->next; else conns = c->next;
    if (c->next) c->next->prev = c->prev;
    nconns--;

    free(c->in);
    free(c->out);
    free(c);
}


static void try_parse(conn_t *c);
static int  do_write(conn_t *c);


/* the request is over: log it, keep the connection for the next one */

static void
finish(conn_t *c)
{
    log_req(c, c->answered ? c->answered : 200);

    if (c->close_after) {
        conn_close(c, 0);
        return;
    }

    memmove(c->in, c->in + c->req_len, c->in_len - c->req_len);
    c->in_len -= c->req_len;
    c->req_len = 0;
    c->state = S_READ;
    c->first = c->in_len ? now_ns() : 0;
    c->ready = 0;
    c->finish_when_sent = 0;
    c->answered = 0;

    try_parse(c);
}


/* returns 0 when the connection was closed */

static int
do_write(conn_t *c)
{
    ssize_t             n;
    struct epoll_event  ev;

    while (c->out_pos < c->out_len) {
        n = send(c->fd, c->out + c->out_pos, c->out_len - c->out_pos,
                 MSG_NOSIGNAL);

        if (n > 0) {
            c->out_pos += (size_t) n;
            continue;
        }

        if (n == -1 && errno == EINTR) {
            continue;
        }

        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ev.events = EPOLLIN | EPOLLRDHUP | EPOLLOUT;
            ev.data.ptr = c;
            epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
            return 1;
        }

        conn_close(c, 1);
        return 0;
    }

    if (c->out_cap > 65536) {
        free(c->out);
        c->out = NULL;
        c->out_cap = 0;
    }

    c->out_pos = c->out_len = 0;

    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.ptr = c;
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);

    if (c->finish_when_sent) {
        finish(c);
        return 0;
    }

    return 1;
}


static void
gen_piece(conn_t *c, int last)
{
    char  buf[512];
    int   n;

    n = snprintf(buf, sizeof(buf),
                 "data: {\"id\":\"chatcmpl-gen\",\"object\":"
                 "\"chat.completion.chunk\",\"created\":0,\"model\":\"mock\","
                 "\"choices\":[{\"index\":0,\"delta\":{\"content\":"
                 "\"token%d \"},\"finish_reason\":null}]}\n\n",
                 c->chunk_i + 1);
    out_body(c, buf, (size_t) n);

    if (!last) {
        return;
    }

    n = snprintf(buf, sizeof(buf),
                 "data: {\"id\":\"chatcmpl-gen\",\"object\":"
                 "\"chat.completion.chunk\",\"created\":0,\"model\":\"mock\","
                 "\"choices\":[{\"index\":0,\"delta\":{},"
                 "\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n");
    out_body(c, buf, (size_t) n);

    if (!c->http10) {
        out_add(c, "0\r\n\r\n", 5);
    }
}


/* the connection goes without an answer: closed, or reset (SO_LINGER 0) */

static void
drop(conn_t *c, int rst)
{
    struct linger  l;

    if (rst) {
        l.l_onoff = 1;
        l.l_linger = 0;
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    }

    log_req(c, 444);
    c->state = S_READ;            /* logged already */
    conn_close(c, 0);
}


/* a complete answer with a Content-Length; mode=reset sends half the body */

static void
answer(conn_t *c, int status, const char *body, size_t len)
{
    out_printf(c, "HTTP/1.%d %d %s\r\nContent-Type: application/json\r\n"
               "Content-Length: %zu\r\nX-Mock-Tag: %s\r\n%s\r\n",
               c->http10 ? 0 : 1, status,
               status == 200 ? "OK" : status == 404 ? "Not Found" : "Mock",
               len, c->tag, c->close_after ? "Connection: close\r\n" : "");

    if (c->mode == M_RESET && status == 200) {
        len /= 2;
        c->close_after = 1;
    }

    out_add(c, body, len);
    c->answered = status;
    c->finish_when_sent = 1;
    do_write(c);
}


static void
answer_error(conn_t *c, int status)
{
    char  body[256];
    int   n;

    n = snprintf(body, sizeof(body), "{\"error\":{\"message\":\"mock error %d\","
                 "\"type\":\"mock_error\",\"code\":%d}}", status, status);
    c->mode = M_OK;
    answer(c, status, body, (size_t) n);
}


/* the delay (or a gap) is over */

static void
fire(conn_t *c)
{
    char    body[1024], *big;
    int     n, last, status;
    size_t  i;

    status = (c->status >= 200 && c->status <= 299) ? c->status : 200;

    if (c->kind != K_404 && c->chunk_i == 0) {
        if (c->mode == M_CLOSE || c->mode == M_RST) {
            drop(c, c->mode == M_RST);
            return;
        }

        if (c->mode == M_HANG) {              /* the hour is over */
            answer_error(c, 504);
            return;
        }

        if (c->status && (c->status < 200 || c->status > 299)) {
            answer_error(c, c->status);
            return;
        }
    }

    switch (c->kind) {

    case K_CHAT:
    case K_JSON:
        if (c->mode == M_GARBAGE) {
            n = snprintf(body, sizeof(body), "<html>mock garbage: this is "
                         "not JSON {\"choices\": [\n");

        } else if (c->mode == M_EMPTY) {
            n = snprintf(body, sizeof(body), "%s",
                         c->kind == K_CHAT ? "{\"choices\":[]}" : "{}");

        } else if (c->mode == M_NOWORD && c->kind == K_JSON) {
            n = snprintf(body, sizeof(body), "{\"verdict\":\"maybe\"}");

        } else if (c->mode == M_BIG) {
            big = malloc((size_t) c->big + 1024);
            if (big == NULL) die("malloc");
            if (c->kind == K_CHAT) {
                n = sprintf(big, "{\"id\":\"chatcmpl-mock\",\"object\":"
                    "\"chat.completion\",\"created\":0,\"model\":\"mock\","
                    "\"choices\":[{\"index\":0,\"message\":{\"role\":"
                    "\"assistant\",\"content\":\"%s ", c->verdict);
            } else {
                n = sprintf(big, "{\"verdict\":%s,\"pad\":\"",
                            strcmp(c->verdict, "true") == 0 ? "true" : "false");
            }
            for (i = 0; i < (size_t) c->big; i++) {
                big[n++] = "padding "[i % 8];
            }
            n += sprintf(big + n, "%s", c->kind == K_CHAT
                         ? "\"},\"finish_reason\":\"stop\"}]}" : "\"}");
            answer(c, status, big, (size_t) n);
            free(big);
            return;

        } else if (c->kind == K_CHAT) {
            n = snprintf(body, sizeof(body),
                "{\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion\","
                "\"created\":0,\"model\":\"mock\",\"choices\":[{\"index\":0,"
                "\"message\":{\"role\":\"assistant\",\"content\":\"%s\"},"
                "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1,"
                "\"completion_tokens\":1,\"total_tokens\":2}}",
                c->mode == M_NOWORD ? "???" : c->verdict);

        } else {
            n = snprintf(body, sizeof(body), "{\"verdict\":%s}",
                         strcmp(c->verdict, "true") == 0 ? "true" : "false");
        }

        answer(c, status, body, (size_t) n);
        return;

    case K_GEN:
        if (c->chunk_i == 0) {
            out_printf(c, "HTTP/1.%d %d OK\r\n"
                       "Content-Type: text/event-stream\r\n"
                       "Cache-Control: no-cache\r\nX-Mock-Tag: %s\r\n%s\r\n",
                       c->http10 ? 0 : 1, status, c->tag,
                       c->http10 ? "Connection: close\r\n"
                                 : "Transfer-Encoding: chunked\r\n");
            c->answered = status;
        }

        last = c->chunk_i + 1 >= c->chunks;

        if (c->mode == M_RESET) {             /* the first event, then close */
            gen_piece(c, 0);
            c->chunk_i++;
            c->close_after = 1;
            c->finish_when_sent = 1;
            do_write(c);
            return;
        }

        gen_piece(c, last);
        c->chunk_i++;

        if (last) {
            c->finish_when_sent = 1;

        } else {
            timer_add(c, now_ns() + (uint64_t) (c->gap * 1e9));
        }

        do_write(c);
        return;

    case K_STATS:
        {
            long    busy = 0, hung = 0;
            conn_t *o;

            for (o = conns; o; o = o->next) {
                if (o->state != S_READ && o != c) {
                    busy++;
                    hung += (o->mode == M_HANG);
                }
            }

            n = snprintf(body, sizeof(body), "conns=%ld busy=%ld hung=%ld\n",
                         nconns - 1, busy, hung);
        }
        goto text;

    case K_CLOSE_IDLE:
        {
            long    closed = 0;
            conn_t *o, *next;

            /* closed by the main loop once this batch of events is done:
             * a handler only ever frees its own connection */
            for (o = conns; o; o = next) {
                next = o->next;
                if (o != c && o->state == S_READ && o->in_len == 0) {
                    o->doomed = 1;
                    closed++;
                }
            }

            close_idle = 1;

            n = snprintf(body, sizeof(body), "closed=%ld\n", closed);
        }

    text:
        out_printf(c, "HTTP/1.%d 200 OK\r\nContent-Type: text/plain\r\n"
                   "Content-Length: %d\r\n%s\r\n", c->http10 ? 0 : 1, n,
                   c->close_after ? "Connection: close\r\n" : "");
        out_add(c, body, (size_t) n);
        c->answered = 200;
        c->finish_when_sent = 1;
        do_write(c);
        return;

    default:
        n = snprintf(body, sizeof(body), "{\"error\":{\"message\":"
                     "\"mock: no such endpoint\",\"code\":404}}");
        c->mode = M_OK;
        answer(c, 404, body, (size_t) n);
        return;
    }
}


static int
arg(const char *q, const char *name, char *val, size_t size)
{
    size_t      len = strlen(name);
    const char *p = q, *e;

    while (p && *p) {
        if (strncmp(p, name, len) == 0 && p[len] == '=') {
            p += len + 1;
            e = strchr(p, '&');
            if (e == NULL) e = p + strlen(p);
            if ((size_t) (e - p) >= size) return 0;
            memcpy(val, p, (size_t) (e - p));
            val[e - p] = '\0';
            return 1;
        }

        p = strchr(p, '&');
        if (p) p++;
    }

    return 0;
}


static void
bad(conn_t *c, int status, const char *why)
{
    out_printf(c, "HTTP/1.1 %d %s\r\nContent-Length: 0\r\nConnection: close\r\n"
               "\r\n", status, why);
    c->close_after = 1;
    c->state = S_SEND;
    c->finish_when_sent = 1;
    c->kind = K_404;
    c->answered = status;
    do_write(c);
}


static void
try_parse(conn_t *c)
{
    char    *he, *p, *eol, *q, *sp;
    char     uri[1024], val[64];
    size_t   head, body, i;
    long     clen = 0;
    int      chunked = 0;

    if (c->state != S_READ || c->in_len == 0) {
        return;
    }

    he = memmem(c->in, c->in_len, "\r\n\r\n", 4);

    if (he == NULL) {
        if (c->in_len > HEAD_MAX) {
            bad(c, 431, "Request Header Fields Too Large");
        }
        return;
    }

    head = (size_t) (he - c->in) + 4;

    /* request line: METHOD SP URI SP HTTP/1.x */

    eol = memmem(c->in, head, "\r\n", 2);
    p = memchr(c->in, ' ', (size_t) (eol - c->in));
    if (p == NULL) { bad(c, 400, "Bad Request"); return; }
    p++;
    sp = memchr(p, ' ', (size_t) (eol - p));
    if (sp == NULL || (size_t) (sp - p) >= sizeof(uri)) {
        bad(c, 400, "Bad Request");
        return;
    }
    memcpy(uri, p, (size_t) (sp - p));
    uri[sp - p] = '\0';
    c->http10 = (eol - sp >= 9 && memcmp(sp + 1, "HTTP/1.0", 8) == 0);
    c->close_after = c->http10;

    /* headers */

    for (p = eol + 2; p < he; p = eol + 2) {
        eol = memmem(p, (size_t) (he + 2 - p), "\r\n", 2);
        if (eol == NULL) break;

        if (eol - p > 15 && strncasecmp(p, "Content-Length:", 15) == 0) {
            clen = strtol(p + 15, NULL, 10);

        } else if (eol - p > 18
                   && strncasecmp(p, "Transfer-Encoding:", 18) == 0)
        {
            chunked = 1;

        } else if (eol - p >= 17 && strncasecmp(p, "Connection:", 11) == 0) {
            for (q = p + 11; q < eol && *q == ' '; q++) { /* void */ }
            if (eol - q >= 5 && strncasecmp(q, "close", 5) == 0) {
                c->close_after = 1;
            }
        }
    }

    if (chunked) {
        bad(c, 411, "Length Required");
        return;
    }

    if (clen < 0 || clen > BODY_MAX) {
        bad(c, 413, "Payload Too Large");
        return;
    }

    body = (size_t) clen;

    if (c->in_len < head + body) {
        return;
    }

    c->req_len = head + body;

    /* path and arguments */

    q = strchr(uri, '?');
    if (q) *q++ = '\0';

    snprintf(c->path, sizeof(c->path), "%.63s", uri);

    if (strcmp(uri, "/v1/chat/completions") == 0) {
        c->kind = K_CHAT;
    } else if (strcmp(uri, "/classify/json") == 0) {
        c->kind = K_JSON;
    } else if (strcmp(uri, "/v1/generate") == 0) {
        c->kind = K_GEN;
    } else if (strcmp(uri, "/_mock/stats") == 0) {
        c->kind = K_STATS;
    } else if (strcmp(uri, "/_mock/close-idle") == 0) {
        c->kind = K_CLOSE_IDLE;
    } else {
        c->kind = K_404;
    }

    c->delay = 0;
    c->gap = 0;
    c->chunks = 3;
    c->chunk_i = 0;
    c->mode = M_OK;
    c->status = 0;
    c->answered = 0;
    c->big = 140000;

    if (q && arg(q, "mode", val, sizeof(val)) && val[0]) {
        if (strcmp(val, "ok") == 0) c->mode = M_OK;
        else if (strcmp(val, "garbage") == 0) c->mode = M_GARBAGE;
        else if (strcmp(val, "empty") == 0) c->mode = M_EMPTY;
        else if (strcmp(val, "noword") == 0) c->mode = M_NOWORD;
        else if (strcmp(val, "big") == 0) c->mode = M_BIG;
        else if (strcmp(val, "hang") == 0) c->mode = M_HANG;
        else if (strcmp(val, "reset") == 0) c->mode = M_RESET;
        else if (strcmp(val, "rst") == 0) c->mode = M_RST;
        else if (strcmp(val, "close") == 0) c->mode = M_CLOSE;
        else c->mode = -1;

        if (c->mode == -1
            || (c->kind == K_GEN && c->mode != M_OK && c->mode != M_HANG
                && c->mode != M_RESET && c->mode != M_RST
                && c->mode != M_CLOSE))
        {
            c->mode = M_OK;
            c->status = 400;      /* answered as an error, after the delay */
        }
    }

    if (q && c->status == 0 && arg(q, "status", val, sizeof(val))) {
        c->status = atoi(val);
        if (c->status != 0 && (c->status < 100 || c->status > 599)) {
            c->status = 500;
        }
    }

    if (q && arg(q, "size", val, sizeof(val))) c->big = atol(val);
    if (c->big < 0 || c->big > BODY_MAX) c->big = 140000;

    if (q && arg(q, "delay", val, sizeof(val))) c->delay = atof(val);
    if (q && arg(q, "gap", val, sizeof(val))) c->gap = atof(val);
    if (q && arg(q, "chunks", val, sizeof(val))) c->chunks = atoi(val);
    if (c->chunks < 1) c->chunks = 1;
    if (c->chunks > 100000) c->chunks = 100000;
    if (c->delay < 0) c->delay = 0;
    if (c->mode == M_HANG) c->delay += HANG_SECONDS;

    if (!(q && arg(q, "verdict", c->verdict, sizeof(c->verdict)))) {
        strcpy(c->verdict, c->kind == K_JSON ? "false" : "no");
    }

    for (i = 0; c->verdict[i]; i++) {     /* it goes into JSON as is */
        if (c->verdict[i] == '"' || c->verdict[i] == '\\'
            || (unsigned char) c->verdict[i] < 0x20)
        {
            c->verdict[i] = '_';
        }
    }

    if (!(q && arg(q, "tag", c->tag, sizeof(c->tag)))) {
        strcpy(c->tag, c->kind == K_GEN ? "gen" : "default");
    }

    c->rid = -1;
    p = body ? memmem(c->in + head, body, "rid-", 4) : NULL;
    if (p) c->rid = strtol(p + 4, NULL, 10);

    c->state = S_WAIT;
    c->ready = now_ns();

    if (c->delay > 0) {
        timer_add(c, c->ready + (uint64_t) (c->delay * 1e9));
    } else {
        c->state = S_SEND;
        fire(c);
    }
}


static void
on_read(conn_t *c)
{
    ssize_t  n;

    for ( ;; ) {
        buf_reserve(&c->in, &c->in_cap, c->in_len + 16384);
        n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);

        if (n > 0) {
            if (c->in_len == 0 && c->state == S_READ) {
                c->first = now_ns();
            }
            c->in_len += (size_t) n;

            if (c->in_len > HEAD_MAX + BODY_MAX) {
                conn_close(c, 1);
                return;
            }
            continue;
        }

        if (n == -1 && errno == EINTR) {
            continue;
        }

        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }

        /* EOF or error: the client went away */
        conn_close(c, 1);
        return;
    }

    try_parse(c);
}


static void
on_accept(void)
{
    int                 fd, one = 1;
    conn_t             *c;
    struct epoll_event  ev;

    for ( ;; ) {
        fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd == -1) {
            if (errno == EINTR) continue;
            return;              /* EAGAIN, or out of descriptors: later */
        }

        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

        c = calloc(1, sizeof(conn_t));
        if (c == NULL) die("calloc");
        c->fd = fd;
        c->heap_idx = -1;
        c->state = S_READ;
        c->next = conns;
        if (conns) conns->prev = c;
        conns = c;
        nconns++;

        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.ptr = c;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == -1) die("epoll_ctl");
    }
}


static void
on_signal(int sig)
{
    (void) sig;
    stop = 1;
}


int
main(int argc, char **argv)
{
    int                 opt, port = 18090, i, n, one = 1;
    uint64_t            now, last_flush = 0;
    uint64_t            expired;
    conn_t             *c;
    struct rlimit       rl;
    struct sockaddr_in  sin;
    struct epoll_event  ev, evs[512];
    static char         logbuf[1 << 20];

    while ((opt = getopt(argc, argv, "p:l:")) != -1) {
        switch (opt) {
        case 'p':
            port = atoi(optarg);
            break;
        case 'l':
            logf = fopen(optarg, "a");
            if (logf == NULL) die(optarg);
            setvbuf(logf, logbuf, _IOFBF, sizeof(logbuf));
            break;
        default:
            fprintf(stderr, "usage: %s -p PORT [-l LOGFILE]\n", argv[0]);
            return 2;
        }
    }

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    /* wake up at the deadline, not up to 50 us after it */
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);

    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd == -1) die("socket");
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t) port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);     /* loopback only */

    if (bind(lfd, (struct sockaddr *) &sin, sizeof(sin)) == -1) die("bind");
    if (listen(lfd, 4096) == -1) die("listen");

    ep = epoll_create1(EPOLL_CLOEXEC);
    tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (ep == -1 || tfd == -1) die("epoll/timerfd");

    ev.events = EPOLLIN;
    ev.data.ptr = &lfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    ev.data.ptr = &tfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);

    fprintf(stderr, "mock-llm: listening on 127.0.0.1:%d\n", port);

    while (!stop) {
        n = epoll_wait(ep, evs, 512, 100);

        if (n == -1 && errno != EINTR) die("epoll_wait");

        for (i = 0; i < n; i++) {
            if (evs[i].data.ptr == &lfd) {
                on_accept();
                continue;
            }

            if (evs[i].data.ptr == &tfd) {
                if (read(tfd, &expired, sizeof(expired)) == -1) { /* void */ }
                armed = UINT64_MAX;
                continue;
            }

            c = evs[i].data.ptr;

            if (evs[i].events & EPOLLOUT) {
                if (!do_write(c)) {
                    continue;
                }
                if (!(evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP
                                       | EPOLLERR)))
                {
                    continue;
                }
            }

            /* a handler only ever frees its own connection */
            on_read(c);
        }

        now = now_ns();

        while (heap_len && heap[0]->due <= now) {
            c = heap[0];
            timer_del(c);
            c->state = S_SEND;
            fire(c);
            now = now_ns();
        }

        if (close_idle) {
            conn_t *o, *next;

            for (o = conns; o; o = next) {
                next = o->next;
                if (o->doomed && o->state == S_READ && o->in_len == 0) {
                    conn_close(o, 0);
                } else {
                    o->doomed = 0;
                }
            }

            close_idle = 0;
        }

        timer_arm();

        if (logf && now - last_flush > 100000000ULL) {
            fflush(logf);
            last_flush = now;
        }
    }

    if (logf) {
        fflush(logf);
        fclose(logf);
    }

    return 0;
}

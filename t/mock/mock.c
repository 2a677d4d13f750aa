/*
 * mock.c -- the mock LLM backend of ngx_http_classify_module's tests,
 * benchmark, soak and demo: one program, one contract (this comment).
 *
 *   mock-llm -p PORT [-l LOGFILE] [-m RECORDS_MB] [-P PIDFILE]
 *
 * One thread, epoll, HTTP/1.1 keep-alive (HTTP/1.0: one request, then
 * close), timers on a timerfd with nanosecond deadlines (a "50 ms"
 * classifier answers at 50.0x ms).  Listens on 127.0.0.1 only.  SIGTERM or
 * SIGINT ends it (the log flushed, the pid file removed).
 *
 * Query arguments choose the behaviour, because the module under test
 * builds the POST body itself; a test picks it per classifier in the
 * proxy_pass URL:
 *   proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions
 *              ?tag=fiqh&verdict=yes&delay=0.4;          (on one line)
 *
 * CONTRACT ------------------------------------------------------------------
 *
 * Arguments of the three LLM endpoints (URL-decoded; the last one wins):
 *   tag=T      record key (default "default"; control characters become _)
 *   delay=S    seconds (float) before the first byte of the answer
 *   status=N   a non-2xx N answers {"error":{"message":"mock error N",
 *              "type":"mock_error","code":N}} with status N (after the
 *              delay; N outside 100-599 is 500); a 2xx N only replaces the
 *              status of the normal answer
 *   mode=M     see each endpoint; an unknown mode answers 400 (JSON error)
 *   common modes: hang (no answer for 3600 s, then 504), close (the
 *   connection closed without an answer, recorded as 444), rst (the same
 *   with a TCP reset: SO_LINGER 0)
 * Every answer carries X-Mock-Tag and X-Mock-Body-Length (request body
 * bytes received).  The request body is read whole (Content-Length or
 * chunked) before the delay starts.  A client (the nginx under test) that
 * closes its connection before the answer is complete -- during a delay, a
 * hang, a gap, or a write -- is noticed at once and the request is recorded
 * with status 499, aborted.
 *
 * POST /v1/chat/completions   OpenAI-compatible classifier (never streams)
 *   verdict=V  the assistant's content (default "no")
 *   rule=R     (the make run demo) "Yes." when the last user message has a
 *              word of rule R (offtopic: pizza football weather movie recipe
 *              stock bitcoin game; fiqh: halal haram permissible allowed
 *              ruling fatwa forbidden), else "No."; overrides V
 *   mode=ok      (default) 200 application/json
 *                {"id":"chatcmpl-mock","object":"chat.completion",
 *                 "created":<epoch s>,"model":<the request's or "mock">,
 *                 "choices":[{"index":0,"message":{"role":"assistant",
 *                 "content":V},"finish_reason":"stop"}],"usage":{
 *                 "prompt_tokens":P,"completion_tokens":C,"total_tokens":P+C}}
 *                (tokens: bytes / 4, rounded up)
 *   mode=garbage 200 application/json, a body that is not JSON
 *   mode=empty   200 {"choices":[]}
 *   mode=noword  the ok answer with content "???" (or V when verdict= given)
 *   mode=big     the ok answer with content V, a space and size=BYTES
 *                (default 140000) of "padding "
 *   mode=reset   the status line, headers announcing the full
 *                Content-Length, half the body, then the connection closed
 *   hang, close, rst
 *
 * POST /classify/json         the `json` protocol classifier
 *   verdict=true|1|yes -> 200 {"verdict":true}, else {"verdict":false}
 *   modes: garbage (not JSON), empty ({}), noword ({"verdict":"maybe"}),
 *   big ({"verdict":..,"pad":"..."}), reset, hang, close, rst
 *
 * POST /v1/generate           the generation backend
 *   chunks=K (default 3, 0 allowed), text=STR (split evenly into K pieces
 *   on UTF-8 character boundaries; default pieces "chunk1 ", "chunk2 ",
 *   ...), gap=S seconds between pieces (the first comes after delay=),
 *   format=F the wire format: openai (the default), responses, anthropic;
 *   an unknown format answers 400), strict=1: stream only when the body
 *   says "stream": true (the APIs' rule; by default it streams unless the
 *   body says "stream": false), tool=K: right after piece K a tool call
 *   (openai: a chunk with delta.tool_calls of "lookup"; anthropic: the
 *   text block stopped, a tool_use block "lookup" with one input_json_delta
 *   and its stop, then a new text block the next pieces go to; responses:
 *   ignored).
 *   openai, streaming: 200 text/event-stream (chunked under HTTP/1.1,
 *   close-delimited under HTTP/1.0), each event written on its own:
 *     data: {... "choices":[{"index":0,"delta":{"role":"assistant",
 *            "content":""},"finish_reason":null}]}\n\n  (first, with role=1,
 *           as the API sends it)
 *     data: {"id":"chatcmpl-gen","object":"chat.completion.chunk",
 *            "created":<t>,"model":M,"choices":[{"index":0,"delta":
 *            {"content":PIECE},"finish_reason":null}]}\n\n   (K times)
 *     data: {... "choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n
 *     data: {... "choices":[],"usage":{...}}\n\n  (when the body asks for it:
 *           "stream_options": {"include_usage": true})
 *     data: [DONE]\n\n
 *   openai, not streaming: one chat.completion (id "chatcmpl-gen") with the
 *   pieces put together, usage as above.
 *   responses, streaming: "event: T\ndata: {"type":T,"sequence_number":N,
 *   ...}\n\n" events (N from 0): response.created (a Response "resp_gen",
 *   status in_progress, no output), response.output_item.added (message
 *   "msg_gen"), response.content_part.added, then response.output_text.delta
 *   {"delta":PIECE} K times, response.output_text.done {"text":ALL},
 *   response.completed (the whole Response); not streaming: that Response,
 *   {"object":"response","status":"completed","output":[{"type":"message",
 *   "content":[{"type":"output_text","text":ALL}]}],"usage":{...}}.
 *   anthropic, streaming: message_start (a Message "msg_gen", content [],
 *   stop_reason null), content_block_start (index 0, text ""), ping, then
 *   content_block_delta {"delta":{"type":"text_delta","text":PIECE}} K
 *   times, content_block_stop, message_delta (stop_reason end_turn,
 *   usage.output_tokens), message_stop, each "event: T\ndata: {...}\n\n";
 *   not streaming: one Message {"type":"message","role":"assistant",
 *   "content":[{"type":"text","text":ALL}],"stop_reason":"end_turn",...}.
 *   modes: ok, hang, close, rst, reset (the headers and the first event, or
 *   half a whole answer under its full Content-Length, then close)
 *
 * Any other path outside /_mock/: 404 JSON error, recorded like the others
 * (a misrouted proxy_pass shows up in the records).
 *
 * RECORDS: every request to the endpoints above is recorded when it ENDS
 * (its last byte written, or the close noticed), in order of completion:
 *   seq (1-based, over all tags), tag, i (1-based within the tag), uri (as
 *   received, arguments included), method, the request line and headers,
 *   the body, status (499 whenever the client went away before the answer
 *   was complete, even after the headers), request_time (seconds from the
 *   request's first byte to its end, "0.052"), aborted, start and finish
 *   (epoch seconds).  -m MB bounds the memory they take (default 256; the
 *   oldest go first); -m 0 records nothing (the benchmark and the soak).
 *
 * Control endpoints (not recorded):
 *   GET /_mock/log?tag=T[&n=N][&wait=S]
 *        waits up to S s (default 0) until at least N records exist (N is 1
 *        when only wait is given), then 200 text/plain, one line per record:
 *        "<status> <request_time> <uri>\n", e.g.
 *        "499 0.052 /v1/chat/completions?tag=fiqh&delay=2"; tag=* : all tags
 *   GET /_mock/body?tag=T[&i=I][&wait=S]
 *        the raw body of record I (1-based; negative counts from the end;
 *        default the last), waiting up to S s for it; 404 if there is none
 *   GET /_mock/headers?tag=T[&i=I][&wait=S]   its request line and headers
 *   GET /_mock/count?tag=T      "<number>\n" (tag=* : all tags)
 *   GET|POST /_mock/clear[?tag=T]   forgets one tag or everything; "ok\n"
 *   GET /_mock/records?tag=T[&n=N][&wait=S][&body=1]
 *        the records as a JSON array of objects {seq, tag, i, uri, method,
 *        status, request_time, aborted, start, finish, body_length[, body]}
 *   GET /_mock/tags             the tags that have records, one a line
 *   GET /_mock/ping             "pong\n" (readiness)
 *   GET /_mock/stats            "conns=N busy=B hung=H\n": open connections
 *        (this one not counted), those with a request in progress, and
 *        those among them in mode=hang (the soak's leak check)
 *   GET /_mock/close-idle       closes every idle keep-alive connection but
 *        this one, "closed=N\n" (the soak empties nginx's upstream
 *        keep-alive caches before it counts descriptors)
 *
 * LOG (-l FILE), one line per request when it ends (control requests
 * included), space separated, flushed every 100 ms and at exit:
 *   end_us first_us status time_ms tag rid path served_ms
 * end_us/first_us: CLOCK_MONOTONIC microseconds of the request's end and
 * first byte; time_ms = end - first, with microsecond precision; rid: the
 * number after the first "rid-" in the body (the load client puts one in
 * each question) or -1; served_ms: from the request read whole to its end.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
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

#include "mock.h"


mock_conn_t  *mock_conns;
long          mock_nconns;
int           mock_close_idle;
int           mock_records_changed;

static int           ep, lfd, tfd;
static FILE         *logf;
static mock_conn_t **heap;
static size_t        heap_len, heap_cap;
static uint64_t      armed = UINT64_MAX;
static volatile sig_atomic_t  stop;

static void mock_finish(mock_conn_t *c);
static int  mock_write(mock_conn_t *c);
static void mock_parse(mock_conn_t *c);


static uint64_t
now_ns(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}


double
mock_now_real(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
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
    mock_conn_t  *t = heap[a];

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
    size_t  l, r, m;

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
timer_del(mock_conn_t *c)
{
    size_t  i;

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


/* the endpoint's fire() runs in S seconds */

void
mock_timer(mock_conn_t *c, double seconds)
{
    timer_del(c);

    if (seconds < 0) {
        seconds = 0;
    }

    if (heap_len == heap_cap) {
        heap_cap = heap_cap ? heap_cap * 2 : 1024;
        heap = realloc(heap, heap_cap * sizeof(mock_conn_t *));
        if (heap == NULL) die("realloc");
    }

    c->state = MOCK_WAIT;
    c->due = now_ns() + (uint64_t) (seconds * 1e9);
    c->heap_idx = (int) heap_len;
    heap[heap_len++] = c;
    heap_up(heap_len - 1);
}


static void
timer_arm(void)
{
    struct itimerspec  its;
    uint64_t           due;

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


/* the request ends: the log line, the record */

static void
log_end(mock_conn_t *c, int status, int aborted)
{
    uint64_t     end = now_ns();
    mock_req_t  *r = &c->r;
    const char  *path;
    int          plen;

    if (r->ep == NULL) {
        return;                   /* no request (an idle close) */
    }

    if (logf) {
        path = r->uri ? r->uri : "-";
        plen = (int) strcspn(path, "?");
        fprintf(logf, "%llu %llu %d %.3f %s %ld %.*s %.3f\n",
                (unsigned long long) (end / 1000),
                (unsigned long long) (r->first / 1000),
                status, (double) (end - r->first) / 1e6,
                r->tag ? r->tag : "-", r->rid, plen, path,
                r->ready ? (double) (end - r->ready) / 1e6 : -1.0);
    }

    if (r->ep->recorded) {
        mock_record(c, status, aborted);
    }
}


static void
req_reset(mock_conn_t *c)
{
    mock_req_t  *r = &c->r;

    if (r->free_data) {
        r->free_data(r->data);
    }

    free(r->uri);
    free(r->query);
    free(r->tag);
    buf_free(&r->unchunked);
    memset(r, 0, sizeof(mock_req_t));
}


static void
conn_close(mock_conn_t *c, int aborted)
{
    if (aborted && c->state != MOCK_READ) {
        log_end(c, 499, 1);
    }

    req_reset(c);
    timer_del(c);
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);

    if (c->prev) c->prev->next = c->next; else mock_conns = c->next;
    if (c->next) c->next->prev = c->prev;
    mock_nconns--;

    buf_free(&c->in);
    buf_free(&c->out);
    free(c);
}


/* the request is over: log it, keep the connection for the next one */

static void
mock_finish(mock_conn_t *c)
{
    size_t  len;

    log_end(c, c->r.answered ? c->r.answered : 200, 0);

    if (c->r.close_after) {
        c->state = MOCK_READ;     /* logged already */
        conn_close(c, 0);
        return;
    }

    len = c->r.len;
    req_reset(c);
    memmove(c->in.p, c->in.p + len, c->in.len - len);
    c->in.len -= len;
    c->state = MOCK_READ;
    c->finish_when_sent = 0;

    if (c->in.len) {
        c->r.first = now_ns();
        c->r.first_real = mock_now_real();
    }

    mock_parse(c);
}


static void
want_write(mock_conn_t *c, int on)
{
    struct epoll_event  ev;

    ev.events = EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0);
    ev.data.ptr = c;
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}


/* returns 0 when the connection was closed or its request finished */

static int
mock_write(mock_conn_t *c)
{
    ssize_t  n;

    while (c->out_pos < c->out.len) {
        n = send(c->fd, c->out.p + c->out_pos, c->out.len - c->out_pos,
                 MSG_NOSIGNAL);

        if (n > 0) {
            c->out_pos += (size_t) n;
            continue;
        }

        if (n == -1 && errno == EINTR) {
            continue;
        }

        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            want_write(c, 1);
            return 1;
        }

        conn_close(c, 1);
        return 0;
    }

    if (c->out.cap > 65536) {
        buf_free(&c->out);
    }

    c->out_pos = c->out.len = 0;
    want_write(c, 0);

    if (c->finish_when_sent) {
        mock_finish(c);
        return 0;
    }

    return 1;
}


/* answering, for the endpoints */

static void
head(mock_conn_t *c, int status, const char *ctype, long clen)
{
    mock_req_t  *r = &c->r;

    buf_printf(&c->out, "HTTP/1.%d %d %s\r\nContent-Type: %s\r\n",
               r->http10 ? 0 : 1, status,
               status == 200 ? "OK" : status == 404 ? "Not Found" : "Mock",
               ctype);

    if (clen >= 0) {
        buf_printf(&c->out, "Content-Length: %ld\r\n", clen);
    }

    if (r->tag) {
        buf_str(&c->out, "X-Mock-Tag: ");
        buf_str(&c->out, r->tag);
        buf_printf(&c->out, "\r\nX-Mock-Body-Length: %zu\r\n", r->body_len);
    }

    if (r->close_after) {
        buf_str(&c->out, "Connection: close\r\n");
    }

    r->answered = status;
    r->headers_sent = 1;
}


void
mock_respond(mock_conn_t *c, int status, const char *ctype,
    const char *body, size_t len)
{
    c->state = MOCK_SEND;
    head(c, status, ctype, (long) len);
    buf_add(&c->out, "\r\n", 2);
    buf_add(&c->out, body, len);
    c->finish_when_sent = 1;
    mock_write(c);
}


/* mode=reset: the whole Content-Length announced, half the body sent */

void
mock_respond_cut(mock_conn_t *c, int status, const char *ctype,
    const char *body, size_t len)
{
    c->r.close_after = 1;
    c->state = MOCK_SEND;
    head(c, status, ctype, (long) len);
    buf_add(&c->out, "\r\n", 2);
    buf_add(&c->out, body, len / 2);
    c->finish_when_sent = 1;
    mock_write(c);
}


void
mock_stream_head(mock_conn_t *c, int status, const char *ctype)
{
    mock_req_t  *r = &c->r;

    if (r->http10) {
        r->close_after = 1;
    }

    head(c, status, ctype, -1);
    buf_str(&c->out, "Cache-Control: no-cache\r\n");
    buf_str(&c->out, r->http10 ? "\r\n" : "Transfer-Encoding: chunked\r\n\r\n");
}


static void
stream_add(mock_conn_t *c, const char *p, size_t n)
{
    if (c->r.http10) {
        buf_add(&c->out, p, n);

    } else if (n) {
        buf_printf(&c->out, "%zx\r\n", n);
        buf_add(&c->out, p, n);
        buf_add(&c->out, "\r\n", 2);
    }
}


/*
 * a piece of a streamed body, written at once; the last one ends it.
 * Returns 0 when the connection is gone or the request over.
 */

int
mock_stream(mock_conn_t *c, const char *p, size_t n, int last)
{
    c->state = MOCK_SEND;
    stream_add(c, p, n);

    if (last && !c->r.http10) {
        buf_add(&c->out, "0\r\n\r\n", 5);
    }

    c->finish_when_sent = last;
    return mock_write(c);
}


/* mode=reset: a last piece, then the close, the stream unfinished */

void
mock_stream_cut(mock_conn_t *c, const char *p, size_t n)
{
    c->state = MOCK_SEND;
    stream_add(c, p, n);
    c->r.close_after = 1;
    c->finish_when_sent = 1;
    mock_write(c);
}


/* the connection goes without an answer: closed, or reset (SO_LINGER 0) */

void
mock_drop(mock_conn_t *c, int rst)
{
    struct linger  l;

    if (rst) {
        l.l_onoff = 1;
        l.l_linger = 0;
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    }

    log_end(c, 444, 0);
    c->state = MOCK_READ;         /* logged already */
    conn_close(c, 0);
}


static void
bad(mock_conn_t *c, int status, const char *why)
{
    c->r.close_after = 1;
    c->state = MOCK_SEND;
    buf_printf(&c->out, "HTTP/1.1 %d %s\r\nContent-Length: 0\r\n"
               "Connection: close\r\n\r\n", status, why);
    c->finish_when_sent = 1;
    c->r.answered = status;
    mock_write(c);
}


/*
 * a chunked body from p (the end of the head) on: the size of the whole
 * request when it is complete, 0 while more is to come, -1 when malformed
 */

static long
unchunk(mock_conn_t *c, const char *p, const char *end)
{
    const char     *start = c->in.p, *eol;
    char           *e;
    unsigned long   size;

    c->r.unchunked.len = 0;

    for ( ;; ) {
        eol = memmem(p, (size_t) (end - p), "\r\n", 2);
        if (eol == NULL) {
            return (end - p > 64) ? -1 : 0;
        }

        size = strtoul(p, &e, 16);
        if (e == p || (*e != '\r' && *e != ';') || size > MOCK_BODY_MAX
            || c->r.unchunked.len + size > MOCK_BODY_MAX)
        {
            return -1;
        }

        p = eol + 2;

        if (size == 0) {
            break;
        }

        if ((size_t) (end - p) < size + 2) {
            return 0;
        }

        if (memcmp(p + size, "\r\n", 2) != 0) {
            return -1;
        }

        buf_add(&c->r.unchunked, p, size);
        p += size + 2;
    }

    /* trailers, up to the empty line */

    for ( ;; ) {
        eol = memmem(p, (size_t) (end - p), "\r\n", 2);
        if (eol == NULL) {
            return 0;
        }

        if (eol == p) {
            p += 2;
            break;
        }

        p = eol + 2;
    }

    return p - start;
}


static const mock_endpoint_t *
endpoint(const char *path)
{
    const mock_endpoint_t  *e;

    if (strncmp(path, "/_mock/", 7) == 0) {
        return &mock_control_endpoint;
    }

    for (e = mock_llm_endpoints; e->path; e++) {
        if (strcmp(e->path, path) == 0) {
            return e;
        }
    }

    return e;                     /* the table's last entry: 404 */
}


/* the request line and the headers that matter; -1: answered as bad */

static int
parse_head(mock_conn_t *c, const char *he, long *clen, int *chunked)
{
    mock_req_t  *r = &c->r;
    const char  *p, *eol, *sp, *v;
    size_t       n;

    eol = memmem(c->in.p, (size_t) (he - c->in.p) + 2, "\r\n", 2);
    p = memchr(c->in.p, ' ', (size_t) (eol - c->in.p));
    sp = p ? memchr(p + 1, ' ', (size_t) (eol - p - 1)) : NULL;

    if (sp == NULL || (size_t) (p - c->in.p) >= sizeof(r->method)) {
        bad(c, 400, "Bad Request");
        return -1;
    }

    memcpy(r->method, c->in.p, (size_t) (p - c->in.p));
    n = (size_t) (sp - p - 1);
    r->uri = mock_alloc(n + 1);
    memcpy(r->uri, p + 1, n);
    r->http10 = (eol - sp >= 9 && memcmp(sp + 1, "HTTP/1.0", 8) == 0);
    r->close_after = r->http10;

    for (p = eol + 2; p < he; p = eol + 2) {
        eol = memmem(p, (size_t) (he + 2 - p), "\r\n", 2);
        v = memchr(p, ':', (size_t) (eol - p));
        if (v == NULL) {
            continue;
        }

        n = (size_t) (v - p);
        for (v++; v < eol && (*v == ' ' || *v == '\t'); v++) { /* void */ }

        if (n == 14 && strncasecmp(p, "Content-Length", 14) == 0) {
            *clen = strtol(v, NULL, 10);

        } else if (n == 17 && strncasecmp(p, "Transfer-Encoding", 17) == 0) {
            *chunked = (eol - v >= 7 && strncasecmp(v, "chunked", 7) == 0);

        } else if (n == 10 && strncasecmp(p, "Connection", 10) == 0
                   && eol - v >= 5 && strncasecmp(v, "close", 5) == 0)
        {
            r->close_after = 1;
        }
    }

    return 0;
}


static void
mock_parse(mock_conn_t *c)
{
    mock_req_t  *r = &c->r;
    const char  *he, *q, *body;
    char        *t;
    long         clen = 0, total;
    int          chunked = 0;

    if (c->state != MOCK_READ || c->in.len == 0) {
        return;
    }

    he = memmem(c->in.p, c->in.len, "\r\n\r\n", 4);

    if (he == NULL) {
        if (c->in.len > MOCK_HEAD_MAX) {
            bad(c, 431, "Request Header Fields Too Large");
        }
        return;
    }

    r->head_len = (size_t) (he - c->in.p) + 4;
    body = c->in.p + r->head_len;

    free(r->uri);
    r->uri = NULL;
    if (parse_head(c, he, &clen, &chunked) != 0) {
        return;
    }

    if (chunked) {
        total = unchunk(c, body, c->in.p + c->in.len);
        if (total < 0) {
            bad(c, 400, "Bad Request");
            return;
        }
        if (total == 0) {
            return;
        }
        r->len = (size_t) total;
        r->body = r->unchunked.p ? r->unchunked.p : "";
        r->body_len = r->unchunked.len;

    } else {
        if (clen < 0 || clen > MOCK_BODY_MAX) {
            bad(c, 413, "Payload Too Large");
            return;
        }
        if (c->in.len < r->head_len + (size_t) clen) {
            return;
        }
        r->len = r->head_len + (size_t) clen;
        r->body = body;
        r->body_len = (size_t) clen;
    }

    q = strchr(r->uri, '?');
    r->query = mock_strdup(q ? q + 1 : "");
    t = mock_strdup(r->uri);
    t[strcspn(t, "?")] = '\0';
    r->ep = endpoint(t);
    free(t);

    r->tag = mock_arg(r->query, "tag");
    if (r->tag == NULL || r->tag[0] == '\0') {
        free(r->tag);
        r->tag = mock_strdup("default");
    }
    for (t = r->tag; *t; t++) {
        if ((unsigned char) *t < 0x20 || *t == 0x7f) *t = '_';
    }

    r->rid = -1;
    q = r->body_len ? memmem(r->body, r->body_len, "rid-", 4) : NULL;
    if (q && r->body + r->body_len - q > 4) {
        r->rid = strtol(q + 4, NULL, 10);
    }

    c->state = MOCK_WAIT;
    r->ready = now_ns();
    r->ep->start(c);
}


static void
on_read(mock_conn_t *c)
{
    ssize_t  n;

    for ( ;; ) {
        buf_reserve(&c->in, c->in.len + 16384);
        n = recv(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len, 0);

        if (n > 0) {
            if (c->in.len == 0 && c->state == MOCK_READ) {
                c->r.first = now_ns();
                c->r.first_real = mock_now_real();
            }
            c->in.len += (size_t) n;

            if (c->in.len > 2 * (MOCK_HEAD_MAX + MOCK_BODY_MAX)) {
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

    mock_parse(c);
}


static void
on_accept(void)
{
    int                 fd, one = 1;
    mock_conn_t        *c;
    struct epoll_event  ev;

    for ( ;; ) {
        fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd == -1) {
            if (errno == EINTR) continue;
            return;              /* EAGAIN, or out of descriptors: later */
        }

        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

        c = mock_alloc(sizeof(mock_conn_t));
        c->fd = fd;
        c->heap_idx = -1;
        c->state = MOCK_READ;
        c->next = mock_conns;
        if (mock_conns) mock_conns->prev = c;
        mock_conns = c;
        mock_nconns++;

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


/* what handlers left for the loop: idle closes, woken waiters, timers */

static void
after_events(void)
{
    mock_conn_t  *c, *next;
    uint64_t      now;

    now = now_ns();

    while (heap_len && heap[0]->due <= now) {
        c = heap[0];
        timer_del(c);
        c->r.ep->fire(c);
        now = now_ns();
    }

    if (mock_close_idle) {
        for (c = mock_conns; c; c = next) {
            next = c->next;
            if (c->doomed && c->state == MOCK_READ && c->in.len == 0) {
                conn_close(c, 0);
            } else {
                c->doomed = 0;
            }
        }

        mock_close_idle = 0;
    }

    while (mock_records_changed) {
        mock_records_changed = 0;
        mock_records_wake();
    }

    timer_arm();
}


static int
listen_on(int port)
{
    int                 fd, one = 1;
    struct sockaddr_in  sin;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) die("socket");
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t) port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);     /* loopback only */

    if (bind(fd, (struct sockaddr *) &sin, sizeof(sin)) == -1) die("bind");
    if (listen(fd, 4096) == -1) die("listen");

    return fd;
}


static void
loop(void)
{
    int                 i, n;
    uint64_t            expired, now, last_flush = 0;
    mock_conn_t        *c;
    struct epoll_event  evs[512];

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
                if (!mock_write(c)) {
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

        after_events();

        now = now_ns();
        if (logf && now - last_flush > 100000000ULL) {
            fflush(logf);
            last_flush = now;
        }
    }
}


int
main(int argc, char **argv)
{
    int                 opt, port = 18090;
    long                records_mb = 256;
    FILE               *pf;
    const char         *pidfile = NULL;
    struct rlimit       rl;
    struct epoll_event  ev;
    static char         logbuf[1 << 20];

    while ((opt = getopt(argc, argv, "p:l:m:P:")) != -1) {
        switch (opt) {
        case 'p':
            port = atoi(optarg);
            break;
        case 'l':
            logf = fopen(optarg, "a");
            if (logf == NULL) die(optarg);
            setvbuf(logf, logbuf, _IOFBF, sizeof(logbuf));
            break;
        case 'm':
            records_mb = atol(optarg);
            break;
        case 'P':
            pidfile = optarg;
            break;
        default:
            fprintf(stderr, "usage: %s -p PORT [-l LOGFILE] [-m RECORDS_MB] "
                    "[-P PIDFILE]\n", argv[0]);
            return 2;
        }
    }

    mock_records_init(records_mb > 0 ? (size_t) records_mb << 20 : 0);

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    /* wake up at the deadline, not up to 50 us after it */
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);

    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    lfd = listen_on(port);
    ep = epoll_create1(EPOLL_CLOEXEC);
    tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (ep == -1 || tfd == -1) die("epoll/timerfd");

    ev.events = EPOLLIN;
    ev.data.ptr = &lfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    ev.data.ptr = &tfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);

    /* written once listening: a pid file means the port answers */
    if (pidfile) {
        pf = fopen(pidfile, "w");
        if (pf == NULL) die(pidfile);
        fprintf(pf, "%ld\n", (long) getpid());
        fclose(pf);
    }

    fprintf(stderr, "mock-llm: listening on 127.0.0.1:%d\n", port);

    loop();

    if (logf) {
        fflush(logf);
        fclose(logf);
    }

    if (pidfile) {
        unlink(pidfile);
    }

    return 0;
}

/*
 * classify-load.c -- the benchmark's load client: N concurrent streaming
 * chat POSTs on libcurl's multi interface (curl_multi_socket_action driven
 * by epoll), closed loop: each of the N slots sends its next request as
 * soon as its previous one ends, until the request count or the time bound
 * is reached.
 *
 * Per request it records the time to the end of the response headers, to
 * the first body byte, to the first SSE event that carries content (the
 * "first token"), the total time, the body bytes, the SSE events, whether
 * "data: [DONE]" arrived, the status and the X-Classify-Verdict header.
 * SSE is parsed as it arrives, line by line, across write callbacks.
 * All times are from the moment the request was handed to libcurl, on
 * CLOCK_MONOTONIC, in milliseconds with microsecond precision.
 *
 * It prints rps and p50/p90/p99/max (nearest rank) and writes a CSV.
 *
 *   classify-load -u URL [-c CONC] [-n COUNT] [-t SECONDS] [-T REQ_TIMEOUT]
 *                 [-w WARMUP] [-H 'Name: value']... [-S SESSIONS]
 *                 [-q QUESTION] [-i FIRST_RID] [-o CSV] [-l LABEL]
 *                 [-h HOLD_SECONDS] [-r REPEAT_PERCENT] [-L TTFT_MS,GAP_MS]
 *
 *   -c  concurrent requests (slots), default 1
 *   -n  measured requests, default 100
 *   -w  warm-up requests sent first (same concurrency, not measured; they
 *       carry "X-Bench-Warmup: 1" so that server logs can leave them out)
 *   -t  no request starts after this many seconds (default 60)
 *   -T  a request taking longer is cut (default 30): so the run always ends
 *       within t + T seconds
 *   -S  sessions: request i carries "X-Session-Id: bench-(i mod S)"
 *       (default 0: no session header)
 *   -q  the user question; " rid-<i>" is appended, so that every backend
 *       can tell which client request a call belongs to
 *   -i  the rid of the first request (default 1)
 *   -h  hold: print "inflight N" on stderr once all -c requests are sent,
 *       for the memory measurement (no other effect)
 *   -l  a label printed in the summary line
 *   -r  repeats: this percentage of the requests asks the question of an
 *       earlier request of the run (drawn from the rid, so a run is the
 *       same every time), the others a question of their own: the verdict
 *       cache's workload (default 0)
 *   -L  lag: the backend sends content event k at TTFT + k * GAP ms after
 *       the request (the mock's delay= and gap=); each content event's lag
 *       is how much later than that it arrived, and each request's largest
 *       and mean lag go to the summary (lagmax_, lagmean_) and the CSV:
 *       what an output guard holding the stream adds
 * Every request also carries "X-Bench-Rid: <rid>", for server logs.
 *
 * The summary line (stdout), for scripts:
 *   summary label=L n=N ok=OK err=E verdicts=V wall_s=W rps=R cpu_s=C
 *     hdr_p50=... hdr_p90=... hdr_p99=... hdr_max=...   (and the same for
 *     fb_ (first byte), tok_ (first token), total_, and with -L lagmax_
 *     and lagmean_); cpu_s is the
 *     client's own CPU time (user + system) for the whole run
 *
 * Build: gcc -O2 -Wall -o classify-load classify-load.c -lcurl
 */

#define _GNU_SOURCE
#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_KEEP  256       /* bytes of an SSE line kept for parsing */
#define MAX_HEADERS    32

typedef struct {
    long      rid;
    int       warmup;
    double    start;             /* ms since the run started */
    double    hdr, fb, tok, total;
    double    lag_max, lag_sum;  /* -L */
    int       lag_n;
    long      bytes;
    int       events;
    int       done;
    long      status;
    int       curl_err;
    char      verdict[64];
} result_t;

typedef struct {
    CURL               *easy;
    struct curl_slist  *headers;
    result_t           *res;
    double              t0;      /* ms, CLOCK_MONOTONIC */
    char                body[1024];
    char                line[LINE_MAX_KEEP];
    size_t              line_len;
    int                 line_skip;  /* the rest of a too long line */
} slot_t;

static CURLM     *multi;
static int        ep;
static double     timer_at = -1;   /* ms; -1: no libcurl timeout wanted */

static const char *url;
static const char *question = "How many daily prayers are there?";
static const char *user_headers[MAX_HEADERS];
static int         n_user_headers;
static int         sessions;
static int         repeat_pct;
static long        repeat_first;
static double      lag_ttft = -1, lag_gap;


static double
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}


/* libcurl tells which sockets to watch, and for what */

static int
socket_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct epoll_event ev;

    (void) e; (void) userp;

    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(ep, EPOLL_CTL_DEL, s, NULL);
        curl_multi_assign(multi, s, NULL);
        return 0;
    }

    memset(&ev, 0, sizeof(ev));
    ev.data.fd = s;
    if (what & CURL_POLL_IN) ev.events |= EPOLLIN;
    if (what & CURL_POLL_OUT) ev.events |= EPOLLOUT;

    if (socketp == NULL) {
        if (epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) == -1 && errno == EEXIST) {
            epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev);
        }
        curl_multi_assign(multi, s, (void *) 1);

    } else {
        epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev);
    }

    return 0;
}


static int
timer_cb(CURLM *m, long timeout_ms, void *userp)
{
    (void) m; (void) userp;

    timer_at = timeout_ms < 0 ? -1 : now_ms() + (double) timeout_ms;
    return 0;
}


static size_t
header_cb(char *p, size_t size, size_t n, void *userp)
{
    slot_t  *s = userp;
    size_t   len = size * n, v;

    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        s->res->hdr = 0;          /* a new status line (after a 1xx) */
        s->res->verdict[0] = '\0';
        return len;
    }

    if (len <= 2 && (len == 0 || p[0] == '\r' || p[0] == '\n')) {
        s->res->hdr = now_ms() - s->t0;
        return len;
    }

    if (len > 19 && strncasecmp(p, "X-Classify-Verdict:", 19) == 0) {
        p += 19;
        len -= 19;
        while (len && (*p == ' ' || *p == '\t')) { p++; len--; }
        while (len && (p[len - 1] == '\r' || p[len - 1] == '\n'
                       || p[len - 1] == ' '))
        {
            len--;
        }
        v = len < sizeof(s->res->verdict) - 1
            ? len : sizeof(s->res->verdict) - 1;
        memcpy(s->res->verdict, p, v);
        s->res->verdict[v] = '\0';
        return size * n;
    }

    return len;
}


/* one complete SSE line */

static void
sse_line(slot_t *s)
{
    char    *p = s->line;
    size_t   len = s->line_len;
    double   now, lag;

    if (len && p[len - 1] == '\r') len--;

    if (len < 5 || memcmp(p, "data:", 5) != 0) {
        return;
    }

    p += 5;
    len -= 5;
    if (len && *p == ' ') { p++; len--; }

    s->res->events++;

    if (len == 6 && memcmp(p, "[DONE]", 6) == 0) {
        s->res->done = 1;
        return;
    }

    if (memmem(p, len, "\"content\":\"", 11) != NULL
        && memmem(p, len, "\"content\":\"\"", 12) == NULL)
    {
        now = now_ms() - s->t0;

        if (s->res->tok == 0) {
            s->res->tok = now;
        }

        if (lag_ttft >= 0) {
            lag = now - (lag_ttft + s->res->lag_n * lag_gap);
            s->res->lag_max = s->res->lag_n ? fmax(s->res->lag_max, lag) : lag;
            s->res->lag_sum += lag;
            s->res->lag_n++;
        }
    }
}


static size_t
write_cb(char *p, size_t size, size_t n, void *userp)
{
    slot_t  *s = userp;
    size_t   len = size * n, i, k;

    if (s->res->fb == 0 && len) {
        s->res->fb = now_ms() - s->t0;
    }

    s->res->bytes += (long) len;

    for (i = 0; i < len; i++) {
        if (p[i] == '\n') {
            sse_line(s);
            s->line_len = 0;
            s->line_skip = 0;
            continue;
        }

        if (s->line_skip) {
            continue;
        }

        if (s->line_len < sizeof(s->line)) {
            /* copy the run up to the next newline at once */
            k = i;
            while (k < len && p[k] != '\n'
                   && s->line_len + (k - i) < sizeof(s->line))
            {
                k++;
            }
            memcpy(s->line + s->line_len, p + i, k - i);
            s->line_len += k - i;
            i = k - 1;

        } else {
            s->line_skip = 1;   /* keep the head only: enough to classify */
        }
    }

    return len;
}


/*
 * -r: the rid whose question request rid asks: its own, or for
 * repeat_pct% of the requests an earlier one's, found the same way
 */

static long
question_rid(long rid)
{
    uint64_t  z;

    while (repeat_pct > 0 && rid > repeat_first) {
        z = (uint64_t) rid * 0x9e3779b97f4a7c15ULL;
        z = (z ^ (z >> 31)) * 0xbf58476d1ce4e5b9ULL;
        z ^= z >> 29;

        if ((int) (z % 100) >= repeat_pct) {
            break;
        }

        rid = repeat_first
              + (long) ((z >> 8) % (uint64_t) (rid - repeat_first));
    }

    return rid;
}


static void
slot_start(slot_t *s, result_t *res, long rid, int warmup, double run0,
           long req_timeout_s)
{
    char  hdr[160];
    int   i, n;

    memset(res, 0, sizeof(*res));
    res->rid = rid;
    res->warmup = warmup;

    s->res = res;
    s->line_len = 0;
    s->line_skip = 0;

    n = snprintf(s->body, sizeof(s->body),
                 "{\"model\":\"bench\",\"stream\":true,\"messages\":"
                 "[{\"role\":\"user\",\"content\":\"%s rid-%ld\"}]}",
                 question, question_rid(rid));

    curl_slist_free_all(s->headers);
    s->headers = curl_slist_append(NULL, "Content-Type: application/json");
    s->headers = curl_slist_append(s->headers, "Accept: text/event-stream");
    s->headers = curl_slist_append(s->headers, "Expect:");

    for (i = 0; i < n_user_headers; i++) {
        s->headers = curl_slist_append(s->headers, user_headers[i]);
    }

    if (sessions > 0) {
        snprintf(hdr, sizeof(hdr), "X-Session-Id: bench-%ld", rid % sessions);
        s->headers = curl_slist_append(s->headers, hdr);
    }

    if (warmup) {
        s->headers = curl_slist_append(s->headers, "X-Bench-Warmup: 1");
    }

    snprintf(hdr, sizeof(hdr), "X-Bench-Rid: %ld", rid);
    s->headers = curl_slist_append(s->headers, hdr);

    curl_easy_setopt(s->easy, CURLOPT_URL, url);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, s->body);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE, (long) n);
    curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->headers);
    curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(s->easy, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(s->easy, CURLOPT_HEADERDATA, s);
    curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
    curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(s->easy, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(s->easy, CURLOPT_TIMEOUT, req_timeout_s);
    curl_easy_setopt(s->easy, CURLOPT_CONNECTTIMEOUT, 5L);

    s->t0 = now_ms();
    res->start = s->t0 - run0;

    curl_multi_add_handle(multi, s->easy);
}


static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;

    return x < y ? -1 : x > y;
}


/* nearest rank: the smallest value with at least p of the sample at or
 * below it */

static double
pct(const double *v, size_t n, double p)
{
    size_t k;

    if (n == 0) return 0;
    k = (size_t) ceil(p * (double) n);
    if (k < 1) k = 1;
    if (k > n) k = n;
    return v[k - 1];
}


static void
stats(const char *name, result_t *r, size_t n, int which, char *out,
      size_t size)
{
    double  *v;
    size_t   i, m = 0;

    v = malloc((n + 1) * sizeof(double));

    for (i = 0; i < n; i++) {
        if (r[i].warmup || r[i].curl_err || r[i].status != 200) continue;
        if (which >= 4 && r[i].lag_n == 0) continue;
        v[m++] = which == 0 ? r[i].hdr : which == 1 ? r[i].fb
                 : which == 2 ? r[i].tok : which == 3 ? r[i].total
                 : which == 4 ? r[i].lag_max : r[i].lag_sum / r[i].lag_n;
    }

    qsort(v, m, sizeof(double), cmp_double);

    snprintf(out, size, " %s_p50=%.3f %s_p90=%.3f %s_p99=%.3f %s_max=%.3f",
             name, pct(v, m, .5), name, pct(v, m, .9), name, pct(v, m, .99),
             name, m ? v[m - 1] : 0.0);

    fprintf(stderr, "  %-12s p50 %9.3f  p90 %9.3f  p99 %9.3f  max %9.3f ms\n",
            name, pct(v, m, .5), pct(v, m, .9), pct(v, m, .99),
            m ? v[m - 1] : 0.0);

    free(v);
}


static void
usage(const char *me)
{
    fprintf(stderr, "usage: %s -u URL [-c CONC] [-n COUNT] [-w WARMUP] "
            "[-t SECONDS] [-T REQ_TIMEOUT] [-H 'Name: value']... "
            "[-S SESSIONS] [-q QUESTION] [-i FIRST_RID] [-o CSV] "
            "[-l LABEL] [-h] [-r REPEAT_PERCENT] [-L TTFT_MS,GAP_MS]\n", me);
    exit(2);
}


int
main(int argc, char **argv)
{
    int                 opt, conc = 1, running = 0, n_ev, i, msgs, hold = 0;
    int                 held = 0;
    long                count = 100, warm = 0, started = 0, finished = 0;
    long                first_rid = 1, total, ok = 0, err = 0, verdicts = 0;
    double              max_s = 60, run0, deadline, hard, wait, now;
    double              first_start = -1, last_end = 0;
    long                req_timeout = 30;
    const char         *csv = NULL, *label = "run";
    char                line[4096], *p;
    size_t              left;
    slot_t             *slots;
    result_t           *res;
    CURLMsg            *msg;
    CURL               *easy;
    slot_t             *s;
    FILE               *f;
    double              cpu;
    struct rlimit       rl;
    struct rusage       ru;
    struct epoll_event  evs[256];

    while ((opt = getopt(argc, argv, "u:c:n:w:t:T:H:S:q:i:o:l:hr:L:")) != -1) {
        switch (opt) {
        case 'u': url = optarg; break;
        case 'c': conc = atoi(optarg); break;
        case 'n': count = atol(optarg); break;
        case 'w': warm = atol(optarg); break;
        case 't': max_s = atof(optarg); break;
        case 'T': req_timeout = atol(optarg); break;
        case 'H':
            if (n_user_headers == MAX_HEADERS) usage(argv[0]);
            user_headers[n_user_headers++] = optarg;
            break;
        case 'S': sessions = atoi(optarg); break;
        case 'q': question = optarg; break;
        case 'i': first_rid = atol(optarg); break;
        case 'o': csv = optarg; break;
        case 'l': label = optarg; break;
        case 'h': hold = 1; break;
        case 'r': repeat_pct = atoi(optarg); break;
        case 'L':
            if (sscanf(optarg, "%lf,%lf", &lag_ttft, &lag_gap) != 2
                || lag_ttft < 0 || lag_gap < 0)
            {
                usage(argv[0]);
            }
            break;
        default: usage(argv[0]);
        }
    }

    if (url == NULL || conc < 1 || count < 1 || warm < 0 || max_s <= 0
        || repeat_pct < 0 || repeat_pct > 100
        || req_timeout < 1 || strpbrk(question, "\"\\") != NULL)
    {
        usage(argv[0]);
    }

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    total = warm + count;
    repeat_first = first_rid;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "curl_global_init failed\n");
        return 1;
    }

    multi = curl_multi_init();
    ep = epoll_create1(EPOLL_CLOEXEC);

    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long) conc + 16);

    slots = calloc((size_t) conc, sizeof(slot_t));
    res = calloc((size_t) total, sizeof(result_t));
    if (slots == NULL || res == NULL) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }

    for (i = 0; i < conc; i++) {
        slots[i].easy = curl_easy_init();
    }

    run0 = now_ms();
    deadline = run0 + max_s * 1e3;
    hard = deadline + (double) req_timeout * 1e3 + 5e3;

    /* every slot starts one request; later ones start as earlier ones end */

    for (i = 0; i < conc && started < total; i++) {
        slot_start(&slots[i], &res[started], first_rid + started,
                   started < warm, run0, req_timeout);
        started++;
        running++;
    }

    /* bounded: by the count (each turn ends requests or moves them on) and
     * by the hard deadline, past which whatever runs is cut */

    while (running > 0) {
        now = now_ms();

        if (now > hard) {
            fprintf(stderr, "hard deadline reached, %d requests cut\n",
                    running);
            break;
        }

        if (hold && !held && started == total) {
            fprintf(stderr, "inflight %d\n", running);
            held = 1;
        }

        wait = 100;
        if (timer_at >= 0) {
            wait = timer_at - now;
            if (wait < 0) wait = 0;
            if (wait > 100) wait = 100;
        }

        n_ev = epoll_wait(ep, evs, 256, (int) ceil(wait));

        if (n_ev == -1 && errno != EINTR) {
            perror("epoll_wait");
            break;
        }

        for (i = 0; i < n_ev; i++) {
            int flags = 0;

            if (evs[i].events & EPOLLIN) flags |= CURL_CSELECT_IN;
            if (evs[i].events & EPOLLOUT) flags |= CURL_CSELECT_OUT;
            if (evs[i].events & (EPOLLERR | EPOLLHUP)) {
                flags |= CURL_CSELECT_ERR;
            }

            curl_multi_socket_action(multi, evs[i].data.fd, flags, &msgs);
        }

        if (timer_at >= 0 && now_ms() >= timer_at) {
            timer_at = -1;
            curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &msgs);
        }

        while ((msg = curl_multi_info_read(multi, &msgs)) != NULL) {
            if (msg->msg != CURLMSG_DONE) continue;

            easy = msg->easy_handle;
            curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **) &s);

            s->res->total = now_ms() - s->t0;
            s->res->curl_err = (int) msg->data.result;
            curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &s->res->status);

            if (!s->res->warmup) {
                if (first_start < 0 || s->res->start < first_start) {
                    first_start = s->res->start;
                }
                if (s->res->start + s->res->total > last_end) {
                    last_end = s->res->start + s->res->total;
                }
            }

            curl_multi_remove_handle(multi, easy);
            running--;
            finished++;

            /* measured requests start once the whole warm-up is over */

            if (started < total && now_ms() < deadline
                && !(warm > 0 && started == warm))
            {
                slot_start(s, &res[started], first_rid + started,
                           started < warm, run0, req_timeout);
                started++;
                running++;
            }
        }

        /* the warm-up is over: start the measured requests in all slots */

        if (warm > 0 && started == warm && running == 0 && started < total
            && now_ms() < deadline)
        {
            for (i = 0; i < conc && started < total; i++) {
                slot_start(&slots[i], &res[started], first_rid + started, 0,
                           run0, req_timeout);
                started++;
                running++;
            }
        }
    }

    /* report */

    for (i = 0; i < (int) started; i++) {
        if (res[i].warmup) continue;
        if (res[i].curl_err || res[i].status != 200) err++; else ok++;
        if (res[i].verdict[0]) verdicts++;
    }

    fprintf(stderr, "%s: %ld requests (%ld ok, %ld failed, %ld not started), "
            "concurrency %d, %ld with a verdict header\n",
            label, (long) started - (started < warm ? started : warm), ok,
            err, count - ((long) started - (started < warm ? started : warm)),
            conc, verdicts);

    p = line;
    left = sizeof(line);
    getrusage(RUSAGE_SELF, &ru);
    cpu = (double) ru.ru_utime.tv_sec + (double) ru.ru_utime.tv_usec / 1e6
          + (double) ru.ru_stime.tv_sec + (double) ru.ru_stime.tv_usec / 1e6;

    i = snprintf(p, left, "summary label=%s n=%ld ok=%ld err=%ld verdicts=%ld"
                 " wall_s=%.3f rps=%.1f cpu_s=%.3f", label, ok + err, ok,
                 err, verdicts, (last_end - first_start) / 1e3,
                 last_end > first_start
                 ? (double) ok * 1e3 / (last_end - first_start) : 0.0, cpu);
    p += i; left -= (size_t) i;

    fprintf(stderr, "  rps %.1f over %.3f s\n",
            last_end > first_start
            ? (double) ok * 1e3 / (last_end - first_start) : 0.0,
            (last_end - first_start) / 1e3);

    stats("hdr", res, (size_t) started, 0, p, left);
    left -= strlen(p); p += strlen(p);
    stats("fb", res, (size_t) started, 1, p, left);
    left -= strlen(p); p += strlen(p);
    stats("tok", res, (size_t) started, 2, p, left);
    left -= strlen(p); p += strlen(p);
    stats("total", res, (size_t) started, 3, p, left);

    if (lag_ttft >= 0) {
        left -= strlen(p); p += strlen(p);
        stats("lagmax", res, (size_t) started, 4, p, left);
        left -= strlen(p); p += strlen(p);
        stats("lagmean", res, (size_t) started, 5, p, left);
    }

    printf("%s\n", line);

    if (csv) {
        f = fopen(csv, "w");
        if (f == NULL) {
            perror(csv);
            return 1;
        }

        fprintf(f, "label,rid,start_ms,status,curl_err,hdr_ms,first_byte_ms,"
                "first_token_ms,total_ms,bytes,events,done,verdict%s\n",
                lag_ttft >= 0 ? ",lag_max_ms,lag_mean_ms" : "");

        for (i = 0; i < (int) started; i++) {
            if (res[i].warmup) continue;
            fprintf(f, "%s,%ld,%.3f,%ld,%d,%.3f,%.3f,%.3f,%.3f,%ld,%d,%d,%s",
                    label, res[i].rid, res[i].start, res[i].status,
                    res[i].curl_err, res[i].hdr, res[i].fb, res[i].tok,
                    res[i].total, res[i].bytes, res[i].events, res[i].done,
                    res[i].verdict);

            if (lag_ttft >= 0) {
                fprintf(f, ",%.3f,%.3f", res[i].lag_max,
                        res[i].lag_n ? res[i].lag_sum / res[i].lag_n : 0.0);
            }

            fprintf(f, "\n");
        }

        fclose(f);
    }

    for (i = 0; i < conc; i++) {
        curl_slist_free_all(slots[i].headers);
        curl_easy_cleanup(slots[i].easy);
    }

    curl_multi_cleanup(multi);
    curl_global_cleanup();
    free(slots);
    free(res);

    return err ? 1 : 0;
}

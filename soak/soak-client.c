/*
 * soak-client.c -- the soak's load client (soak/run, make soak).
 *
 * CONC slots, one thread, raw non-blocking sockets on epoll, closed loop:
 * each slot starts its next request as soon as its previous one ends,
 * until SECONDS have passed; then the requests in flight finish (each is
 * bounded by REQ_TIMEOUT) and it prints its summary.
 *
 * Request number RID is drawn from its own random generator, seeded by
 * (SEED, RID): its kind, URL, headers, body, the mock's behaviour for every
 * classifier (sent in X-Soak-A/B/J/S/Gen headers, which the classifier and
 * generation locations paste into their proxy_pass URLs) and when the
 * client breaks off.  So a request is the same whatever the timing, and
 * `soak-client -s SEED -1 RID -v` sends exactly that one again.
 *
 * The mix, in percent (kind_weight[]): pass 18, block 13, clf-error 14,
 * clf-hang 8, fields 8, nostream 5, bigbody 3 (20-120 KB: a temp file),
 * trickle 3 (2-8 pieces 5-50 ms apart), gen-cut 2, over-cl 2 and
 * over-chunked 2 (129-400 KB against client_max_body_size 128k),
 * bad-input 5, method 1, disc-upload 3, disc-decision 4 (classifiers of
 * 0.2-0.8 s, the client gone after 0-0.7 s), disc-stream 5 (20-40 events
 * 10-30 ms apart, the client gone anywhere in the stream), huge-array 2
 * (2000-7000 tool messages before the user turn, or as many numbers:
 * 400), slow-keepalive 2 (a 1.1-1.4 s decision past the location's 1 s
 * lingering_timeout, the connection kept for the next request).  Within a
 * kind each classifier is negative 65%, positive 17%, failing 18% (one of
 * 12 faults) and answers in 0-80 ms; 55% go to the main location, 23% to
 * the tight one, 22% to the sequential one; half carry a Redis session,
 * 60% keep the connection for the next request, a client disconnect is a
 * RST half the time.
 *
 * From the same draw it computes the answer the gate must give (classifiers
 * a > b > j in priority; a and j fail open, b fails closed; the shadow s
 * never counts) and checks it byte by byte as far as the format allows:
 *   pass          200 text/event-stream, exactly the mock's K events,
 *                 the stop event and "data: [DONE]", no X-Classify-Verdict
 *   block (openai, stream)  200 text/event-stream, X-Classify-Verdict,
 *                 role / content / stop chat.completion.chunk events (each
 *                 parsed with cJSON: object, id, model, delta), [DONE]
 *   block (openai, not streamed)  one chat.completion object
 *   block (fields) the reply as JSON {"verdict","reply"}, as SSE data:
 *                 lines, or as text/plain, after the Accept header
 *   400/405/413   JSON {"error":{"message","type","code"}}, code = status
 *   413 announced by Content-Length  nginx's own page
 *   413 for a chunked body  the gate's JSON, or nginx's own page when nginx
 *                 notices the excess in a later read of the body than the
 *                 gate's first one (accepted, and counted in the coverage
 *                 line as over_chunked_answered_by_nginx_page)
 * and the HTTP framing itself: status line, Content-Length or chunked
 * encoding read to the end, no byte after the response, no connection
 * closed under a response.  A request with no complete answer after
 * REQ_TIMEOUT seconds is "missing".  A reused keep-alive connection that
 * the server closes before answering is a failure too.
 *
 * With -G (soak/run SOAK_GUARD=1) the streamed answers of the main and
 * the tight location are judged by the output classifier g (hold mode in
 * the main location, release in the tight one), whose behaviour is drawn
 * too: negative 60%, failing (fails open) 15%, positive at once 10%,
 * positive on the word "pizza" of a generation that has it 15%.  A
 * guarded answer g passes must be the mock's stream byte for byte; one it
 * cuts must be chat.completion.chunk events of one id, a prefix of the
 * generation's text (empty, or free of the word, in hold mode), then g's
 * reply, a finish_reason "content_filter" and [DONE].
 *
 * The replies are read from the files nginx reads (-R DIR: a.txt, b.txt,
 * j.txt, g.txt), trailing white space removed as the module does.
 *
 *   soak-client -p PORT [-c CONC] [-t SECONDS] [-s SEED] [-i FIRST_RID]
 *               [-T REQ_TIMEOUT] [-R REPLY_DIR] [-F FAILURE_LOG]
 *               [-l LABEL] [-1 RID] [-x KIND,...] [-C] [-G] [-v]
 *
 *   -1 RID  send request RID alone (with -s, the seed of the run) and print
 *           it, its answer and the verdict on it
 *   -C      the verdict cache's soak: half the requests are an earlier
 *           request again (100-3000 rids before), bytes and expected answer
 *           alike, so that a cached verdict must give the answer a
 *           classifier call gives (the mock's behaviour is in the request)
 *   -G      the output guard's soak (above)
 *   -x      leave these kinds out of the mix (names as in the summary)
 *   -F      append every failed request to this file, one a line
 *
 * Output (stdout): a table per kind (sent, ok, failed, disconnected as
 * planned, completed before the planned disconnect, max ms), coverage
 * counters, the first failures in detail, and a last line
 *   result label=L requests=N failures=F missing=M next_rid=R
 * Exit status: 0 when no request failed, 1 otherwise, 2 on a usage error.
 *
 * Build: gcc -O2 -Wall -o soak-client soak-client.c -lcjson
 */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONC        4096
#define BODY_KEEP       (1 << 20)   /* decoded response bytes kept */
#define FAIL_DETAIL     12          /* failures printed in detail */
#define MAX_BODY        (128 * 1024)  /* client_max_body_size in the conf */

/* ------------------------------------------------------------ the mix */

enum {
    K_PASS, K_BLOCK, K_ERROR, K_HANG, K_FIELDS, K_NOSTREAM, K_BIGBODY,
    K_TRICKLE, K_GENCUT, K_OVER_CL, K_OVER_CHUNKED, K_BAD, K_METHOD,
    K_DISC_UPLOAD, K_DISC_DECISION, K_DISC_STREAM, K_HUGE, K_SLOW_KA, K_N
};

static const char *kind_name[K_N] = {
    "pass", "block", "clf-error", "clf-hang", "fields", "nostream",
    "bigbody", "trickle", "gen-cut", "over-cl", "over-chunked", "bad-input",
    "method", "disc-upload", "disc-decision", "disc-stream", "huge-array",
    "slow-keepalive"
};

/* percent of requests */
static const int kind_weight[K_N] = {
    18, 13, 14, 8, 8, 5, 3, 3, 2, 2, 2, 5, 1, 3, 4, 5, 2, 2
};

/* classifiers, in priority order; s is the shadow (main location only) */
enum { C_A, C_B, C_J, C_S, C_N };
static const char  cname[C_N] = { 'a', 'b', 'j', 's' };
static const int   on_error_block[C_N] = { 0, 1, 0, 0 };

enum { B_NEG, B_POS, B_ERR, B_HANG };

static const char *err_modes[] = {
    "status=500", "status=502", "status=503", "status=429", "status=404",
    "mode=garbage", "mode=reset", "mode=close", "mode=rst", "mode=empty",
    "mode=noword", "mode=big"
};
#define N_ERR_MODES  (sizeof(err_modes) / sizeof(err_modes[0]))

enum { L_MAIN, L_TIGHT, L_SEQ, L_FIELDS, L_SLOW, L_N };
static const char *loc_path[L_N] = {
    "/v1/chat/completions", "/v1/tight", "/v1/seq", "/v1/fields", "/v1/slow"
};

/* what the answer must be */
enum {
    X_GEN, X_GEN_CUT, X_OPENAI_SSE, X_OPENAI_JSON, X_SSE, X_JSON, X_TEXT,
    X_ERR, X_413_PAGE, X_GUARD_CUT
};

static const char *expect_name[] = {
    "generation stream", "generation cut after one event",
    "openai SSE reply", "openai chat.completion reply", "SSE reply",
    "JSON reply", "text reply", "JSON error", "nginx 413 page",
    "generation cut by the output guard"
};

/* -G: the output classifier g's behaviour */
enum { G_NEG, G_ERR, G_FIRST, G_WORD };

static const char *g_errs[] = {
    "status=500", "status=503", "mode=garbage", "mode=close", "mode=empty"
};

enum { A_NONE, A_UPLOAD, A_DECISION, A_STREAM };

typedef struct {
    long      rid;
    long      repeat;            /* -C: the earlier rid this one repeats */
    int       kind;
    int       loc;
    int       expect;
    int       status;            /* expected */
    int       verdict;           /* -1: pass, else the blocking classifier */
    int       beh[C_N];
    int       errm[C_N];
    int       gen_chunks;
    int       guarded;           /* -G: an output guard on the answer */
    int       gbeh;
    char      gen_text[160];     /* G_WORD: the generation's text */
    int       keepalive;         /* reuse the connection afterwards */
    int       session;
    char      model[32];

    char     *req;               /* head and body, as sent */
    size_t    req_len;
    size_t    head_len;

    int       pieces;            /* trickle: sent in this many pieces */
    int       gap_ms;

    int       abort_at;
    size_t    abort_bytes;       /* A_UPLOAD: of req; A_STREAM: of body */
    int       abort_ms;          /* A_DECISION: after the request is sent */
    int       abort_rst;

    char      desc[1024];
} plan_t;

/* ------------------------------------------------------------ random */

typedef struct { uint64_t s; } rng_t;

static uint64_t
rnd(rng_t *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int
rint_(rng_t *r, int lo, int hi)          /* lo..hi inclusive */
{
    return lo + (int) (rnd(r) % (uint64_t) (hi - lo + 1));
}

static int
chance(rng_t *r, int percent)
{
    return (int) (rnd(r) % 100) < percent;
}

/* ------------------------------------------------------------ state */

enum { S_FREE, S_CONNECTING, S_SEND, S_READ, S_IDLE };

typedef struct {
    int        fd;
    int        state;
    int        reused;            /* the connection served a request before */
    plan_t    *plan;
    char       prev[80];          /* the request it served last */
    int        prev_kind;

    size_t     sent;
    size_t     piece_end;         /* trickle: send up to here, then wait */
    double     t_start, t_sent;
    double     next_at;           /* a trickle gap or a planned abort; 0 */
    double     deadline;

    char      *in;
    size_t     in_len, in_cap;
    size_t     pos;               /* parsed up to here */
    int        hdr_done;
    int        status;
    long       clen;
    int        chunked;
    int        conn_close;
    int        complete;
    int        eof;
    char       ctype[128];
    char       verdict_hdr[64];
    char       allow[64];
    char       bad_head[160];     /* a malformed head, described */
    long       chunk_left;        /* -1: expecting a size line */
    int        chunk_trailer;
    char      *body;
    size_t     body_len, body_cap;
    size_t     body_raw;          /* body bytes received, before decoding */
} conn_t;

typedef struct {
    long    sent, ok, fail, disc, early, missing;
    double  max_ms;
} stat_t;

static stat_t      stats[K_N];
static conn_t      slots[MAX_CONC];
static int         ep;
static struct sockaddr_in  addr;

static int         conc = 200, seconds = 60, req_timeout = 15, verbose;
static uint64_t    seed;
static long        next_rid = 1, one_rid = -1;
static int         repeats;
static int         guard;
static const char *label = "soak";
static int         excluded[K_N];
static const char *argv0 = "soak-client";
static const char *reply_dir = "soak/replies";
static char       *reply[4];
static FILE       *faillog;
static long        failures, requests, missing;
static volatile sig_atomic_t stop_now;

/* coverage: how often each situation was exercised */
enum {
    V_PASS, V_A, V_B, V_J, V_ONERR_PASS, V_ONERR_BLOCK, V_HANG_MAIN,
    V_HANG_TIGHT, V_HANG_SEQ, V_SESSION, V_SHADOW_HANG, V_REUSED, V_RST,
    V_413_PAGE_CHUNKED, V_REPEAT, V_GUARD_PASS, V_GUARD_CUT_HOLD,
    V_GUARD_CUT_RELEASE, V_N
};
static const char *cov_name[V_N] = {
    "verdict_pass", "verdict_a", "verdict_b", "verdict_j",
    "classifier_error_fail_open", "classifier_error_fail_closed",
    "hang_main", "hang_tight", "hang_seq", "redis_session",
    "shadow_hang", "keepalive_reused", "client_rst",
    "over_chunked_answered_by_nginx_page", "repeat_of_an_earlier_request",
    "guarded_answer_passed", "guarded_answer_cut_hold",
    "guarded_answer_cut_release"
};
static long  cov[V_N], cov_err[N_ERR_MODES];


static double
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}


static void
die(const char *what)
{
    perror(what);
    exit(2);
}


static char *
read_reply(const char *dir, const char *name)
{
    char    path[4096], *s;
    FILE   *f;
    long    n;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "rb");
    if (f == NULL) die(path);
    s = malloc(1 << 20);
    if (s == NULL) die("malloc");
    n = (long) fread(s, 1, (1 << 20) - 1, f);
    fclose(f);
    while (n > 0 && isspace((unsigned char) s[n - 1])) n--;
    s[n] = '\0';
    return s;
}

/* ------------------------------------------------------------ the plan */

typedef struct { char *p; size_t len, cap; } sb_t;

static void
sb_add(sb_t *b, const char *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        while (b->len + n + 1 > b->cap) b->cap = b->cap ? b->cap * 2 : 4096;
        b->p = realloc(b->p, b->cap);
        if (b->p == NULL) die("realloc");
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_printf(sb_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
sb_printf(sb_t *b, const char *fmt, ...)
{
    char     buf[8192];
    int      n;
    va_list  ap;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n > 0) sb_add(b, buf, (size_t) n < sizeof(buf) ? (size_t) n : sizeof(buf) - 1);
}


/* the mock's query arguments for one classifier */

static void
beh_args(plan_t *pl, int c, rng_t *r, int slow, char *out, size_t size)
{
    int          json = (c == C_J);
    double       delay;
    const char  *neg[] = { "no", "No.", "nope", "false" };
    const char  *pos[] = { "yes", "Yes.", "TRUE", "true" };

    /* normal classifiers answer in 0-80 ms, far inside every deadline
     * (the tightest is 1 s); "slow" ones (disc-decision) in 0.2-0.8 s;
     * "slower" ones (slow-keepalive) in 1.1-1.4 s, past the slow
     * location's 1 s lingering_timeout and inside a's 1.5 s timeout */
    delay = slow == 2 ? rint_(r, 1100, 1400) / 1000.0
            : slow ? rint_(r, 200, 800) / 1000.0
            : rint_(r, 0, 80) / 1000.0;

    switch (pl->beh[c]) {
    case B_NEG:
        snprintf(out, size, "verdict=%s&delay=%.3f",
                 json ? "false" : neg[rint_(r, 0, 3)], delay);
        break;
    case B_POS:
        snprintf(out, size, "verdict=%s&delay=%.3f",
                 json ? "true" : pos[rint_(r, 0, 3)], delay);
        break;
    case B_ERR:
        /* a positive verdict under every fault, so that a fault taken for
         * an answer blocks; but mode=noword answers the verdict given, if
         * one is (the mock's contract): "???" only without one */
        pl->errm[c] = rint_(r, 0, N_ERR_MODES - 1);
        if (strcmp(err_modes[pl->errm[c]], "mode=noword") == 0) {
            snprintf(out, size, "delay=%.3f&%s", delay,
                     err_modes[pl->errm[c]]);
        } else {
            snprintf(out, size, "verdict=%s&delay=%.3f&%s",
                     json ? "true" : "yes", delay, err_modes[pl->errm[c]]);
        }
        break;
    default:
        snprintf(out, size, "mode=hang");
    }
}


static int
random_beh(rng_t *r)
{
    int x = rint_(r, 0, 99);

    return x < 65 ? B_NEG : x < 82 ? B_POS : B_ERR;
}


/* -C: the earlier rid that request rid repeats, or 0 */

static long
repeat_of(long rid)
{
    rng_t  r;

    if (!repeats) return 0;

    r.s = seed ^ ((uint64_t) rid * 0x9e3779b97f4a7c15ULL);
    rnd(&r);

    if (!chance(&r, 50)) return 0;

    rid -= rint_(&r, 100, 3000);
    return rid > 0 ? rid : 0;
}


/*
 * -G: g's behaviour for a request to a guarded location (elsewhere its
 * generation is the plain one); an answer the mock cuts off (gen-cut) is
 * not cut by g too
 */

static void
guard_plan(plan_t *pl, rng_t *r, int gen_reset, char *out, size_t size)
{
    int     x;
    double  delay;

    x = rint_(r, 0, 99);
    delay = rint_(r, 0, 40) / 1000.0;

    pl->guarded = (pl->loc == L_MAIN || pl->loc == L_TIGHT);
    pl->gbeh = (gen_reset || !pl->guarded) ? G_NEG : x < 60 ? G_NEG
               : x < 75 ? G_ERR : x < 85 ? G_FIRST : G_WORD;

    switch (pl->gbeh) {
    case G_NEG:
        snprintf(out, size, "verdict=no&delay=%.3f", delay);
        break;
    case G_ERR:
        snprintf(out, size, "verdict=yes&delay=%.3f&%s", delay,
                 g_errs[rint_(r, 0, (int) (sizeof(g_errs) / sizeof(g_errs[0]))
                                    - 1)]);
        break;
    case G_FIRST:
        snprintf(out, size, "verdict=yes&delay=%.3f", delay);
        break;
    default:
        snprintf(out, size, "rule=offtopic&delay=%.3f", delay);
        snprintf(pl->gen_text, sizeof(pl->gen_text),
                 "&text=Soak%%20answer%%20rid-%ld%%20the%%20best%%20pizza"
                 "%%20is%%20here%%20and%%20more%%20words%%20follow.",
                 pl->rid);
    }
}


static void
make_plan(plan_t *pl, long rid)
{
    int      i, x, acc, bad = 0, openai, stream, chunked = 0;
    int      accept = 0, method_get = 0, history, slow = 0, gen_reset = 0;
    int      gap_ms = 0, bad_session = 0, huge = 0, zeros = 0;
    size_t   pad = 0;
    char     args[C_N][96], gen[256], gargs[96], query[256];
    sb_t     body = { 0 }, head = { 0 };
    rng_t    r;

    if ((x = repeat_of(rid)) != 0) {
        make_plan(pl, x);
        pl->repeat = pl->repeat ? pl->repeat : x;
        pl->rid = rid;
        i = strlen(pl->desc);
        snprintf(pl->desc + i, sizeof(pl->desc) - i, " (sent again as rid "
                 "%ld)", rid);
        return;
    }

    memset(pl, 0, sizeof(*pl));
    r.s = seed ^ ((uint64_t) rid * 0xd1b54a32d192ed03ULL);
    rnd(&r);

    pl->rid = rid;

    do {                          /* an excluded kind (-x) is drawn again */
        x = rint_(&r, 0, 99);
        for (i = 0, acc = 0; i < K_N; i++) {
            acc += kind_weight[i];
            if (x < acc) break;
        }
        pl->kind = i < K_N ? i : K_PASS;
    } while (excluded[pl->kind]);

    x = rint_(&r, 0, 99);
    pl->loc = x < 55 ? L_MAIN : x < 78 ? L_TIGHT : L_SEQ;

    for (i = 0; i < 3; i++) pl->beh[i] = random_beh(&r);

    /* the shadow: mostly quick, sometimes failing or slower than the
     * decision, now and then hanging until its 800 ms timeout */
    x = rint_(&r, 0, 99);
    pl->beh[C_S] = x < 70 ? B_NEG : x < 85 ? B_POS : x < 96 ? B_ERR : B_HANG;

    pl->gen_chunks = rint_(&r, 1, 8);
    gap_ms = rint_(&r, 0, 20);

    switch (pl->kind) {
    case K_PASS:
        for (i = 0; i < 3; i++) pl->beh[i] = B_NEG;
        break;
    case K_BLOCK:
        pl->beh[rint_(&r, 0, 2)] = B_POS;
        for (i = 0; i < 3; i++) if (pl->beh[i] == B_ERR) pl->beh[i] = B_NEG;
        break;
    case K_ERROR:
        pl->beh[rint_(&r, 0, 2)] = B_ERR;
        break;
    case K_HANG:
        pl->beh[rint_(&r, 0, 2)] = B_HANG;
        break;
    case K_FIELDS:
        pl->loc = L_FIELDS;
        accept = rint_(&r, 0, 3);       /* none, json, sse, text/plain */
        break;
    case K_NOSTREAM:
        break;
    case K_BIGBODY:
        pad = (size_t) rint_(&r, 20000, 120000);  /* past the 16k buffer */
        break;
    case K_TRICKLE:
        pl->pieces = rint_(&r, 2, 8);
        pl->gap_ms = rint_(&r, 5, 50);
        break;
    case K_GENCUT:
        for (i = 0; i < 3; i++) pl->beh[i] = B_NEG;
        gen_reset = 1;
        pl->gen_chunks = rint_(&r, 2, 8);
        break;
    case K_OVER_CL:
        pad = (size_t) rint_(&r, MAX_BODY + 100, 400000);
        break;
    case K_OVER_CHUNKED:
        pad = (size_t) rint_(&r, MAX_BODY + 100, 300000);
        chunked = 1;
        break;
    case K_BAD:
        bad = rint_(&r, 1, 8);
        if (bad == 8) pl->loc = L_FIELDS;
        break;
    case K_METHOD:
        method_get = 1;
        break;
    case K_DISC_UPLOAD:
        pad = (size_t) rint_(&r, 0, 1) ? (size_t) rint_(&r, 0, 500)
                                       : (size_t) rint_(&r, 2000, 64000);
        pl->abort_at = A_UPLOAD;
        break;
    case K_DISC_DECISION:
        slow = 1;
        if (chance(&r, 30)) pl->beh[rint_(&r, 0, 2)] = B_HANG;
        pl->abort_at = A_DECISION;
        pl->abort_ms = rint_(&r, 0, 700);
        break;
    case K_DISC_STREAM:
        for (i = 0; i < 3; i++) pl->beh[i] = B_NEG;
        pl->gen_chunks = rint_(&r, 20, 40);
        gap_ms = rint_(&r, 10, 30);
        pl->abort_at = A_STREAM;
        break;
    case K_HUGE:
        /* thousands of array elements before the user turn: tool
         * messages (a normal answer), or numbers (no role: 400); a parser
         * that walks the list from its head each time stalls the worker */
        if (pl->loc == L_SEQ) pl->loc = L_MAIN;
        huge = rint_(&r, 2000, 7000);
        zeros = chance(&r, 30);
        break;
    case K_SLOW_KA:
        /* a decision slower than the location's lingering_timeout, then
         * the next request on the same connection */
        pl->loc = L_SLOW;
        pl->beh[C_A] = B_NEG;
        break;
    }

    if (pl->kind == K_TRICKLE && chance(&r, 30)) {
        pad = (size_t) rint_(&r, 1000, 30000);
    }

    openai = (pl->loc != L_FIELDS);
    stream = (pl->kind != K_NOSTREAM) ? !chance(&r, 10) : 0;
    history = openai && chance(&r, 20);
    pl->session = chance(&r, 50);
    pl->keepalive = pl->kind == K_SLOW_KA || chance(&r, 60);
    pl->abort_rst = chance(&r, 50);
    snprintf(pl->model, sizeof(pl->model), "soak-m%d", rint_(&r, 0, 6));

    if (pl->loc != L_MAIN) pl->beh[C_S] = B_NEG;    /* not used there */

    for (i = 0; i < C_N; i++) {
        beh_args(pl, i, &r,
                 pl->kind == K_SLOW_KA && i == C_A ? 2 : slow && i != C_S,
                 args[i], sizeof(args[i]));
    }

    if (guard) {
        guard_plan(pl, &r, gen_reset, gargs, sizeof(gargs));
    }

    snprintf(gen, sizeof(gen), "chunks=%d&gap=%.3f%s%s", pl->gen_chunks,
             gap_ms / 1000.0, gen_reset ? "&mode=reset" : "",
             pl->gbeh == G_WORD ? pl->gen_text : "");

    /* the expected decision: the first positive in priority order, an
     * error or a hang counting as the classifier's on_error */
    pl->verdict = -1;
    for (i = 0; i < 3; i++) {
        if (pl->beh[i] == B_POS
            || ((pl->beh[i] == B_ERR || pl->beh[i] == B_HANG)
                && on_error_block[i]))
        {
            pl->verdict = i;
            break;
        }
    }

    /* the body */

    snprintf(query, sizeof(query), "Soak question rid-%ld: how many daily "
             "prayers are there? \\\"quoted\\\" \\\\ and UTF-8 "
             "\xc3\xa9\xd8\xb3", rid);        /* JSON escapes */

    if (bad) {
        switch (bad) {
        case 1: sb_printf(&body, "this is not JSON rid-%ld {", rid); break;
        case 2: sb_printf(&body, "[1, 2, 3]"); break;
        case 3: sb_printf(&body, "{\"model\":\"m\",\"messages\":[]}"); break;
        case 4: break;                                    /* empty */
        case 5: sb_printf(&body, "{\"messages\":[{\"role\":\"user\","
                          "\"content\":\"bad \xff\xfe utf-8 rid-%ld\"}]}", rid);
                break;
        case 6: sb_printf(&body, "{\"messages\":[{\"role\":\"user\","
                          "\"content\":\"nul \\u0000 rid-%ld\"}]}", rid);
                break;
        case 7: bad_session = 1;                          /* 200 bytes */
                sb_printf(&body, "{\"messages\":[{\"role\":\"user\","
                          "\"content\":\"%s\"}]}", query);
                break;
        case 8: sb_printf(&body, "{\"session_id\":\"soak-1\"}"); break;
        }

    } else if (openai) {
        sb_printf(&body, "{\"model\":\"%s\",%s\"messages\":[", pl->model,
                  stream ? "\"stream\":true," : "");
        for (i = 0; i < huge; i++) {
            sb_printf(&body, zeros ? "0," : "{\"role\":\"tool\"},");
        }
        sb_printf(&body, "{\"role\":\"system\",\"content\":\"You are the "
                  "soak test.\"},");
        if (history) {
            sb_printf(&body, "{\"role\":\"user\",\"content\":\"an earlier "
                      "question\"},{\"role\":\"assistant\",\"content\":"
                      "\"an earlier answer\"},");
        }
        sb_printf(&body, "{\"role\":\"user\",\"content\":\"%s", query);
        for (i = 0; (size_t) i < pad; i++) sb_add(&body, "padding "+ (i % 8), 1);
        sb_printf(&body, "\"}]}");

    } else {
        sb_printf(&body, "{\"user_query\":\"%s", query);
        for (i = 0; (size_t) i < pad; i++) sb_add(&body, "padding "+ (i % 8), 1);
        sb_printf(&body, "\"");
        if (pl->session) {
            sb_printf(&body, ",\"session_id\":\"soak-f%d\"", rint_(&r, 0, 499));
        }
        sb_printf(&body, "}");
    }

    if (body.p == NULL) sb_add(&body, "", 0);

    /* the head */

    sb_printf(&head, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n",
              method_get ? "GET" : "POST", loc_path[pl->loc]);
    sb_printf(&head, "User-Agent: soak-client\r\nX-Soak-Rid: %ld\r\n"
              "X-Soak-Kind: %s\r\n", rid, kind_name[pl->kind]);
    for (i = 0; i < C_N; i++) {
        sb_printf(&head, "X-Soak-%c: %s\r\n", toupper(cname[i]), args[i]);
    }
    sb_printf(&head, "X-Soak-Gen: %s\r\n", gen);
    if (guard) sb_printf(&head, "X-Soak-G: %s\r\n", gargs);

    if (bad_session) {
        sb_printf(&head, "X-Session-Id: ");
        for (i = 0; i < 200; i++) sb_add(&head, "s", 1);
        sb_printf(&head, "\r\n");
    } else if (pl->session && openai) {
        sb_printf(&head, "X-Session-Id: soak-%d\r\n", rint_(&r, 0, 499));
    }

    if (accept == 1) sb_printf(&head, "Accept: application/json\r\n");
    if (accept == 2) sb_printf(&head, "Accept: text/event-stream\r\n");
    if (accept == 3) sb_printf(&head, "Accept: text/plain\r\n");
    if (!pl->keepalive) sb_printf(&head, "Connection: close\r\n");

    if (!method_get || chance(&r, 50)) {
        sb_printf(&head, "Content-Type: application/json\r\n");
        if (chunked) {
            sb_printf(&head, "Transfer-Encoding: chunked\r\n");
        } else {
            sb_printf(&head, "Content-Length: %zu\r\n",
                      method_get ? (size_t) 0 : body.len);
        }
    }
    sb_printf(&head, "\r\n");

    pl->head_len = head.len;

    if (chunked) {
        size_t off, n;

        for (off = 0; off < body.len; off += n) {
            n = body.len - off < 8192 ? body.len - off : 8192;
            sb_printf(&head, "%zx\r\n", n);
            sb_add(&head, body.p + off, n);
            sb_printf(&head, "\r\n");
        }
        sb_printf(&head, "0\r\n\r\n");

    } else if (!method_get) {
        sb_add(&head, body.p, body.len);
    }

    pl->req = head.p;
    pl->req_len = head.len;
    free(body.p);

    if (pl->abort_at == A_UPLOAD) {
        pl->abort_bytes = (size_t) rint_(&r, 1, (int) pl->req_len - 1);
    }

    if (pl->abort_at == A_STREAM) {
        /* anywhere in the stream, the head included: ~250 bytes an event */
        pl->abort_bytes = (size_t) rint_(&r, 0, pl->gen_chunks * 250);
    }

    /* the expected answer */

    if (bad || (huge && zeros)) {
        pl->expect = X_ERR;
        pl->status = 400;
    } else if (method_get) {
        pl->expect = X_ERR;
        pl->status = 405;
    } else if (pl->kind == K_OVER_CL) {
        pl->expect = X_413_PAGE;
        pl->status = 413;
    } else if (pl->kind == K_OVER_CHUNKED) {
        pl->expect = X_ERR;
        pl->status = 413;
    } else if (pl->verdict < 0) {
        pl->expect = gen_reset ? X_GEN_CUT : X_GEN;
        pl->status = 200;

        if (pl->guarded && (pl->gbeh == G_FIRST || pl->gbeh == G_WORD)) {
            pl->expect = X_GUARD_CUT;
        }
    } else {
        pl->status = 200;
        if (openai) {
            pl->expect = stream ? X_OPENAI_SSE : X_OPENAI_JSON;
        } else {
            pl->expect = accept == 1 ? X_JSON : accept == 2 ? X_SSE : X_TEXT;
        }
    }

    snprintf(pl->desc, sizeof(pl->desc),
             "rid=%ld kind=%s %s %s a[%s] b[%s] j[%s]%s%s%s%s gen[%s] "
             "body=%zu%s expect=%s/%d verdict=%c keepalive=%d%s%s%s",
             rid, kind_name[pl->kind], method_get ? "GET" : "POST",
             loc_path[pl->loc], args[C_A], args[C_B], args[C_J],
             pl->loc == L_MAIN ? " s[" : "",
             pl->loc == L_MAIN ? args[C_S] : "",
             pl->loc == L_MAIN ? "]" : "",
             pl->session && openai ? " session" : "", gen,
             pl->req_len - pl->head_len, chunked ? " chunked" : "",
             expect_name[pl->expect], pl->status,
             pl->verdict < 0 || pl->status != 200 ? '-' : cname[pl->verdict],
             pl->keepalive,
             pl->guarded ? " g=" : "", pl->guarded ? gargs : "",
             pl->abort_at == A_UPLOAD ? " abort=upload"
             : pl->abort_at == A_DECISION ? " abort=decision"
             : pl->abort_at == A_STREAM ? " abort=stream" : "");

    if (pl->abort_at) {
        size_t l = strlen(pl->desc);
        snprintf(pl->desc + l, sizeof(pl->desc) - l, "@%zu/%dms%s",
                 pl->abort_bytes, pl->abort_ms, pl->abort_rst ? " rst" : "");
    }
    if (bad) {
        static const char *bad_name[] = { "", "not JSON", "not an object",
            "no query", "empty body", "invalid UTF-8", "escaped NUL",
            "session id of 200 bytes", "fields body without a query" };
        size_t l = strlen(pl->desc);
        snprintf(pl->desc + l, sizeof(pl->desc) - l, " bad=%s", bad_name[bad]);
    }
    if (pl->pieces) {
        size_t l = strlen(pl->desc);
        snprintf(pl->desc + l, sizeof(pl->desc) - l, " trickle=%dx%dms",
                 pl->pieces, pl->gap_ms);
    }
}

/* ------------------------------------------------------------ checks */

static char  why[1024];

static const char *
fail_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static const char *
fail_(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    return why;
}


static const char *
check_openai_chunk(cJSON *o, const plan_t *pl, int i)
{
    cJSON *id, *ch, *c0, *delta, *fr, *v;

    if (!cJSON_IsObject(o)) return "an event is not a JSON object";
    v = cJSON_GetObjectItemCaseSensitive(o, "object");
    if (!cJSON_IsString(v) || strcmp(v->valuestring, "chat.completion.chunk"))
        return "an event's object is not chat.completion.chunk";
    id = cJSON_GetObjectItemCaseSensitive(o, "id");
    if (!cJSON_IsString(id) || strncmp(id->valuestring, "chatcmpl-classify-", 18))
        return "an event's id is not chatcmpl-classify-...";
    v = cJSON_GetObjectItemCaseSensitive(o, "model");
    if (!cJSON_IsString(v) || strcmp(v->valuestring, pl->model))
        return "an event's model is not the request's";
    if (!cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, "created")))
        return "an event has no created";
    ch = cJSON_GetObjectItemCaseSensitive(o, "choices");
    c0 = cJSON_GetArrayItem(ch, 0);
    if (!cJSON_IsArray(ch) || cJSON_GetArraySize(ch) != 1 || !cJSON_IsObject(c0))
        return "an event's choices is not one object";
    delta = cJSON_GetObjectItemCaseSensitive(c0, "delta");
    fr = cJSON_GetObjectItemCaseSensitive(c0, "finish_reason");
    if (!cJSON_IsObject(delta)) return "an event has no delta";

    switch (i) {
    case 0:
        v = cJSON_GetObjectItemCaseSensitive(delta, "role");
        if (!cJSON_IsString(v) || strcmp(v->valuestring, "assistant"))
            return "the first event's delta is not the assistant role";
        if (!cJSON_IsNull(fr)) return "the first event has a finish_reason";
        break;
    case 1:
        v = cJSON_GetObjectItemCaseSensitive(delta, "content");
        if (!cJSON_IsString(v) || strcmp(v->valuestring, reply[pl->verdict]))
            return "the content event is not the classifier's reply";
        if (!cJSON_IsNull(fr)) return "the content event has a finish_reason";
        break;
    default:
        if (cJSON_GetArraySize(delta) != 0)
            return "the last event's delta is not empty";
        if (!cJSON_IsString(fr) || strcmp(fr->valuestring, "stop"))
            return "the last event's finish_reason is not stop";
    }

    return NULL;
}


static const char *
check_error_json(const conn_t *c, const plan_t *pl)
{
    cJSON       *o, *e, *m, *t, *code;
    const char  *res = NULL;

    if (strncasecmp(c->ctype, "application/json", 16) != 0) {
        return fail_("error Content-Type \"%s\", not application/json",
                     c->ctype);
    }
    o = cJSON_ParseWithLength(c->body, c->body_len);
    if (o == NULL) return "the error body is not JSON";
    e = cJSON_GetObjectItemCaseSensitive(o, "error");
    m = cJSON_GetObjectItemCaseSensitive(e, "message");
    t = cJSON_GetObjectItemCaseSensitive(e, "type");
    code = cJSON_GetObjectItemCaseSensitive(e, "code");
    if (!cJSON_IsObject(e) || !cJSON_IsString(m) || m->valuestring[0] == '\0')
        res = "the error body has no error.message";
    else if (!cJSON_IsString(t)
             || strcmp(t->valuestring, pl->status >= 500 ? "server_error"
                                                         : "invalid_request_error"))
        res = "the error body's error.type is wrong";
    else if (!cJSON_IsNumber(code) || code->valueint != pl->status)
        res = "the error body's error.code is not the status";
    cJSON_Delete(o);
    return res;
}


static const char *
check_gen(const conn_t *c, const plan_t *pl, int cut)
{
    sb_t         want = { 0 };
    int          i, n;
    long         created;
    const char  *res = NULL, *p, *model;

    if (strncasecmp(c->ctype, "text/event-stream", 17) != 0) {
        return fail_("Content-Type \"%s\" on a pass, not text/event-stream",
                     c->ctype);
    }
    if (c->verdict_hdr[0]) {
        return fail_("X-Classify-Verdict \"%s\" on a pass", c->verdict_hdr);
    }

    /* the mock's events carry its clock ("created") and the request's
     * model (the openai bodies name one, the fields bodies do not) */
    p = memmem(c->body, c->body_len, "\"created\":", 10);
    created = p ? strtol(p + 10, NULL, 10) : -1;
    model = pl->loc != L_FIELDS ? pl->model : "mock";

    n = cut ? 1 : pl->gen_chunks;
    for (i = 0; i < n; i++) {
        sb_printf(&want, "data: {\"id\":\"chatcmpl-gen\",\"object\":"
                  "\"chat.completion.chunk\",\"created\":%ld,\"model\":"
                  "\"%s\",\"choices\":[{\"index\":0,\"delta\":{"
                  "\"content\":\"chunk%d \"},\"finish_reason\":null}]}\n\n",
                  created, model, i + 1);
    }
    if (!cut) {
        sb_printf(&want, "data: {\"id\":\"chatcmpl-gen\",\"object\":"
                  "\"chat.completion.chunk\",\"created\":%ld,\"model\":"
                  "\"%s\",\"choices\":[{\"index\":0,\"delta\":{},"
                  "\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n",
                  created, model);
    }

    if (c->body_len != want.len || memcmp(c->body, want.p, want.len) != 0) {
        res = fail_("the generation stream is not the mock's %d events%s "
                    "(%zu bytes, want %zu)", n, cut ? "" : " + stop + [DONE]",
                    c->body_len, want.len);
    }
    free(want.p);
    return res;
}


/*
 * -G: an answer the output guard cut: chunks of one id (the generation's,
 * or the reply's own when nothing of it went out), the text a prefix of
 * the generation's then g's reply, one finish_reason, content_filter,
 * last, then [DONE]
 */

static const char *
check_guard_cut(const conn_t *c, const plan_t *pl)
{
    sb_t         text = { 0 }, full = { 0 };
    int          i, finished = 0, done = 0;
    char         id[64] = "";
    const char  *p, *end, *ev, *res = NULL, *g = reply[3];
    cJSON       *o, *v, *c0, *fr;

    if (strncasecmp(c->ctype, "text/event-stream", 17) != 0) {
        return fail_("Content-Type \"%s\" on a cut, not text/event-stream",
                     c->ctype);
    }

    for (p = c->body, end = c->body + c->body_len; p < end && !res; p = ev + 2)
    {
        ev = memmem(p, (size_t) (end - p), "\n\n", 2);
        if (ev == NULL || memcmp(p, "data: ", 6) != 0
            || memchr(p, '\n', (size_t) (ev - p)) != NULL)
        {
            res = "an event that is not one data: line";
            break;
        }
        if (done) { res = "an event after [DONE]"; break; }
        if (ev - p == 12 && memcmp(p, "data: [DONE]", 12) == 0) {
            done = 1;
            continue;
        }
        if (finished) { res = "an event after the finish"; break; }

        o = cJSON_ParseWithLength(p + 6, (size_t) (ev - p - 6));
        v = cJSON_GetObjectItemCaseSensitive(o, "id");
        c0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "choices"),
                                0);
        fr = cJSON_GetObjectItemCaseSensitive(c0, "finish_reason");

        if (!cJSON_IsString(v) || !cJSON_IsObject(c0)) {
            res = "a cut's event is not a chat.completion.chunk";
        } else if (id[0] && strcmp(id, v->valuestring) != 0) {
            res = "a cut's events of two ids";
        } else if (cJSON_IsString(fr)) {
            finished = 1;
            if (strcmp(fr->valuestring, "content_filter") != 0) {
                res = "a cut's finish_reason is not content_filter";
            }
        }

        if (cJSON_IsString(v)) snprintf(id, sizeof(id), "%s", v->valuestring);
        v = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(c0, "delta"), "content");
        if (cJSON_IsString(v)) {
            sb_add(&text, v->valuestring, strlen(v->valuestring));
        }
        cJSON_Delete(o);
    }

    if (res == NULL && (!finished || !done)) {
        res = "a cut without content_filter and [DONE]";
    }

    if (res == NULL
        && (text.len < strlen(g) || strcmp(text.p + text.len - strlen(g), g)))
    {
        res = "a cut's text does not end with g's reply";
    }

    /* the generation's text: the mock's pieces, or the text given */

    if (pl->gbeh == G_WORD) {
        sb_printf(&full, "Soak answer rid-%ld the best pizza is here and "
                  "more words follow.", pl->rid);
    } else {
        for (i = 0; i < pl->gen_chunks; i++) {
            sb_printf(&full, "chunk%d ", i + 1);
        }
    }

    if (res == NULL) {
        text.len -= strlen(g);

        if (text.len > full.len || memcmp(text.p, full.p, text.len) != 0) {
            res = "a cut's text before the reply is not the generation's";
        } else if (pl->loc == L_MAIN && pl->gbeh == G_FIRST && text.len) {
            res = "hold: text the guard judged positive reached the client";
        } else if (pl->loc == L_MAIN && pl->gbeh == G_WORD
                   && memmem(text.p, text.len, "pizza", 5) != NULL)
        {
            res = "hold: the flagged word reached the client";
        }
    }

    if (res == NULL) {
        cov[pl->loc == L_MAIN ? V_GUARD_CUT_HOLD : V_GUARD_CUT_RELEASE]++;
    }

    free(text.p);
    free(full.p);
    return res;
}


/* NULL when the answer is right */

static const char *
validate(const conn_t *c, const plan_t *pl)
{
    const char  *p, *end, *ev, *nl, *r;
    char         want[4096];
    cJSON       *o, *v, *ch, *c0, *m;
    int          i;

    if (c->bad_head[0]) return c->bad_head;

    if (pl->expect == X_GEN_CUT) {
        if (!c->hdr_done) return "no response head (generation cut)";
        if (c->status != 200) return fail_("status %d, want 200", c->status);
        if (c->complete) return "the response ended normally, want it cut "
                                "off after the generation's first event";
        return check_gen(c, pl, 1);
    }

    if (!c->complete) return "no complete response";

    if (c->status != pl->status) {
        return fail_("status %d, want %d", c->status, pl->status);
    }

    if (c->in_len > c->pos) {
        return fail_("%zu bytes after the end of the response",
                     c->in_len - c->pos);
    }

    switch (pl->expect) {

    case X_GEN:
        if (pl->guarded) cov[V_GUARD_PASS]++;
        return check_gen(c, pl, 0);

    case X_GUARD_CUT:
        return check_guard_cut(c, pl);

    case X_ERR:
        if (pl->status == 405 && strcmp(c->allow, "POST") != 0) {
            return "405 without Allow: POST";
        }
        if (pl->kind == K_OVER_CHUNKED
            && strncasecmp(c->ctype, "text/html", 9) == 0
            && memmem(c->body, c->body_len, "413 Request Entity Too Large",
                      28) != NULL)
        {
            /*
             * the gate answers JSON when nginx finds the chunked body too
             * big inside ngx_http_read_client_request_body() itself; when
             * the excess arrives in a later read, nginx's read handler
             * finalizes with its own page: accepted, counted
             */
            cov[V_413_PAGE_CHUNKED]++;
            return NULL;
        }
        return check_error_json(c, pl);

    case X_413_PAGE:
        if (strncasecmp(c->ctype, "text/html", 9) != 0
            || memmem(c->body, c->body_len, "413 Request Entity Too Large",
                      28) == NULL)
        {
            return "not nginx's own 413 page";
        }
        return NULL;

    default:
        break;
    }

    /* a classifier's reply */

    if (strcmp(c->verdict_hdr, (char []) { cname[pl->verdict], '\0' }) != 0) {
        return fail_("X-Classify-Verdict \"%s\", want \"%c\"", c->verdict_hdr,
                     cname[pl->verdict]);
    }
    r = reply[pl->verdict];

    switch (pl->expect) {

    case X_OPENAI_SSE:
        if (strncasecmp(c->ctype, "text/event-stream", 17) != 0) {
            return fail_("Content-Type \"%s\", want text/event-stream",
                         c->ctype);
        }
        p = c->body;
        end = c->body + c->body_len;
        for (i = 0; i < 4; i++) {
            ev = memmem(p, (size_t) (end - p), "\n\n", 2);
            if (ev == NULL || (size_t) (end - p) < 6 || memcmp(p, "data: ", 6))
                return fail_("event %d is not a \"data: ...\\n\\n\" event", i);
            if (i == 3) {
                if (ev - p != 12 || memcmp(p, "data: [DONE]", 12))
                    return "the fourth event is not data: [DONE]";
            } else {
                if (memchr(p, '\n', (size_t) (ev - p)) != NULL)
                    return fail_("event %d has more than one line", i);
                o = cJSON_ParseWithLength(p + 6, (size_t) (ev - p - 6));
                if (o == NULL) return fail_("event %d is not JSON", i);
                r = check_openai_chunk(o, pl, i);
                cJSON_Delete(o);
                if (r) return r;
            }
            p = ev + 2;
        }
        if (p != end) return "bytes after data: [DONE]";
        return NULL;

    case X_OPENAI_JSON:
        if (strncasecmp(c->ctype, "application/json", 16) != 0) {
            return fail_("Content-Type \"%s\", want application/json",
                         c->ctype);
        }
        o = cJSON_ParseWithLength(c->body, c->body_len);
        if (o == NULL) return "the chat.completion is not JSON";
        v = cJSON_GetObjectItemCaseSensitive(o, "object");
        ch = cJSON_GetObjectItemCaseSensitive(o, "choices");
        c0 = cJSON_GetArrayItem(ch, 0);
        m = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(c0, "message"), "content");
        p = NULL;
        if (!cJSON_IsString(v) || strcmp(v->valuestring, "chat.completion"))
            p = "object is not chat.completion";
        else if (!cJSON_IsString(m) || strcmp(m->valuestring, r))
            p = "choices[0].message.content is not the reply";
        else if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(c0,
                                                          "finish_reason")))
            p = "no finish_reason";
        v = cJSON_GetObjectItemCaseSensitive(o, "model");
        if (p == NULL && (!cJSON_IsString(v) || strcmp(v->valuestring, pl->model)))
            p = "the model is not the request's";
        cJSON_Delete(o);
        return p;

    case X_JSON:
        if (strncasecmp(c->ctype, "application/json", 16) != 0) {
            return fail_("Content-Type \"%s\", want application/json",
                         c->ctype);
        }
        o = cJSON_ParseWithLength(c->body, c->body_len);
        if (o == NULL) return "the JSON reply is not JSON";
        v = cJSON_GetObjectItemCaseSensitive(o, "verdict");
        m = cJSON_GetObjectItemCaseSensitive(o, "reply");
        p = NULL;
        if (!cJSON_IsString(v) || strlen(v->valuestring) != 1
            || v->valuestring[0] != cname[pl->verdict])
            p = "the JSON reply's verdict is wrong";
        else if (!cJSON_IsString(m) || strcmp(m->valuestring, r))
            p = "the JSON reply's reply is not the classifier's";
        cJSON_Delete(o);
        return p;

    case X_SSE:
        if (strncasecmp(c->ctype, "text/event-stream", 17) != 0) {
            return fail_("Content-Type \"%s\", want text/event-stream",
                         c->ctype);
        }
        want[0] = '\0';
        for (p = r; ; p = nl + 1) {
            nl = strchr(p, '\n');
            snprintf(want + strlen(want), sizeof(want) - strlen(want),
                     "data: %.*s\n", nl ? (int) (nl - p) : (int) strlen(p), p);
            if (nl == NULL) break;
        }
        strcat(want, "\n");
        if (c->body_len != strlen(want) || memcmp(c->body, want, c->body_len))
            return "the SSE reply is not the reply's lines as data: lines";
        return NULL;

    case X_TEXT:
        if (strncasecmp(c->ctype, "text/plain", 10) != 0) {
            return fail_("Content-Type \"%s\", want text/plain", c->ctype);
        }
        if (c->body_len != strlen(r) || memcmp(c->body, r, c->body_len))
            return "the text reply is not the classifier's reply";
        return NULL;
    }

    return "internal: unknown expectation";
}

/* ------------------------------------------------------------ HTTP */

static void
body_add(conn_t *c, const char *p, size_t n)
{
    if (c->body_len + n > BODY_KEEP) {
        n = BODY_KEEP - c->body_len;
    }
    if (c->body_len + n > c->body_cap) {
        while (c->body_len + n > c->body_cap)
            c->body_cap = c->body_cap ? c->body_cap * 2 : 4096;
        c->body = realloc(c->body, c->body_cap);
        if (c->body == NULL) die("realloc");
    }
    memcpy(c->body + c->body_len, p, n);
    c->body_len += n;
}


/* parse what arrived; sets complete, or bad_head on malformed framing */

static void
parse(conn_t *c)
{
    char   *he, *p, *eol, *end;
    size_t  n;
    long    v;

    if (!c->hdr_done) {
        he = memmem(c->in, c->in_len, "\r\n\r\n", 4);
        if (he == NULL) {
            if (c->in_len > 65536) {
                snprintf(c->bad_head, sizeof(c->bad_head),
                         "no end of the response head in 64 KiB");
            }
            return;
        }

        if (c->in_len < 13 || memcmp(c->in, "HTTP/1.1 ", 9) != 0
            || !isdigit((unsigned char) c->in[9])
            || !isdigit((unsigned char) c->in[10])
            || !isdigit((unsigned char) c->in[11]) || c->in[12] != ' ')
        {
            snprintf(c->bad_head, sizeof(c->bad_head),
                     "malformed status line \"%.40s\"", c->in);
            c->hdr_done = 1;
            return;
        }

        c->status = atoi(c->in + 9);
        c->clen = -1;

        eol = memmem(c->in, (size_t) (he + 2 - c->in), "\r\n", 2);
        for (p = eol + 2; p < he + 2; p = eol + 2) {
            eol = memmem(p, (size_t) (he + 2 - p), "\r\n", 2);
            if (eol == NULL || memchr(p, ':', (size_t) (eol - p)) == NULL) {
                snprintf(c->bad_head, sizeof(c->bad_head),
                         "malformed header line \"%.40s\"", p);
                break;
            }

#define HDR(name) (eol - p > (long) sizeof(name) - 1                          \
                   && strncasecmp(p, name, sizeof(name) - 1) == 0)
#define VAL(name) (p + sizeof(name) - 1 + strspn(p + sizeof(name) - 1, " "))

            if (HDR("Content-Length:")) {
                v = strtol(VAL("Content-Length:"), &end, 10);
                if (end != eol || v < 0 || c->clen >= 0) {
                    snprintf(c->bad_head, sizeof(c->bad_head),
                             "bad or repeated Content-Length");
                }
                c->clen = v;
            } else if (HDR("Transfer-Encoding:")) {
                if (strncasecmp(VAL("Transfer-Encoding:"), "chunked", 7) == 0)
                    c->chunked = 1;
            } else if (HDR("Connection:")) {
                if (strncasecmp(VAL("Connection:"), "close", 5) == 0)
                    c->conn_close = 1;
            } else if (HDR("Content-Type:")) {
                snprintf(c->ctype, sizeof(c->ctype), "%.*s",
                         (int) (eol - VAL("Content-Type:")), VAL("Content-Type:"));
            } else if (HDR("X-Classify-Verdict:")) {
                snprintf(c->verdict_hdr, sizeof(c->verdict_hdr), "%.*s",
                         (int) (eol - VAL("X-Classify-Verdict:")),
                         VAL("X-Classify-Verdict:"));
            } else if (HDR("Allow:")) {
                snprintf(c->allow, sizeof(c->allow), "%.*s",
                         (int) (eol - VAL("Allow:")), VAL("Allow:"));
            }
        }

        if (c->chunked && c->clen >= 0) {
            snprintf(c->bad_head, sizeof(c->bad_head),
                     "both Content-Length and chunked");
        }

        c->hdr_done = 1;
        c->pos = (size_t) (he + 4 - c->in);
        c->chunk_left = -1;

        if (!c->chunked && c->clen < 0 && !c->conn_close) {
            snprintf(c->bad_head, sizeof(c->bad_head), "a keep-alive "
                     "response with neither Content-Length nor chunked");
        }
    }

    if (c->bad_head[0] || c->complete) {
        return;
    }

    if (c->chunked) {
        for ( ;; ) {
            if (c->chunk_trailer) {
                /* the last chunk: an empty line ends it (no trailers) */
                if (c->in_len - c->pos < 2) return;
                if (memcmp(c->in + c->pos, "\r\n", 2) != 0) {
                    snprintf(c->bad_head, sizeof(c->bad_head),
                             "trailer after the last chunk");
                    return;
                }
                c->pos += 2;
                c->complete = 1;
                return;
            }

            if (c->chunk_left < 0) {
                eol = memmem(c->in + c->pos, c->in_len - c->pos, "\r\n", 2);
                if (eol == NULL) {
                    if (c->in_len - c->pos > 32) {
                        snprintf(c->bad_head, sizeof(c->bad_head),
                                 "malformed chunk size line");
                    }
                    return;
                }
                v = strtol(c->in + c->pos, &end, 16);
                if (end == c->in + c->pos || end != eol || v < 0) {
                    snprintf(c->bad_head, sizeof(c->bad_head),
                             "malformed chunk size \"%.20s\"", c->in + c->pos);
                    return;
                }
                c->pos = (size_t) (eol + 2 - c->in);
                if (v == 0) {
                    c->chunk_trailer = 1;
                    continue;
                }
                c->chunk_left = v;
            }

            n = c->in_len - c->pos;
            if (n == 0) return;
            if ((long) n > c->chunk_left) n = (size_t) c->chunk_left;
            body_add(c, c->in + c->pos, n);
            c->body_raw += n;
            c->pos += n;
            c->chunk_left -= (long) n;

            if (c->chunk_left == 0) {
                if (c->in_len - c->pos < 2) {
                    c->chunk_left = 0;    /* wait for the CRLF */
                    if (c->in_len - c->pos == 1 && c->in[c->pos] != '\r') {
                        snprintf(c->bad_head, sizeof(c->bad_head),
                                 "no CRLF after a chunk");
                    }
                    return;
                }
                if (memcmp(c->in + c->pos, "\r\n", 2) != 0) {
                    snprintf(c->bad_head, sizeof(c->bad_head),
                             "no CRLF after a chunk");
                    return;
                }
                c->pos += 2;
                c->chunk_left = -1;
            }
        }
    }

    n = c->in_len - c->pos;
    if (c->clen >= 0 && (long) (c->body_raw + n) > c->clen) {
        n = (size_t) c->clen - c->body_raw;
    }
    body_add(c, c->in + c->pos, n);
    c->body_raw += n;
    c->pos += n;

    if (c->clen >= 0 && (long) c->body_raw == c->clen) {
        c->complete = 1;
    }
}


/* a chunk_left of 0 waiting for its CRLF is handled in parse(): keep the
 * state consistent when more bytes come */

static void
conn_reset_response(conn_t *c)
{
    c->in_len = 0;
    c->pos = 0;
    c->hdr_done = 0;
    c->status = 0;
    c->clen = -1;
    c->chunked = 0;
    c->conn_close = 0;
    c->complete = 0;
    c->eof = 0;
    c->ctype[0] = '\0';
    c->verdict_hdr[0] = '\0';
    c->allow[0] = '\0';
    c->bad_head[0] = '\0';
    c->chunk_left = -1;
    c->chunk_trailer = 0;
    c->body_len = 0;
    c->body_raw = 0;
}


static void
conn_close(conn_t *c, int rst)
{
    struct linger l;

    if (c->fd >= 0) {
        if (rst) {
            l.l_onoff = 1;
            l.l_linger = 0;
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
        }
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->reused = 0;
}


static void
print_escaped(FILE *f, const char *p, size_t n, size_t max)
{
    size_t i;

    for (i = 0; i < n && i < max; i++) {
        unsigned char ch = (unsigned char) p[i];
        if (ch == '\n') fputs("\\n", f);
        else if (ch == '\r') fputs("\\r", f);
        else if (ch < 0x20 || ch == 0x7f) fprintf(f, "\\x%02x", ch);
        else fputc(ch, f);
    }
    if (n > max) fprintf(f, "...(%zu bytes)", n);
}


/* failure reasons, digits folded, per kind: for the summary, and to print
 * the first failure of each in detail */

#define MAX_REASONS  64

static struct { int kind; char why[160]; long n; }  reasons[MAX_REASONS];
static int   nreasons, details;
static long  prev_fail[K_N];

static void
fold_reason(const char *why, char *out, size_t size)
{
    size_t i = 0;

    for ( ; *why && i + 1 < size; why++) {
        if (isdigit((unsigned char) *why)) {
            if (i == 0 || out[i - 1] != 'N') out[i++] = 'N';
            continue;
        }
        out[i++] = *why;
    }
    out[i] = '\0';
}

static int
find_reason(int kind, const char *why)
{
    char f[160];
    int  i;

    fold_reason(why, f, sizeof(f));
    for (i = 0; i < nreasons; i++) {
        if (reasons[i].kind == kind && strcmp(reasons[i].why, f) == 0) return i;
    }
    return -1;
}

static int
new_reason(int kind, const char *why)
{
    return find_reason(kind, why) < 0;
}

static void
count_reason(int kind, const char *why)
{
    int i = find_reason(kind, why);

    if (i < 0 && nreasons < MAX_REASONS) {
        i = nreasons++;
        reasons[i].kind = kind;
        fold_reason(why, reasons[i].why, sizeof(reasons[i].why));
    }
    if (i >= 0) reasons[i].n++;
}


/* the request is over: count it, report a failure */

static void
done(conn_t *c, const char *failure, int disconnected)
{
    plan_t  *pl = c->plan;
    stat_t  *st = &stats[pl->kind];
    double   ms = now_ms() - c->t_start;
    size_t   hl;
    char     key[300];

    /* failures on a reused connection are also counted by the kind of
     * the request before (a desync shows there) */
    if (failure) {
        snprintf(key, sizeof(key), "%s", failure);
        if (c->reused) prev_fail[c->prev_kind]++;
    }

    requests++;
    st->sent++;
    if (ms > st->max_ms) st->max_ms = ms;

    if (disconnected) {
        st->disc++;
    } else if (failure) {
        st->fail++;
        failures++;
        if (strncmp(failure, "missing", 7) == 0) {
            st->missing++;
            missing++;
        }
    } else {
        st->ok++;
        if (pl->abort_at) st->early++;
    }

    if (!failure) {
        if (pl->verdict < 0 && pl->status == 200) cov[V_PASS]++;
        if (pl->verdict >= 0 && pl->status == 200) cov[V_A + pl->verdict]++;
    }

    if (failure && (verbose || (new_reason(pl->kind, key)
                                && details++ < FAIL_DETAIL)))
    {
        hl = c->hdr_done && c->pos && !c->bad_head[0]
             ? (size_t) ((char *) memmem(c->in, c->in_len, "\r\n\r\n", 4)
                         - c->in)
             : c->in_len;
        if (hl > c->in_len) hl = c->in_len;
        printf("FAIL %s: %s\n  after %.1f ms%s%s; plan: %s\n  response head: ",
               label, failure, ms,
               c->reused ? " on a keep-alive connection reused after " : "",
               c->reused ? c->prev : "", pl->desc);
        print_escaped(stdout, c->in, hl, 600);
        printf("\n  response body: ");
        print_escaped(stdout, c->body, c->body_len, 600);
        if (c->complete && c->in_len > c->pos) {
            printf("\n  bytes after the response: ");
            print_escaped(stdout, c->in + c->pos, c->in_len - c->pos, 600);
        }
        printf("\n  replay: %s -p %d -R %s -s %llu -1 %ld%s -v\n", argv0,
               ntohs(addr.sin_port), reply_dir, (unsigned long long) seed,
               pl->rid, repeats ? " -C" : "");
    }

    if (failure && faillog) {
        fprintf(faillog, "rid=%ld kind=%s reason=\"%s\" ms=%.1f status=%d "
                "reused_after=\"%s\" plan=\"%s\"\n", pl->rid,
                kind_name[pl->kind], failure, ms, c->status,
                c->reused ? c->prev : "", pl->desc);
        fflush(faillog);
    }

    if (failure) {
        count_reason(pl->kind, key);
    }

    c->prev_kind = pl->kind;

    snprintf(c->prev, sizeof(c->prev), "rid=%ld kind=%s", pl->rid,
             kind_name[pl->kind]);

    if (verbose && !failure) {
        printf("ok %s (%.1f ms, status %d)%s: %s\n",
               disconnected ? "disconnected as planned" : "", ms, c->status,
               c->reused ? " reused" : "", pl->desc);
        if (verbose > 1) {
            print_escaped(stdout, c->in, c->in_len, 4000);
            printf("\n");
        }
    }

    free(pl->req);
    free(pl);
    c->plan = NULL;
    c->next_at = 0;
}


static void
want(conn_t *c, uint32_t events)
{
    struct epoll_event ev;

    ev.events = events;
    ev.data.ptr = c;
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) == -1) die("epoll_ctl");
}


static int
start_connect(conn_t *c)
{
    int                 fd, one = 1;
    struct epoll_event  ev;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) return -1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    if (connect(fd, (struct sockaddr *) &addr, sizeof(addr)) == -1
        && errno != EINPROGRESS)
    {
        close(fd);
        return -1;
    }

    c->fd = fd;
    c->reused = 0;
    ev.events = EPOLLOUT;
    ev.data.ptr = c;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == -1) die("epoll_ctl");
    c->state = S_CONNECTING;
    return 0;
}


static void
start_request(conn_t *c, long rid)
{
    plan_t  *pl;
    double   t = now_ms();

    pl = malloc(sizeof(plan_t));
    if (pl == NULL) die("malloc");
    make_plan(pl, rid);

    if (pl->session && pl->loc != L_FIELDS) cov[V_SESSION]++;
    if (pl->session && pl->loc == L_FIELDS) cov[V_SESSION]++;
    if (pl->loc == L_MAIN && pl->beh[C_S] == B_HANG) cov[V_SHADOW_HANG]++;
    for (int i = 0; i < 3; i++) {
        if (pl->kind == K_BAD || pl->kind == K_METHOD
            || pl->kind == K_OVER_CL || pl->kind == K_OVER_CHUNKED)
            break;
        if (pl->beh[i] == B_ERR) {
            cov_err[pl->errm[i]]++;
            cov[on_error_block[i] ? V_ONERR_BLOCK : V_ONERR_PASS]++;
        }
        if (pl->beh[i] == B_HANG) {
            cov[pl->loc == L_TIGHT ? V_HANG_TIGHT
                : pl->loc == L_SEQ ? V_HANG_SEQ : V_HANG_MAIN]++;
        }
    }
    if (pl->abort_rst && pl->abort_at) cov[V_RST]++;
    if (pl->repeat) cov[V_REPEAT]++;

    c->plan = pl;
    c->sent = 0;
    c->t_start = t;
    c->t_sent = 0;
    c->next_at = 0;
    c->deadline = t + req_timeout * 1000.0;
    c->piece_end = pl->req_len;
    if (pl->pieces) c->piece_end = pl->req_len / (size_t) pl->pieces;
    if (pl->abort_at == A_UPLOAD && c->piece_end > pl->abort_bytes)
        c->piece_end = pl->abort_bytes;
    conn_reset_response(c);

    if (c->fd >= 0 && c->state == S_IDLE) {
        c->reused = 1;
        cov[V_REUSED]++;
        c->state = S_SEND;
        want(c, EPOLLIN | EPOLLOUT | EPOLLRDHUP);
        return;
    }

    if (start_connect(c) == -1) {
        done(c, fail_("connect: %s", strerror(errno)), 0);
        c->state = S_FREE;
    }
}


/* the request is over on this connection: keep it or close it */

static void
finish(conn_t *c, const char *failure, int disconnected, int rst)
{
    int keep;

    keep = !failure && !disconnected && c->complete && !c->conn_close
           && c->plan->keepalive && c->fd >= 0
           && c->sent == c->plan->req_len;

    done(c, failure, disconnected);

    if (keep) {
        c->state = S_IDLE;
        want(c, EPOLLIN | EPOLLRDHUP);
    } else {
        conn_close(c, rst);
        c->state = S_FREE;
    }
}


static void
on_response_progress(conn_t *c)
{
    plan_t  *pl = c->plan;

    if (c->bad_head[0]) {
        finish(c, c->bad_head, 0, 0);
        return;
    }

    if (c->complete) {
        finish(c, validate(c, pl), 0, 0);
        return;
    }

    if (pl->abort_at == A_STREAM && c->hdr_done
        && c->in_len >= pl->abort_bytes)
    {
        finish(c, NULL, 1, pl->abort_rst);
    }
}


static void
do_read(conn_t *c)
{
    ssize_t  n;

    for ( ;; ) {
        if (c->in_cap - c->in_len < 16384) {
            c->in_cap = c->in_cap ? c->in_cap * 2 : 65536;
            c->in = realloc(c->in, c->in_cap);
            if (c->in == NULL) die("realloc");
        }

        n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);

        if (n > 0) {
            if (c->state == S_IDLE) {
                /* bytes nobody asked for on an idle connection */
                c->in_len += (size_t) n;
                fprintf(stdout, "FAIL %s: %zd unexpected bytes on an idle "
                        "keep-alive connection after %s: ", label, n, c->prev);
                print_escaped(stdout, c->in, c->in_len, 300);
                printf("\n");
                failures++;
                conn_close(c, 0);
                c->state = S_FREE;
                return;
            }
            c->in_len += (size_t) n;
            parse(c);
            on_response_progress(c);
            if (c->plan == NULL) {
                return;                        /* the request is over */
            }
            continue;
        }

        if (n == -1 && errno == EINTR) continue;
        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;

        /* EOF or an error */

        if (c->state == S_IDLE) {              /* the server closed it */
            conn_close(c, 0);
            c->state = S_FREE;
            return;
        }

        c->eof = 1;

        if (c->hdr_done && !c->chunked && c->clen < 0 && !c->bad_head[0]) {
            c->complete = 1;                   /* read until close */
            finish(c, validate(c, c->plan), 0, 0);
            return;
        }

        if (c->plan->expect == X_GEN_CUT && c->hdr_done && n == 0) {
            finish(c, validate(c, c->plan), 0, 0);
            return;
        }

        if (c->reused && c->in_len == 0) {
            finish(c, "the server closed a reused keep-alive connection "
                   "without answering", 0, 0);
            return;
        }

        finish(c, fail_("connection %s after %zu response bytes, %zu of "
                        "%zu request bytes sent: response incomplete",
                        n == 0 ? "closed" : strerror(errno), c->in_len,
                        c->sent, c->plan->req_len), 0, 0);
        return;
    }
}


static void
do_send(conn_t *c)
{
    plan_t  *pl = c->plan;
    ssize_t  n;

    while (c->sent < c->piece_end) {
        n = send(c->fd, pl->req + c->sent, c->piece_end - c->sent,
                 MSG_NOSIGNAL);
        if (n > 0) {
            c->sent += (size_t) n;
            continue;
        }
        if (n == -1 && errno == EINTR) continue;
        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            want(c, EPOLLIN | EPOLLOUT | EPOLLRDHUP);
            return;
        }

        /* the server stopped reading: an early answer may be there */
        c->state = S_READ;
        want(c, EPOLLIN | EPOLLRDHUP);
        do_read(c);          /* if nothing comes, the deadline fires */
        return;
    }

    if (pl->abort_at == A_UPLOAD && c->sent >= pl->abort_bytes) {
        finish(c, NULL, 1, pl->abort_rst);
        return;
    }

    if (c->sent < pl->req_len) {
        /* trickle: the next piece after a gap */
        c->next_at = now_ms() + pl->gap_ms;
        c->piece_end += pl->req_len / (size_t) pl->pieces;
        if (c->piece_end > pl->req_len || pl->req_len - c->piece_end
                                          < (size_t) pl->pieces)
            c->piece_end = pl->req_len;
        if (pl->abort_at == A_UPLOAD && c->piece_end > pl->abort_bytes)
            c->piece_end = pl->abort_bytes;
        want(c, EPOLLIN | EPOLLRDHUP);
        return;
    }

    c->state = S_READ;
    c->t_sent = now_ms();
    if (pl->abort_at == A_DECISION) c->next_at = c->t_sent + pl->abort_ms;
    want(c, EPOLLIN | EPOLLRDHUP);
}


static void
on_event(conn_t *c, uint32_t events)
{
    int        err = 0;
    socklen_t  len = sizeof(err);

    if (c->state == S_CONNECTING) {
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            finish(c, fail_("connect: %s", strerror(err)), 0, 0);
            return;
        }
        c->state = S_SEND;
        do_send(c);
        return;
    }

    if (c->state == S_IDLE) {
        do_read(c);
        return;
    }

    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        do_read(c);
        if (c->plan == NULL) return;
    }

    if (c->state == S_SEND && (events & EPOLLOUT) && c->next_at == 0) {
        do_send(c);
    }
}


static void
on_timer(conn_t *c, double t)
{
    plan_t *pl = c->plan;

    if (t >= c->deadline) {
        finish(c, fail_("missing: no complete response in %d s (%zu "
                        "response bytes, %zu of %zu request bytes sent)",
                        req_timeout, c->in_len, c->sent, pl->req_len), 0, 0);
        return;
    }

    if (c->next_at && t >= c->next_at) {
        c->next_at = 0;
        if (c->state == S_SEND) {
            do_send(c);
        } else if (pl->abort_at == A_DECISION) {
            finish(c, NULL, 1, pl->abort_rst);
        }
    }
}


static void
on_signal(int sig)
{
    (void) sig;
    stop_now = 1;
}


static void
summary(double wall)
{
    int     i;
    long    n, t_sent = 0, t_ok = 0, t_fail = 0, t_disc = 0, t_early = 0;

    printf("%-14s %8s %8s %6s %6s %6s %9s\n", "kind", "sent", "ok", "fail",
           "disc", "early", "max_ms");
    for (i = 0; i < K_N; i++) {
        printf("%-14s %8ld %8ld %6ld %6ld %6ld %9.1f\n", kind_name[i],
               stats[i].sent, stats[i].ok, stats[i].fail, stats[i].disc,
               stats[i].early, stats[i].max_ms);
        t_sent += stats[i].sent; t_ok += stats[i].ok;
        t_fail += stats[i].fail; t_disc += stats[i].disc;
        t_early += stats[i].early;
    }
    printf("%-14s %8ld %8ld %6ld %6ld %6ld   (%.0f req/s)\n", "total", t_sent,
           t_ok, t_fail, t_disc, t_early, wall > 0 ? t_sent / wall : 0.0);
    printf("(ok: answered as expected; disc: disconnected as planned; early: "
           "a planned disconnect whose complete, correct answer came first)\n");

    if (nreasons) {
        printf("failures by kind and reason (digits folded to N):\n");
        for (i = 0; i < nreasons; i++) {
            printf("  %6ld  %-13s %s\n", reasons[i].n,
                   kind_name[reasons[i].kind], reasons[i].why);
        }
    }

    for (i = 0, n = 0; i < K_N; i++) n += prev_fail[i];
    if (n) {
        printf("failures on a reused keep-alive connection, by the kind of "
               "the request before on it:");
        for (i = 0; i < K_N; i++) {
            if (prev_fail[i]) printf(" %s=%ld", kind_name[i], prev_fail[i]);
        }
        printf("\n");
    }

    printf("coverage:");
    for (i = 0; i < V_N; i++) printf(" %s=%ld", cov_name[i], cov[i]);
    printf("\nclassifier faults injected:");
    for (i = 0; i < (int) N_ERR_MODES; i++) printf(" %s=%ld", err_modes[i], cov_err[i]);
    printf("\n");
}


int
main(int argc, char **argv)
{
    int                 opt, i, n, port = 19080, active;
    double              t0, t, wall, next;
    struct rlimit       rl;
    struct epoll_event  evs[512];

    seed = (uint64_t) time(NULL);
    argv0 = argv[0];

    while ((opt = getopt(argc, argv, "p:c:t:s:i:T:R:F:l:1:x:vCG")) != -1) {
        switch (opt) {
        case 'p': port = atoi(optarg); break;
        case 'c': conc = atoi(optarg); break;
        case 't': seconds = atoi(optarg); break;
        case 's': seed = strtoull(optarg, NULL, 10); break;
        case 'i': next_rid = atol(optarg); break;
        case 'T': req_timeout = atoi(optarg); break;
        case 'R': reply_dir = optarg; break;
        case 'F': faillog = fopen(optarg, "a"); if (!faillog) die(optarg); break;
        case 'l': label = optarg; break;
        case '1': one_rid = atol(optarg); break;
        case 'v': verbose++; break;
        case 'C': repeats = 1; break;
        case 'G': guard = 1; break;
        case 'x':
            {
                char *list = strdup(optarg), *k, *save = NULL;
                int   found;

                for (k = strtok_r(list, ", ", &save); k;
                     k = strtok_r(NULL, ", ", &save))
                {
                    for (i = 0, found = 0; i < K_N; i++) {
                        if (strcmp(k, kind_name[i]) == 0) {
                            excluded[i] = 1;
                            found = 1;
                        }
                    }
                    if (!found) {
                        fprintf(stderr, "soak-client: -x: no kind \"%s\"\n", k);
                        return 2;
                    }
                }
                free(list);
                for (i = 0, found = 0; i < K_N; i++) found += !excluded[i];
                if (!found) {
                    fprintf(stderr, "soak-client: -x excludes every kind\n");
                    return 2;
                }
            }
            break;
        default:
            fprintf(stderr, "usage: %s -p PORT [-c CONC] [-t SECONDS] "
                    "[-s SEED] [-i FIRST_RID] [-T REQ_TIMEOUT] [-R REPLY_DIR] "
                    "[-F FAILURE_LOG] [-l LABEL] [-1 RID] [-x KIND,...] [-C] "
                    "[-G] [-v]\n",
                    argv[0]);
            return 2;
        }
    }

    if (conc < 1 || conc > MAX_CONC || seconds < 0 || req_timeout < 1) {
        fprintf(stderr, "soak-client: bad -c, -t or -T\n");
        return 2;
    }

    reply[0] = read_reply(reply_dir, "a.txt");
    reply[1] = read_reply(reply_dir, "b.txt");
    reply[2] = read_reply(reply_dir, "j.txt");
    reply[3] = read_reply(reply_dir, "g.txt");

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t) port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep == -1) die("epoll_create1");

    if (one_rid >= 0) {
        conc = 1;
        verbose = verbose ? verbose : 1;
    }

    for (i = 0; i < conc; i++) {
        slots[i].fd = -1;
        slots[i].state = S_FREE;
    }

    t0 = now_ms();

    if (one_rid < 0) {
        printf("soak-client: label=%s seed=%llu first_rid=%ld conc=%d "
               "seconds=%d req_timeout=%d\n", label, (unsigned long long) seed,
               next_rid, conc, seconds, req_timeout);
    } else {
        plan_t pl;
        make_plan(&pl, one_rid);
        printf("request %ld: %s\n--- request head ---\n", one_rid, pl.desc);
        fwrite(pl.req, 1, pl.head_len, stdout);
        printf("--- request body: %zu bytes ---\n", pl.req_len - pl.head_len);
        print_escaped(stdout, pl.req + pl.head_len, pl.req_len - pl.head_len,
                      2000);
        printf("\n");
        free(pl.req);
    }
    fflush(stdout);

    for ( ;; ) {
        t = now_ms();
        active = 0;

        for (i = 0; i < conc; i++) {
            conn_t *c = &slots[i];

            if (c->plan == NULL && !stop_now) {
                if (one_rid >= 0) {
                    if (requests == 0 && c->state == S_FREE) {
                        start_request(c, one_rid);
                    }
                } else if (t - t0 < seconds * 1000.0) {
                    start_request(c, next_rid++);
                }
            }
            if (c->plan) active++;
        }

        if (active == 0 || stop_now) break;

        next = t + 100;
        for (i = 0; i < conc; i++) {
            conn_t *c = &slots[i];
            if (c->plan == NULL) continue;
            if (c->deadline < next) next = c->deadline;
            if (c->next_at && c->next_at < next) next = c->next_at;
        }

        n = epoll_wait(ep, evs, 512, next > t ? (int) (next - t) + 1 : 0);
        if (n == -1 && errno != EINTR) die("epoll_wait");

        for (i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (c->fd < 0) continue;
            on_event(c, evs[i].events);
        }

        t = now_ms();
        for (i = 0; i < conc; i++) {
            conn_t *c = &slots[i];
            if (c->plan && (t >= c->deadline || (c->next_at && t >= c->next_at)))
                on_timer(c, t);
        }
    }

    if (stop_now) {
        for (i = 0; i < conc; i++) {
            if (slots[i].plan) {
                free(slots[i].plan->req);
                free(slots[i].plan);
                slots[i].plan = NULL;
            }
        }
        printf("soak-client: stopped by a signal\n");
    }

    for (i = 0; i < conc; i++) conn_close(&slots[i], 0);

    wall = (now_ms() - t0) / 1000.0;
    if (one_rid < 0 || verbose > 1) summary(wall);
    printf("result label=%s requests=%ld failures=%ld missing=%ld "
           "next_rid=%ld wall_s=%.1f\n", label, requests, failures, missing,
           next_rid, wall);

    return failures ? 1 : 0;
}

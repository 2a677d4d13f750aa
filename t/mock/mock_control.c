/*
 * mock_control.c -- the mock's records of the requests it served and the
 * /_mock/ endpoints that read them (the contract is at the top of mock.c).
 *
 * The records are a list in order of completion, bounded in bytes (the
 * oldest go first).  A control request that waits for records (wait=S)
 * keeps its connection in MOCK_WAIT with a timer at its deadline; a new
 * record only sets mock_records_changed, and the loop then wakes the
 * waiters that have what they wait for (mock_records_wake), so that no
 * handler ever answers another connection's request from inside its own.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock.h"


typedef struct rec_s  rec_t;

struct rec_s {
    rec_t       *next;
    long         seq;
    long         i;
    char        *tag;
    char        *uri;
    char         method[16];
    int          status;
    int          aborted;
    double       request_time;
    double       start, finish;
    char        *head;
    size_t       head_len;
    char        *body;
    size_t       body_len;
    size_t       bytes;
};

typedef struct {
    char        *name;
    long         n;               /* records so far (the next one's i - 1) */
} tag_t;

typedef struct ctl_cmd_s  ctl_cmd_t;

struct ctl_cmd_s {
    const char  *name;
    int          waits;           /* wait=S means something */
    void       (*answer)(mock_conn_t *c);
};

typedef struct {
    const ctl_cmd_t  *cmd;
    long              need;       /* records the wait is for */
} ctl_t;


static rec_t   *recs, *recs_last;
static size_t   recs_bytes, recs_max;
static long     recs_live, recs_seq;
static tag_t   *tags;
static size_t   ntags;


void
mock_records_init(size_t max_bytes)
{
    recs_max = max_bytes;
}


static tag_t *
tag_find(const char *name, int create)
{
    size_t  i;

    for (i = 0; i < ntags; i++) {
        if (strcmp(tags[i].name, name) == 0) {
            return &tags[i];
        }
    }

    if (!create) {
        return NULL;
    }

    tags = realloc(tags, (ntags + 1) * sizeof(tag_t));
    if (tags == NULL) {
        perror("mock: realloc");
        exit(1);
    }

    tags[ntags].name = mock_strdup(name);
    tags[ntags].n = 0;
    return &tags[ntags++];
}


static void
rec_free(rec_t *x)
{
    recs_bytes -= x->bytes;
    recs_live--;
    free(x->tag);
    free(x->uri);
    free(x->head);
    free(x->body);
    free(x);
}


static char *
copy(const char *p, size_t n)
{
    char  *s = mock_alloc(n + 1);

    memcpy(s, p, n);
    return s;
}


void
mock_record(mock_conn_t *c, int status, int aborted)
{
    mock_req_t  *r = &c->r;
    rec_t       *x;
    double       now;

    if (recs_max == 0) {
        return;
    }

    now = mock_now_real();

    x = mock_alloc(sizeof(rec_t));
    x->seq = ++recs_seq;
    x->i = ++tag_find(r->tag, 1)->n;
    x->tag = mock_strdup(r->tag);
    x->uri = mock_strdup(r->uri);
    memcpy(x->method, r->method, sizeof(x->method));
    x->status = aborted ? 499 : status;
    x->aborted = aborted;
    x->start = r->first_real;
    x->finish = now;
    x->request_time = (double) (long) ((now - r->first_real) * 1000) / 1000;
    x->head = copy(c->in.p, r->head_len);
    x->head_len = r->head_len;
    x->body = copy(r->body ? r->body : "", r->body_len);
    x->body_len = r->body_len;
    x->bytes = sizeof(rec_t) + x->head_len + x->body_len + strlen(x->uri);

    if (recs_last) recs_last->next = x; else recs = x;
    recs_last = x;
    recs_bytes += x->bytes;
    recs_live++;

    while (recs_bytes > recs_max && recs != recs_last) {
        x = recs;
        recs = x->next;
        rec_free(x);
    }

    mock_records_changed = 1;
}


static int
all(const char *tag)
{
    return strcmp(tag, "*") == 0;
}


static long
count(const char *tag)
{
    tag_t  *t;

    if (all(tag)) {
        return recs_live;
    }

    t = tag_find(tag, 0);
    return t ? t->n : 0;
}


/* forget one tag's records, or every record (tag NULL) */

static void
clear(const char *tag)
{
    rec_t   **pp, *x;
    tag_t    *t;
    size_t    i;

    for (pp = &recs; *pp; ) {
        x = *pp;
        if (tag == NULL || strcmp(x->tag, tag) == 0) {
            *pp = x->next;
            rec_free(x);
        } else {
            pp = &x->next;
        }
    }

    for (recs_last = recs; recs_last && recs_last->next; ) {
        recs_last = recs_last->next;
    }

    if (tag == NULL) {
        for (i = 0; i < ntags; i++) {
            free(tags[i].name);
        }
        ntags = 0;
        recs_seq = 0;
        return;
    }

    t = tag_find(tag, 0);
    if (t) {
        free(t->name);
        *t = tags[--ntags];
    }
}


static void
text(mock_conn_t *c, int status, mock_buf_t *b)
{
    mock_respond(c, status, "text/plain", b->p ? b->p : "", b->len);
    buf_free(b);
}


static void
ctl_log(mock_conn_t *c)
{
    mock_buf_t  b = { 0 };
    rec_t      *x;

    for (x = recs; x; x = x->next) {
        if (all(c->r.tag) || strcmp(x->tag, c->r.tag) == 0) {
            buf_printf(&b, "%d %.3f %s\n", x->status, x->request_time,
                       x->uri);
        }
    }

    text(c, 200, &b);
}


/* record i of the tag (1-based; negative from the end; 0: the last) */

static rec_t *
nth(const char *tag, long i)
{
    rec_t  *x, *found = NULL;
    long    n = 0, k = 0;

    for (x = recs; x; x = x->next) {
        if (all(tag) || strcmp(x->tag, tag) == 0) {
            n++;
            if (i > 0 && x->i == i) {
                return x;
            }
            found = x;
        }
    }

    if (i >= 0) {
        return i == 0 ? found : NULL;
    }

    for (x = recs; x; x = x->next) {
        if ((all(tag) || strcmp(x->tag, tag) == 0) && ++k == n + 1 + i) {
            return x;
        }
    }

    return NULL;
}


static void
part(mock_conn_t *c, int body)
{
    mock_buf_t  b = { 0 };
    rec_t      *x;
    long        i;

    i = (long) mock_arg_num(c->r.query, "i", 0);
    x = nth(c->r.tag, i);

    if (x == NULL) {
        if (i) {
            buf_printf(&b, "no record %ld for tag %s\n", i, c->r.tag);
        } else {
            buf_printf(&b, "no record last for tag %s\n", c->r.tag);
        }
        text(c, 404, &b);
        return;
    }

    if (body) {
        mock_respond(c, 200, "application/json", x->body, x->body_len);
    } else {
        mock_respond(c, 200, "text/plain", x->head, x->head_len);
    }
}


static void
ctl_body(mock_conn_t *c)
{
    part(c, 1);
}


static void
ctl_headers(mock_conn_t *c)
{
    part(c, 0);
}


static void
ctl_count(mock_conn_t *c)
{
    mock_buf_t  b = { 0 };

    buf_printf(&b, "%ld\n", count(c->r.tag));
    text(c, 200, &b);
}


static void
ctl_clear(mock_conn_t *c)
{
    mock_buf_t  b = { 0 };
    char       *tag;

    tag = mock_arg(c->r.query, "tag");
    clear(tag ? c->r.tag : NULL);
    free(tag);
    buf_str(&b, "ok\n");
    text(c, 200, &b);
}


static void
ctl_records(mock_conn_t *c)
{
    mock_buf_t  b = { 0 };
    rec_t      *x;
    double      with_body;
    int         first = 1;

    with_body = mock_arg_num(c->r.query, "body", 0);
    buf_str(&b, "[");

    for (x = recs; x; x = x->next) {
        if (!all(c->r.tag) && strcmp(x->tag, c->r.tag) != 0) {
            continue;
        }

        buf_printf(&b, "%s{\"seq\":%ld,\"tag\":", first ? "" : ",", x->seq);
        buf_json(&b, x->tag, strlen(x->tag));
        buf_printf(&b, ",\"i\":%ld,\"uri\":", x->i);
        buf_json(&b, x->uri, strlen(x->uri));
        buf_str(&b, ",\"method\":");
        buf_json(&b, x->method, strlen(x->method));
        buf_printf(&b, ",\"status\":%d,\"request_time\":%.3f,\"aborted\":%s,"
                   "\"start\":%.3f,\"finish\":%.3f,\"body_length\":%zu",
                   x->status, x->request_time, x->aborted ? "true" : "false",
                   x->start, x->finish, x->body_len);
        if (with_body != 0) {
            buf_str(&b, ",\"body\":");
            buf_json(&b, x->body, x->body_len);
        }
        buf_str(&b, "}");
        first = 0;
    }

    buf_str(&b, "]\n");
    mock_respond(c, 200, "application/json", b.p, b.len);
    buf_free(&b);
}


static int
by_name(const void *a, const void *b)
{
    return strcmp(((const tag_t *) a)->name, ((const tag_t *) b)->name);
}


static void
ctl_tags(mock_conn_t *c)
{
    mock_buf_t  b = { 0 };
    size_t      i;

    qsort(tags, ntags, sizeof(tag_t), by_name);

    for (i = 0; i < ntags; i++) {
        if (tags[i].n > 0) {
            buf_printf(&b, "%s\n", tags[i].name);
        }
    }

    text(c, 200, &b);
}


static void
ctl_ping(mock_conn_t *c)
{
    mock_buf_t  b = { 0 };

    buf_str(&b, "pong\n");
    text(c, 200, &b);
}


static void
ctl_stats(mock_conn_t *c)
{
    mock_buf_t    b = { 0 };
    mock_conn_t  *o;
    long          busy = 0, hung = 0;

    for (o = mock_conns; o; o = o->next) {
        if (o != c && o->state != MOCK_READ) {
            busy++;
            hung += (o->r.mode == MOCK_HANG);
        }
    }

    buf_printf(&b, "conns=%ld busy=%ld hung=%ld\n", mock_nconns - 1, busy,
               hung);
    text(c, 200, &b);
}


/* closed by the loop once this batch of events is done: a handler only
 * ever frees its own connection */

static void
ctl_close_idle(mock_conn_t *c)
{
    mock_buf_t    b = { 0 };
    mock_conn_t  *o;
    long          closed = 0;

    for (o = mock_conns; o; o = o->next) {
        if (o != c && o->state == MOCK_READ && o->in.len == 0) {
            o->doomed = 1;
            closed++;
        }
    }

    mock_close_idle = 1;
    buf_printf(&b, "closed=%ld\n", closed);
    text(c, 200, &b);
}


static void
ctl_unknown(mock_conn_t *c)
{
    mock_buf_t  b = { 0 };

    buf_printf(&b, "unknown mock control endpoint %s\n", c->r.uri);
    text(c, 404, &b);
}


static const ctl_cmd_t  ctl_cmds[] = {
    { "log", 1, ctl_log },
    { "body", 1, ctl_body },
    { "headers", 1, ctl_headers },
    { "records", 1, ctl_records },
    { "count", 0, ctl_count },
    { "clear", 0, ctl_clear },
    { "tags", 0, ctl_tags },
    { "ping", 0, ctl_ping },
    { "stats", 0, ctl_stats },
    { "close-idle", 0, ctl_close_idle },
    { NULL, 0, ctl_unknown }
};


static void
ctl_fire(mock_conn_t *c)
{
    ctl_t  *t = c->r.data;

    c->waiting = 0;
    t->cmd->answer(c);
}


static void
ctl_start(mock_conn_t *c)
{
    const ctl_cmd_t  *cmd;
    const char       *name;
    ctl_t            *t;
    double            wait, n, i;
    size_t            len;

    name = c->r.uri + 7;
    len = strcspn(name, "?");

    for (cmd = ctl_cmds; cmd->name; cmd++) {
        if (strlen(cmd->name) == len && strncmp(cmd->name, name, len) == 0) {
            break;
        }
    }

    t = mock_alloc(sizeof(ctl_t));
    t->cmd = cmd;
    c->r.data = t;
    c->r.free_data = free;

    wait = cmd->waits ? mock_arg_num(c->r.query, "wait", 0) : 0;

    if (cmd->answer == ctl_body || cmd->answer == ctl_headers) {
        i = mock_arg_num(c->r.query, "i", 0);
        t->need = i > 0 ? (long) i : i < 0 ? (long) -i : 1;

    } else {
        n = mock_arg_num(c->r.query, "n", wait > 0 ? 1 : 0);
        t->need = (long) n;
    }

    if (wait > 0 && count(c->r.tag) < t->need) {
        c->waiting = 1;
        mock_timer(c, wait);
        return;
    }

    ctl_fire(c);
}


/* the waiters whose records have come: answered from the loop, soon */

void
mock_records_wake(void)
{
    mock_conn_t  *c;
    ctl_t        *t;

    for (c = mock_conns; c; c = c->next) {
        if (!c->waiting) {
            continue;
        }

        t = c->r.data;
        if (count(c->r.tag) >= t->need) {
            c->waiting = 0;
            mock_timer(c, 0);
        }
    }
}


const mock_endpoint_t  mock_control_endpoint = {
    "/_mock/", 0, ctl_start, ctl_fire
};

/*
 * mock.h -- the mock LLM backend's shared types (the contract is at the top
 * of mock.c).
 *
 *   mock.c          the event loop, connections, timers, HTTP in and out
 *   mock_llm.c      the LLM endpoints: classifiers, generation, faults
 *   mock_control.c  the records and the /_mock/ control endpoints
 *   mock_util.c     buffers, JSON strings, query arguments
 */

#ifndef MOCK_H
#define MOCK_H

#include <stddef.h>
#include <stdint.h>

#define MOCK_HEAD_MAX   65536
#define MOCK_BODY_MAX   (32 << 20)
#define MOCK_HANG_S     3600


typedef struct {
    char      *p;
    size_t     len;
    size_t     cap;
} mock_buf_t;


typedef struct mock_conn_s      mock_conn_t;
typedef struct mock_endpoint_s  mock_endpoint_t;


/* an endpoint: start() runs when a request is read whole, fire() when the
 * timer that start() (or fire() itself) set is due */

struct mock_endpoint_s {
    const char  *path;
    int          recorded;        /* its requests end in the records */
    void       (*start)(mock_conn_t *c);
    void       (*fire)(mock_conn_t *c);
};


enum { MOCK_READ, MOCK_WAIT, MOCK_SEND };

enum {
    MOCK_OK, MOCK_GARBAGE, MOCK_EMPTY, MOCK_NOWORD, MOCK_BIG, MOCK_HANG,
    MOCK_RESET, MOCK_RST, MOCK_CLOSE, MOCK_BAD_MODE
};


/* one request; everything in it is reset (and freed) when it ends */

typedef struct {
    const mock_endpoint_t  *ep;

    uint64_t     first;           /* ns, CLOCK_MONOTONIC: its first byte */
    double       first_real;      /* the same, epoch seconds */
    uint64_t     ready;           /* ns: read whole */
    size_t       len;             /* bytes of it in the input buffer */
    size_t       head_len;

    char         method[16];
    char        *uri;             /* as received, arguments included */
    char        *query;           /* into a copy of uri, or NULL */
    const char  *body;
    size_t       body_len;
    mock_buf_t   unchunked;       /* the body of a chunked request */

    char        *tag;
    long         rid;             /* "rid-N" in the body, or -1 */
    int          http10;
    int          close_after;
    int          answered;        /* the status it ends with */
    int          headers_sent;

    /* the LLM endpoints */
    int          mode;
    int          status;          /* status=N, 0: none */
    double       delay;
    void        *data;            /* the endpoint's own state */
    void       (*free_data)(void *data);
} mock_req_t;


struct mock_conn_s {
    mock_conn_t *prev, *next;     /* every open connection */
    int          fd;
    int          state;
    int          heap_idx;        /* -1: no timer */
    uint64_t     due;
    int          doomed;          /* /_mock/close-idle closes it */
    int          waiting;         /* a control request waits for records */
    int          finish_when_sent;

    mock_buf_t   in;
    mock_buf_t   out;
    size_t       out_pos;

    mock_req_t   r;
};


extern mock_conn_t  *mock_conns;
extern long          mock_nconns;
extern int           mock_close_idle;
extern int           mock_records_changed;


/* mock.c: answering */
void mock_timer(mock_conn_t *c, double seconds);
void mock_respond(mock_conn_t *c, int status, const char *ctype,
    const char *body, size_t len);
void mock_respond_cut(mock_conn_t *c, int status, const char *ctype,
    const char *body, size_t len);
void mock_stream_head(mock_conn_t *c, int status, const char *ctype);
int mock_stream(mock_conn_t *c, const char *p, size_t n, int last);
void mock_stream_cut(mock_conn_t *c, const char *p, size_t n);
void mock_drop(mock_conn_t *c, int rst);
double mock_now_real(void);

/* mock_llm.c */
extern const mock_endpoint_t  mock_llm_endpoints[];
void mock_error_json(mock_buf_t *b, int status, const char *message);

/* mock_control.c */
extern const mock_endpoint_t  mock_control_endpoint;
void mock_records_init(size_t max_bytes);
void mock_record(mock_conn_t *c, int status, int aborted);
void mock_records_wake(void);

/* mock_util.c */
void buf_reserve(mock_buf_t *b, size_t need);
void buf_add(mock_buf_t *b, const void *p, size_t n);
void buf_str(mock_buf_t *b, const char *s);
void buf_printf(mock_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void buf_json(mock_buf_t *b, const char *s, size_t n);
void buf_free(mock_buf_t *b);
char *mock_arg(const char *query, const char *name);
double mock_arg_num(const char *query, const char *name, double dflt);
char *mock_strdup(const char *s);
void *mock_alloc(size_t size);

#endif /* MOCK_H */

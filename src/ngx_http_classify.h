
/*
 * ngx_http_classify_module: shared types.
 *
 * The configuration (classifiers, location settings), the per-request
 * context of the gate and the prototypes that tie the source files
 * together.  The pure parts (input parsing, JSON building, verdict
 * parsing and resolution, reply rendering) take only a pool and strings,
 * so that they can be unit-tested and fuzzed without a request.
 */


#ifndef _NGX_HTTP_CLASSIFY_H_INCLUDED_
#define _NGX_HTTP_CLASSIFY_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_classify_input.h"


#define NGX_HTTP_CLASSIFY_PROTO_OPENAI     0
#define NGX_HTTP_CLASSIFY_PROTO_JSON       1

#define NGX_HTTP_CLASSIFY_ON_ERROR_PASS    0
#define NGX_HTTP_CLASSIFY_ON_ERROR_BLOCK   1

#define NGX_HTTP_CLASSIFY_MODE_PARALLEL    0
#define NGX_HTTP_CLASSIFY_MODE_SEQUENTIAL  1

#define NGX_HTTP_CLASSIFY_RESOLVE_PRIORITY 0
#define NGX_HTTP_CLASSIFY_RESOLVE_FIRST    1

#define NGX_HTTP_CLASSIFY_ORDER_RPUSH      0   /* newest last */
#define NGX_HTTP_CLASSIFY_ORDER_LPUSH      1   /* newest first */

#define NGX_HTTP_CLASSIFY_REPLY_AUTO       0
#define NGX_HTTP_CLASSIFY_REPLY_OPENAI     1
#define NGX_HTTP_CLASSIFY_REPLY_SSE        2
#define NGX_HTTP_CLASSIFY_REPLY_TEXT       3
#define NGX_HTTP_CLASSIFY_REPLY_JSON       4
#define NGX_HTTP_CLASSIFY_REPLY_RESPONSES  5
#define NGX_HTTP_CLASSIFY_REPLY_ANTHROPIC  6

/* the answer of one classifier */
#define NGX_HTTP_CLASSIFY_PENDING          0   /* not decided yet */
#define NGX_HTTP_CLASSIFY_NEGATIVE         1
#define NGX_HTTP_CLASSIFY_POSITIVE         2
#define NGX_HTTP_CLASSIFY_ERROR            3

/* the outcome of the whole decision */
#define NGX_HTTP_CLASSIFY_UNDECIDED        -1
#define NGX_HTTP_CLASSIFY_PASS             -2

#define NGX_HTTP_CLASSIFY_DEFAULT_MAX_TOKENS  5


/* monotonic microseconds, for every duration the module reports */
static ngx_inline ngx_msec_int_t
ngx_http_classify_usec(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (ngx_msec_int_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


/* microseconds as milliseconds with three decimals: "12.345" */
#define NGX_HTTP_CLASSIFY_MS_LEN  (NGX_INT64_LEN + 4)

static ngx_inline u_char *
ngx_http_classify_print_ms(u_char *p, u_char *last, ngx_msec_int_t usec)
{
    return ngx_slprintf(p, last, "%M.%03M", usec / 1000, usec % 1000);
}


#define ngx_http_classify_isalnum(c)                                          \
    (((c) >= '0' && (c) <= '9') || ((c) >= 'a' && (c) <= 'z')                 \
     || ((c) >= 'A' && (c) <= 'Z'))


typedef struct ngx_http_classify_metrics_s  ngx_http_classify_metrics_t;
typedef struct ngx_http_classify_spec_s     ngx_http_classify_spec_t;
typedef struct ngx_http_classify_guard_s    ngx_http_classify_guard_t;

/* the verdict cache: ngx_http_classify_cache.h */
typedef struct ngx_http_classify_cache_s      ngx_http_classify_cache_t;
typedef struct ngx_http_classify_cache_key_s  ngx_http_classify_cache_key_t;


typedef struct {
    ngx_str_t                      name;
    ngx_uint_t                     index;         /* in the http{} block */

    ngx_str_t                      pass_uri;
    ngx_str_t                      pass_args;

    ngx_uint_t                     protocol;
    ngx_str_t                      model;
    ngx_str_t                      prompt;
    ngx_uint_t                     context;
    ngx_uint_t                     max_tokens;
    ngx_array_t                   *positive;      /* of ngx_str_t, lowercase */
    ngx_msec_t                     timeout;
    ngx_uint_t                     on_error;
    ngx_str_t                      reply;
    ngx_flag_t                     shadow;
    ngx_msec_t                     cache_valid;   /* unset, 0: off, time */
    ngx_flag_t                     output;        /* in a classify_output */

    /* built once at configuration time */
    ngx_str_t                      body_prefix;   /* openai: up to messages */
    u_char                         cache_id[20];  /* SHA-1 of the settings */

} ngx_http_classify_classifier_t;


/* one Redis server and this worker's connection to it (redis.c) */
typedef struct ngx_http_classify_redis_s     ngx_http_classify_redis_t;
typedef struct ngx_http_classify_redis_op_s  ngx_http_classify_redis_op_t;


/* how a session's list is kept: the classify_context_* settings */
typedef struct {
    ngx_uint_t                     order;         /* classify_context_order */
    ngx_uint_t                     max;           /* classify_context_max */
    size_t                         max_size;      /* bytes a read keeps */
    ngx_msec_t                     ttl;           /* classify_context_ttl */
} ngx_http_classify_redis_list_t;


typedef struct {
    ngx_array_t                    classifiers;   /* of classifier_t */
    ngx_array_t                    redis;         /* of redis_t * */
    ngx_flag_t                     capture;       /* any context_store */
    ngx_flag_t                     output;        /* any classify_output */
    ngx_shm_zone_t                *metrics_zone;
    ngx_http_classify_metrics_t   *metrics;       /* in the zone */
    ngx_array_t                   *caches;        /* of cache_t * */
    ngx_array_t                   *cache_refs;    /* checked at the end */
    ngx_pool_t                    *pool;
} ngx_http_classify_main_conf_t;


/* the classifiers a directive names, and where it is */
typedef struct {
    ngx_array_t                   *names;         /* of ngx_str_t */
    u_char                        *file;
    ngx_uint_t                     line;
} ngx_http_classify_listed_t;


typedef struct {
    ngx_http_classify_listed_t     listed;        /* "classify" */
    ngx_array_t                   *classifiers;   /* of classifier_t * */

    ngx_str_t                      pass;          /* "classify_pass" */

    ngx_uint_t                     mode;
    ngx_uint_t                     resolve;
    ngx_uint_t                     input;
    ngx_uint_t                     reply_format;
    ngx_str_t                      query_field;
    ngx_str_t                      session_field;
    ngx_http_complex_value_t      *session;
    ngx_msec_t                     timeout;
    ngx_uint_t                     max_context;   /* largest "context" */

    ngx_http_classify_redis_t     *redis;
    ngx_http_complex_value_t      *redis_key;
    ngx_uint_t                     redis_on_error;
    ngx_flag_t                     context_store;
    ngx_http_classify_redis_list_t context;

    ngx_shm_zone_t                *cache_zone;    /* "classify_cache" */
    ngx_msec_t                     cache_valid;

    ngx_flag_t                     speculate;
    size_t                         speculate_buffer;

    ngx_http_classify_listed_t     output_listed; /* "classify_output" */
    ngx_array_t                   *output;        /* of classifier_t * */
    size_t                         output_window;
    ngx_uint_t                     output_mode;
    size_t                         output_buffer;
} ngx_http_classify_loc_conf_t;


/* the body's types: ngx_http_classify_input.h */


typedef struct ngx_http_classify_ctx_s  ngx_http_classify_ctx_t;


/* the life of one classifier call (ngx_http_classify_call_set()) */
typedef enum {
    NGX_HTTP_CLASSIFY_CALL_IDLE = 0,     /* not started (sequential mode) */
    NGX_HTTP_CLASSIFY_CALL_RUNNING,      /* its subrequest is posted or runs */
    NGX_HTTP_CLASSIFY_CALL_ANSWERED,     /* a verdict: positive or negative */
    NGX_HTTP_CLASSIFY_CALL_FAILED,       /* an error: its on_error applies */
    NGX_HTTP_CLASSIFY_CALL_TIMEDOUT,     /* its timeout or classify_timeout */
    NGX_HTTP_CLASSIFY_CALL_ABORTED,      /* given up by the gate */
    NGX_HTTP_CLASSIFY_CALL_SKIPPED       /* decided without it */
} ngx_http_classify_call_state_e;


/* what logs, variables and metrics call a call's end */
typedef enum {
    NGX_HTTP_CLASSIFY_OUTCOME_POSITIVE = 0,
    NGX_HTTP_CLASSIFY_OUTCOME_NEGATIVE,
    NGX_HTTP_CLASSIFY_OUTCOME_ERROR,
    NGX_HTTP_CLASSIFY_OUTCOME_TIMEOUT,
    NGX_HTTP_CLASSIFY_OUTCOME_ABORTED,
    NGX_HTTP_CLASSIFY_OUTCOME_SKIPPED,
    NGX_HTTP_CLASSIFY_OUTCOME_PENDING,
    NGX_HTTP_CLASSIFY_NOUTCOMES
} ngx_http_classify_outcome_e;


typedef struct ngx_http_classify_call_s  ngx_http_classify_call_t;

typedef void (*ngx_http_classify_call_handler_pt)(
    ngx_http_classify_call_t *call);


/* one classifier call of one request */
struct ngx_http_classify_call_s {
    ngx_http_classify_classifier_t  *classifier;
    ngx_http_request_t              *request;     /* the main request */
    ngx_http_request_t              *sr;
    ngx_http_post_subrequest_t       ps;
    ngx_event_t                      timer;       /* its own timeout */

    /* it settled by itself: an answer, an error, its own timeout */
    ngx_http_classify_call_handler_pt  handler;
    void                            *data;

    ngx_msec_int_t                   start;       /* monotonic usec */
    ngx_msec_int_t                   usec;        /* time it ran */

    ngx_str_t                        answer;      /* the raw answer */
    size_t                           answer_size; /* allocated */
    off_t                            received;    /* answer bytes */
    ngx_uint_t                       status;      /* upstream status */

    ngx_http_classify_call_state_e   state;
    ngx_uint_t                       verdict;     /* when answered */
    const char                      *cause;       /* why it failed */

    ngx_http_classify_cache_key_t   *cache_key;   /* a miss, to store */

    unsigned                         ran:1;       /* its subrequest ran */
    unsigned                         cached:1;    /* answered by the cache */
    unsigned                         too_big:1;
    unsigned                         in_file:1;
};


struct ngx_http_classify_ctx_s {
    ngx_http_request_t              *request;
    ngx_http_classify_loc_conf_t    *conf;

    ngx_http_classify_input_t        input;

    ngx_http_classify_call_t        *calls;
    ngx_uint_t                       ncalls;
    ngx_int_t                        first_positive;  /* resolve first */

    ngx_event_t                      deadline;    /* classify_timeout */

    ngx_http_classify_redis_op_t    *redis_op;    /* context read */
    ngx_str_t                        redis_key;

    ngx_msec_int_t                   start;       /* monotonic usec */
    ngx_msec_int_t                   usec;        /* decision time */
    ngx_int_t                        verdict;     /* index, PASS or ... */

    ngx_str_t                        body;        /* kept as it came */
    size_t                           body_size;

    ngx_http_classify_spec_t        *spec;        /* classify_speculate */
    ngx_http_classify_guard_t       *guard;       /* classify_output */

    ngx_str_t                        capture;     /* generated answer */
    size_t                           capture_size;

    unsigned                         keep_body:1;
    unsigned                         capture_done:1;
    unsigned                         capture_failed:1;
    unsigned                         waiting:1;   /* classifiers running */
    unsigned                         decided:1;
};


extern ngx_module_t  ngx_http_classify_module;


/* the classifier{} block */
char *ngx_http_classifier_block(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

extern ngx_conf_enum_t  ngx_http_classify_on_errors[];

/* gate */
ngx_int_t ngx_http_classify_handler(ngx_http_request_t *r);
ngx_http_classify_ctx_t *ngx_http_classify_get_ctx(ngx_http_request_t *r);
ngx_str_t *ngx_http_classify_verdict_name(ngx_http_classify_ctx_t *ctx);

/* whole responses from memory */
ngx_int_t ngx_http_classify_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *message);
ngx_int_t ngx_http_classify_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *content_type, ngx_str_t *body, ngx_uint_t stream);
ngx_int_t ngx_http_classify_send_chain(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *content_type, ngx_chain_t *out, size_t len,
    ngx_uint_t stream);
ngx_int_t ngx_http_classify_send_reply(ngx_http_request_t *r,
    ngx_http_classify_ctx_t *ctx, ngx_http_classify_classifier_t *cl);
void ngx_http_classify_reply_id(ngx_http_request_t *r, u_char *buf,
    ngx_str_t *id);

#define NGX_HTTP_CLASSIFY_ID_LEN  (sizeof("classify--") + 2 * NGX_ATOMIC_T_LEN)
ngx_int_t ngx_http_classify_add_header(ngx_http_request_t *r,
    const char *key, ngx_str_t *value);
ngx_str_t *ngx_http_classify_header_in(ngx_http_request_t *r,
    const char *name, size_t len);

/* redis: see ngx_http_classify_redis.h */

/* metrics */
char *ngx_http_classify_metrics_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_classify_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
void ngx_http_classify_metrics_request(ngx_http_request_t *r);
void ngx_http_classify_metrics_error(ngx_http_request_t *r);
void ngx_http_classify_metrics_redis_error(ngx_http_request_t *r);
void ngx_http_classify_metrics_stores_lost(ngx_http_classify_main_conf_t *cmcf,
    ngx_uint_t n);
void ngx_http_classify_metrics_decision(ngx_http_classify_ctx_t *ctx);
void ngx_http_classify_metrics_shadow(ngx_http_classify_ctx_t *ctx,
    ngx_http_classify_call_t *call);
void ngx_http_classify_metrics_speculated(ngx_http_request_t *r);
void ngx_http_classify_metrics_speculation_aborted(ngx_http_request_t *r,
    off_t bytes, ngx_msec_int_t usec);
void ngx_http_classify_metrics_speculation_saved(ngx_http_request_t *r,
    ngx_msec_int_t usec);
void ngx_http_classify_metrics_output_call(ngx_http_request_t *r,
    ngx_http_classify_call_t *call);
void ngx_http_classify_metrics_output_judgement(ngx_http_request_t *r,
    ngx_msec_int_t usec);
void ngx_http_classify_metrics_output_decision(ngx_http_request_t *r,
    ngx_uint_t passed, ngx_http_classify_classifier_t *cl);

/* capture of the generated answer */
ngx_int_t ngx_http_classify_capture_init(ngx_conf_t *cf);

/* classifier calls */
ngx_int_t ngx_http_classify_call_init(ngx_conf_t *cf);
void ngx_http_classify_call_set(ngx_http_classify_call_t *call,
    ngx_http_classify_call_state_e state, const char *cause);
ngx_int_t ngx_http_classify_call_start(ngx_http_classify_call_t *call,
    ngx_str_t *body);
void ngx_http_classify_call_expire(ngx_http_classify_call_t *call,
    const char *cause);
void ngx_http_classify_call_abort(ngx_http_classify_call_t *call);
void ngx_http_classify_calls_abort_outranked(ngx_http_classify_call_t *calls,
    ngx_uint_t n, ngx_uint_t resolve);
ngx_int_t ngx_http_classify_call_collect(ngx_http_request_t *r,
    ngx_http_classify_call_t *call, ngx_chain_t *in);
void ngx_http_classify_call_header(ngx_http_request_t *sr);
ngx_int_t ngx_http_classify_is_call(ngx_http_request_t *r);

/* verdicts (pure) */
ngx_uint_t ngx_http_classify_parse_answer(ngx_http_classify_classifier_t *cl,
    u_char *data, size_t len, const char **cause);
ngx_int_t ngx_http_classify_resolve(ngx_http_classify_call_t *calls,
    ngx_uint_t n, ngx_uint_t resolve, ngx_int_t first_positive);
ngx_uint_t ngx_http_classify_effective(ngx_http_classify_call_t *call);
void ngx_http_classify_note_positive(ngx_http_classify_call_t *calls,
    ngx_http_classify_call_t *call, ngx_int_t *first_positive);
ngx_http_classify_outcome_e ngx_http_classify_outcome(
    ngx_http_classify_call_t *call);
const char *ngx_http_classify_on_error_name(
    ngx_http_classify_classifier_t *cl);

ngx_str_t *ngx_http_classify_outcome_label(ngx_http_classify_call_t *call);

extern ngx_str_t  ngx_http_classify_outcome_names[];
ngx_int_t ngx_http_classify_openai_content(u_char *data, size_t len,
    ngx_uint_t chunk, ngx_str_t *raw, const char **cause);

/* input (pure) */
ngx_int_t ngx_http_classify_parse_input(ngx_pool_t *pool,
    ngx_http_classify_loc_conf_t *clcf, ngx_flag_t anthropic, u_char *data,
    size_t len, ngx_http_classify_input_t *in, const char **err);
ngx_int_t ngx_http_classify_parse_message(ngx_pool_t *pool, u_char *data,
    size_t len, ngx_http_classify_msg_t *msg);

/* JSON building (pure) */
size_t ngx_http_classify_json_str_len(ngx_str_t *s);
u_char *ngx_http_classify_json_str(u_char *p, ngx_str_t *s);
ngx_int_t ngx_http_classify_build_body(ngx_pool_t *pool,
    ngx_http_classify_classifier_t *cl, ngx_http_classify_input_t *in,
    ngx_str_t *body);
ngx_int_t ngx_http_classify_build_prefix(ngx_pool_t *pool,
    ngx_http_classify_classifier_t *cl);
ngx_int_t ngx_http_classify_build_message(ngx_pool_t *pool, ngx_str_t *role,
    ngx_str_t *content, ngx_str_t *json);

/* replies (pure) */
ngx_uint_t ngx_http_classify_reply_format(ngx_uint_t conf,
    ngx_http_classify_input_t *in, ngx_str_t *accept);
ngx_int_t ngx_http_classify_render_reply(ngx_pool_t *pool,
    ngx_uint_t format, ngx_http_classify_classifier_t *cl,
    ngx_http_classify_input_t *in, ngx_str_t *id, time_t now,
    ngx_str_t *content_type, ngx_str_t *body, ngx_uint_t *stream);
/* a stream cut short: ngx_http_classify_render_cut(), stream.h */


#endif /* _NGX_HTTP_CLASSIFY_H_INCLUDED_ */


/*
 * ngx_http_classify_module: counters and latency histograms in shared
 * memory (classify_metrics_zone), served by classify_status as Prometheus
 * text or JSON.
 *
 * Every counter is an ngx_atomic_t updated with ngx_atomic_fetch_add(), so
 * workers never lock for it.  The counters of one set of classifiers are a
 * "layout" in the zone, found again by its signature (the classifier
 * names): a reload with the same classifiers keeps counting, and one back
 * to a set seen before (A, B, A) takes up its layout again instead of
 * allocating.  Old layouts stay, for the old workers that may still be
 * finishing their requests; a zone too full for a new one says so, and
 * that configuration runs without metrics.
 *
 * A classify_redis_sentinel master has a record of its own in the zone,
 * found by its name: the address the workers connected to last, and the
 * failovers followed, counted once whichever worker follows first.
 */


#include "ngx_http_classify.h"
#include "ngx_http_classify_metrics.h"
#include "ngx_http_classify_verdict.h"
#include "ngx_http_classify_send.h"
#include "ngx_http_classify_cache.h"
#include "ngx_http_classify_gate.h"


/* histogram bucket upper bounds, in milliseconds; the last is +Inf */

static ngx_uint_t  ngx_http_classify_buckets[] = {
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000
};

#define NGX_HTTP_CLASSIFY_NBUCKETS                                            \
    (sizeof(ngx_http_classify_buckets) / sizeof(ngx_uint_t) + 1)


typedef struct {
    ngx_atomic_t                    bucket[NGX_HTTP_CLASSIFY_NBUCKETS];
    ngx_atomic_t                    sum_usec;
    ngx_atomic_t                    count;
} ngx_http_classify_hist_t;


typedef struct {
    ngx_atomic_t                    outcome[NGX_HTTP_CLASSIFY_NOUTCOMES];
    ngx_atomic_t                    shadow[NGX_HTTP_CLASSIFY_NOUTCOMES];
    ngx_atomic_t                    blocked;
    ngx_http_classify_hist_t        latency;

    /* as an output classifier (classify_output) */
    ngx_atomic_t                    output_outcome[NGX_HTTP_CLASSIFY_NOUTCOMES];
    ngx_atomic_t                    output_blocked;
    ngx_http_classify_hist_t        output_latency;
} ngx_http_classify_cl_metrics_t;


struct ngx_http_classify_metrics_s {
    ngx_queue_t                     queue;       /* in the zone's head */
    ngx_str_t                       signature;   /* classifier names */
    ngx_atomic_t                    requests;
    ngx_atomic_t                    pass;
    ngx_atomic_t                    error;
    ngx_atomic_t                    redis_errors;
    ngx_atomic_t                    redis_stores_lost;
    ngx_atomic_t                    speculated;
    ngx_atomic_t                    spec_aborted;
    ngx_atomic_t                    spec_wasted_bytes;
    ngx_atomic_t                    spec_wasted_usec;
    ngx_atomic_t                    spec_saved_usec;
    ngx_atomic_t                    formats[NGX_HTTP_CLASSIFY_NFORMATS];
    ngx_http_classify_hist_t        decision;
    ngx_atomic_t                    output_judgements;
    ngx_atomic_t                    output_pass;
    ngx_atomic_t                    output_error;
    ngx_http_classify_hist_t        output_judgement;
    ngx_uint_t                      nclassifiers;
    ngx_http_classify_cl_metrics_t  cl[1];
};


/* the zone's head: every layout it has held */

typedef struct {
    ngx_queue_t                     layouts;
    ngx_uint_t                      nlayouts;
    ngx_queue_t                     masters;
} ngx_http_classify_metrics_sh_t;


/* a master in the zone; its address is read and written under the lock */

typedef struct {
    ngx_queue_t                     queue;       /* in the zone's head */
    ngx_str_t                       name;
    ngx_atomic_t                    failovers;
    size_t                          len;
    u_char                          addr[NGX_SOCKADDR_STRLEN];
} ngx_http_classify_master_sh_t;


/* ... and in this configuration */

struct ngx_http_classify_master_s {
    ngx_str_t                       name;
    ngx_slab_pool_t                *shpool;
    ngx_http_classify_master_sh_t  *sh;          /* NULL: no room, no zone */
};


/*
 * A counter of the whole zone, or of a cache, in both outputs; one of
 * microseconds is printed as seconds in Prometheus, as milliseconds in
 * JSON (its key says "_ms").
 */

typedef struct {
    const char                     *name;        /* Prometheus */
    const char                     *key;         /* JSON */
    const char                     *help;
    size_t                          offset;      /* in the layout, stats */
    const char                     *type;        /* Prometheus */
    ngx_uint_t                      usec;
} ngx_http_classify_counter_t;


static ngx_http_classify_counter_t  ngx_http_classify_counters[] = {

    { "classify_requests_total", "requests",
      "Requests that reached a classify location.",
      offsetof(ngx_http_classify_metrics_t, requests), "counter", 0 },

    { "classify_redis_errors_total", "redis_errors",
      "Requests that got no context from Redis (down, slow or failing).",
      offsetof(ngx_http_classify_metrics_t, redis_errors), "counter", 0 },

    { "classify_redis_stores_lost_total", "redis_stores_lost",
      "Context stores Redis never acknowledged (queue full, refused, exit).",
      offsetof(ngx_http_classify_metrics_t, redis_stores_lost), "counter", 0 },

    { "classify_speculations_total", "speculations",
      "Generations started beside the classifiers (classify_speculate).",
      offsetof(ngx_http_classify_metrics_t, speculated), "counter", 0 },

    { "classify_speculations_aborted_total", "speculations_aborted",
      "Speculative generations closed because the request was not passed.",
      offsetof(ngx_http_classify_metrics_t, spec_aborted), "counter", 0 },

    { "classify_speculation_wasted_bytes_total", "speculation_wasted_bytes",
      "Response bytes of the speculative generations that were aborted.",
      offsetof(ngx_http_classify_metrics_t, spec_wasted_bytes), "counter", 0 },

    { "classify_speculation_wasted_seconds_total",
      "speculation_wasted_ms",
      "Time the aborted speculative generations ran.",
      offsetof(ngx_http_classify_metrics_t, spec_wasted_usec), "counter", 1 },

    { "classify_speculation_saved_seconds_total", "speculation_saved_ms",
      "Time to first byte that speculation saved the passed requests.",
      offsetof(ngx_http_classify_metrics_t, spec_saved_usec), "counter", 1 },

    { "classify_output_judgements_total", "output_judgements",
      "Windows of generated answers judged by the output classifiers.",
      offsetof(ngx_http_classify_metrics_t, output_judgements), "counter", 0 },

    { NULL, NULL, NULL, 0, NULL, 0 }
};


/* the counters of one classifier in one classify_cache_zone */

static ngx_http_classify_counter_t  ngx_http_classify_cache_counters[] = {

    { "classify_cache_hits_total", "hits",
      "Classifier verdicts answered by the verdict cache, without a call.",
      offsetof(ngx_http_classify_cache_stats_t, hits), "counter", 0 },

    { "classify_cache_misses_total", "misses",
      "Verdict cache lookups that found nothing, and made the call.",
      offsetof(ngx_http_classify_cache_stats_t, misses), "counter", 0 },

    { "classify_cache_evictions_total", "evictions",
      "Cached verdicts evicted to make room (least recently used first).",
      offsetof(ngx_http_classify_cache_stats_t, evictions), "counter", 0 },

    { "classify_cache_entries", "entries",
      "Verdicts in the cache now.",
      offsetof(ngx_http_classify_cache_stats_t, entries), "gauge", 0 },

    { NULL, NULL, NULL, 0, NULL, 0 }
};


#define ngx_http_classify_counter(m, c)                                       \
    (*(ngx_atomic_t *) ((u_char *) (m) + (c)->offset))


/* status text: buffers of a chain, each print sure of its room */

typedef struct {
    ngx_pool_t                     *pool;
    ngx_chain_t                    *out;
    ngx_chain_t                   **last;
    ngx_buf_t                      *b;
    size_t                          reserve;     /* one print at most */
    size_t                          len;
} ngx_http_classify_text_t;


static ngx_int_t ngx_http_classify_metrics_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_http_classify_metrics_t *ngx_http_classify_metrics_layout(
    ngx_shm_zone_t *shm_zone, ngx_str_t *sig, ngx_uint_t n);
static ngx_int_t ngx_http_classify_signature(
    ngx_http_classify_main_conf_t *cmcf, ngx_str_t *sig);
static ngx_http_classify_master_sh_t *ngx_http_classify_master_record(
    ngx_slab_pool_t *shpool, ngx_str_t *name);
static size_t ngx_http_classify_master_addr(ngx_http_classify_master_t *m,
    u_char *buf);
static void ngx_http_classify_prometheus_masters(ngx_http_classify_text_t *t,
    ngx_http_classify_main_conf_t *cmcf);
static void ngx_http_classify_json_masters(ngx_http_classify_text_t *t,
    ngx_http_classify_main_conf_t *cmcf);
static void ngx_http_classify_observe(ngx_http_classify_hist_t *h,
    ngx_msec_int_t usec);
static ngx_int_t ngx_http_classify_status_handler(ngx_http_request_t *r);
static void ngx_http_classify_prometheus(ngx_http_classify_text_t *t,
    ngx_http_classify_main_conf_t *cmcf);
static void ngx_http_classify_prometheus_hist(ngx_http_classify_text_t *t,
    const char *name, ngx_str_t *label, ngx_http_classify_hist_t *h);
static void ngx_http_classify_json(ngx_http_classify_text_t *t,
    ngx_http_classify_main_conf_t *cmcf);
static void ngx_http_classify_json_hist(ngx_http_classify_text_t *t,
    ngx_http_classify_hist_t *h);
static void ngx_http_classify_prometheus_output(ngx_http_classify_text_t *t,
    ngx_http_classify_main_conf_t *cmcf);
static void ngx_http_classify_json_output(ngx_http_classify_text_t *t,
    ngx_http_classify_main_conf_t *cmcf);
static void ngx_http_classify_prometheus_cache(ngx_http_classify_text_t *t,
    ngx_http_classify_main_conf_t *cmcf);
static void ngx_http_classify_json_cache(ngx_http_classify_text_t *t,
    ngx_http_classify_main_conf_t *cmcf, ngx_uint_t i);
static void ngx_http_classify_json_caches(ngx_http_classify_text_t *t,
    ngx_http_classify_main_conf_t *cmcf);
static void ngx_cdecl ngx_http_classify_print(ngx_http_classify_text_t *t,
    const char *fmt, ...);


/* classify_metrics_zone name size; */

char *
ngx_http_classify_metrics_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_classify_main_conf_t *cmcf = conf;

    ssize_t     size;
    ngx_str_t  *value;

    if (cmcf->metrics_zone) {
        return "is duplicate";
    }

    value = cf->args->elts;

    size = ngx_parse_size(&value[2]);

    if (size == NGX_ERROR || size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid size \"%V\" in \"classify_metrics_zone\": "
                           "at least %uz", &value[2], 8 * ngx_pagesize);
        return NGX_CONF_ERROR;
    }

    cmcf->metrics_zone = ngx_shared_memory_add(cf, &value[1], size,
                                               &ngx_http_classify_module);
    if (cmcf->metrics_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (cmcf->metrics_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is already used", &value[1]);
        return NGX_CONF_ERROR;
    }

    cmcf->metrics_zone->init = ngx_http_classify_metrics_init_zone;
    cmcf->metrics_zone->data = cmcf;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_classify_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_str_t                        sig;
    ngx_uint_t                       i;
    ngx_slab_pool_t                 *shpool;
    ngx_http_classify_master_t     **mp;
    ngx_http_classify_metrics_sh_t  *sh;
    ngx_http_classify_main_conf_t   *cmcf;

    cmcf = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shpool->data == NULL) {
        /* a new zone: its head */

        sh = ngx_slab_alloc(shpool, sizeof(ngx_http_classify_metrics_sh_t));
        if (sh == NULL) {
            return NGX_ERROR;
        }

        ngx_queue_init(&sh->layouts);
        sh->nlayouts = 0;
        ngx_queue_init(&sh->masters);
        shpool->data = sh;

        shpool->log_nomem = 0;
    }

    if (ngx_http_classify_signature(cmcf, &sig) != NGX_OK) {
        return NGX_ERROR;
    }

    cmcf->metrics = ngx_http_classify_metrics_layout(shm_zone, &sig,
                                                     cmcf->classifiers.nelts);

    if (cmcf->metrics == NULL) {
        ngx_log_error(NGX_LOG_ERR, shm_zone->shm.log, 0,
                      "classify_metrics_zone \"%V\" is full: it holds the "
                      "counters of %ui sets of classifiers; this "
                      "configuration runs without metrics, give the zone "
                      "more room", &shm_zone->shm.name,
                      ((ngx_http_classify_metrics_sh_t *) shpool->data)
                      ->nlayouts);
    }

    mp = cmcf->masters.elts;

    for (i = 0; i < cmcf->masters.nelts; i++) {
        mp[i]->shpool = shpool;
        mp[i]->sh = ngx_http_classify_master_record(shpool, &mp[i]->name);
    }

    return NGX_OK;
}


/* a master's record: the one of its name, or a new one */

static ngx_http_classify_master_sh_t *
ngx_http_classify_master_record(ngx_slab_pool_t *shpool, ngx_str_t *name)
{
    ngx_queue_t                     *q;
    ngx_http_classify_master_sh_t   *ms;
    ngx_http_classify_metrics_sh_t  *sh;

    sh = shpool->data;

    ngx_shmtx_lock(&shpool->mutex);

    for (q = ngx_queue_head(&sh->masters);
         q != ngx_queue_sentinel(&sh->masters);
         q = ngx_queue_next(q))
    {
        ms = ngx_queue_data(q, ngx_http_classify_master_sh_t, queue);

        if (ms->name.len == name->len
            && ngx_strncmp(ms->name.data, name->data, name->len) == 0)
        {
            goto done;
        }
    }

    ms = ngx_slab_calloc_locked(shpool, sizeof(ngx_http_classify_master_sh_t)
                                        + name->len);

    if (ms) {
        ms->name.data = (u_char *) ms + sizeof(ngx_http_classify_master_sh_t);
        ms->name.len = name->len;
        ngx_memcpy(ms->name.data, name->data, name->len);

        ngx_queue_insert_tail(&sh->masters, &ms->queue);
    }

done:

    ngx_shmtx_unlock(&shpool->mutex);

    return ms;
}


/* the layout of these classifiers: one seen before, or a new one */

static ngx_http_classify_metrics_t *
ngx_http_classify_metrics_layout(ngx_shm_zone_t *shm_zone, ngx_str_t *sig,
    ngx_uint_t n)
{
    size_t                           size;
    ngx_queue_t                     *q;
    ngx_slab_pool_t                 *shpool;
    ngx_http_classify_metrics_t     *m;
    ngx_http_classify_metrics_sh_t  *sh;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    sh = shpool->data;

    ngx_shmtx_lock(&shpool->mutex);

    for (q = ngx_queue_head(&sh->layouts);
         q != ngx_queue_sentinel(&sh->layouts);
         q = ngx_queue_next(q))
    {
        m = ngx_queue_data(q, ngx_http_classify_metrics_t, queue);

        if (m->signature.len == sig->len
            && ngx_strncmp(m->signature.data, sig->data, sig->len) == 0)
        {
            goto done;
        }
    }

    size = sizeof(ngx_http_classify_metrics_t)
           + n * sizeof(ngx_http_classify_cl_metrics_t);

    m = ngx_slab_calloc_locked(shpool, size);

    if (m) {
        m->signature.data = ngx_slab_alloc_locked(shpool, sig->len + 1);

        if (m->signature.data == NULL) {
            ngx_slab_free_locked(shpool, m);
            m = NULL;
            goto done;
        }

        ngx_memcpy(m->signature.data, sig->data, sig->len);
        m->signature.len = sig->len;
        m->nclassifiers = n;

        ngx_queue_insert_tail(&sh->layouts, &m->queue);
        sh->nlayouts++;
    }

done:

    ngx_shmtx_unlock(&shpool->mutex);

    return m;
}


static ngx_int_t
ngx_http_classify_signature(ngx_http_classify_main_conf_t *cmcf,
    ngx_str_t *sig)
{
    u_char                          *p;
    size_t                           len;
    ngx_uint_t                       i;
    ngx_http_classify_classifier_t  *cl;

    cl = cmcf->classifiers.elts;
    len = 0;

    for (i = 0; i < cmcf->classifiers.nelts; i++) {
        len += cl[i].name.len + 1;
    }

    p = ngx_pnalloc(cmcf->pool, len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    sig->data = p;

    for (i = 0; i < cmcf->classifiers.nelts; i++) {
        p = ngx_cpymem(p, cl[i].name.data, cl[i].name.len);
        *p++ = ',';
    }

    sig->len = p - sig->data;

    return NGX_OK;
}


static void
ngx_http_classify_observe(ngx_http_classify_hist_t *h, ngx_msec_int_t usec)
{
    ngx_uint_t  i;

    if (usec < 0) {
        usec = 0;
    }

    for (i = 0; i < NGX_HTTP_CLASSIFY_NBUCKETS - 1; i++) {
        if ((ngx_uint_t) usec <= ngx_http_classify_buckets[i] * 1000) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&h->bucket[i], 1);
    (void) ngx_atomic_fetch_add(&h->sum_usec, usec);
    (void) ngx_atomic_fetch_add(&h->count, 1);
}


static ngx_http_classify_metrics_t *
ngx_http_classify_metrics_of(ngx_http_request_t *r)
{
    ngx_http_classify_main_conf_t  *cmcf;

    cmcf = ngx_http_get_module_main_conf(r, ngx_http_classify_module);

    return cmcf->metrics;
}


void
ngx_http_classify_metrics_request(ngx_http_request_t *r)
{
    ngx_http_classify_metrics_t  *m;

    m = ngx_http_classify_metrics_of(r);

    if (m) {
        (void) ngx_atomic_fetch_add(&m->requests, 1);
    }
}


void
ngx_http_classify_metrics_error(ngx_http_request_t *r)
{
    ngx_http_classify_metrics_t  *m;

    m = ngx_http_classify_metrics_of(r);

    if (m) {
        (void) ngx_atomic_fetch_add(&m->error, 1);
    }
}


/* a request classified without its context: Redis down, slow or failing */

void
ngx_http_classify_metrics_redis_error(ngx_http_request_t *r)
{
    ngx_http_classify_metrics_t  *m;

    m = ngx_http_classify_metrics_of(r);

    if (m) {
        (void) ngx_atomic_fetch_add(&m->redis_errors, 1);
    }
}


/* context stores Redis never acknowledged (redis.c says why, once) */

void
ngx_http_classify_metrics_stores_lost(ngx_http_classify_main_conf_t *cmcf,
    ngx_uint_t n)
{
    if (cmcf->metrics) {
        (void) ngx_atomic_fetch_add(&cmcf->metrics->redis_stores_lost, n);
    }
}


/* classify_redis_sentinel: its master, by name, in the next zone */

ngx_http_classify_master_t *
ngx_http_classify_metrics_add_master(ngx_conf_t *cf, ngx_str_t *name)
{
    ngx_http_classify_master_t     *m, **mp;
    ngx_http_classify_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_classify_module);

    m = ngx_pcalloc(cf->pool, sizeof(ngx_http_classify_master_t));
    if (m == NULL) {
        return NULL;
    }

    mp = ngx_array_push(&cmcf->masters);
    if (mp == NULL) {
        return NULL;
    }

    m->name = *name;
    *mp = m;

    return m;
}


/* a worker is connected to the master at addr: a new one is a failover */

void
ngx_http_classify_metrics_master(ngx_http_classify_master_t *m,
    ngx_str_t *addr)
{
    ngx_http_classify_master_sh_t  *ms;

    ms = m->sh;

    if (ms == NULL || addr->len > sizeof(ms->addr)) {
        return;
    }

    ngx_shmtx_lock(&m->shpool->mutex);

    if (ms->len
        && (ms->len != addr->len
            || ngx_strncmp(ms->addr, addr->data, addr->len) != 0))
    {
        (void) ngx_atomic_fetch_add(&ms->failovers, 1);
    }

    ngx_memcpy(ms->addr, addr->data, addr->len);
    ms->len = addr->len;

    ngx_shmtx_unlock(&m->shpool->mutex);
}


static size_t
ngx_http_classify_master_addr(ngx_http_classify_master_t *m, u_char *buf)
{
    size_t  len;

    ngx_shmtx_lock(&m->shpool->mutex);

    len = m->sh->len;
    ngx_memcpy(buf, m->sh->addr, len);

    ngx_shmtx_unlock(&m->shpool->mutex);

    return len;
}


/* the decision: its verdict and time, and each classifier's outcome */

void
ngx_http_classify_metrics_decision(ngx_http_classify_ctx_t *ctx)
{
    ngx_uint_t                       i;
    ngx_http_classify_call_t        *call;
    ngx_http_classify_metrics_t     *m;
    ngx_http_classify_cl_metrics_t  *cm;

    m = ngx_http_classify_metrics_of(ctx->request);

    if (m == NULL) {
        return;
    }

    if (ctx->verdict == NGX_HTTP_CLASSIFY_PASS) {
        (void) ngx_atomic_fetch_add(&m->pass, 1);

    } else if (ctx->verdict >= 0) {
        cm = &m->cl[ctx->calls[ctx->verdict].classifier->index];
        (void) ngx_atomic_fetch_add(&cm->blocked, 1);
    }

    if (ctx->input.format < NGX_HTTP_CLASSIFY_NFORMATS) {
        (void) ngx_atomic_fetch_add(&m->formats[ctx->input.format], 1);
    }

    ngx_http_classify_observe(&m->decision, ctx->usec);

    for (i = 0; i < ctx->ncalls; i++) {
        call = &ctx->calls[i];

        if (call->classifier->shadow) {
            continue;
        }

        cm = &m->cl[call->classifier->index];

        (void) ngx_atomic_fetch_add(
                            &cm->outcome[ngx_http_classify_outcome(call)], 1);

        /* the classifier's own time: a cached verdict had no call */

        if ((call->state == NGX_HTTP_CLASSIFY_CALL_ANSWERED && !call->cached)
            || call->state == NGX_HTTP_CLASSIFY_CALL_FAILED)
        {
            ngx_http_classify_observe(&cm->latency, call->usec);
        }
    }
}


/* a shadow classifier's verdict, when it has one */

void
ngx_http_classify_metrics_shadow(ngx_http_classify_ctx_t *ctx,
    ngx_http_classify_call_t *call)
{
    ngx_http_classify_metrics_t     *m;
    ngx_http_classify_cl_metrics_t  *cm;

    m = ngx_http_classify_metrics_of(ctx->request);

    if (m == NULL) {
        return;
    }

    cm = &m->cl[call->classifier->index];

    (void) ngx_atomic_fetch_add(
                            &cm->shadow[ngx_http_classify_outcome(call)], 1);

    if (call->state != NGX_HTTP_CLASSIFY_CALL_TIMEDOUT) {
        ngx_http_classify_observe(&cm->latency, call->usec);
    }
}


/* a generation started beside the classifiers */

void
ngx_http_classify_metrics_speculated(ngx_http_request_t *r)
{
    ngx_http_classify_metrics_t  *m;

    m = ngx_http_classify_metrics_of(r);

    if (m) {
        (void) ngx_atomic_fetch_add(&m->speculated, 1);
    }
}


/* a speculative generation closed: what it cost for nothing */

void
ngx_http_classify_metrics_speculation_aborted(ngx_http_request_t *r,
    off_t bytes, ngx_msec_int_t usec)
{
    ngx_http_classify_metrics_t  *m;

    m = ngx_http_classify_metrics_of(r);

    if (m) {
        (void) ngx_atomic_fetch_add(&m->spec_aborted, 1);
        (void) ngx_atomic_fetch_add(&m->spec_wasted_bytes, bytes);
        (void) ngx_atomic_fetch_add(&m->spec_wasted_usec, ngx_max(usec, 0));
    }
}


/* a speculative generation passed: the time to first byte it saved */

void
ngx_http_classify_metrics_speculation_saved(ngx_http_request_t *r,
    ngx_msec_int_t usec)
{
    ngx_http_classify_metrics_t  *m;

    m = ngx_http_classify_metrics_of(r);

    if (m) {
        (void) ngx_atomic_fetch_add(&m->spec_saved_usec, ngx_max(usec, 0));
    }
}


/*
 * An output classifier's call, once it has ended (or was aborted): its
 * outcome, and its time when it had an answer or an error.
 */

void
ngx_http_classify_metrics_output_call(ngx_http_request_t *r,
    ngx_http_classify_call_t *call)
{
    ngx_http_classify_metrics_t     *m;
    ngx_http_classify_cl_metrics_t  *cm;

    m = ngx_http_classify_metrics_of(r);

    if (m == NULL) {
        return;
    }

    cm = &m->cl[call->classifier->index];

    (void) ngx_atomic_fetch_add(
                     &cm->output_outcome[ngx_http_classify_outcome(call)], 1);

    if (call->state == NGX_HTTP_CLASSIFY_CALL_ANSWERED
        || call->state == NGX_HTTP_CLASSIFY_CALL_FAILED)
    {
        ngx_http_classify_observe(&cm->output_latency, call->usec);
    }
}


/* one window of an answer judged, in usec */

void
ngx_http_classify_metrics_output_judgement(ngx_http_request_t *r,
    ngx_msec_int_t usec)
{
    ngx_http_classify_metrics_t  *m;

    m = ngx_http_classify_metrics_of(r);

    if (m) {
        (void) ngx_atomic_fetch_add(&m->output_judgements, 1);
        ngx_http_classify_observe(&m->output_judgement, usec);
    }
}


/* a guarded answer's end: passed whole, not judged (error), or cut by cl */

void
ngx_http_classify_metrics_output_decision(ngx_http_request_t *r,
    ngx_uint_t passed, ngx_http_classify_classifier_t *cl)
{
    ngx_http_classify_metrics_t  *m;

    m = ngx_http_classify_metrics_of(r);

    if (m == NULL) {
        return;
    }

    if (cl) {
        (void) ngx_atomic_fetch_add(&m->cl[cl->index].output_blocked, 1);

    } else {
        (void) ngx_atomic_fetch_add(passed ? &m->output_pass
                                           : &m->output_error, 1);
    }
}


/* classify_status; */

char *
ngx_http_classify_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_classify_status_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_classify_status_handler(ngx_http_request_t *r)
{
    ngx_int_t                        rc;
    ngx_str_t                        format, content_type;
    ngx_uint_t                       i;
    ngx_http_classify_text_t         t;
    ngx_http_classify_cache_t      **zones;
    ngx_http_classify_classifier_t  *cl;
    ngx_http_classify_main_conf_t   *cmcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    cmcf = ngx_http_get_module_main_conf(r, ngx_http_classify_module);

    if (cmcf->metrics == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "classify_status: %s",
                      cmcf->metrics_zone ? "the classify_metrics_zone is full"
                                         : "no classify_metrics_zone");
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    ngx_memzero(&t, sizeof(ngx_http_classify_text_t));

    t.pool = r->pool;
    t.last = &t.out;
    t.reserve = 512;

    cl = cmcf->classifiers.elts;
    zones = cmcf->caches ? cmcf->caches->elts : NULL;

    for (i = 0; i < cmcf->classifiers.nelts; i++) {
        t.reserve = ngx_max(t.reserve, 512 + 2 * cl[i].name.len);
    }

    for (i = 0; cmcf->caches && i < cmcf->caches->nelts; i++) {
        t.reserve += 2 * zones[i]->name.len;
    }

    if (ngx_http_arg(r, (u_char *) "format", 6, &format) == NGX_OK
        && format.len == 4 && ngx_strncmp(format.data, "json", 4) == 0)
    {
        ngx_http_classify_json(&t, cmcf);
        ngx_str_set(&content_type, "application/json");

    } else {
        ngx_http_classify_prometheus(&t, cmcf);
        ngx_str_set(&content_type, "text/plain; version=0.0.4; charset=utf-8");
    }

    if (t.b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_classify_send_chain(r, NGX_HTTP_OK, &content_type, t.out,
                                        t.len, 0);
}


static void
ngx_http_classify_prometheus(ngx_http_classify_text_t *t,
    ngx_http_classify_main_conf_t *cmcf)
{
    ngx_uint_t                       i, k;
    ngx_atomic_uint_t                v;
    ngx_http_classify_counter_t     *c;
    ngx_http_classify_metrics_t     *m;
    ngx_http_classify_classifier_t  *cl;

    m = cmcf->metrics;
    cl = cmcf->classifiers.elts;

    for (c = ngx_http_classify_counters; c->name; c++) {
        v = ngx_http_classify_counter(m, c);

        ngx_http_classify_print(t, "# HELP %s %s\n# TYPE %s %s\n",
                                c->name, c->help, c->name, c->type);

        if (c->usec) {
            ngx_http_classify_print(t, "%s %uA.%06uA\n", c->name,
                                    v / 1000000, v % 1000000);
        } else {
            ngx_http_classify_print(t, "%s %uA\n", c->name, v);
        }
    }

    ngx_http_classify_prometheus_masters(t, cmcf);

    ngx_http_classify_print(t,
             "# HELP classify_decisions_total Decisions, by verdict: "
             "pass, error, or the blocking classifier.\n"
             "# TYPE classify_decisions_total counter\n"
             "classify_decisions_total{verdict=\"pass\"} %uA\n"
             "classify_decisions_total{verdict=\"error\"} %uA\n",
             m->pass, m->error);

    for (i = 0; i < m->nclassifiers; i++) {
        if (!cl[i].shadow) {
            ngx_http_classify_print(t,
                                    "classify_decisions_total{verdict=\"%V\"} "
                                    "%uA\n", &cl[i].name, m->cl[i].blocked);
        }
    }

    ngx_http_classify_print(t,
             "# HELP classify_format_decisions_total Decisions, by the "
             "client's wire format.\n"
             "# TYPE classify_format_decisions_total counter\n");

    for (k = NGX_HTTP_CLASSIFY_FORMAT_OPENAI; k < NGX_HTTP_CLASSIFY_NFORMATS;
         k++)
    {
        ngx_http_classify_print(t,
                                "classify_format_decisions_total{format=\"%V\"}"
                                " %uA\n", &ngx_http_classify_format_names[k],
                                m->formats[k]);
    }

    ngx_http_classify_print(t,
             "# HELP classify_classifier_verdicts_total Classifier "
             "outcomes; shadow=\"true\" for shadow classifiers.\n"
             "# TYPE classify_classifier_verdicts_total counter\n");

    for (i = 0; i < m->nclassifiers; i++) {
        for (k = 0; k < NGX_HTTP_CLASSIFY_NOUTCOMES; k++) {
            ngx_http_classify_print(t,
                     "classify_classifier_verdicts_total{classifier=\"%V\","
                     "verdict=\"%V\",shadow=\"%s\"} %uA\n",
                     &cl[i].name, &ngx_http_classify_outcome_names[k],
                     cl[i].shadow ? "true" : "false",
                     cl[i].shadow ? m->cl[i].shadow[k] : m->cl[i].outcome[k]);
        }
    }

    ngx_http_classify_print(t,
             "# HELP classify_decision_seconds Time from the body to "
             "the decision.\n"
             "# TYPE classify_decision_seconds histogram\n");

    ngx_http_classify_prometheus_hist(t, "classify_decision_seconds", NULL,
                                      &m->decision);

    ngx_http_classify_print(t,
             "# HELP classify_classifier_seconds Time to each "
             "classifier's answer.\n"
             "# TYPE classify_classifier_seconds histogram\n");

    for (i = 0; i < m->nclassifiers; i++) {
        ngx_http_classify_prometheus_hist(t, "classify_classifier_seconds",
                                          &cl[i].name, &m->cl[i].latency);
    }

    ngx_http_classify_prometheus_output(t, cmcf);
    ngx_http_classify_prometheus_cache(t, cmcf);
}


/* the output guard's: for the classifiers some classify_output lists */

static void
ngx_http_classify_prometheus_output(ngx_http_classify_text_t *t,
    ngx_http_classify_main_conf_t *cmcf)
{
    ngx_uint_t                       i, k;
    ngx_http_classify_metrics_t     *m;
    ngx_http_classify_classifier_t  *cl;

    if (!cmcf->output) {
        return;
    }

    m = cmcf->metrics;
    cl = cmcf->classifiers.elts;

    ngx_http_classify_print(t,
             "# HELP classify_output_decisions_total Generated answers the "
             "output classifiers judged, by verdict: pass, error (could not "
             "be judged, passed), or the classifier that cut them.\n"
             "# TYPE classify_output_decisions_total counter\n"
             "classify_output_decisions_total{verdict=\"pass\"} %uA\n"
             "classify_output_decisions_total{verdict=\"error\"} %uA\n",
             m->output_pass, m->output_error);

    for (i = 0; i < m->nclassifiers; i++) {
        if (cl[i].output && !cl[i].shadow) {
            ngx_http_classify_print(t,
                             "classify_output_decisions_total{verdict=\"%V\"} "
                             "%uA\n", &cl[i].name, m->cl[i].output_blocked);
        }
    }

    ngx_http_classify_print(t,
             "# HELP classify_output_classifier_verdicts_total Output "
             "classifier outcomes, one per window judged.\n"
             "# TYPE classify_output_classifier_verdicts_total counter\n");

    for (i = 0; i < m->nclassifiers; i++) {
        for (k = 0; cl[i].output && k < NGX_HTTP_CLASSIFY_NOUTCOMES; k++) {
            ngx_http_classify_print(t,
                     "classify_output_classifier_verdicts_total{classifier="
                     "\"%V\",verdict=\"%V\",shadow=\"%s\"} %uA\n",
                     &cl[i].name, &ngx_http_classify_outcome_names[k],
                     cl[i].shadow ? "true" : "false",
                     m->cl[i].output_outcome[k]);
        }
    }

    ngx_http_classify_print(t,
             "# HELP classify_output_judgement_seconds Time to judge a "
             "window of a generated answer.\n"
             "# TYPE classify_output_judgement_seconds histogram\n");

    ngx_http_classify_prometheus_hist(t, "classify_output_judgement_seconds",
                                      NULL, &m->output_judgement);

    ngx_http_classify_print(t,
             "# HELP classify_output_classifier_seconds Time to each "
             "output classifier's answer.\n"
             "# TYPE classify_output_classifier_seconds histogram\n");

    for (i = 0; i < m->nclassifiers; i++) {
        if (cl[i].output) {
            ngx_http_classify_prometheus_hist(t,
                                          "classify_output_classifier_seconds",
                                          &cl[i].name,
                                          &m->cl[i].output_latency);
        }
    }
}


/* each cache counter, by zone and classifier */

static void
ngx_http_classify_prometheus_cache(ngx_http_classify_text_t *t,
    ngx_http_classify_main_conf_t *cmcf)
{
    ngx_uint_t                        i, z;
    ngx_http_classify_counter_t      *c;
    ngx_http_classify_cache_t       **zones;
    ngx_http_classify_classifier_t   *cl;
    ngx_http_classify_cache_stats_t  *stats;

    if (cmcf->caches == NULL) {
        return;
    }

    zones = cmcf->caches->elts;
    cl = cmcf->classifiers.elts;

    for (c = ngx_http_classify_cache_counters; c->name; c++) {
        ngx_http_classify_print(t, "# HELP %s %s\n# TYPE %s %s\n",
                                c->name, c->help, c->name, c->type);

        for (z = 0; z < cmcf->caches->nelts; z++) {
            for (i = 0; i < cmcf->classifiers.nelts; i++) {
                stats = zones[z]->stats ? zones[z]->stats[i] : NULL;

                if (stats == NULL) {
                    continue;
                }

                ngx_http_classify_print(t,
                                   "%s{zone=\"%V\",classifier=\"%V\"} %uA\n",
                                   c->name, &zones[z]->name, &cl[i].name,
                                   ngx_http_classify_counter(stats, c));
            }
        }
    }
}


/* only with classify_redis_sentinel; a master not yet found has no gauge */

static void
ngx_http_classify_prometheus_masters(ngx_http_classify_text_t *t,
    ngx_http_classify_main_conf_t *cmcf)
{
    u_char                       addr[NGX_SOCKADDR_STRLEN];
    size_t                       len;
    ngx_uint_t                   i;
    ngx_http_classify_master_t **mp;

    mp = cmcf->masters.elts;

    if (cmcf->masters.nelts == 0) {
        return;
    }

    ngx_http_classify_print(t,
             "# HELP classify_redis_failovers_total Changes of the Redis "
             "master followed (classify_redis_sentinel), once for all "
             "workers.\n"
             "# TYPE classify_redis_failovers_total counter\n");

    for (i = 0; i < cmcf->masters.nelts; i++) {
        if (mp[i]->sh) {
            ngx_http_classify_print(t, "classify_redis_failovers_total"
                                    "{master=\"%V\"} %uA\n",
                                    &mp[i]->name, mp[i]->sh->failovers);
        }
    }

    ngx_http_classify_print(t,
             "# HELP classify_redis_master The Redis master the workers "
             "connected to last (classify_redis_sentinel).\n"
             "# TYPE classify_redis_master gauge\n");

    for (i = 0; i < cmcf->masters.nelts; i++) {
        if (mp[i]->sh == NULL) {
            continue;
        }

        len = ngx_http_classify_master_addr(mp[i], addr);

        if (len) {
            ngx_http_classify_print(t, "classify_redis_master{master=\"%V\","
                                    "address=\"%*s\"} 1\n",
                                    &mp[i]->name, len, addr);
        }
    }
}


static void
ngx_http_classify_prometheus_hist(ngx_http_classify_text_t *t,
    const char *name, ngx_str_t *label, ngx_http_classify_hist_t *h)
{
    ngx_uint_t         i;
    ngx_str_t          none;
    ngx_atomic_uint_t  cumulative;

    /* the classifier label, before "le", and alone in _sum and _count */

    ngx_str_null(&none);

    if (label == NULL) {
        label = &none;
    }

    cumulative = 0;

    for (i = 0; i < NGX_HTTP_CLASSIFY_NBUCKETS; i++) {
        cumulative += h->bucket[i];

        ngx_http_classify_print(t, "%s_bucket{%s%V%s", name,
                                label->len ? "classifier=\"" : "", label,
                                label->len ? "\"," : "");

        if (i < NGX_HTTP_CLASSIFY_NBUCKETS - 1) {
            ngx_http_classify_print(t, "le=\"%ui.%03ui\"} %uA\n",
                                    ngx_http_classify_buckets[i] / 1000,
                                    ngx_http_classify_buckets[i] % 1000,
                                    cumulative);
        } else {
            ngx_http_classify_print(t, "le=\"+Inf\"} %uA\n", cumulative);
        }
    }

    ngx_http_classify_print(t, "%s_sum%s%V%s %uA.%06uA\n", name,
                            label->len ? "{classifier=\"" : "", label,
                            label->len ? "\"}" : "",
                            h->sum_usec / 1000000, h->sum_usec % 1000000);

    ngx_http_classify_print(t, "%s_count%s%V%s %uA\n", name,
                            label->len ? "{classifier=\"" : "", label,
                            label->len ? "\"}" : "", h->count);
}


static void
ngx_http_classify_json(ngx_http_classify_text_t *t,
    ngx_http_classify_main_conf_t *cmcf)
{
    ngx_uint_t                       i, k;
    ngx_atomic_uint_t                v;
    ngx_slab_pool_t                 *shpool;
    ngx_http_classify_counter_t     *c;
    ngx_http_classify_metrics_t     *m;
    ngx_http_classify_metrics_sh_t  *sh;
    ngx_http_classify_cl_metrics_t  *cm;
    ngx_http_classify_classifier_t  *cl;

    m = cmcf->metrics;
    cl = cmcf->classifiers.elts;
    shpool = (ngx_slab_pool_t *) cmcf->metrics_zone->shm.addr;
    sh = shpool->data;

    ngx_http_classify_print(t, "{");

    for (c = ngx_http_classify_counters; c->name; c++) {
        v = ngx_http_classify_counter(m, c);

        if (c->usec) {
            ngx_http_classify_print(t, "\"%s\":%uA.%03uA,", c->key,
                                    v / 1000, v % 1000);
        } else {
            ngx_http_classify_print(t, "\"%s\":%uA,", c->key, v);
        }
    }

    ngx_http_classify_json_masters(t, cmcf);

    ngx_http_classify_print(t, "\"decisions\":{\"pass\":%uA,\"error\":%uA",
                            m->pass, m->error);

    for (i = 0; i < m->nclassifiers; i++) {
        if (!cl[i].shadow) {
            ngx_http_classify_print(t, ",\"%V\":%uA", &cl[i].name,
                                    m->cl[i].blocked);
        }
    }

    ngx_http_classify_print(t, "},\"formats\":{");

    for (k = NGX_HTTP_CLASSIFY_FORMAT_OPENAI; k < NGX_HTTP_CLASSIFY_NFORMATS;
         k++)
    {
        ngx_http_classify_print(t, "%s\"%V\":%uA",
                                k > NGX_HTTP_CLASSIFY_FORMAT_OPENAI ? "," : "",
                                &ngx_http_classify_format_names[k],
                                m->formats[k]);
    }

    ngx_http_classify_print(t, "},\"decision_ms\":");
    ngx_http_classify_json_hist(t, &m->decision);
    ngx_http_classify_json_output(t, cmcf);
    ngx_http_classify_print(t, ",\"classifiers\":{");

    for (i = 0; i < m->nclassifiers; i++) {
        cm = &m->cl[i];

        ngx_http_classify_print(t, "%s\"%V\":{\"shadow\":%s,\"verdicts\":{",
                                i ? "," : "", &cl[i].name,
                                cl[i].shadow ? "true" : "false");

        for (k = 0; k < NGX_HTTP_CLASSIFY_NOUTCOMES; k++) {
            ngx_http_classify_print(t, "%s\"%V\":%uA", k ? "," : "",
                                    &ngx_http_classify_outcome_names[k],
                                    cl[i].shadow ? cm->shadow[k]
                                                 : cm->outcome[k]);
        }

        ngx_http_classify_print(t, "},\"latency_ms\":");
        ngx_http_classify_json_hist(t, &cm->latency);

        if (cl[i].output) {
            ngx_http_classify_print(t, ",\"output_verdicts\":{");

            for (k = 0; k < NGX_HTTP_CLASSIFY_NOUTCOMES; k++) {
                ngx_http_classify_print(t, "%s\"%V\":%uA", k ? "," : "",
                                        &ngx_http_classify_outcome_names[k],
                                        cm->output_outcome[k]);
            }

            ngx_http_classify_print(t, "},\"output_latency_ms\":");
            ngx_http_classify_json_hist(t, &cm->output_latency);
        }

        ngx_http_classify_json_cache(t, cmcf, i);
        ngx_http_classify_print(t, "}");
    }

    ngx_http_classify_print(t, "},\"zone\":{\"size\":%uz,\"pages_free\":%ui,"
                            "\"layouts\":%ui}",
                            cmcf->metrics_zone->shm.size, shpool->pfree,
                            sh->nlayouts);

    ngx_http_classify_json_caches(t, cmcf);

    ngx_http_classify_print(t, "}\n");
}


/* ,"output_decisions":{"pass":..,"error":..,...},"output_judgement_ms":.. */

static void
ngx_http_classify_json_output(ngx_http_classify_text_t *t,
    ngx_http_classify_main_conf_t *cmcf)
{
    ngx_uint_t                       i;
    ngx_http_classify_metrics_t     *m;
    ngx_http_classify_classifier_t  *cl;

    if (!cmcf->output) {
        return;
    }

    m = cmcf->metrics;
    cl = cmcf->classifiers.elts;

    ngx_http_classify_print(t, ",\"output_decisions\":{\"pass\":%uA,"
                            "\"error\":%uA", m->output_pass, m->output_error);

    for (i = 0; i < m->nclassifiers; i++) {
        if (cl[i].output && !cl[i].shadow) {
            ngx_http_classify_print(t, ",\"%V\":%uA", &cl[i].name,
                                    m->cl[i].output_blocked);
        }
    }

    ngx_http_classify_print(t, "},\"output_judgement_ms\":");
    ngx_http_classify_json_hist(t, &m->output_judgement);
}


/* ,"cache":{"zone":{"hits":..,"misses":..,...}}: classifier i's counters */

static void
ngx_http_classify_json_cache(ngx_http_classify_text_t *t,
    ngx_http_classify_main_conf_t *cmcf, ngx_uint_t i)
{
    ngx_uint_t                        z, n;
    ngx_http_classify_counter_t      *c;
    ngx_http_classify_cache_t       **zones;
    ngx_http_classify_cache_stats_t  *stats;

    if (cmcf->caches == NULL) {
        return;
    }

    zones = cmcf->caches->elts;
    n = 0;

    ngx_http_classify_print(t, ",\"cache\":{");

    for (z = 0; z < cmcf->caches->nelts; z++) {
        stats = zones[z]->stats ? zones[z]->stats[i] : NULL;

        if (stats == NULL) {
            continue;
        }

        ngx_http_classify_print(t, "%s\"%V\":{", n++ ? "," : "",
                                &zones[z]->name);

        for (c = ngx_http_classify_cache_counters; c->name; c++) {
            ngx_http_classify_print(t, "%s\"%s\":%uA",
                                    c == ngx_http_classify_cache_counters
                                    ? "" : ",",
                                    c->key,
                                    ngx_http_classify_counter(stats, c));
        }

        ngx_http_classify_print(t, "}");
    }

    ngx_http_classify_print(t, "}");
}


/* ,"caches":{"zone":{"size":..,"pages":..,"pages_free":..,"entries":..}} */

static void
ngx_http_classify_json_caches(ngx_http_classify_text_t *t,
    ngx_http_classify_main_conf_t *cmcf)
{
    ngx_uint_t                  z, pages, pages_free, entries;
    ngx_http_classify_cache_t **zones;

    if (cmcf->caches == NULL) {
        return;
    }

    zones = cmcf->caches->elts;

    ngx_http_classify_print(t, ",\"caches\":{");

    for (z = 0; z < cmcf->caches->nelts; z++) {
        ngx_http_classify_cache_fill(zones[z], &pages, &pages_free, &entries);

        ngx_http_classify_print(t, "%s\"%V\":{\"size\":%uz,\"pages\":%ui,"
                                "\"pages_free\":%ui,\"entries\":%ui}",
                                z ? "," : "", &zones[z]->name,
                                zones[z]->shm_zone->shm.size, pages,
                                pages_free, entries);
    }

    ngx_http_classify_print(t, "}");
}


/* "redis_masters":{"name":{"address":"host:port"|null,"failovers":N}}, */

static void
ngx_http_classify_json_masters(ngx_http_classify_text_t *t,
    ngx_http_classify_main_conf_t *cmcf)
{
    u_char                       addr[NGX_SOCKADDR_STRLEN];
    size_t                       len;
    ngx_uint_t                   i, n;
    ngx_http_classify_master_t **mp;

    mp = cmcf->masters.elts;
    n = 0;

    ngx_http_classify_print(t, "\"redis_masters\":{");

    for (i = 0; i < cmcf->masters.nelts; i++) {
        if (mp[i]->sh == NULL) {
            continue;
        }

        len = ngx_http_classify_master_addr(mp[i], addr);

        ngx_http_classify_print(t, "%s\"%V\":{\"address\":%s%*s%s,"
                                "\"failovers\":%uA}", n++ ? "," : "",
                                &mp[i]->name, len ? "\"" : "null", len, addr,
                                len ? "\"" : "", mp[i]->sh->failovers);
    }

    ngx_http_classify_print(t, "},");
}


static void
ngx_http_classify_json_hist(ngx_http_classify_text_t *t,
    ngx_http_classify_hist_t *h)
{
    ngx_uint_t         i;
    ngx_atomic_uint_t  cumulative;

    ngx_http_classify_print(t, "{\"count\":%uA,\"sum\":%uA.%03uA,"
                            "\"buckets\":{", h->count, h->sum_usec / 1000,
                            h->sum_usec % 1000);

    cumulative = 0;

    for (i = 0; i < NGX_HTTP_CLASSIFY_NBUCKETS; i++) {
        cumulative += h->bucket[i];

        if (i < NGX_HTTP_CLASSIFY_NBUCKETS - 1) {
            ngx_http_classify_print(t, "%s\"%ui\":%uA", i ? "," : "",
                                    ngx_http_classify_buckets[i], cumulative);
        } else {
            ngx_http_classify_print(t, ",\"+Inf\":%uA", cumulative);
        }
    }

    ngx_http_classify_print(t, "}}");
}


/*
 * One piece of the status text.  Every print is shorter than t->reserve
 * (512 bytes and twice the longest classifier name), and goes to a new
 * buffer when the current one has less room: nothing is ever cut.  A
 * failed allocation leaves t->b NULL, and the handler answers 500.
 */

static void ngx_cdecl
ngx_http_classify_print(ngx_http_classify_text_t *t, const char *fmt, ...)
{
    u_char       *p;
    va_list       args;
    ngx_chain_t  *cl;

    if (t->pool == NULL) {
        return;
    }

    if (t->b == NULL || (size_t) (t->b->end - t->b->last) < t->reserve) {
        cl = ngx_alloc_chain_link(t->pool);
        if (cl == NULL) {
            goto failed;
        }

        cl->buf = ngx_create_temp_buf(t->pool, ngx_max(16384, 4 * t->reserve));
        if (cl->buf == NULL) {
            goto failed;
        }

        cl->next = NULL;
        *t->last = cl;
        t->last = &cl->next;
        t->b = cl->buf;
    }

    va_start(args, fmt);
    p = ngx_vslprintf(t->b->last, t->b->end, fmt, args);
    va_end(args);

    t->len += p - t->b->last;
    t->b->last = p;

    return;

failed:

    t->pool = NULL;
    t->b = NULL;
}


/*
 * ngx_http_classify_module: counters and latency histograms in shared
 * memory (classify_metrics_zone), served by classify_status as Prometheus
 * text or JSON.
 *
 * Every counter is an ngx_atomic_t updated with ngx_atomic_fetch_add(), so
 * workers never lock.  The zone is laid out for the classifiers of the
 * configuration; a reload with the same classifiers keeps the counters.
 */


#include "ngx_http_classify.h"


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


/* outcomes, in the order of ngx_http_classify_outcome_names[] */
#define NGX_HTTP_CLASSIFY_NOUTCOMES  7

typedef struct {
    ngx_atomic_t                    outcome[NGX_HTTP_CLASSIFY_NOUTCOMES];
    ngx_atomic_t                    shadow[NGX_HTTP_CLASSIFY_NOUTCOMES];
    ngx_atomic_t                    blocked;
    ngx_http_classify_hist_t        latency;
} ngx_http_classify_cl_metrics_t;


struct ngx_http_classify_metrics_s {
    ngx_str_t                       signature;   /* classifier names */
    ngx_atomic_t                    requests;
    ngx_atomic_t                    pass;
    ngx_atomic_t                    error;
    ngx_atomic_t                    redis_errors;
    ngx_atomic_t                    redis_stores_lost;
    ngx_http_classify_hist_t        decision;
    ngx_uint_t                      nclassifiers;
    ngx_http_classify_cl_metrics_t  cl[1];
};


static const char  *ngx_http_classify_outcome_names[] = {
    "positive", "negative", "error", "timeout", "aborted", "skipped",
    "pending"
};


static ngx_int_t ngx_http_classify_metrics_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_classify_signature(
    ngx_http_classify_main_conf_t *cmcf, ngx_str_t *sig);
static void ngx_http_classify_observe(ngx_http_classify_hist_t *h,
    ngx_msec_int_t usec);
static ngx_uint_t ngx_http_classify_outcome_index(const char *outcome);
static ngx_int_t ngx_http_classify_status_handler(ngx_http_request_t *r);
static u_char *ngx_http_classify_prometheus_hist(u_char *p, u_char *last,
    const char *name, ngx_str_t *label, ngx_http_classify_hist_t *h);
static u_char *ngx_http_classify_json_hist(u_char *p, u_char *last,
    ngx_http_classify_hist_t *h);


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
    ngx_http_classify_main_conf_t  *ocmcf = data;

    size_t                           size;
    ngx_str_t                        sig;
    ngx_slab_pool_t                 *shpool;
    ngx_http_classify_metrics_t     *m;
    ngx_http_classify_main_conf_t   *cmcf;

    cmcf = shm_zone->data;

    if (ngx_http_classify_signature(cmcf, &sig) != NGX_OK) {
        return NGX_ERROR;
    }

    /*
     * a reload with the same classifiers keeps counting; with others, a new
     * layout is allocated and the old one is left to the old workers that
     * are still finishing their requests
     */

    if (ocmcf && ocmcf->metrics
        && ocmcf->metrics->signature.len == sig.len
        && ngx_strncmp(ocmcf->metrics->signature.data, sig.data, sig.len)
           == 0)
    {
        cmcf->metrics = ocmcf->metrics;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    size = sizeof(ngx_http_classify_metrics_t)
           + cmcf->classifiers.nelts * sizeof(ngx_http_classify_cl_metrics_t);

    ngx_shmtx_lock(&shpool->mutex);

    m = ngx_slab_calloc_locked(shpool, size);

    if (m) {
        m->signature.data = ngx_slab_alloc_locked(shpool, sig.len + 1);
        if (m->signature.data == NULL) {
            m = NULL;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    if (m == NULL) {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "classify_metrics_zone \"%V\" is too small for %ui "
                      "classifiers", &shm_zone->shm.name,
                      cmcf->classifiers.nelts);
        return NGX_ERROR;
    }

    ngx_memcpy(m->signature.data, sig.data, sig.len);
    m->signature.len = sig.len;
    m->nclassifiers = cmcf->classifiers.nelts;

    cmcf->metrics = m;

    return NGX_OK;
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


static ngx_uint_t
ngx_http_classify_outcome_index(const char *outcome)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_CLASSIFY_NOUTCOMES - 1; i++) {
        if (ngx_strcmp(outcome, ngx_http_classify_outcome_names[i]) == 0) {
            break;
        }
    }

    return i;
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


/* the decision: its verdict and time, and each classifier's outcome */

void
ngx_http_classify_metrics_decision(ngx_http_classify_ctx_t *ctx)
{
    ngx_uint_t                       i;
    ngx_http_classify_call_t        *call;
    ngx_http_classify_metrics_t     *m;
    ngx_http_classify_cl_metrics_t  *cm;
    ngx_http_classify_main_conf_t   *cmcf;

    cmcf = ngx_http_get_module_main_conf(ctx->request,
                                         ngx_http_classify_module);
    m = cmcf->metrics;

    if (m == NULL) {
        return;
    }

    if (ctx->verdict == NGX_HTTP_CLASSIFY_PASS) {
        (void) ngx_atomic_fetch_add(&m->pass, 1);

    } else if (ctx->verdict >= 0) {
        cm = &m->cl[ctx->calls[ctx->verdict].classifier->index];
        (void) ngx_atomic_fetch_add(&cm->blocked, 1);
    }

    ngx_http_classify_observe(&m->decision, ctx->usec);

    for (i = 0; i < ctx->ncalls; i++) {
        call = &ctx->calls[i];

        if (call->classifier->shadow) {
            continue;
        }

        cm = &m->cl[call->classifier->index];

        (void) ngx_atomic_fetch_add(
                    &cm->outcome[ngx_http_classify_outcome_index(
                                       ngx_http_classify_outcome(call))], 1);

        if (call->done && !call->aborted && !call->timedout) {
            ngx_http_classify_observe(&cm->latency, call->usec);
        }
    }
}


/* a shadow classifier's verdict, when it has one */

void
ngx_http_classify_metrics_shadow(ngx_http_classify_ctx_t *ctx,
    ngx_http_classify_call_t *call)
{
    ngx_http_classify_cl_metrics_t  *cm;
    ngx_http_classify_main_conf_t   *cmcf;

    cmcf = ngx_http_get_module_main_conf(ctx->request,
                                         ngx_http_classify_module);

    if (cmcf->metrics == NULL) {
        return;
    }

    cm = &cmcf->metrics->cl[call->classifier->index];

    (void) ngx_atomic_fetch_add(
                &cm->shadow[ngx_http_classify_outcome_index(
                                   ngx_http_classify_outcome(call))], 1);

    if (!call->timedout) {
        ngx_http_classify_observe(&cm->latency, call->usec);
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
    size_t                           size;
    u_char                          *p, *last;
    ngx_int_t                        rc, json;
    ngx_buf_t                       *b;
    ngx_str_t                        format, label, body, content_type;
    ngx_uint_t                       i, k;
    ngx_http_classify_metrics_t     *m;
    ngx_http_classify_cl_metrics_t  *cm;
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
    m = cmcf->metrics;

    if (m == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "classify_status needs a classify_metrics_zone");
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    json = ngx_http_arg(r, (u_char *) "format", 6, &format) == NGX_OK
           && format.len == 4 && ngx_strncmp(format.data, "json", 4) == 0;

    cl = cmcf->classifiers.elts;

    /* generous: a few lines per counter, histograms per classifier */

    size = 4096 + m->nclassifiers * (4096 + 32 * 64);

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = b->pos;
    last = b->end;

    if (json) {
        p = ngx_slprintf(p, last, "{\"requests\":%uA,\"decisions\":"
                         "{\"pass\":%uA,\"error\":%uA",
                         m->requests, m->pass, m->error);

        for (i = 0; i < m->nclassifiers; i++) {
            if (!cl[i].shadow) {
                p = ngx_slprintf(p, last, ",\"%V\":%uA", &cl[i].name,
                                 m->cl[i].blocked);
            }
        }

        p = ngx_slprintf(p, last, "},\"redis_errors\":%uA,"
                         "\"redis_stores_lost\":%uA,\"decision_ms\":",
                         m->redis_errors, m->redis_stores_lost);
        p = ngx_http_classify_json_hist(p, last, &m->decision);
        p = ngx_slprintf(p, last, ",\"classifiers\":{");

        for (i = 0; i < m->nclassifiers; i++) {
            cm = &m->cl[i];

            p = ngx_slprintf(p, last, "%s\"%V\":{\"shadow\":%s,"
                             "\"verdicts\":{", i ? "," : "", &cl[i].name,
                             cl[i].shadow ? "true" : "false");

            for (k = 0; k < NGX_HTTP_CLASSIFY_NOUTCOMES; k++) {
                p = ngx_slprintf(p, last, "%s\"%s\":%uA", k ? "," : "",
                                 ngx_http_classify_outcome_names[k],
                                 cl[i].shadow ? cm->shadow[k]
                                              : cm->outcome[k]);
            }

            p = ngx_slprintf(p, last, "},\"latency_ms\":");
            p = ngx_http_classify_json_hist(p, last, &cm->latency);
            p = ngx_slprintf(p, last, "}");
        }

        p = ngx_slprintf(p, last, "}}\n");

        ngx_str_set(&content_type, "application/json");

    } else {
        p = ngx_slprintf(p, last,
                 "# HELP classify_requests_total Requests that reached a "
                 "classify location.\n"
                 "# TYPE classify_requests_total counter\n"
                 "classify_requests_total %uA\n"
                 "# HELP classify_decisions_total Decisions, by verdict: "
                 "pass, error, or the blocking classifier.\n"
                 "# TYPE classify_decisions_total counter\n"
                 "classify_decisions_total{verdict=\"pass\"} %uA\n"
                 "classify_decisions_total{verdict=\"error\"} %uA\n",
                 m->requests, m->pass, m->error);

        for (i = 0; i < m->nclassifiers; i++) {
            if (!cl[i].shadow) {
                p = ngx_slprintf(p, last,
                                 "classify_decisions_total{verdict=\"%V\"} "
                                 "%uA\n", &cl[i].name, m->cl[i].blocked);
            }
        }

        p = ngx_slprintf(p, last,
                 "# HELP classify_classifier_verdicts_total Classifier "
                 "outcomes; shadow=\"true\" for shadow classifiers.\n"
                 "# TYPE classify_classifier_verdicts_total counter\n");

        for (i = 0; i < m->nclassifiers; i++) {
            for (k = 0; k < NGX_HTTP_CLASSIFY_NOUTCOMES; k++) {
                p = ngx_slprintf(p, last,
                         "classify_classifier_verdicts_total{classifier="
                         "\"%V\",verdict=\"%s\",shadow=\"%s\"} %uA\n",
                         &cl[i].name, ngx_http_classify_outcome_names[k],
                         cl[i].shadow ? "true" : "false",
                         cl[i].shadow ? m->cl[i].shadow[k]
                                      : m->cl[i].outcome[k]);
            }
        }

        p = ngx_slprintf(p, last,
                 "# HELP classify_redis_errors_total Requests that got no "
                 "context from Redis (down, slow or failing).\n"
                 "# TYPE classify_redis_errors_total counter\n"
                 "classify_redis_errors_total %uA\n"
                 "# HELP classify_redis_stores_lost_total Context stores "
                 "Redis never acknowledged (queue full, refused, exit).\n"
                 "# TYPE classify_redis_stores_lost_total counter\n"
                 "classify_redis_stores_lost_total %uA\n"
                 "# HELP classify_decision_seconds Time from the body to "
                 "the decision.\n"
                 "# TYPE classify_decision_seconds histogram\n",
                 m->redis_errors, m->redis_stores_lost);

        p = ngx_http_classify_prometheus_hist(p, last,
                                              "classify_decision_seconds",
                                              NULL, &m->decision);

        p = ngx_slprintf(p, last,
                 "# HELP classify_classifier_seconds Time to each "
                 "classifier's answer.\n"
                 "# TYPE classify_classifier_seconds histogram\n");

        for (i = 0; i < m->nclassifiers; i++) {
            label = cl[i].name;
            p = ngx_http_classify_prometheus_hist(p, last,
                                                  "classify_classifier_seconds",
                                                  &label, &m->cl[i].latency);
        }

        ngx_str_set(&content_type, "text/plain; version=0.0.4; charset=utf-8");
    }

    body.data = b->pos;
    body.len = p - b->pos;

    return ngx_http_classify_send(r, NGX_HTTP_OK, &content_type, &body, 0);
}


static u_char *
ngx_http_classify_prometheus_hist(u_char *p, u_char *last, const char *name,
    ngx_str_t *label, ngx_http_classify_hist_t *h)
{
    ngx_uint_t         i;
    ngx_atomic_uint_t  cumulative;
    u_char             lbuf[256];
    u_char            *l;

    l = label ? ngx_snprintf(lbuf, sizeof(lbuf), "classifier=\"%V\",", label)
              : lbuf;

    cumulative = 0;

    for (i = 0; i < NGX_HTTP_CLASSIFY_NBUCKETS; i++) {
        cumulative += h->bucket[i];

        if (i < NGX_HTTP_CLASSIFY_NBUCKETS - 1) {
            p = ngx_slprintf(p, last, "%s_bucket{%*sle=\"%ui.%03ui\"} %uA\n",
                             name, l - lbuf, lbuf,
                             ngx_http_classify_buckets[i] / 1000,
                             ngx_http_classify_buckets[i] % 1000,
                             cumulative);
        } else {
            p = ngx_slprintf(p, last, "%s_bucket{%*sle=\"+Inf\"} %uA\n",
                             name, l - lbuf, lbuf, cumulative);
        }
    }

    if (label) {
        l--;   /* no trailing comma */
    }

    return ngx_slprintf(p, last,
                        "%s_sum%s%*s%s %uA.%06uA\n%s_count%s%*s%s %uA\n",
                        name, label ? "{" : "", l - lbuf, lbuf,
                        label ? "}" : "",
                        h->sum_usec / 1000000, h->sum_usec % 1000000,
                        name, label ? "{" : "", l - lbuf, lbuf,
                        label ? "}" : "", h->count);
}


static u_char *
ngx_http_classify_json_hist(u_char *p, u_char *last,
    ngx_http_classify_hist_t *h)
{
    ngx_uint_t         i;
    ngx_atomic_uint_t  cumulative;

    p = ngx_slprintf(p, last, "{\"count\":%uA,\"sum\":%uA.%03uA,\"buckets\":{",
                     h->count, h->sum_usec / 1000, h->sum_usec % 1000);

    cumulative = 0;

    for (i = 0; i < NGX_HTTP_CLASSIFY_NBUCKETS; i++) {
        cumulative += h->bucket[i];

        if (i < NGX_HTTP_CLASSIFY_NBUCKETS - 1) {
            p = ngx_slprintf(p, last, "%s\"%ui\":%uA", i ? "," : "",
                             ngx_http_classify_buckets[i], cumulative);
        } else {
            p = ngx_slprintf(p, last, ",\"+Inf\":%uA", cumulative);
        }
    }

    return ngx_slprintf(p, last, "}}");
}

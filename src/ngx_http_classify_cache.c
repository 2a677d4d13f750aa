
/*
 * ngx_http_classify_module: the verdict cache in shared memory.
 *
 *     classify_cache_zone verdicts 10m;     http
 *     classify_cache      verdicts | off;   http, server, location
 *     classify_cache_valid 10m;             http, server, location
 *     classifier x { cache_valid 1h | off; }
 *
 * A key is the classifier's identity (a SHA-1 of its name and of every
 * setting that shapes its call, computed once at configuration time), the
 * exact query and the exact context slice that classifier sees.  The zone
 * holds an rbtree of entries ordered by a SHA-1 of the key, each entry
 * with the whole key, so that a lookup compares the key itself and a
 * digest collision can never give a false hit; an LRU queue, most recently
 * used first, whose tail is evicted when the zone is full; and, per
 * classifier name, the counters classify_status prints.
 *
 * The zone's mutex is held only for the rbtree and queue operations: the
 * key and its digest are computed before, an entry is filled between two
 * short locked sections, and a lookup copies the verdict out while
 * locked.  Hits and misses are counted with atomic additions.
 */


#include "ngx_http_classify_cache.h"

#include <ngx_sha1.h>


/*
 * an entry bigger than this part of the zone, or than ENTRY_MAX, is never
 * stored: a few huge questions cannot push every other verdict out
 */
#define NGX_HTTP_CLASSIFY_CACHE_ENTRY_SHARE  8
#define NGX_HTTP_CLASSIFY_CACHE_ENTRY_MAX    (64 * 1024)

#define NGX_HTTP_CLASSIFY_CACHE_MIN_PAGES    8

/* at most this many entries evicted for one store: the mutex is held */
#define NGX_HTTP_CLASSIFY_CACHE_MAX_EVICT    32


struct ngx_http_classify_cache_sh_s {
    ngx_rbtree_t                       rbtree;
    ngx_rbtree_node_t                  sentinel;
    ngx_queue_t                        lru;       /* most recent first */
    ngx_queue_t                        names;     /* counters, never freed */
    ngx_atomic_t                       entries;
};


typedef struct {
    ngx_rbtree_node_t                  node;      /* key: digest's start */
    ngx_queue_t                        queue;
    ngx_http_classify_cache_stats_t   *stats;
    ngx_msec_t                         expire;
    ngx_uint_t                         verdict;
    u_char                             digest[NGX_HTTP_CLASSIFY_DIGEST_LEN];
    size_t                             len;
    u_char                             key[1];
} ngx_http_classify_cache_node_t;


/* the counters of one classifier name, found again across reloads */
typedef struct {
    ngx_queue_t                        queue;
    ngx_http_classify_cache_stats_t    stats;
    size_t                             len;
    u_char                             name[1];
} ngx_http_classify_cache_name_t;


/* a classify_cache or classify_cache_valid directive, checked at the end */
typedef struct {
    ngx_shm_zone_t                    *zone;      /* NULL: cache_valid */
    u_char                            *file;
    ngx_uint_t                         line;
} ngx_http_classify_cache_ref_t;


static ngx_int_t ngx_http_classify_cache_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_classify_cache_names(
    ngx_http_classify_cache_t *cache);
static ngx_int_t ngx_http_classify_cache_ref(ngx_conf_t *cf,
    ngx_http_classify_main_conf_t *cmcf, ngx_shm_zone_t *zone);
static void ngx_http_classify_cache_identity(
    ngx_http_classify_classifier_t *cl);
static ngx_http_classify_cache_key_t *ngx_http_classify_cache_key(
    ngx_pool_t *pool, ngx_http_classify_classifier_t *cl,
    ngx_http_classify_input_t *in);
static ngx_int_t ngx_http_classify_cache_cmp(
    ngx_http_classify_cache_node_t *cn, ngx_rbtree_key_t hash,
    u_char *digest, u_char *key, size_t len);
static void ngx_http_classify_cache_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_http_classify_cache_node_t *ngx_http_classify_cache_find_locked(
    ngx_http_classify_cache_t *cache, ngx_rbtree_key_t hash, u_char *digest,
    u_char *key, size_t len);
static void *ngx_http_classify_cache_alloc_locked(
    ngx_http_classify_cache_t *cache, size_t size);
static void ngx_http_classify_cache_free_locked(
    ngx_http_classify_cache_t *cache, ngx_http_classify_cache_node_t *cn,
    ngx_uint_t evicted);


/* the tag of the module's cache zones (its metrics zone has another) */
static ngx_uint_t  ngx_http_classify_cache_tag;


#define ngx_http_classify_cache_hash(digest, hash)                            \
    ngx_memcpy(hash, digest, sizeof(ngx_rbtree_key_t))

#define ngx_http_classify_cache_expired(cn, now)                              \
    ((ngx_msec_int_t) ((cn)->expire - (now)) <= 0)


/* classify_cache_zone name size; */

char *
ngx_http_classify_cache_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_classify_main_conf_t *cmcf = conf;

    ssize_t                     size;
    ngx_str_t                  *value;
    ngx_shm_zone_t             *zone;
    ngx_http_classify_cache_t  *cache, **cachep;

    value = cf->args->elts;

    size = ngx_parse_size(&value[2]);

    if (size == NGX_ERROR
        || size < (ssize_t) (NGX_HTTP_CLASSIFY_CACHE_MIN_PAGES * ngx_pagesize))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid size \"%V\" in \"classify_cache_zone\": "
                           "at least %uz",
                           &value[2],
                           NGX_HTTP_CLASSIFY_CACHE_MIN_PAGES * ngx_pagesize);
        return NGX_CONF_ERROR;
    }

    zone = ngx_shared_memory_add(cf, &value[1], size,
                                 &ngx_http_classify_cache_tag);
    if (zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate \"classify_cache_zone\" \"%V\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    cache = ngx_pcalloc(cf->pool, sizeof(ngx_http_classify_cache_t));
    if (cache == NULL) {
        return NGX_CONF_ERROR;
    }

    cache->name = value[1];
    cache->shm_zone = zone;
    cache->cmcf = cmcf;
    cache->max_entry = ngx_min(size / NGX_HTTP_CLASSIFY_CACHE_ENTRY_SHARE,
                               NGX_HTTP_CLASSIFY_CACHE_ENTRY_MAX);

    if (cmcf->caches == NULL) {
        cmcf->caches = ngx_array_create(cf->pool, 1,
                                        sizeof(ngx_http_classify_cache_t *));
        if (cmcf->caches == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    cachep = ngx_array_push(cmcf->caches);
    if (cachep == NULL) {
        return NGX_CONF_ERROR;
    }

    *cachep = cache;

    zone->init = ngx_http_classify_cache_init_zone;
    zone->data = cache;

    return NGX_CONF_OK;
}


/*
 * classify_cache name | off;  the zone may be declared later in http{}:
 * it is found by name here, and checked in ngx_http_classify_cache_init()
 */

char *
ngx_http_classify_cache_set(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_classify_loc_conf_t *clcf = conf;

    ngx_str_t                      *value;
    ngx_http_classify_main_conf_t  *cmcf;

    if (clcf->cache_zone != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 3 && ngx_strncmp(value[1].data, "off", 3) == 0) {
        clcf->cache_zone = NULL;
        return NGX_CONF_OK;
    }

    clcf->cache_zone = ngx_shared_memory_add(cf, &value[1], 0,
                                             &ngx_http_classify_cache_tag);
    if (clcf->cache_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_classify_module);

    if (ngx_http_classify_cache_ref(cf, cmcf, clcf->cache_zone) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* classify_cache_valid time; more than 0 */

char *
ngx_http_classify_cache_valid_set(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_classify_loc_conf_t *clcf = conf;

    char                           *rv;
    ngx_http_classify_main_conf_t  *cmcf;

    rv = ngx_conf_set_msec_slot(cf, cmd, conf);

    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (clcf->cache_valid == 0) {
        return "must be more than 0; use \"classify_cache off\" to cache "
               "nothing";
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_classify_module);

    if (ngx_http_classify_cache_ref(cf, cmcf, NULL) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_classify_cache_ref(ngx_conf_t *cf,
    ngx_http_classify_main_conf_t *cmcf, ngx_shm_zone_t *zone)
{
    ngx_http_classify_cache_ref_t  *ref;

    if (cmcf->cache_refs == NULL) {
        cmcf->cache_refs = ngx_array_create(cf->pool, 4,
                                         sizeof(ngx_http_classify_cache_ref_t));
        if (cmcf->cache_refs == NULL) {
            return NGX_ERROR;
        }
    }

    ref = ngx_array_push(cmcf->cache_refs);
    if (ref == NULL) {
        return NGX_ERROR;
    }

    ref->zone = zone;
    ref->file = cf->conf_file->file.name.data;
    ref->line = cf->conf_file->line;

    return NGX_OK;
}


char *
ngx_http_classify_cache_merge(ngx_conf_t *cf,
    ngx_http_classify_loc_conf_t *prev, ngx_http_classify_loc_conf_t *conf)
{
    ngx_conf_merge_ptr_value(conf->cache_zone, prev->cache_zone, NULL);
    ngx_conf_merge_msec_value(conf->cache_valid, prev->cache_valid, 600000);

    return NGX_CONF_OK;
}


/*
 * Postconfiguration: every classify_cache names a declared zone, no
 * validity is given without a zone, and each classifier's identity.
 */

ngx_int_t
ngx_http_classify_cache_init(ngx_conf_t *cf)
{
    ngx_uint_t                       i, zones;
    ngx_http_classify_cache_ref_t   *ref;
    ngx_http_classify_main_conf_t   *cmcf;
    ngx_http_classify_classifier_t  *cl;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_classify_module);

    zones = cmcf->caches ? cmcf->caches->nelts : 0;
    ref = cmcf->cache_refs ? cmcf->cache_refs->elts : NULL;

    for (i = 0; cmcf->cache_refs && i < cmcf->cache_refs->nelts; i++) {

        if (ref[i].zone && ref[i].zone->data == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "unknown classify_cache_zone \"%V\" in "
                          "\"classify_cache\" directive in %s:%ui",
                          &ref[i].zone->shm.name, ref[i].file, ref[i].line);
            return NGX_ERROR;
        }

        if (ref[i].zone == NULL && zones == 0) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"classify_cache_valid\" without a "
                          "\"classify_cache_zone\" in %s:%ui",
                          ref[i].file, ref[i].line);
            return NGX_ERROR;
        }
    }

    cl = cmcf->classifiers.elts;

    for (i = 0; i < cmcf->classifiers.nelts; i++) {

        if (cl[i].cache_valid != NGX_CONF_UNSET_MSEC && cl[i].cache_valid
            && zones == 0)
        {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"cache_valid\" of classifier \"%V\" without a "
                          "\"classify_cache_zone\"", &cl[i].name);
            return NGX_ERROR;
        }

        ngx_http_classify_cache_identity(&cl[i]);
    }

    return NGX_OK;
}


/* a SHA-1 of the name and of every setting that shapes the call */

static void
ngx_http_classify_cache_identity(ngx_http_classify_classifier_t *cl)
{
    ngx_str_t    *word;
    ngx_uint_t    i, n[4];
    ngx_sha1_t    sha1;
    ngx_str_t    *s[5];

    s[0] = &cl->name;
    s[1] = &cl->model;
    s[2] = &cl->prompt;
    s[3] = &cl->pass_uri;
    s[4] = &cl->pass_args;

    n[0] = cl->protocol;
    n[1] = cl->max_tokens;
    n[2] = cl->context;
    n[3] = cl->positive->nelts;

    ngx_sha1_init(&sha1);

    /* each text preceded by its length: no two settings read alike */

    for (i = 0; i < 5; i++) {
        ngx_sha1_update(&sha1, &s[i]->len, sizeof(size_t));
        ngx_sha1_update(&sha1, s[i]->data, s[i]->len);
    }

    ngx_sha1_update(&sha1, n, sizeof(n));

    word = cl->positive->elts;

    for (i = 0; i < cl->positive->nelts; i++) {
        ngx_sha1_update(&sha1, &word[i].len, sizeof(size_t));
        ngx_sha1_update(&sha1, word[i].data, word[i].len);
    }

    ngx_sha1_final(cl->cache_id, &sha1);
}


static ngx_int_t
ngx_http_classify_cache_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_classify_cache_t  *ocache = data;

    ngx_http_classify_cache_t  *cache;

    cache = shm_zone->data;

    if (ocache) {
        /* a reload: the entries stay */
        cache->sh = ocache->sh;
        cache->shpool = ocache->shpool;

        return ngx_http_classify_cache_names(cache);
    }

    cache->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        cache->sh = cache->shpool->data;

        return ngx_http_classify_cache_names(cache);
    }

    cache->sh = ngx_slab_alloc(cache->shpool,
                               sizeof(ngx_http_classify_cache_sh_t));
    if (cache->sh == NULL) {
        return NGX_ERROR;
    }

    cache->shpool->data = cache->sh;

    ngx_rbtree_init(&cache->sh->rbtree, &cache->sh->sentinel,
                    ngx_http_classify_cache_insert_value);
    ngx_queue_init(&cache->sh->lru);
    ngx_queue_init(&cache->sh->names);
    cache->sh->entries = 0;

    /* a full zone is the normal case: its LRU entries are evicted */
    cache->shpool->log_nomem = 0;

    return ngx_http_classify_cache_names(cache);
}


/* the counters of this configuration's classifiers, found by name */

static ngx_int_t
ngx_http_classify_cache_names(ngx_http_classify_cache_t *cache)
{
    ngx_uint_t                       i;
    ngx_queue_t                     *q;
    ngx_slab_pool_t                 *shpool;
    ngx_http_classify_cache_name_t  *cn;
    ngx_http_classify_classifier_t  *cl;

    cl = cache->cmcf->classifiers.elts;
    shpool = cache->shpool;

    cache->stats = ngx_pcalloc(cache->cmcf->pool,
                               (cache->cmcf->classifiers.nelts + 1)
                               * sizeof(ngx_http_classify_cache_stats_t *));
    if (cache->stats == NULL) {
        return NGX_ERROR;
    }

    ngx_shmtx_lock(&shpool->mutex);

    for (i = 0; i < cache->cmcf->classifiers.nelts; i++) {

        for (q = ngx_queue_head(&cache->sh->names);
             q != ngx_queue_sentinel(&cache->sh->names);
             q = ngx_queue_next(q))
        {
            cn = ngx_queue_data(q, ngx_http_classify_cache_name_t, queue);

            if (cn->len == cl[i].name.len
                && ngx_strncmp(cn->name, cl[i].name.data, cn->len) == 0)
            {
                break;
            }
        }

        if (q == ngx_queue_sentinel(&cache->sh->names)) {
            cn = ngx_slab_calloc_locked(shpool,
                                   sizeof(ngx_http_classify_cache_name_t)
                                   + cl[i].name.len);
            if (cn == NULL) {
                /* no room even for the counters: their classifier counts
                 * nothing, its entries are still cached */
                continue;
            }

            cn->len = cl[i].name.len;
            ngx_memcpy(cn->name, cl[i].name.data, cn->len);
            ngx_queue_insert_tail(&cache->sh->names, &cn->queue);
        }

        cache->stats[i] = &cn->stats;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return NGX_OK;
}


/* how long a verdict of this classifier is kept here; 0: not cached */

ngx_msec_t
ngx_http_classify_cache_valid(ngx_http_classify_loc_conf_t *clcf,
    ngx_http_classify_classifier_t *cl)
{
    if (clcf->cache_zone == NULL || cl->shadow) {
        return 0;
    }

    return cl->cache_valid != NGX_CONF_UNSET_MSEC ? cl->cache_valid
                                                  : clcf->cache_valid;
}


/*
 * The key as one string: the identity, then the query and each message of
 * the slice (and, for a json classifier, which is sent the session too,
 * the session), every text preceded by its length, so that no two inputs
 * give the same bytes; its SHA-1 orders the rbtree.
 */

static ngx_http_classify_cache_key_t *
ngx_http_classify_cache_key(ngx_pool_t *pool,
    ngx_http_classify_classifier_t *cl, ngx_http_classify_input_t *in)
{
    u_char                         *p;
    size_t                          len;
    ngx_uint_t                      i, first, n;
    ngx_sha1_t                      sha1;
    ngx_http_classify_msg_t        *msg;
    ngx_http_classify_cache_key_t  *k;

    msg = in->context.elts;

    /* the slice ngx_http_classify_build_body() sends */

    first = in->context.nelts > cl->context
            ? in->context.nelts - cl->context : 0;
    n = in->context.nelts - first;

    len = NGX_HTTP_CLASSIFY_DIGEST_LEN + 2 * sizeof(size_t) + in->query.len;

    for (i = first; i < in->context.nelts; i++) {
        len += 2 * sizeof(size_t) + msg[i].role.len + msg[i].content.len;
    }

    if (cl->protocol == NGX_HTTP_CLASSIFY_PROTO_JSON) {
        len += sizeof(size_t) + in->session.len;
    }

    k = ngx_palloc(pool, sizeof(ngx_http_classify_cache_key_t));
    p = ngx_pnalloc(pool, len);

    if (k == NULL || p == NULL) {
        return NULL;
    }

    k->key.data = p;
    k->key.len = len;

    p = ngx_cpymem(p, cl->cache_id, NGX_HTTP_CLASSIFY_DIGEST_LEN);
    p = ngx_cpymem(p, &in->query.len, sizeof(size_t));
    p = ngx_cpymem(p, in->query.data, in->query.len);
    p = ngx_cpymem(p, &n, sizeof(size_t));

    for (i = first; i < in->context.nelts; i++) {
        p = ngx_cpymem(p, &msg[i].role.len, sizeof(size_t));
        p = ngx_cpymem(p, msg[i].role.data, msg[i].role.len);
        p = ngx_cpymem(p, &msg[i].content.len, sizeof(size_t));
        p = ngx_cpymem(p, msg[i].content.data, msg[i].content.len);
    }

    if (cl->protocol == NGX_HTTP_CLASSIFY_PROTO_JSON) {
        p = ngx_cpymem(p, &in->session.len, sizeof(size_t));

        if (in->session.len) {
            p = ngx_cpymem(p, in->session.data, in->session.len);
        }
    }

    ngx_sha1_init(&sha1);
    ngx_sha1_update(&sha1, k->key.data, k->key.len);
    ngx_sha1_final(k->digest, &sha1);

    return k;
}


/*
 * NGX_OK: a verdict was cached (*verdict); NGX_DECLINED: a miss, and *key
 * is what ngx_http_classify_cache_store() takes once the call answers;
 * NGX_ERROR: no memory for the key (then a miss that is not stored).
 */

ngx_int_t
ngx_http_classify_cache_lookup(ngx_http_classify_cache_t *cache,
    ngx_pool_t *pool, ngx_http_classify_classifier_t *cl,
    ngx_http_classify_input_t *in, ngx_http_classify_cache_key_t **key,
    ngx_uint_t *verdict)
{
    ngx_uint_t                        found;
    ngx_msec_t                        now;
    ngx_rbtree_key_t                  hash;
    ngx_http_classify_cache_key_t    *k;
    ngx_http_classify_cache_node_t   *cn;
    ngx_http_classify_cache_stats_t  *stats;

    k = ngx_http_classify_cache_key(pool, cl, in);
    if (k == NULL) {
        return NGX_ERROR;
    }

    ngx_http_classify_cache_hash(k->digest, &hash);

    stats = cache->stats ? cache->stats[cl->index] : NULL;
    now = ngx_current_msec;
    found = 0;

    ngx_shmtx_lock(&cache->shpool->mutex);

    cn = ngx_http_classify_cache_find_locked(cache, hash, k->digest,
                                             k->key.data, k->key.len);

    if (cn && ngx_http_classify_cache_expired(cn, now)) {
        ngx_http_classify_cache_free_locked(cache, cn, 0);
        cn = NULL;
    }

    if (cn) {
        ngx_queue_remove(&cn->queue);
        ngx_queue_insert_head(&cache->sh->lru, &cn->queue);

        *verdict = cn->verdict;
        found = 1;
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                   "classify cache \"%V\": %s for \"%V\"", &cache->name,
                   found ? "hit" : "miss", &cl->name);

    if (found) {
        if (stats) {
            (void) ngx_atomic_fetch_add(&stats->hits, 1);
        }

        return NGX_OK;
    }

    if (stats) {
        (void) ngx_atomic_fetch_add(&stats->misses, 1);
    }

    *key = k;

    return NGX_DECLINED;
}


/*
 * An answered verdict.  The entry is allocated (evicting from the LRU
 * tail when the zone is full) and inserted in two locked sections, filled
 * in between; when another worker stored the same key meanwhile, its
 * entry is refreshed and this one given back.
 */

void
ngx_http_classify_cache_store(ngx_http_classify_cache_t *cache,
    ngx_http_classify_classifier_t *cl, ngx_http_classify_cache_key_t *key,
    ngx_uint_t verdict, ngx_msec_t valid)
{
    size_t                            size;
    ngx_http_classify_cache_sh_t     *sh;
    ngx_http_classify_cache_node_t   *cn, *old;
    ngx_http_classify_cache_stats_t  *stats;

    size = offsetof(ngx_http_classify_cache_node_t, key) + key->key.len;

    if (size > cache->max_entry) {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "classify cache \"%V\": a key of %uz bytes is not "
                       "stored", &cache->name, key->key.len);
        return;
    }

    sh = cache->sh;
    stats = cache->stats ? cache->stats[cl->index] : NULL;

    ngx_shmtx_lock(&cache->shpool->mutex);
    cn = ngx_http_classify_cache_alloc_locked(cache, size);
    ngx_shmtx_unlock(&cache->shpool->mutex);

    if (cn == NULL) {
        return;
    }

    ngx_http_classify_cache_hash(key->digest, &cn->node.key);
    ngx_memcpy(cn->digest, key->digest, NGX_HTTP_CLASSIFY_DIGEST_LEN);
    ngx_memcpy(cn->key, key->key.data, key->key.len);
    cn->len = key->key.len;
    cn->verdict = verdict;
    cn->expire = ngx_current_msec + valid;
    cn->stats = stats;

    ngx_shmtx_lock(&cache->shpool->mutex);

    old = ngx_http_classify_cache_find_locked(cache, cn->node.key, cn->digest,
                                              cn->key, cn->len);

    if (old) {
        old->verdict = cn->verdict;
        old->expire = cn->expire;

        ngx_queue_remove(&old->queue);
        ngx_queue_insert_head(&sh->lru, &old->queue);

        ngx_slab_free_locked(cache->shpool, cn);

    } else {
        /* the insert function of this module, whatever the zone's holds */
        sh->rbtree.insert = ngx_http_classify_cache_insert_value;

        ngx_rbtree_insert(&sh->rbtree, &cn->node);
        ngx_queue_insert_head(&sh->lru, &cn->queue);

        (void) ngx_atomic_fetch_add(&sh->entries, 1);

        if (stats) {
            (void) ngx_atomic_fetch_add(&stats->entries, 1);
        }
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "classify cache \"%V\": stored %s for \"%V\"",
                   &cache->name, old ? "again" : "new", &cl->name);
}


/*
 * Room for an entry: expired entries at the LRU tail go first, then, while
 * the zone is full, the least recently used ones (counted as evictions),
 * a bounded number of them: an entry of several pages may need contiguous
 * free pages that evicting small entries does not give soon, and then it
 * is not stored rather than holding the mutex for a whole zone's worth.
 */

static void *
ngx_http_classify_cache_alloc_locked(ngx_http_classify_cache_t *cache,
    size_t size)
{
    void                            *p;
    ngx_uint_t                       n, evicted;
    ngx_msec_t                       now;
    ngx_queue_t                     *q;
    ngx_http_classify_cache_node_t  *cn;

    now = ngx_current_msec;

    for (n = 0; n < 2 && !ngx_queue_empty(&cache->sh->lru); n++) {
        q = ngx_queue_last(&cache->sh->lru);
        cn = ngx_queue_data(q, ngx_http_classify_cache_node_t, queue);

        if (!ngx_http_classify_cache_expired(cn, now)) {
            break;
        }

        ngx_http_classify_cache_free_locked(cache, cn, 0);
    }

    for (n = 0; /* void */; n++) {
        p = ngx_slab_alloc_locked(cache->shpool, size);

        if (p || ngx_queue_empty(&cache->sh->lru)
            || n == NGX_HTTP_CLASSIFY_CACHE_MAX_EVICT)
        {
            return p;
        }

        q = ngx_queue_last(&cache->sh->lru);
        cn = ngx_queue_data(q, ngx_http_classify_cache_node_t, queue);

        evicted = !ngx_http_classify_cache_expired(cn, now);

        ngx_http_classify_cache_free_locked(cache, cn, evicted);
    }
}


static void
ngx_http_classify_cache_free_locked(ngx_http_classify_cache_t *cache,
    ngx_http_classify_cache_node_t *cn, ngx_uint_t evicted)
{
    ngx_rbtree_delete(&cache->sh->rbtree, &cn->node);
    ngx_queue_remove(&cn->queue);

    (void) ngx_atomic_fetch_add(&cache->sh->entries, -1);

    if (cn->stats) {
        (void) ngx_atomic_fetch_add(&cn->stats->entries, -1);

        if (evicted) {
            (void) ngx_atomic_fetch_add(&cn->stats->evictions, 1);
        }
    }

    ngx_slab_free_locked(cache->shpool, cn);
}


/* the order of the rbtree: the digest's start, the digest, the whole key */

static ngx_int_t
ngx_http_classify_cache_cmp(ngx_http_classify_cache_node_t *cn,
    ngx_rbtree_key_t hash, u_char *digest, u_char *key, size_t len)
{
    ngx_int_t  rc;

    if (hash != cn->node.key) {
        return hash < cn->node.key ? -1 : 1;
    }

    rc = ngx_memcmp(digest, cn->digest, NGX_HTTP_CLASSIFY_DIGEST_LEN);

    if (rc != 0) {
        return rc;
    }

    if (len != cn->len) {
        return len < cn->len ? -1 : 1;
    }

    return ngx_memcmp(key, cn->key, len);
}


static ngx_http_classify_cache_node_t *
ngx_http_classify_cache_find_locked(ngx_http_classify_cache_t *cache,
    ngx_rbtree_key_t hash, u_char *digest, u_char *key, size_t len)
{
    ngx_int_t                        rc;
    ngx_rbtree_node_t               *node, *sentinel;
    ngx_http_classify_cache_node_t  *cn;

    node = cache->sh->rbtree.root;
    sentinel = cache->sh->rbtree.sentinel;

    while (node != sentinel) {
        cn = (ngx_http_classify_cache_node_t *) node;

        rc = ngx_http_classify_cache_cmp(cn, hash, digest, key, len);

        if (rc == 0) {
            return cn;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


static void
ngx_http_classify_cache_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t              **p;
    ngx_http_classify_cache_node_t  *cn;

    cn = (ngx_http_classify_cache_node_t *) node;

    for ( ;; ) {
        p = ngx_http_classify_cache_cmp((ngx_http_classify_cache_node_t *)
                                        temp, node->key, cn->digest, cn->key,
                                        cn->len)
            < 0 ? &temp->left : &temp->right;

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


/* the zone's fill, for the status */

void
ngx_http_classify_cache_fill(ngx_http_classify_cache_t *cache,
    ngx_uint_t *pages, ngx_uint_t *pages_free, ngx_uint_t *entries)
{
    *pages = cache->shpool->last - cache->shpool->pages;
    *pages_free = cache->shpool->pfree;
    *entries = cache->sh->entries;
}

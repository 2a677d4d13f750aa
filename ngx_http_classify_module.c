
/*
 * ngx_http_classify_module: an LLM classification gate in front of a chat
 * backend.
 *
 * This file is the module: the "classifier" block and the classify_*
 * directives, their configuration structures, the variables and the
 * registration.  The request path lives in src/.
 */


#include "ngx_http_classify.h"
#include "ngx_http_classify_gate.h"
#include "ngx_http_classify_verdict.h"
#include "ngx_http_classify_subreq.h"
#include "ngx_http_classify_capture.h"
#include "ngx_http_classify_metrics.h"
#include "ngx_http_classify_reply.h"
#include "ngx_http_classify_redis.h"
#include "ngx_http_classify_cache.h"
#include "ngx_http_classify_speculate.h"
#include "ngx_http_classify_guard.h"


static ngx_int_t ngx_http_classify_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_classify_init(ngx_conf_t *cf);
static void *ngx_http_classify_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_classify_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_classify_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);

static ngx_http_complex_value_t *ngx_http_classify_default_key(
    ngx_conf_t *cf);
static char *ngx_http_classify_find(ngx_conf_t *cf,
    ngx_http_classify_loc_conf_t *conf);
static ngx_array_t *ngx_http_classify_lookup(ngx_conf_t *cf,
    ngx_http_classify_listed_t *listed, const char *directive,
    ngx_uint_t *max_context);
static char *ngx_http_classify_set(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_classify_pass_set(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_classify_set_enum(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_classify_check_size(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_classify_check_buffer(ngx_conf_t *cf, void *post,
    void *data);

static ngx_int_t ngx_http_classify_verdict_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_classify_time_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_classify_session_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_classify_results_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_classify_format_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_classify_call_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_classify_var_str(ngx_http_variable_value_t *v,
    ngx_str_t *value);
static ngx_int_t ngx_http_classify_var_ms(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, ngx_msec_int_t usec);
static ngx_int_t ngx_http_classify_output_verdict_variable(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_classify_output_time_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_classify_output_results_variable(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data);


static ngx_conf_enum_t  ngx_http_classify_modes[] = {
    { ngx_string("parallel"), NGX_HTTP_CLASSIFY_MODE_PARALLEL },
    { ngx_string("sequential"), NGX_HTTP_CLASSIFY_MODE_SEQUENTIAL },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_classify_resolves[] = {
    { ngx_string("priority"), NGX_HTTP_CLASSIFY_RESOLVE_PRIORITY },
    { ngx_string("first"), NGX_HTTP_CLASSIFY_RESOLVE_FIRST },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_classify_inputs[] = {
    { ngx_string("auto"), NGX_HTTP_CLASSIFY_INPUT_AUTO },
    { ngx_string("openai"), NGX_HTTP_CLASSIFY_INPUT_OPENAI },
    { ngx_string("responses"), NGX_HTTP_CLASSIFY_INPUT_RESPONSES },
    { ngx_string("anthropic"), NGX_HTTP_CLASSIFY_INPUT_ANTHROPIC },
    { ngx_string("fields"), NGX_HTTP_CLASSIFY_INPUT_FIELDS },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_classify_orders[] = {
    { ngx_string("rpush"), NGX_HTTP_CLASSIFY_ORDER_RPUSH },
    { ngx_string("lpush"), NGX_HTTP_CLASSIFY_ORDER_LPUSH },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_classify_reply_formats[] = {
    { ngx_string("auto"), NGX_HTTP_CLASSIFY_REPLY_AUTO },
    { ngx_string("openai"), NGX_HTTP_CLASSIFY_REPLY_OPENAI },
    { ngx_string("responses"), NGX_HTTP_CLASSIFY_REPLY_RESPONSES },
    { ngx_string("anthropic"), NGX_HTTP_CLASSIFY_REPLY_ANTHROPIC },
    { ngx_string("sse"), NGX_HTTP_CLASSIFY_REPLY_SSE },
    { ngx_string("text"), NGX_HTTP_CLASSIFY_REPLY_TEXT },
    { ngx_string("json"), NGX_HTTP_CLASSIFY_REPLY_JSON },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_classify_output_modes[] = {
    { ngx_string("hold"), NGX_HTTP_CLASSIFY_OUTPUT_HOLD },
    { ngx_string("release"), NGX_HTTP_CLASSIFY_OUTPUT_RELEASE },
    { ngx_null_string, 0 }
};


static ngx_conf_num_bounds_t  ngx_http_classify_context_max_bounds = {
    ngx_conf_check_num_bounds, 1, 100000
};


static ngx_conf_post_t  ngx_http_classify_context_max_size_post = {
    ngx_http_classify_check_size
};


static ngx_conf_post_t  ngx_http_classify_output_buffer_post = {
    ngx_http_classify_check_buffer
};


static ngx_command_t  ngx_http_classify_commands[] = {

    { ngx_string("classifier"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_BLOCK|NGX_CONF_TAKE1,
      ngx_http_classifier_block,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("classify"),
      NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_classify_set,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_classify_loc_conf_t, listed),
      NULL },

    { ngx_string("classify_pass"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_classify_pass_set,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_classify_loc_conf_t, pass),
      NULL },

    { ngx_string("classify_mode"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_classify_set_enum,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_classify_loc_conf_t, mode),
      &ngx_http_classify_modes },

    { ngx_string("classify_resolve"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_classify_set_enum,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_classify_loc_conf_t, resolve),
      &ngx_http_classify_resolves },

    { ngx_string("classify_input"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_classify_set_enum,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_classify_loc_conf_t, input),
      &ngx_http_classify_inputs },

    { ngx_string("classify_query_field"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_classify_loc_conf_t, query_field),
      NULL },

    { ngx_string("classify_session_field"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_classify_loc_conf_t, session_field),
      NULL },

    { ngx_string("classify_session"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_classify_loc_conf_t, session),
      NULL },

    { ngx_string("classify_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_classify_loc_conf_t, timeout),
      NULL },

    { ngx_string("classify_reply_format"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_classify_set_enum,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_classify_loc_conf_t, reply_format),
      &ngx_http_classify_reply_formats },

    { ngx_string("classify_metrics_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_http_classify_metrics_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("classify_cache_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_http_classify_cache_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("classify_cache"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_classify_cache_set,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("classify_cache_valid"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_classify_cache_valid_set,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_classify_loc_conf_t, cache_valid),
      NULL },

    { ngx_string("classify_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_classify_status,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("classify_redis"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_classify_redis_set,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("classify_redis_sentinel"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_classify_redis_sentinel_set,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("classify_redis_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_classify_loc_conf_t, redis_key),
      NULL },

    { ngx_string("classify_redis_on_error"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_classify_set_enum,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_classify_loc_conf_t, redis_on_error),
      &ngx_http_classify_on_errors },

    { ngx_string("classify_context_order"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_classify_set_enum,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_classify_loc_conf_t, context.order),
      &ngx_http_classify_orders },

    { ngx_string("classify_context_store"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_classify_loc_conf_t, context_store),
      NULL },

    { ngx_string("classify_context_max"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_classify_loc_conf_t, context.max),
      &ngx_http_classify_context_max_bounds },

    { ngx_string("classify_context_max_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_classify_loc_conf_t, context.max_size),
      &ngx_http_classify_context_max_size_post },

    { ngx_string("classify_context_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_classify_loc_conf_t, context.ttl),
      NULL },

    { ngx_string("classify_speculate"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_classify_loc_conf_t, speculate),
      NULL },

    { ngx_string("classify_speculate_buffer"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_classify_loc_conf_t, speculate_buffer),
      NULL },

    { ngx_string("classify_output"),
      NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_classify_set,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_classify_loc_conf_t, output_listed),
      NULL },

    { ngx_string("classify_output_window"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_classify_loc_conf_t, output_window),
      &ngx_http_classify_context_max_size_post },

    { ngx_string("classify_output_mode"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_classify_set_enum,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_classify_loc_conf_t, output_mode),
      &ngx_http_classify_output_modes },

    { ngx_string("classify_output_buffer"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_classify_loc_conf_t, output_buffer),
      &ngx_http_classify_output_buffer_post },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_classify_module_ctx = {
    ngx_http_classify_add_variables,       /* preconfiguration */
    ngx_http_classify_init,                /* postconfiguration */

    ngx_http_classify_create_main_conf,    /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_classify_create_loc_conf,     /* create location configuration */
    ngx_http_classify_merge_loc_conf       /* merge location configuration */
};


ngx_module_t  ngx_http_classify_module = {
    NGX_MODULE_V1,
    &ngx_http_classify_module_ctx,         /* module context */
    ngx_http_classify_commands,            /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_classify_redis_init_process,  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_classify_redis_exit_process,  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_variable_t  ngx_http_classify_vars[] = {

    { ngx_string("classify_verdict"), NULL,
      ngx_http_classify_verdict_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("classify_time"), NULL,
      ngx_http_classify_time_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("classify_session"), NULL,
      ngx_http_classify_session_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("classify_results"), NULL,
      ngx_http_classify_results_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("classify_format"), NULL,
      ngx_http_classify_format_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("classify_output_verdict"), NULL,
      ngx_http_classify_output_verdict_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("classify_output_time"), NULL,
      ngx_http_classify_output_time_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("classify_output_results"), NULL,
      ngx_http_classify_output_results_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    /* $classify_<name>_verdict, $classify_<name>_time */
    { ngx_string("classify_"), NULL,
      ngx_http_classify_call_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE|NGX_HTTP_VAR_PREFIX, 0 },

      ngx_http_null_variable
};


static ngx_int_t
ngx_http_classify_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_classify_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_classify_init(ngx_conf_t *cf)
{
    if (ngx_http_classify_call_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_classify_cache_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_classify_capture_init(cf);
}


static void *
ngx_http_classify_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_classify_main_conf_t  *cmcf;

    cmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_classify_main_conf_t));
    if (cmcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&cmcf->classifiers, cf->pool, 4,
                       sizeof(ngx_http_classify_classifier_t))
        != NGX_OK)
    {
        return NULL;
    }

    cmcf->pool = cf->pool;

    if (ngx_array_init(&cmcf->redis, cf->pool, 1,
                       sizeof(ngx_http_classify_redis_t *))
        != NGX_OK)
    {
        return NULL;
    }

    if (ngx_array_init(&cmcf->masters, cf->pool, 1,
                       sizeof(ngx_http_classify_master_t *))
        != NGX_OK)
    {
        return NULL;
    }

    return cmcf;
}


static void *
ngx_http_classify_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_classify_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_classify_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->listed = { NULL, NULL, 0 };
     *     conf->classifiers = NULL;
     *     conf->pass = { 0, NULL };
     *     conf->query_field = { 0, NULL };
     *     conf->session_field = { 0, NULL };
     *     conf->max_context = 0;
     *     conf->output_listed = { NULL, NULL, 0 };
     *     conf->output = NULL;
     */

    conf->mode = NGX_CONF_UNSET_UINT;
    conf->resolve = NGX_CONF_UNSET_UINT;
    conf->input = NGX_CONF_UNSET_UINT;
    conf->reply_format = NGX_CONF_UNSET_UINT;
    conf->session = NGX_CONF_UNSET_PTR;
    conf->timeout = NGX_CONF_UNSET_MSEC;
    conf->redis = NGX_CONF_UNSET_PTR;
    conf->redis_key = NGX_CONF_UNSET_PTR;
    conf->redis_on_error = NGX_CONF_UNSET_UINT;
    conf->context_store = NGX_CONF_UNSET;
    conf->context.order = NGX_CONF_UNSET_UINT;
    conf->context.max = NGX_CONF_UNSET_UINT;
    conf->context.max_size = NGX_CONF_UNSET_SIZE;
    conf->context.ttl = NGX_CONF_UNSET_MSEC;
    conf->cache_zone = NGX_CONF_UNSET_PTR;
    conf->cache_valid = NGX_CONF_UNSET_MSEC;
    conf->speculate = NGX_CONF_UNSET;
    conf->speculate_buffer = NGX_CONF_UNSET_SIZE;
    conf->output_window = NGX_CONF_UNSET_SIZE;
    conf->output_mode = NGX_CONF_UNSET_UINT;
    conf->output_buffer = NGX_CONF_UNSET_SIZE;

    return conf;
}


static char *
ngx_http_classify_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_classify_loc_conf_t *prev = parent;
    ngx_http_classify_loc_conf_t *conf = child;

    ngx_http_classify_main_conf_t  *cmcf;

    ngx_conf_merge_str_value(conf->pass, prev->pass, "");
    ngx_conf_merge_uint_value(conf->mode, prev->mode,
                              NGX_HTTP_CLASSIFY_MODE_PARALLEL);
    ngx_conf_merge_uint_value(conf->resolve, prev->resolve,
                              NGX_HTTP_CLASSIFY_RESOLVE_PRIORITY);
    ngx_conf_merge_uint_value(conf->input, prev->input,
                              NGX_HTTP_CLASSIFY_INPUT_AUTO);
    ngx_conf_merge_uint_value(conf->reply_format, prev->reply_format,
                              NGX_HTTP_CLASSIFY_REPLY_AUTO);
    ngx_conf_merge_str_value(conf->query_field, prev->query_field,
                             "user_query");
    ngx_conf_merge_str_value(conf->session_field, prev->session_field,
                             "session_id");
    ngx_conf_merge_ptr_value(conf->session, prev->session, NULL);
    ngx_conf_merge_msec_value(conf->timeout, prev->timeout, 10000);
    ngx_conf_merge_ptr_value(conf->redis, prev->redis, NULL);
    ngx_conf_merge_ptr_value(conf->redis_key, prev->redis_key, NULL);
    ngx_conf_merge_uint_value(conf->redis_on_error, prev->redis_on_error,
                              NGX_HTTP_CLASSIFY_ON_ERROR_PASS);
    ngx_conf_merge_value(conf->context_store, prev->context_store, 0);
    ngx_conf_merge_uint_value(conf->context.order, prev->context.order,
                              NGX_HTTP_CLASSIFY_ORDER_RPUSH);
    ngx_conf_merge_uint_value(conf->context.max, prev->context.max, 50);
    ngx_conf_merge_size_value(conf->context.max_size, prev->context.max_size,
                              256 * 1024);
    ngx_conf_merge_msec_value(conf->context.ttl, prev->context.ttl,
                              86400000);
    ngx_conf_merge_value(conf->speculate, prev->speculate, 0);
    ngx_conf_merge_size_value(conf->speculate_buffer, prev->speculate_buffer,
                              64 * 1024);
    ngx_conf_merge_size_value(conf->output_window, prev->output_window, 256);
    ngx_conf_merge_uint_value(conf->output_mode, prev->output_mode,
                              NGX_HTTP_CLASSIFY_OUTPUT_HOLD);
    ngx_conf_merge_size_value(conf->output_buffer, prev->output_buffer,
                              64 * 1024);

    if (conf->timeout == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"classify_timeout\" must be more than 0");
        return NGX_CONF_ERROR;
    }

    if (ngx_http_classify_cache_merge(cf, prev, conf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (conf->context.ttl < 1000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"classify_context_ttl\" must be at least 1s: "
                           "Redis expires keys in seconds");
        return NGX_CONF_ERROR;
    }

    if (conf->redis && conf->context_store) {
        cmcf = ngx_http_conf_get_module_main_conf(cf,
                                                  ngx_http_classify_module);
        cmcf->capture = 1;
    }

    if (conf->redis && conf->redis_key == NULL) {
        conf->redis_key = ngx_http_classify_default_key(cf);
        if (conf->redis_key == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if ((conf->listed.names == NULL || conf->classifiers)
        && (conf->output_listed.names == NULL || conf->output))
    {
        return NGX_CONF_OK;
    }

    return ngx_http_classify_find(cf, conf);
}


/* classify_redis_key's default: chat:$classify_session */

static ngx_http_complex_value_t *
ngx_http_classify_default_key(ngx_conf_t *cf)
{
    ngx_http_compile_complex_value_t  ccv;

    static ngx_str_t  default_key = ngx_string("chat:$classify_session");

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &default_key;
    ccv.complex_value = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (ccv.complex_value == NULL) {
        return NULL;
    }

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NULL;
    }

    return ccv.complex_value;
}


/*
 * "classify" and "classify_output" name classifiers that may be defined
 * anywhere in http{}: they are looked up here, once the whole block has
 * been read.  The context parsed from a body (or read from Redis) is the
 * largest any of them needs.
 */

static char *
ngx_http_classify_find(ngx_conf_t *cf, ngx_http_classify_loc_conf_t *conf)
{
    ngx_uint_t                       i;
    ngx_http_classify_listed_t      *listed;
    ngx_http_classify_main_conf_t   *cmcf;
    ngx_http_classify_classifier_t **clp;

    if (conf->listed.names) {
        conf->classifiers = ngx_http_classify_lookup(cf, &conf->listed,
                                                     "classify",
                                                     &conf->max_context);
        if (conf->classifiers == NULL) {
            return NGX_CONF_ERROR;
        }

    } else {
        /* an output guard alone: a gate without input classifiers */
        conf->classifiers = ngx_array_create(cf->pool, 1,
                                    sizeof(ngx_http_classify_classifier_t *));
        if (conf->classifiers == NULL) {
            return NGX_CONF_ERROR;
        }

    }

    if (conf->output_listed.names) {
        conf->output = ngx_http_classify_lookup(cf, &conf->output_listed,
                                                "classify_output",
                                                &conf->max_context);
        if (conf->output == NULL) {
            return NGX_CONF_ERROR;
        }

        cmcf = ngx_http_conf_get_module_main_conf(cf,
                                                  ngx_http_classify_module);
        cmcf->output = 1;

        clp = conf->output->elts;

        for (i = 0; i < conf->output->nelts; i++) {
            clp[i]->output = 1;
        }
    }

    if (conf->pass.len == 0) {
        listed = conf->listed.names ? &conf->listed : &conf->output_listed;

        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"%s\" directive in %s:%ui needs "
                      "\"classify_pass\": where passing requests go",
                      conf->listed.names ? "classify" : "classify_output",
                      listed->file, listed->line);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* the classifiers of those names, in that order */

static ngx_array_t *
ngx_http_classify_lookup(ngx_conf_t *cf, ngx_http_classify_listed_t *listed,
    const char *directive, ngx_uint_t *max_context)
{
    ngx_str_t                       *name;
    ngx_uint_t                       i, j;
    ngx_array_t                     *a;
    ngx_http_classify_main_conf_t   *cmcf;
    ngx_http_classify_classifier_t  *cl, **clp;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_classify_module);

    a = ngx_array_create(cf->pool, listed->names->nelts,
                         sizeof(ngx_http_classify_classifier_t *));
    if (a == NULL) {
        return NULL;
    }

    name = listed->names->elts;

    for (i = 0; i < listed->names->nelts; i++) {
        cl = cmcf->classifiers.elts;

        for (j = 0; j < cmcf->classifiers.nelts; j++) {
            if (cl[j].name.len == name[i].len
                && ngx_strncmp(cl[j].name.data, name[i].data, name[i].len)
                   == 0)
            {
                break;
            }
        }

        if (j == cmcf->classifiers.nelts) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "unknown classifier \"%V\" in \"%s\" "
                          "directive in %s:%ui",
                          &name[i], directive, listed->file, listed->line);
            return NULL;
        }

        clp = ngx_array_push(a);
        if (clp == NULL) {
            return NULL;
        }

        *clp = &cl[j];

        if (cl[j].context > *max_context) {
            *max_context = cl[j].context;
        }
    }

    return a;
}


/*
 * classify NAME ...; classify_output NAME ...; either makes the location
 * a gate (an output guard alone is a gate without input classifiers)
 */

static char *
ngx_http_classify_set(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    ngx_str_t                   *value, *name;
    ngx_uint_t                   i, j;
    ngx_http_core_loc_conf_t    *core;
    ngx_http_classify_listed_t  *listed;

    listed = (ngx_http_classify_listed_t *) (p + cmd->offset);

    if (listed->names) {
        return "is duplicate";
    }

    value = cf->args->elts;

    listed->names = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                     sizeof(ngx_str_t));
    if (listed->names == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < cf->args->nelts; i++) {
        for (j = 1; j < i; j++) {
            if (value[j].len == value[i].len
                && ngx_strncmp(value[j].data, value[i].data, value[i].len)
                   == 0)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "classifier \"%V\" is listed twice",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }
        }

        name = ngx_array_push(listed->names);
        if (name == NULL) {
            return NGX_CONF_ERROR;
        }

        *name = value[i];
    }

    listed->file = cf->conf_file->file.name.data;
    listed->line = cf->conf_file->line;

    core = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    core->handler = ngx_http_classify_handler;

    return NGX_CONF_OK;
}


/* classify_pass @named | /uri[?args]; */

static char *
ngx_http_classify_pass_set(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t  *value;

    value = cf->args->elts;

    if (value[1].len < 2
        || (value[1].data[0] != '@' && value[1].data[0] != '/'))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"classify_pass\" \"%V\": a named "
                           "location (\"@name\") or a URI (\"/path\")",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    return ngx_conf_set_str_slot(cf, cmd, conf);
}


/* ngx_conf_set_enum_slot(), with a message that names the directive */

static char *
ngx_http_classify_set_enum(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    u_char           *last;
    ngx_str_t        *value;
    ngx_uint_t       *np, i;
    ngx_conf_enum_t  *e;
    u_char            buf[NGX_MAX_CONF_ERRSTR];

    np = (ngx_uint_t *) (p + cmd->offset);

    if (*np != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    e = cmd->post;

    for (i = 0; e[i].name.len != 0; i++) {
        if (e[i].name.len == value[1].len
            && ngx_strcasecmp(e[i].name.data, value[1].data) == 0)
        {
            *np = e[i].value;
            return NGX_CONF_OK;
        }
    }

    last = buf;

    for (i = 0; e[i].name.len != 0; i++) {
        last = ngx_slprintf(last, buf + sizeof(buf), "%s\"%V\"",
                            i ? ", " : "", &e[i].name);
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\" in \"%V\" directive, "
                       "it must be one of %*s",
                       &value[1], &cmd->name, last - buf, buf);

    return NGX_CONF_ERROR;
}


static char *
ngx_http_classify_check_size(ngx_conf_t *cf, void *post, void *data)
{
    size_t  *sp = data;

    return *sp ? NGX_CONF_OK : "must be more than 0";
}


/* room for the events of a window, in every format */

static char *
ngx_http_classify_check_buffer(ngx_conf_t *cf, void *post, void *data)
{
    size_t  *sp = data;

    return *sp >= 1024 ? NGX_CONF_OK : "must be at least 1k";
}


static ngx_int_t
ngx_http_classify_verdict_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_classify_ctx_t  *ctx;

    ctx = ngx_http_classify_get_ctx(r->main);

    /* not known yet: a speculative generation's request is made before */

    if (ctx == NULL || ctx->redis_op || ctx->waiting) {
        v->not_found = 1;
        return NGX_OK;
    }

    return ngx_http_classify_var_str(v, ngx_http_classify_verdict_name(ctx));
}


static ngx_int_t
ngx_http_classify_time_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_classify_ctx_t  *ctx;

    ctx = ngx_http_classify_get_ctx(r->main);

    if (ctx == NULL || !ctx->decided) {
        v->not_found = 1;
        return NGX_OK;
    }

    return ngx_http_classify_var_ms(r, v, ctx->usec);
}


static ngx_int_t
ngx_http_classify_session_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_classify_ctx_t  *ctx;

    ctx = ngx_http_classify_get_ctx(r->main);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    return ngx_http_classify_var_str(v, &ctx->input.session);
}


/* the client's wire format: openai, responses, anthropic, fields */

static ngx_int_t
ngx_http_classify_format_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_classify_ctx_t  *ctx;

    ctx = ngx_http_classify_get_ctx(r->main);

    if (ctx == NULL || ctx->input.format == NGX_HTTP_CLASSIFY_FORMAT_NONE) {
        v->not_found = 1;
        return NGX_OK;
    }

    return ngx_http_classify_var_str(v,
                         &ngx_http_classify_format_names[ctx->input.format]);
}


/*
 * "name:outcome:ms,name:outcome:ms", in the order of "classify"; a verdict
 * from classify_cache reads "negative(cached)" or "positive(cached)"
 */

static ngx_int_t
ngx_http_classify_results_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                    *p, *last;
    size_t                     len;
    ngx_str_t                  value;
    ngx_uint_t                 i;
    ngx_http_classify_ctx_t   *ctx;
    ngx_http_classify_call_t  *call;

    ctx = ngx_http_classify_get_ctx(r->main);

    if (ctx == NULL || ctx->calls == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    len = 0;

    for (i = 0; i < ctx->ncalls; i++) {
        len += ctx->calls[i].classifier->name.len
               + sizeof(",:positive(cached):") + NGX_HTTP_CLASSIFY_MS_LEN;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->data = p;
    last = p + len;

    for (i = 0; i < ctx->ncalls; i++) {
        call = &ctx->calls[i];

        p = ngx_slprintf(p, last, "%s%V:%V:", i ? "," : "",
                         &call->classifier->name,
                         ngx_http_classify_outcome_label(call));
        p = ngx_http_classify_print_ms(p, last, call->usec);
    }

    value.data = v->data;
    value.len = p - v->data;

    return ngx_http_classify_var_str(v, &value);
}


/*
 * $classify_<name>_verdict: that classifier's outcome in this request;
 * $classify_<name>_time: its milliseconds
 */

static ngx_int_t
ngx_http_classify_call_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t *var = (ngx_str_t *) data;

    u_char                    *p, *name;
    size_t                     len;
    ngx_str_t                 *outcome;
    ngx_uint_t                 i, time;
    ngx_http_classify_ctx_t   *ctx;
    ngx_http_classify_call_t  *call;

    v->not_found = 1;

    /* "classify_" NAME "_verdict" | "_time" */

    name = var->data + sizeof("classify_") - 1;
    len = var->len - (sizeof("classify_") - 1);

    if (len > sizeof("_verdict") - 1
        && ngx_strncmp(name + len - (sizeof("_verdict") - 1), "_verdict",
                       sizeof("_verdict") - 1)
           == 0)
    {
        time = 0;
        len -= sizeof("_verdict") - 1;

    } else if (len > sizeof("_time") - 1
               && ngx_strncmp(name + len - (sizeof("_time") - 1), "_time",
                              sizeof("_time") - 1)
                  == 0)
    {
        time = 1;
        len -= sizeof("_time") - 1;

    } else {
        return NGX_OK;
    }

    ctx = ngx_http_classify_get_ctx(r->main);

    if (ctx == NULL || ctx->calls == NULL) {
        return NGX_OK;
    }

    for (i = 0; i < ctx->ncalls; i++) {
        call = &ctx->calls[i];

        if (call->classifier->name.len != len
            || ngx_strncmp(call->classifier->name.data, name, len) != 0)
        {
            continue;
        }

        if (time) {
            p = ngx_pnalloc(r->pool, NGX_HTTP_CLASSIFY_MS_LEN);
            if (p == NULL) {
                return NGX_ERROR;
            }

            v->data = p;
            v->len = ngx_http_classify_print_ms(p,
                                            p + NGX_HTTP_CLASSIFY_MS_LEN,
                                            call->usec)
                     - p;

        } else {
            outcome = ngx_http_classify_outcome_label(call);
            v->data = outcome->data;
            v->len = outcome->len;
        }

        v->valid = 1;
        v->no_cacheable = 1;
        v->not_found = 0;

        return NGX_OK;
    }

    return NGX_OK;
}



/*
 * $classify_output_verdict: the output classifier that cut the answer,
 * "pass" when it went out whole, "error" when it could not be judged and
 * went out; not found without an output guard, or while the answer goes
 */

static ngx_int_t
ngx_http_classify_output_verdict_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                *name;
    ngx_http_classify_ctx_t  *ctx;

    ctx = ngx_http_classify_get_ctx(r->main);

    name = (ctx && ctx->guard)
           ? ngx_http_classify_guard_verdict_name(ctx->guard) : NULL;

    if (name == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    return ngx_http_classify_var_str(v, name);
}


/* $classify_output_time: the milliseconds the judgements took, in all */

static ngx_int_t
ngx_http_classify_output_time_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_classify_ctx_t  *ctx;

    ctx = ngx_http_classify_get_ctx(r->main);

    if (ctx == NULL || ctx->guard == NULL || ctx->guard->judgements == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    return ngx_http_classify_var_ms(r, v, ctx->guard->usec);
}


/*
 * $classify_output_results: "name:outcome:ms,..." in classify_output's
 * order, each output classifier's last outcome and its calls' time
 */

static ngx_int_t
ngx_http_classify_output_results_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                           *p, *last;
    size_t                            len;
    ngx_str_t                         value;
    ngx_uint_t                        i;
    ngx_http_classify_ctx_t          *ctx;
    ngx_http_classify_guard_t        *g;
    ngx_http_classify_classifier_t  **cl;

    ctx = ngx_http_classify_get_ctx(r->main);

    if (ctx == NULL || ctx->guard == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    g = ctx->guard;
    cl = ctx->conf->output->elts;
    len = 0;

    for (i = 0; i < ctx->conf->output->nelts; i++) {
        len += cl[i]->name.len + sizeof(",:positive:")
               + NGX_HTTP_CLASSIFY_MS_LEN;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->data = p;
    last = p + len;

    for (i = 0; i < ctx->conf->output->nelts; i++) {
        p = ngx_slprintf(p, last, "%s%V:%V:", i ? "," : "", &cl[i]->name,
                         &ngx_http_classify_outcome_names[g->cl[i].outcome]);
        p = ngx_http_classify_print_ms(p, last, g->cl[i].usec);
    }

    value.data = v->data;
    value.len = p - v->data;

    return ngx_http_classify_var_str(v, &value);
}


/* a variable's value: a string that lives as long as the request */

static ngx_int_t
ngx_http_classify_var_str(ngx_http_variable_value_t *v, ngx_str_t *value)
{
    v->data = value->data;
    v->len = value->len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


/* ... microseconds printed as milliseconds, "12.345" */

static ngx_int_t
ngx_http_classify_var_ms(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    ngx_msec_int_t usec)
{
    ngx_str_t  value;

    value.data = ngx_pnalloc(r->pool, NGX_HTTP_CLASSIFY_MS_LEN);
    if (value.data == NULL) {
        return NGX_ERROR;
    }

    value.len = ngx_http_classify_print_ms(value.data,
                                           value.data
                                           + NGX_HTTP_CLASSIFY_MS_LEN, usec)
                - value.data;

    return ngx_http_classify_var_str(v, &value);
}

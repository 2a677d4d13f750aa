
/*
 * ngx_http_classify_module: counters and histograms in shared memory,
 * and the status page (metrics.c).
 */


#ifndef _NGX_HTTP_CLASSIFY_METRICS_H_INCLUDED_
#define _NGX_HTTP_CLASSIFY_METRICS_H_INCLUDED_


#include "ngx_http_classify.h"


char *ngx_http_classify_metrics_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_classify_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
void ngx_http_classify_metrics_request(ngx_http_request_t *r);
void ngx_http_classify_metrics_error(ngx_http_request_t *r);
void ngx_http_classify_metrics_redis_error(ngx_http_request_t *r);
void ngx_http_classify_metrics_stores_lost(ngx_http_classify_main_conf_t *cmcf,
    ngx_uint_t n);
ngx_http_classify_master_t *ngx_http_classify_metrics_add_master(
    ngx_conf_t *cf, ngx_str_t *name);
void ngx_http_classify_metrics_master(ngx_http_classify_master_t *m,
    ngx_str_t *addr);
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


#endif /* _NGX_HTTP_CLASSIFY_METRICS_H_INCLUDED_ */

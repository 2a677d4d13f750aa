
/*
 * ngx_http_classify_module: classifier answers -> verdicts -> the
 * decision (verdict.c, pure): an answer's verdict, what a call counts as,
 * resolution by priority, and the one table of outcome names.
 */


#ifndef _NGX_HTTP_CLASSIFY_VERDICT_H_INCLUDED_
#define _NGX_HTTP_CLASSIFY_VERDICT_H_INCLUDED_


#include "ngx_http_classify_subreq.h"


/* the answer of one classifier */
#define NGX_HTTP_CLASSIFY_PENDING          0   /* not decided yet */
#define NGX_HTTP_CLASSIFY_NEGATIVE         1
#define NGX_HTTP_CLASSIFY_POSITIVE         2
#define NGX_HTTP_CLASSIFY_ERROR            3

/* the outcome of the whole decision */
#define NGX_HTTP_CLASSIFY_UNDECIDED        -1
#define NGX_HTTP_CLASSIFY_PASS             -2


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


#endif /* _NGX_HTTP_CLASSIFY_VERDICT_H_INCLUDED_ */


/*
 * ngx_http_classify_module: classifier answers -> verdicts -> decision.
 *
 * Pure functions: no request, no I/O.
 */


#include "ngx_http_classify.h"

#include <cjson/cJSON.h>


static ngx_uint_t ngx_http_classify_parse_word(
    ngx_http_classify_classifier_t *cl, const char *s, const char **cause);


ngx_uint_t
ngx_http_classify_parse_answer(ngx_http_classify_classifier_t *cl,
    u_char *data, size_t len, const char **cause)
{
    cJSON       *root, *item;
    ngx_uint_t   verdict;

    if (len == 0) {
        *cause = "empty answer";
        return NGX_HTTP_CLASSIFY_ERROR;
    }

    root = cJSON_ParseWithLength((const char *) data, len);

    if (root == NULL) {
        *cause = "answer is not valid JSON";
        return NGX_HTTP_CLASSIFY_ERROR;
    }

    verdict = NGX_HTTP_CLASSIFY_ERROR;

    if (cl->protocol == NGX_HTTP_CLASSIFY_PROTO_JSON) {
        item = cJSON_GetObjectItemCaseSensitive(root, "verdict");

        if (cJSON_IsBool(item)) {
            verdict = cJSON_IsTrue(item) ? NGX_HTTP_CLASSIFY_POSITIVE
                                         : NGX_HTTP_CLASSIFY_NEGATIVE;
        } else {
            *cause = "answer has no boolean \"verdict\"";
        }

        goto done;
    }

    /* choices[0].message.content */

    item = cJSON_GetObjectItemCaseSensitive(root, "choices");
    item = cJSON_GetArrayItem(item, 0);

    if (item == NULL) {
        *cause = "answer has no \"choices\"";
        goto done;
    }

    item = cJSON_GetObjectItemCaseSensitive(item, "message");
    item = cJSON_GetObjectItemCaseSensitive(item, "content");

    if (!cJSON_IsString(item)) {
        *cause = "answer has no \"choices[0].message.content\" string";
        goto done;
    }

    verdict = ngx_http_classify_parse_word(cl, item->valuestring, cause);

done:

    cJSON_Delete(root);

    return verdict;
}


/*
 * The first word of the answer, stripped of punctuation at both ends and
 * case-folded, is compared with the "positive" words: "Yes." and " TRUE"
 * are positive with the defaults; an answer with no letters or digits
 * at all is an error, anything else negative.
 */

static ngx_uint_t
ngx_http_classify_parse_word(ngx_http_classify_classifier_t *cl,
    const char *s, const char **cause)
{
    u_char      *p, *start, *end, word[32];
    size_t       len;
    ngx_str_t   *pos;
    ngx_uint_t   i;

    p = (u_char *) s;

    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
        p++;
    }

    start = p;

    while (*p && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
        p++;
    }

    end = p;

    while (start < end && !ngx_http_classify_isalnum(*start)) {
        start++;
    }

    while (end > start && !ngx_http_classify_isalnum(end[-1])) {
        end--;
    }

    if (start == end) {
        *cause = "answer content is not a word";
        return NGX_HTTP_CLASSIFY_ERROR;
    }

    len = end - start;

    if (len > sizeof(word)) {
        return NGX_HTTP_CLASSIFY_NEGATIVE;
    }

    ngx_strlow(word, start, len);

    pos = cl->positive->elts;

    for (i = 0; i < cl->positive->nelts; i++) {
        if (pos[i].len == len && ngx_strncmp(pos[i].data, word, len) == 0) {
            return NGX_HTTP_CLASSIFY_POSITIVE;
        }
    }

    return NGX_HTTP_CLASSIFY_NEGATIVE;
}


/*
 * The outcome names of logs, variables and metrics, in the order of
 * ngx_http_classify_outcome_e.
 */

ngx_str_t  ngx_http_classify_outcome_names[] = {
    ngx_string("positive"),
    ngx_string("negative"),
    ngx_string("error"),
    ngx_string("timeout"),
    ngx_string("aborted"),
    ngx_string("skipped"),
    ngx_string("pending")
};


/* a verdict the cache gave, as logs and variables show it */

static ngx_str_t  ngx_http_classify_cached_names[] = {
    ngx_string("positive(cached)"),
    ngx_string("negative(cached)")
};


ngx_str_t *
ngx_http_classify_outcome_label(ngx_http_classify_call_t *call)
{
    ngx_http_classify_outcome_e  outcome;

    outcome = ngx_http_classify_outcome(call);

    if (call->cached && outcome <= NGX_HTTP_CLASSIFY_OUTCOME_NEGATIVE) {
        return &ngx_http_classify_cached_names[outcome];
    }

    return &ngx_http_classify_outcome_names[outcome];
}


ngx_http_classify_outcome_e
ngx_http_classify_outcome(ngx_http_classify_call_t *call)
{
    switch (call->state) {

    case NGX_HTTP_CLASSIFY_CALL_ANSWERED:
        return call->verdict == NGX_HTTP_CLASSIFY_POSITIVE
               ? NGX_HTTP_CLASSIFY_OUTCOME_POSITIVE
               : NGX_HTTP_CLASSIFY_OUTCOME_NEGATIVE;

    case NGX_HTTP_CLASSIFY_CALL_FAILED:
        return NGX_HTTP_CLASSIFY_OUTCOME_ERROR;

    case NGX_HTTP_CLASSIFY_CALL_TIMEDOUT:
        return NGX_HTTP_CLASSIFY_OUTCOME_TIMEOUT;

    case NGX_HTTP_CLASSIFY_CALL_ABORTED:
        return NGX_HTTP_CLASSIFY_OUTCOME_ABORTED;

    case NGX_HTTP_CLASSIFY_CALL_SKIPPED:
        return NGX_HTTP_CLASSIFY_OUTCOME_SKIPPED;

    default: /* idle, running */
        return NGX_HTTP_CLASSIFY_OUTCOME_PENDING;
    }
}


const char *
ngx_http_classify_on_error_name(ngx_http_classify_classifier_t *cl)
{
    return cl->on_error == NGX_HTTP_CLASSIFY_ON_ERROR_BLOCK
           ? "blocking (on_error block)" : "passing (on_error pass)";
}


/*
 * What a call counts as in the decision: its answer; an error or a timeout
 * as its on_error says (block: positive, pass: negative); pending while it
 * runs or waits its turn.  A call the gate gave up on has no say.
 */

ngx_uint_t
ngx_http_classify_effective(ngx_http_classify_call_t *call)
{
    switch (call->state) {

    case NGX_HTTP_CLASSIFY_CALL_ANSWERED:
        return call->verdict;

    case NGX_HTTP_CLASSIFY_CALL_FAILED:
    case NGX_HTTP_CLASSIFY_CALL_TIMEDOUT:
        return call->classifier->on_error == NGX_HTTP_CLASSIFY_ON_ERROR_BLOCK
               ? NGX_HTTP_CLASSIFY_POSITIVE : NGX_HTTP_CLASSIFY_NEGATIVE;

    case NGX_HTTP_CLASSIFY_CALL_IDLE:
    case NGX_HTTP_CLASSIFY_CALL_RUNNING:
        return NGX_HTTP_CLASSIFY_PENDING;

    default: /* aborted, skipped */
        return NGX_HTTP_CLASSIFY_NEGATIVE;
    }
}


/*
 * Returns the index of the deciding classifier, NGX_HTTP_CLASSIFY_PASS,
 * or NGX_HTTP_CLASSIFY_UNDECIDED while the outcome is still open.
 * Shadow classifiers never take part.
 *
 * priority: a positive from classifier k is final once every classifier
 * listed before k has ended negative, which is the answer a sequential
 * pipeline would give.  first: the first positive to arrive wins.
 */

ngx_int_t
ngx_http_classify_resolve(ngx_http_classify_call_t *calls, ngx_uint_t n,
    ngx_uint_t resolve, ngx_int_t first_positive)
{
    ngx_uint_t  i, v, pending;

    if (resolve == NGX_HTTP_CLASSIFY_RESOLVE_FIRST && first_positive >= 0) {
        return first_positive;
    }

    pending = 0;

    for (i = 0; i < n; i++) {

        if (calls[i].classifier->shadow) {
            continue;
        }

        v = ngx_http_classify_effective(&calls[i]);

        if (v == NGX_HTTP_CLASSIFY_PENDING) {

            if (resolve == NGX_HTTP_CLASSIFY_RESOLVE_PRIORITY) {
                return NGX_HTTP_CLASSIFY_UNDECIDED;
            }

            pending = 1;
            continue;
        }

        if (v == NGX_HTTP_CLASSIFY_POSITIVE
            && resolve == NGX_HTTP_CLASSIFY_RESOLVE_PRIORITY)
        {
            return i;
        }
    }

    return pending ? NGX_HTTP_CLASSIFY_UNDECIDED : NGX_HTTP_CLASSIFY_PASS;
}


/*
 * fuzz/fuzz_answer.c: the classifier-answer parser (openai and json
 * protocols) and the resolution of the verdicts by priority.
 *
 * The input: one byte of settings (per classifier: protocol and on_error;
 * classify_resolve priority or first), then up to four answers separated
 * by "\n--\n"; an answer starting with "\x01" stays pending.  Checked,
 * beyond the sanitizers:
 *   - every answer gets a verdict, and an error always has a cause, within
 *     NGX_FUZZ_BUDGET() of CPU time for its size (ngx_fuzz_timed());
 *   - a positive openai answer does say one of the "positive" words, a
 *     negative one has a letter or digit;
 *   - a decision taken while classifiers are pending is the decision the
 *     complete set of verdicts gives, whatever the pending ones answer:
 *     deciding early never changes the outcome.
 */


#include "ngx_http_classify.h"
#include "ngx_http_classify_verdict.h"
#include "ngx_fuzz.h"

#include <cjson/cJSON.h>


#define NGX_FUZZ_CALLS  4


/* choices[0].message.content, decoded, in a block of its own */

static void
ngx_fuzz_content(ngx_str_t *answer, ngx_str_t *content)
{
    cJSON  *root, *item;

    root = cJSON_ParseWithLength((const char *) answer->data, answer->len);

    item = ngx_fuzz_get(cJSON_GetArrayItem(
               ngx_fuzz_get(root, "choices"), 0), "message");
    item = ngx_fuzz_get(item, "content");

    ngx_fuzz_assert(cJSON_IsString(item), "a verdict without content");

    content->len = strlen(item->valuestring);
    content->data = ngx_pnalloc(NULL, content->len + 1);
    ngx_memcpy(content->data, item->valuestring, content->len);

    cJSON_Delete(root);
}


static ngx_int_t
ngx_fuzz_says(ngx_str_t *s, const char *word)
{
    size_t  i, n;

    n = strlen(word);

    for (i = 0; i + n <= s->len; i++) {
        if (strncasecmp((char *) s->data + i, word, n) == 0) {
            return 1;
        }
    }

    return 0;
}


static ngx_int_t
ngx_fuzz_has_alnum(ngx_str_t *s)
{
    size_t  i;

    for (i = 0; i < s->len; i++) {
        if (ngx_http_classify_isalnum(s->data[i])) {
            return 1;
        }
    }

    return 0;
}


/* a call in the state an answer (or none yet) leaves it in */

static void
ngx_fuzz_settle(ngx_http_classify_call_t *call, ngx_uint_t v)
{
    call->verdict = v;

    call->state = (v == NGX_HTTP_CLASSIFY_PENDING)
                  ? NGX_HTTP_CLASSIFY_CALL_RUNNING
                  : (v == NGX_HTTP_CLASSIFY_ERROR)
                    ? NGX_HTTP_CLASSIFY_CALL_FAILED
                    : NGX_HTTP_CLASSIFY_CALL_ANSWERED;
}


/*
 * Resolution: a decision taken while classifiers are pending is the one
 * the complete verdicts give, whatever the pending ones answer.
 */

static void
ngx_fuzz_check_resolution(ngx_http_classify_call_t *calls, ngx_uint_t n,
    ngx_uint_t resolve)
{
    ngx_int_t   d, all_neg, all_pos;
    ngx_uint_t  i, v, pending[NGX_FUZZ_CALLS];

    /* the first positive to arrive, for "classify_resolve first" */

    d = -1;

    for (i = 0; i < n; i++) {
        if (d == -1 && calls[i].state != NGX_HTTP_CLASSIFY_CALL_RUNNING
            && ngx_http_classify_effective(&calls[i])
               == NGX_HTTP_CLASSIFY_POSITIVE)
        {
            d = i;
        }
    }

    d = ngx_http_classify_resolve(calls, n, resolve, d);

    if (d == NGX_HTTP_CLASSIFY_UNDECIDED) {
        return;
    }

    /* decided early: the pending ones answering either way change nothing */

    for (i = 0; i < n; i++) {
        pending[i] = (calls[i].state == NGX_HTTP_CLASSIFY_CALL_RUNNING);
    }

    for (v = NGX_HTTP_CLASSIFY_NEGATIVE; v <= NGX_HTTP_CLASSIFY_POSITIVE; v++)
    {
        for (i = 0; i < n; i++) {
            if (pending[i]) {
                ngx_fuzz_settle(&calls[i], v);
            }
        }

        if (resolve == NGX_HTTP_CLASSIFY_RESOLVE_PRIORITY) {
            all_neg = ngx_http_classify_resolve(calls, n, resolve, -1);
            ngx_fuzz_assert(all_neg == d,
                            "an early decision the complete verdicts change");

        } else {
            all_pos = (d >= 0) ? d : -1;
            ngx_fuzz_assert(ngx_http_classify_resolve(calls, n, resolve,
                                                      all_pos) == d,
                            "an early decision the complete verdicts change");
        }
    }

}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                           settings;
    ngx_uint_t                       n, v, resolve;
    ngx_str_t                        answer, content, positive[2];
    ngx_array_t                      words;
    const char                      *cause;
    ngx_fuzz_input_t                 in;
    ngx_http_classify_call_t         calls[NGX_FUZZ_CALLS];
    ngx_http_classify_classifier_t   cl[NGX_FUZZ_CALLS];

    if (size == 0) {
        return 0;
    }

    in.p = data;
    in.last = data + size;

    settings = ngx_fuzz_byte(&in);
    resolve = (settings & 0x80) ? NGX_HTTP_CLASSIFY_RESOLVE_FIRST
                                : NGX_HTTP_CLASSIFY_RESOLVE_PRIORITY;

    ngx_str_set(&positive[0], "yes");
    ngx_str_set(&positive[1], "true");
    words.elts = positive;
    words.nelts = 2;

    ngx_memzero(calls, sizeof(calls));
    ngx_memzero(cl, sizeof(cl));

    for (n = 0; n < NGX_FUZZ_CALLS && in.p < in.last; n++) {
        cl[n].protocol = (settings >> n) & 1;
        cl[n].on_error = (settings >> (n + 4)) & 1;
        cl[n].positive = &words;
        calls[n].classifier = &cl[n];

        ngx_fuzz_field(&in, NULL, &answer);

        if (answer.len && answer.data[0] == '\x01') {
            ngx_fuzz_settle(&calls[n], NGX_HTTP_CLASSIFY_PENDING);
            continue;
        }

        ngx_fuzz_timed(answer.len,
                       cause = NULL;
                       v = ngx_http_classify_parse_answer(&cl[n], answer.data,
                                                          answer.len, &cause),
                       "parse_answer");

        ngx_fuzz_assert(v == NGX_HTTP_CLASSIFY_NEGATIVE
                        || v == NGX_HTTP_CLASSIFY_POSITIVE
                        || v == NGX_HTTP_CLASSIFY_ERROR,
                        "an answer without a verdict");

        ngx_fuzz_assert(v != NGX_HTTP_CLASSIFY_ERROR || cause != NULL,
                        "an error without a cause");

        if (cl[n].protocol == NGX_HTTP_CLASSIFY_PROTO_OPENAI
            && v != NGX_HTTP_CLASSIFY_ERROR)
        {
            ngx_fuzz_content(&answer, &content);

            ngx_fuzz_assert(v != NGX_HTTP_CLASSIFY_POSITIVE
                            || ngx_fuzz_says(&content, "yes")
                            || ngx_fuzz_says(&content, "true"),
                            "positive without a positive word");
            ngx_fuzz_assert(v != NGX_HTTP_CLASSIFY_NEGATIVE
                            || ngx_fuzz_has_alnum(&content),
                            "negative without a word");
        }

        ngx_fuzz_settle(&calls[n], v);
    }

    if (n) {
        ngx_fuzz_check_resolution(calls, n, resolve);
    }

    ngx_fuzz_pool_reset();

    return 0;
}

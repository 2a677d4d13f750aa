
/*
 * ngx_http_classify_module: classifier answers -> verdicts -> decision.
 *
 * Pure functions: no request, no I/O.
 */


#include "ngx_http_classify.h"
#include "ngx_http_classify_verdict.h"
#include "ngx_http_classify_jsonr.h"


static ngx_uint_t ngx_http_classify_parse_word(
    ngx_http_classify_classifier_t *cl, ngx_str_t *raw, const char **cause);


ngx_uint_t
ngx_http_classify_parse_answer(ngx_http_classify_classifier_t *cl,
    u_char *data, size_t len, const char **cause)
{
    ngx_str_t                  raw;
    ngx_flag_t                 verdict;
    ngx_http_classify_jsonr_t  jr;

    if (len == 0) {
        *cause = "empty answer";
        return NGX_HTTP_CLASSIFY_ERROR;
    }

    if (cl->protocol == NGX_HTTP_CLASSIFY_PROTO_OPENAI) {
        if (ngx_http_classify_openai_content(data, len, 0, &raw, cause)
            != NGX_OK)
        {
            return NGX_HTTP_CLASSIFY_ERROR;
        }

        return ngx_http_classify_parse_word(cl, &raw, cause);
    }

    if (ngx_http_classify_jsonr_valid(data, len, &jr) != NGX_OK) {
        *cause = "answer is not valid JSON";
        return NGX_HTTP_CLASSIFY_ERROR;
    }

    ngx_http_classify_jsonr_init(&jr, data, len);

    if (ngx_http_classify_jsonr_get(&jr, (u_char *) "verdict", 7) != NGX_OK
        || ngx_http_classify_jsonr_bool(&jr, &verdict) != NGX_OK)
    {
        *cause = "answer has no boolean \"verdict\"";
        return NGX_HTTP_CLASSIFY_ERROR;
    }

    return verdict ? NGX_HTTP_CLASSIFY_POSITIVE : NGX_HTTP_CLASSIFY_NEGATIVE;
}


/*
 * The text of an OpenAI answer, raw: choices[0].message.content of a
 * chat.completion, or choices[0].delta.content of a chat.completion.chunk
 * event.  NGX_DECLINED, with *cause, when there is none.
 */

ngx_int_t
ngx_http_classify_openai_content(u_char *data, size_t len, ngx_uint_t chunk,
    ngx_str_t *raw, const char **cause)
{
    ngx_http_classify_jsonr_t  jr;

    if (ngx_http_classify_jsonr_valid(data, len, &jr) != NGX_OK) {
        *cause = "answer is not valid JSON";
        return NGX_DECLINED;
    }

    /* valid: what follows reads only as far as it needs */

    ngx_http_classify_jsonr_init(&jr, data, len);

    if (ngx_http_classify_jsonr_get(&jr, (u_char *) "choices", 7) != NGX_OK
        || ngx_http_classify_jsonr_nth(&jr, 0) != NGX_OK)
    {
        *cause = "answer has no \"choices\"";
        return NGX_DECLINED;
    }

    if ((chunk ? ngx_http_classify_jsonr_get(&jr, (u_char *) "delta", 5)
               : ngx_http_classify_jsonr_get(&jr, (u_char *) "message", 7))
        != NGX_OK
        || ngx_http_classify_jsonr_get(&jr, (u_char *) "content", 7) != NGX_OK
        || ngx_http_classify_jsonr_peek(&jr) != NGX_HTTP_CLASSIFY_JSON_STRING
        || ngx_http_classify_jsonr_string(&jr, raw) != NGX_OK)
    {
        *cause = chunk
                 ? "answer has no \"choices[0].delta.content\" string"
                 : "answer has no \"choices[0].message.content\" string";
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * The first word of the answer, stripped of punctuation at both ends and
 * case-folded, is compared with the "positive" words: "Yes." and " TRUE"
 * are positive with the defaults; an answer with no letters or digits
 * at all is an error, anything else negative.
 *
 * The raw string is decoded a character at a time: only the first word
 * matters, and only its first 32 bytes are kept (a longer word is no
 * positive word).
 */

static ngx_uint_t
ngx_http_classify_parse_word(ngx_http_classify_classifier_t *cl,
    ngx_str_t *raw, const char **cause)
{
    u_char      *p, *last, c, word[32], buf[4];
    size_t       i, n, len, end;
    ngx_str_t   *pos;
    ngx_uint_t   in_word;

    p = raw->data;
    last = raw->data + raw->len;

    in_word = 0;
    len = 0;        /* bytes from the word's first letter or digit */
    end = 0;        /* ... to its last one */

    while (p < last) {
        n = ngx_http_classify_jsonr_char(&p, buf);

        for (i = 0; i < n; i++) {
            c = buf[i];

            if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
                if (in_word) {
                    goto done;
                }

                continue;
            }

            in_word = 1;

            if (len == 0 && !ngx_http_classify_isalnum(c)) {
                continue;
            }

            if (len < sizeof(word)) {
                word[len] = c;
            }

            len++;

            if (ngx_http_classify_isalnum(c)) {
                end = len;
            }
        }
    }

done:

    if (end == 0) {
        *cause = "answer content is not a word";
        return NGX_HTTP_CLASSIFY_ERROR;
    }

    if (end > sizeof(word)) {
        return NGX_HTTP_CLASSIFY_NEGATIVE;
    }

    ngx_strlow(word, word, end);

    pos = cl->positive->elts;

    for (i = 0; i < cl->positive->nelts; i++) {
        if (pos[i].len == end && ngx_strncmp(pos[i].data, word, end) == 0) {
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
 * classify_resolve first: the first call to count as positive (an answer,
 * or on_error block) is noted, as its index in calls.
 */

void
ngx_http_classify_note_positive(ngx_http_classify_call_t *calls,
    ngx_http_classify_call_t *call, ngx_int_t *first_positive)
{
    if (*first_positive < 0
        && !call->classifier->shadow
        && ngx_http_classify_effective(call) == NGX_HTTP_CLASSIFY_POSITIVE)
    {
        *first_positive = call - calls;
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


/*
 * fuzz/fuzz_input.c: the request-body parser, and the classifier bodies
 * built from what it returns.
 *
 * The input: one byte of settings (classify_input auto/openai/fields, the
 * classifiers' "context" depth), then the client's body.  Checked, beyond
 * the sanitizers:
 *   - a refused body always comes with a reason;
 *   - an accepted one has a non-empty query without NUL bytes, context
 *     messages whose role is "user" or "assistant";
 *   - the openai and json classifier bodies built from it are valid JSON
 *     and carry the query, the session and the context slice exactly, so
 *     escaping loses nothing and the precomputed lengths are right (each
 *     buffer is its own allocation: one byte too many is an ASan report);
 *   - every context message survives the Redis round trip,
 *     build_message() then parse_message().
 */


#include "ngx_http_classify.h"
#include "ngx_fuzz.h"

#include <cjson/cJSON.h>


static ngx_int_t
ngx_fuzz_eq(ngx_str_t *a, ngx_str_t *b)
{
    return a->len == b->len
           && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}


static ngx_int_t
ngx_fuzz_same(cJSON *item, ngx_str_t *s)
{
    if (!cJSON_IsString(item)) {
        return 0;
    }

    return strlen(item->valuestring) == s->len
           && (s->len == 0 || memcmp(item->valuestring, s->data, s->len) == 0);
}


static void
ngx_fuzz_check_messages(cJSON *arr, ngx_http_classify_msg_t *msg,
    ngx_uint_t n)
{
    ngx_uint_t   i;
    cJSON       *m;

    ngx_fuzz_assert(cJSON_GetArraySize(arr) == (int) n,
                    "context slice has the wrong length");

    i = 0;

    cJSON_ArrayForEach(m, arr) {
        ngx_fuzz_assert(ngx_fuzz_same(ngx_fuzz_get(m, "role"),
                                      &msg[i].role),
                        "context role changed on the way");
        ngx_fuzz_assert(ngx_fuzz_same(ngx_fuzz_get(m, "content"),
                                      &msg[i].content),
                        "context content changed on the way");
        i++;
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                          *body, settings;
    ngx_str_t                        out, json;
    ngx_int_t                        rc;
    ngx_uint_t                       i, first;
    const char                      *err;
    cJSON                           *root, *arr, *last;
    ngx_http_classify_msg_t         *msg, back;
    ngx_http_classify_input_t        in;
    ngx_http_classify_loc_conf_t     clcf;
    ngx_http_classify_classifier_t   cl;

    static ngx_str_t  prompt = ngx_string("Is this \"off-topic\"?\n\tAnswer.");
    static ngx_str_t  model = ngx_string("classifier-mini");

    if (size == 0) {
        return 0;
    }

    settings = data[0];

    ngx_memzero(&clcf, sizeof(ngx_http_classify_loc_conf_t));
    clcf.input = settings % 3;
    ngx_str_set(&clcf.query_field, "user_query");
    ngx_str_set(&clcf.session_field, "session_id");

    /* the body in a block of its exact size */

    body = ngx_pnalloc(NULL, size - 1 ? size - 1 : 1);
    ngx_memcpy(body, data + 1, size - 1);

    ngx_memzero(&in, sizeof(ngx_http_classify_input_t));
    err = NULL;

    rc = ngx_http_classify_parse_input(NULL, &clcf, body, size - 1, &in,
                                       &err);

    ngx_fuzz_assert(rc == NGX_OK || rc == NGX_DECLINED,
                    "parse_input failed without running out of memory");

    if (rc == NGX_DECLINED) {
        ngx_fuzz_assert(err != NULL && err[0] != '\0',
                        "a body refused without a reason");
        goto done;
    }

    ngx_fuzz_assert(in.query.len > 0, "an accepted body with no query");
    ngx_fuzz_assert(memchr(in.query.data, '\0', in.query.len) == NULL,
                    "a NUL inside the query");

    msg = in.context.elts;

    for (i = 0; i < in.context.nelts; i++) {
        ngx_fuzz_assert((msg[i].role.len == 4
                         && ngx_strncmp(msg[i].role.data, "user", 4) == 0)
                        || (msg[i].role.len == 9
                            && ngx_strncmp(msg[i].role.data, "assistant", 9)
                               == 0),
                        "a context message that is neither user nor assistant");

        /* the Redis round trip */

        ngx_fuzz_assert(ngx_http_classify_build_message(NULL, &msg[i].role,
                                                        &msg[i].content, &json)
                        == NGX_OK, "build_message failed");

        ngx_memzero(&back, sizeof(ngx_http_classify_msg_t));

        ngx_fuzz_assert(ngx_http_classify_parse_message(NULL, json.data,
                                                        json.len, &back)
                        == NGX_OK, "parse_message refused build_message");

        ngx_fuzz_assert(ngx_fuzz_eq(&back.role, &msg[i].role)
                        && ngx_fuzz_eq(&back.content, &msg[i].content),
                        "a context message changed in the Redis round trip");
    }

    /* an openai classifier: system prompt, the context slice, the query */

    ngx_memzero(&cl, sizeof(ngx_http_classify_classifier_t));
    cl.protocol = NGX_HTTP_CLASSIFY_PROTO_OPENAI;
    cl.model = model;
    cl.prompt = prompt;
    cl.context = (settings >> 2) % 8;
    cl.max_tokens = (settings >> 5) ? (ngx_uint_t) -1 : 5;

    ngx_fuzz_assert(ngx_http_classify_build_prefix(NULL, &cl) == NGX_OK,
                    "build_prefix failed");
    ngx_fuzz_assert(ngx_http_classify_build_body(NULL, &cl, &in, &out)
                    == NGX_OK, "build_body failed");

    first = in.context.nelts > cl.context ? in.context.nelts - cl.context : 0;

    root = cJSON_ParseWithLength((const char *) out.data, out.len);
    ngx_fuzz_assert(root != NULL, "openai classifier body is not JSON");

    arr = ngx_fuzz_get(root, "messages");
    ngx_fuzz_assert(cJSON_GetArraySize(arr)
                    == (int) (2 + in.context.nelts - first),
                    "openai body: wrong number of messages");

    ngx_fuzz_assert(ngx_fuzz_same(ngx_fuzz_get(
                        cJSON_GetArrayItem(arr, 0), "content"), &prompt),
                    "openai body: the prompt changed");

    last = cJSON_GetArrayItem(arr, cJSON_GetArraySize(arr) - 1);
    ngx_fuzz_assert(ngx_fuzz_same(ngx_fuzz_get(last, "content"),
                                  &in.query),
                    "openai body: the query changed");

    /* the context slice: the messages between the prompt and the query */

    cJSON_DeleteItemFromArray(arr, 0);
    cJSON_DeleteItemFromArray(arr, cJSON_GetArraySize(arr) - 1);
    ngx_fuzz_check_messages(arr, msg + first, in.context.nelts - first);

    cJSON_Delete(root);

    /* a json classifier: {"query", "context", "session"} */

    cl.protocol = NGX_HTTP_CLASSIFY_PROTO_JSON;

    ngx_fuzz_assert(ngx_http_classify_build_body(NULL, &cl, &in, &out)
                    == NGX_OK, "build_body failed");

    root = cJSON_ParseWithLength((const char *) out.data, out.len);
    ngx_fuzz_assert(root != NULL, "json classifier body is not JSON");

    ngx_fuzz_assert(ngx_fuzz_same(ngx_fuzz_get(root, "query"),
                                  &in.query),
                    "json body: the query changed");
    ngx_fuzz_assert(ngx_fuzz_same(ngx_fuzz_get(root, "session"),
                                  &in.session),
                    "json body: the session changed");

    ngx_fuzz_check_messages(ngx_fuzz_get(root, "context"),
                            msg + first, in.context.nelts - first);

    cJSON_Delete(root);

done:

    ngx_fuzz_pool_reset();

    return 0;
}

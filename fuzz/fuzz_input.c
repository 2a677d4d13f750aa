
/*
 * fuzz/fuzz_input.c: the request-body parser against a reference, and the
 * classifier bodies built from what it returns.
 *
 * The input: one byte of settings (bits 0-1: classify_input auto, openai,
 * fields, auto, and with bit 7 set: auto with an "anthropic-version"
 * header, anthropic, responses, auto with the header; bits 2-4: the
 * classifier's "context"; bit 5: max_tokens at its largest; bit 6: the
 * location's max_context 5 above the classifier's), then the client's
 * body.  Checked, beyond the sanitizers:
 *   - differential: the reference below, which parses with cJSON and
 *     extracts as the module did before its pull reader (every message
 *     walked, all the context kept), with the rules of each wire format
 *     (what a turn is, which parts are text), gives the same answer: the
 *     same refusal, or the same format, query, session, model, stream and
 *     include_usage flags and context, of which the module keeps the
 *     newest max_context (and at least one).
 *     Where cJSON is more lenient than RFC 8259 (bytes after the value,
 *     control characters, numbers such as 01 or 1., "\u" escapes without
 *     four hex digits), the pull reader must refuse the body at such a
 *     byte;
 *   - linear time: one parse takes at most NGX_FUZZ_BUDGET() of CPU time
 *     for its size (ngx_fuzz_timed());
 *   - a refused body always comes with a reason; an accepted one has a
 *     non-empty query without NUL bytes, context messages whose role is
 *     "user" or "assistant";
 *   - the openai and json classifier bodies built from it are valid JSON
 *     and carry the query, the session and the context slice exactly, so
 *     escaping loses nothing and the precomputed lengths are right (each
 *     buffer is its own allocation: one byte too many is an ASan report);
 *   - every context message survives the Redis round trip,
 *     build_message() then parse_message().
 */


#include "ngx_http_classify.h"
#include "ngx_http_classify_jsonr.h"
#include "ngx_http_classify_json.h"
#include "ngx_fuzz.h"

#include <cjson/cJSON.h>


/* the reference's own answers, told apart by their address */
static const char  ngx_fuzz_ref_lenient[] =
    "reference: cJSON took what RFC 8259 refuses";
static const char  ngx_fuzz_ref_invalid[] = "reference: not valid JSON";


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
ngx_fuzz_copy(const char *src, ngx_str_t *dst)
{
    dst->len = strlen(src);
    dst->data = ngx_pnalloc(NULL, dst->len + 1);
    ngx_memcpy(dst->data, src, dst->len);
}


/*
 * The reference's check of the text, written from RFC 3629's table of
 * well-formed sequences rather than by decoding; and NUL, raw or escaped.
 */

static const char *
ngx_fuzz_check_text(u_char *p, size_t len)
{
    u_char  *last, lo, hi;
    size_t   n, i;

    last = p + len;

    while (p < last) {

        if (*p < 0x80) {
            if (*p == '\0') {
                return "NUL characters (\\u0000) are not allowed";
            }

            if (*p == '\\' && last - p > 1) {
                if (last - p >= 6 && memcmp(p + 1, "u0000", 5) == 0) {
                    return "NUL characters (\\u0000) are not allowed";
                }

                p++;
            }

            p++;
            continue;
        }

        lo = 0x80;
        hi = 0xbf;

        if (*p >= 0xc2 && *p <= 0xdf) {
            n = 1;

        } else if (*p >= 0xe0 && *p <= 0xef) {
            n = 2;
            lo = (*p == 0xe0) ? 0xa0 : 0x80;
            hi = (*p == 0xed) ? 0x9f : 0xbf;

        } else if (*p >= 0xf0 && *p <= 0xf4) {
            n = 3;
            lo = (*p == 0xf0) ? 0x90 : 0x80;
            hi = (*p == 0xf4) ? 0x8f : 0xbf;

        } else {
            return "request body is not valid UTF-8";
        }

        if ((size_t) (last - p) <= n || p[1] < lo || p[1] > hi) {
            return "request body is not valid UTF-8";
        }

        for (i = 2; i <= n; i++) {
            if (p[i] < 0x80 || p[i] > 0xbf) {
                return "request body is not valid UTF-8";
            }
        }

        p += n + 1;
    }

    return NULL;
}


/* a text part: a "text" string, of no "type" or a text one */

static const char *
ngx_fuzz_part_text(cJSON *part)
{
    cJSON       *type, *text;
    const char  *t;

    text = ngx_fuzz_get(part, "text");
    type = ngx_fuzz_get(part, "type");

    if (!cJSON_IsObject(part) || !cJSON_IsString(text)) {
        return NULL;
    }

    if (type == NULL) {
        return text->valuestring;
    }

    if (!cJSON_IsString(type)) {
        return NULL;
    }

    t = type->valuestring;

    return (strcmp(t, "text") == 0 || strcmp(t, "input_text") == 0
            || strcmp(t, "output_text") == 0) ? text->valuestring : NULL;
}


/* as the module's content() does: a string, or the text parts joined */

static void
ngx_fuzz_content(cJSON *msg, ngx_str_t *dst)
{
    u_char      *p;
    size_t       len;
    cJSON       *content, *part;
    const char  *text;

    content = ngx_fuzz_get(msg, "content");

    ngx_str_null(dst);

    if (cJSON_IsString(content)) {
        ngx_fuzz_copy(content->valuestring, dst);
        return;
    }

    if (!cJSON_IsArray(content)) {
        return;
    }

    len = 1;

    cJSON_ArrayForEach(part, content) {
        text = ngx_fuzz_part_text(part);
        if (text) {
            len += strlen(text) + 1;
        }
    }

    p = ngx_pnalloc(NULL, len);
    dst->data = p;

    cJSON_ArrayForEach(part, content) {
        text = ngx_fuzz_part_text(part);
        if (text) {
            if (p != dst->data) {
                *p++ = '\n';
            }

            p = ngx_cpymem(p, text, strlen(text));
        }
    }

    dst->len = p - dst->data;
}


/* what an element of a conversation is, by each format's rules */

#define NGX_FUZZ_NONE       0   /* no role where one is required */
#define NGX_FUZZ_OTHER      1
#define NGX_FUZZ_USER       2
#define NGX_FUZZ_ASSISTANT  3

static ngx_uint_t
ngx_fuzz_role(cJSON *msg, ngx_http_classify_format_e format)
{
    cJSON       *role, *type, *part;
    ngx_uint_t   responses;

    responses = (format == NGX_HTTP_CLASSIFY_FORMAT_RESPONSES);
    role = ngx_fuzz_get(msg, "role");
    type = ngx_fuzz_get(msg, "type");

    if (!cJSON_IsObject(msg) || !cJSON_IsString(role)) {
        return responses ? NGX_FUZZ_OTHER : NGX_FUZZ_NONE;
    }

    if (responses && type
        && !(cJSON_IsString(type) && strcmp(type->valuestring, "message") == 0))
    {
        return NGX_FUZZ_OTHER;
    }

    if (strcmp(role->valuestring, "assistant") == 0) {
        return NGX_FUZZ_ASSISTANT;
    }

    if (strcmp(role->valuestring, "user") != 0) {
        return NGX_FUZZ_OTHER;
    }

    if (format == NGX_HTTP_CLASSIFY_FORMAT_ANTHROPIC
        && cJSON_IsArray(ngx_fuzz_get(msg, "content")))
    {
        cJSON_ArrayForEach(part, ngx_fuzz_get(msg, "content")) {
            type = ngx_fuzz_get(part, "type");

            if (cJSON_IsObject(part) && cJSON_IsString(type)
                && strcmp(type->valuestring, "tool_result") == 0)
            {
                return NGX_FUZZ_OTHER;
            }
        }
    }

    return NGX_FUZZ_USER;
}


static const char *
ngx_fuzz_reference_conversation(cJSON *messages, ngx_http_classify_input_t *in)
{
    int                       i, last, norole;
    cJSON                    *msg;
    ngx_uint_t                role, responses;
    ngx_http_classify_msg_t  *m;

    responses = (in->format == NGX_HTTP_CLASSIFY_FORMAT_RESPONSES);
    last = -1;
    norole = -1;
    i = 0;

    if (!cJSON_IsArray(messages)) {
        /* the content of a string or object walks nothing */
        messages = NULL;
    }

    cJSON_ArrayForEach(msg, messages) {
        role = ngx_fuzz_role(msg, in->format);

        if (role == NGX_FUZZ_NONE && norole == -1) {
            norole = i;
        }

        if (role == NGX_FUZZ_USER) {
            last = i;
        }

        i++;
    }

    if (last == -1) {
        return responses ? "no \"user\" message in \"input\""
                         : "no \"user\" message in \"messages\"";
    }

    if (norole != -1 && norole < last) {
        return "a message in \"messages\" has no \"role\"";
    }

    i = 0;

    cJSON_ArrayForEach(msg, messages) {
        if (i++ == last) {
            ngx_fuzz_content(msg, &in->query);
            break;
        }

        role = ngx_fuzz_role(msg, in->format);

        if (role == NGX_FUZZ_USER || role == NGX_FUZZ_ASSISTANT) {
            m = ngx_array_push(&in->context);
            ngx_fuzz_copy(role == NGX_FUZZ_USER ? "user" : "assistant",
                          &m->role);
            ngx_fuzz_content(msg, &m->content);
        }
    }

    if (in->query.len) {
        return NULL;
    }

    return responses ? "the last \"user\" message in \"input\" has no text "
                       "content"
                     : "the last \"user\" message has no text content";
}


/* a Responses body: "input" a string (the query) or a conversation */

static const char *
ngx_fuzz_reference_responses(cJSON *root, ngx_http_classify_input_t *in)
{
    cJSON  *input;

    input = ngx_fuzz_get(root, "input");
    in->previous = cJSON_IsString(ngx_fuzz_get(root, "previous_response_id"));

    if (cJSON_IsString(input)) {
        if (input->valuestring[0] == '\0') {
            return "\"input\" is an empty string";
        }

        ngx_fuzz_copy(input->valuestring, &in->query);
        return NULL;
    }

    if (!cJSON_IsArray(input)) {
        return "no \"input\" string or array in the request body";
    }

    return ngx_fuzz_reference_conversation(input, in);
}


/* the format, as auto detects it or as configured */

static ngx_http_classify_format_e
ngx_fuzz_reference_format(ngx_http_classify_loc_conf_t *clcf,
    ngx_uint_t anthropic, cJSON *root)
{
    cJSON  *messages;

    if (clcf->input != NGX_HTTP_CLASSIFY_INPUT_AUTO) {
        return clcf->input;
    }

    messages = ngx_fuzz_get(root, "messages");

    if (ngx_fuzz_get(root, "input") && messages == NULL) {
        return NGX_HTTP_CLASSIFY_FORMAT_RESPONSES;
    }

    if (!cJSON_IsArray(messages)) {
        return NGX_HTTP_CLASSIFY_FORMAT_FIELDS;
    }

    return anthropic ? NGX_HTTP_CLASSIFY_FORMAT_ANTHROPIC
                     : NGX_HTTP_CLASSIFY_FORMAT_OPENAI;
}


static const char *
ngx_fuzz_reference_fields(ngx_http_classify_loc_conf_t *clcf, cJSON *root,
    ngx_http_classify_input_t *in)
{
    cJSON  *item;

    item = ngx_fuzz_get(root, (char *) clcf->query_field.data);

    if (!cJSON_IsString(item) || item->valuestring[0] == '\0') {
        return "no query: the query field is missing, empty or not a string";
    }

    ngx_fuzz_copy(item->valuestring, &in->query);

    item = ngx_fuzz_get(root, (char *) clcf->session_field.data);

    if (item && !cJSON_IsString(item) && !cJSON_IsNull(item)) {
        return "the session field is not a string";
    }

    if (cJSON_IsString(item)) {
        ngx_fuzz_copy(item->valuestring, &in->session);
    }

    return NULL;
}


/* the answer the module gave before its pull reader; NULL: accepted */

static const char *
ngx_fuzz_reference(ngx_http_classify_loc_conf_t *clcf, ngx_uint_t anthropic,
    u_char *body, size_t len, ngx_http_classify_input_t *in)
{
    cJSON       *root, *item, *messages;
    const char  *err, *end;

    if (len == 0) {
        return "empty request body";
    }

    err = ngx_fuzz_check_text(body, len);
    if (err) {
        return err;
    }

    /*
     * a byte order mark is ignored (RFC 8259 8.1), here rather than by
     * cJSON, which refuses one before a number that ends the text and
     * skips one more after it
     */

    if (len >= 3 && ngx_strncmp(body, "\xef\xbb\xbf", 3) == 0) {
        body += 3;
        len -= 3;

        if (len >= 3 && ngx_strncmp(body, "\xef\xbb\xbf", 3) == 0) {
            /* cJSON would skip a second one */
            return ngx_fuzz_ref_lenient;
        }
    }

    root = cJSON_ParseWithLengthOpts((const char *) body, len, &end, 0);

    if (root == NULL) {
        return ngx_fuzz_ref_invalid;
    }

    /* cJSON takes bytes after the value; RFC 8259 does not */

    while (end < (const char *) body + len
           && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
    {
        end++;
    }

    if (end != (const char *) body + len) {
        err = ngx_fuzz_ref_lenient;
        goto done;
    }

    if (!cJSON_IsObject(root)) {
        err = "request body is not a JSON object";
        goto done;
    }

    ngx_array_init(&in->context, NULL, 8, sizeof(ngx_http_classify_msg_t));

    in->stream = cJSON_IsTrue(ngx_fuzz_get(root, "stream")) ? 1 : 0;

    item = ngx_fuzz_get(root, "model");
    if (cJSON_IsString(item)) {
        ngx_fuzz_copy(item->valuestring, &in->model);
    }

    in->format = ngx_fuzz_reference_format(clcf, anthropic, root);

    switch (in->format) {

    case NGX_HTTP_CLASSIFY_FORMAT_FIELDS:
        err = ngx_fuzz_reference_fields(clcf, root, in);
        goto done;

    case NGX_HTTP_CLASSIFY_FORMAT_RESPONSES:
        err = ngx_fuzz_reference_responses(root, in);
        break;

    default:
        messages = ngx_fuzz_get(root, "messages");

        if (!cJSON_IsArray(messages)) {
            err = "no \"messages\" array in the request body";
            goto done;
        }

        err = ngx_fuzz_reference_conversation(messages, in);

        item = ngx_fuzz_get(root, "stream_options");
        in->include_usage = in->format == NGX_HTTP_CLASSIFY_FORMAT_OPENAI
                            && cJSON_IsObject(item)
                            && cJSON_IsTrue(ngx_fuzz_get(item,
                                                         "include_usage"));
        break;
    }

    item = ngx_fuzz_get(root, (char *) clcf->session_field.data);

    if (err == NULL && cJSON_IsString(item)) {
        ngx_fuzz_copy(item->valuestring, &in->session);
    }

done:

    cJSON_Delete(root);

    return err;
}


/* refused as JSON by the module: not valid, or nested too deep */

static ngx_int_t
ngx_fuzz_json_refusal(const char *err)
{
    return strcmp(err, "request body is not valid JSON") == 0
           || strcmp(err, "request body is nested deeper than 1000 levels")
              == 0;
}


/* refused by the reference before any JSON was read */

static ngx_int_t
ngx_fuzz_text_refusal(const char *ref)
{
    return ref != NULL && ref != ngx_fuzz_ref_lenient
           && (strcmp(ref, "empty request body") == 0
               || strcmp(ref, "request body is not valid UTF-8") == 0
               || strcmp(ref, "NUL characters (\\u0000) are not allowed")
                  == 0);
}


/*
 * The module refused what cJSON took: that must be one of cJSON's
 * liberties, and the reader must have stopped at it: a control character
 * (cJSON takes any byte below 0x20 as white space and inside strings), a
 * number RFC 8259 does not write (01, 1., 1.e5), a "\u" escape that is not
 * four hex digits (cJSON decodes "\u0ege" or "\u+123"), or bytes after the
 * value.
 */

static void
ngx_fuzz_check_lenient(u_char *body, size_t len, const char *ref)
{
    u_char                     *p;
    ngx_http_classify_jsonr_t   jr;

    ngx_fuzz_assert(ngx_http_classify_jsonr_valid(body, len, &jr) != NGX_OK,
                    "the body was refused as JSON the reader takes");

    if (ref == ngx_fuzz_ref_lenient) {
        return;
    }

    p = jr.pos;

#define ngx_fuzz_numeric(c)                                                   \
    (((c) >= '0' && (c) <= '9') || (c) == '.' || (c) == 'e' || (c) == 'E'     \
     || (c) == '+' || (c) == '-')

    ngx_fuzz_assert((p < body + len && (*p < 0x20 || ngx_fuzz_numeric(*p)))
                    || (p > body && ngx_fuzz_numeric(p[-1]))
                    || (body + len - p >= 2 && p[0] == '\\' && p[1] == 'u'),
                    "the reader refused JSON that cJSON takes, and not at "
                    "one of cJSON's liberties");
}


static void
ngx_fuzz_compare(ngx_http_classify_loc_conf_t *clcf, ngx_uint_t anthropic,
    u_char *body, size_t len, ngx_int_t rc, const char *err,
    ngx_http_classify_input_t *in)
{
    const char                 *ref;
    ngx_uint_t                  i, keep, first;
    ngx_http_classify_msg_t    *a, *b;
    ngx_http_classify_input_t   want;

    ngx_memzero(&want, sizeof(ngx_http_classify_input_t));

    ref = ngx_fuzz_reference(clcf, anthropic, body, len, &want);

    if (ref == ngx_fuzz_ref_invalid) {
        ngx_fuzz_assert(rc == NGX_DECLINED && ngx_fuzz_json_refusal(err),
                        "the reader took a body cJSON refuses");
        return;
    }

    if (rc == NGX_DECLINED && ngx_fuzz_json_refusal(err)
        && !ngx_fuzz_text_refusal(ref))
    {
        ngx_fuzz_check_lenient(body, len, ref);
        return;
    }

    ngx_fuzz_assert(ref != ngx_fuzz_ref_lenient,
                    "the reader took bytes after the JSON value");

    if (ref) {
        ngx_fuzz_assert(rc == NGX_DECLINED && strcmp(err, ref) == 0,
                        "not the reference's refusal");
        return;
    }

    ngx_fuzz_assert(rc == NGX_OK, "refused a body the reference takes");

    ngx_fuzz_assert(ngx_fuzz_eq(&in->query, &want.query),
                    "not the reference's query");
    ngx_fuzz_assert(ngx_fuzz_eq(&in->session, &want.session),
                    "not the reference's session");
    ngx_fuzz_assert(ngx_fuzz_eq(&in->model, &want.model),
                    "not the reference's model");
    ngx_fuzz_assert(in->stream == want.stream && in->format == want.format
                    && in->include_usage == want.include_usage
                    && in->previous == want.previous,
                    "not the reference's format, stream or input flags");

    /* the newest max_context (at least one) of the reference's context */

    keep = ngx_min(want.context.nelts, ngx_max(clcf->max_context, 1));
    first = want.context.nelts - keep;

    ngx_fuzz_assert(in->context.nelts == keep,
                    "not the newest max_context of the reference's context");

    a = in->context.elts;
    b = want.context.elts;

    for (i = 0; i < keep; i++) {
        ngx_fuzz_assert(ngx_fuzz_eq(&a[i].role, &b[first + i].role)
                        && ngx_fuzz_eq(&a[i].content, &b[first + i].content),
                        "a context message is not the reference's");
    }
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


/* the classifier bodies built from an accepted body */

static void
ngx_fuzz_check_bodies(u_char settings, ngx_http_classify_input_t *in)
{
    ngx_str_t                        out, json;
    ngx_uint_t                       i, first;
    cJSON                           *root, *arr, *last;
    ngx_http_classify_msg_t         *msg, back;
    ngx_http_classify_classifier_t   cl;

    static ngx_str_t  prompt = ngx_string("Is this \"off-topic\"?\n\tAnswer.");
    static ngx_str_t  model = ngx_string("classifier-mini");

    ngx_fuzz_assert(in->query.len > 0, "an accepted body with no query");
    ngx_fuzz_assert(memchr(in->query.data, '\0', in->query.len) == NULL,
                    "a NUL inside the query");

    msg = in->context.elts;

    for (i = 0; i < in->context.nelts; i++) {
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
    cl.context = (settings >> 2) & 7;
    cl.max_tokens = (settings & 0x20) ? (ngx_uint_t) -1 : 5;

    ngx_fuzz_assert(ngx_http_classify_build_prefix(NULL, &cl) == NGX_OK,
                    "build_prefix failed");
    ngx_fuzz_assert(ngx_http_classify_build_body(NULL, &cl, in, &out)
                    == NGX_OK, "build_body failed");

    first = in->context.nelts > cl.context ? in->context.nelts - cl.context
                                           : 0;

    root = cJSON_ParseWithLength((const char *) out.data, out.len);
    ngx_fuzz_assert(root != NULL, "openai classifier body is not JSON");

    arr = ngx_fuzz_get(root, "messages");
    ngx_fuzz_assert(cJSON_GetArraySize(arr)
                    == (int) (2 + in->context.nelts - first),
                    "openai body: wrong number of messages");

    ngx_fuzz_assert(ngx_fuzz_same(ngx_fuzz_get(
                        cJSON_GetArrayItem(arr, 0), "content"), &prompt),
                    "openai body: the prompt changed");

    last = cJSON_GetArrayItem(arr, cJSON_GetArraySize(arr) - 1);
    ngx_fuzz_assert(ngx_fuzz_same(ngx_fuzz_get(last, "content"),
                                  &in->query),
                    "openai body: the query changed");

    /* the context slice: the messages between the prompt and the query */

    cJSON_DeleteItemFromArray(arr, 0);
    cJSON_DeleteItemFromArray(arr, cJSON_GetArraySize(arr) - 1);
    ngx_fuzz_check_messages(arr, msg + first, in->context.nelts - first);

    cJSON_Delete(root);

    /* a json classifier: {"query", "context", "session"} */

    cl.protocol = NGX_HTTP_CLASSIFY_PROTO_JSON;

    ngx_fuzz_assert(ngx_http_classify_build_body(NULL, &cl, in, &out)
                    == NGX_OK, "build_body failed");

    root = cJSON_ParseWithLength((const char *) out.data, out.len);
    ngx_fuzz_assert(root != NULL, "json classifier body is not JSON");

    ngx_fuzz_assert(ngx_fuzz_same(ngx_fuzz_get(root, "query"),
                                  &in->query),
                    "json body: the query changed");
    ngx_fuzz_assert(ngx_fuzz_same(ngx_fuzz_get(root, "session"),
                                  &in->session),
                    "json body: the session changed");

    ngx_fuzz_check_messages(ngx_fuzz_get(root, "context"),
                            msg + first, in->context.nelts - first);

    cJSON_Delete(root);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                          *body, settings;
    size_t                           len;
    ngx_uint_t                       anthropic;
    ngx_int_t                        rc;
    const char                      *err;
    ngx_http_classify_input_t        in;
    ngx_http_classify_loc_conf_t     clcf;

    if (size == 0) {
        return 0;
    }

    settings = data[0];

    ngx_memzero(&clcf, sizeof(ngx_http_classify_loc_conf_t));
    anthropic = 0;

    switch (settings & 3) {
    case 1:
        clcf.input = (settings & 0x80) ? NGX_HTTP_CLASSIFY_INPUT_ANTHROPIC
                                       : NGX_HTTP_CLASSIFY_INPUT_OPENAI;
        break;
    case 2:
        clcf.input = (settings & 0x80) ? NGX_HTTP_CLASSIFY_INPUT_RESPONSES
                                       : NGX_HTTP_CLASSIFY_INPUT_FIELDS;
        break;
    default:
        clcf.input = NGX_HTTP_CLASSIFY_INPUT_AUTO;
        anthropic = (settings & 0x80) ? 1 : 0;
    }
    clcf.max_context = ((settings >> 2) & 7) + ((settings & 0x40) ? 5 : 0);
    ngx_str_set(&clcf.query_field, "user_query");
    ngx_str_set(&clcf.session_field, "session_id");

    /* the body in a block of its exact size */

    len = size - 1;
    body = ngx_pnalloc(NULL, len ? len : 1);
    ngx_memcpy(body, data + 1, len);

    ngx_fuzz_timed(len,
                   ngx_memzero(&in, sizeof(ngx_http_classify_input_t));
                   err = NULL;
                   rc = ngx_http_classify_parse_input(NULL, &clcf, anthropic,
                                                      body, len, &in, &err),
                   "parse_input");

    ngx_fuzz_assert(rc == NGX_OK || rc == NGX_DECLINED,
                    "parse_input failed without running out of memory");

    ngx_fuzz_assert(rc == NGX_OK || (err != NULL && err[0] != '\0'),
                    "a body refused without a reason");

    ngx_fuzz_compare(&clcf, anthropic, body, len, rc, err, &in);

    if (rc == NGX_OK) {
        ngx_fuzz_check_bodies(settings, &in);
    }

    ngx_fuzz_pool_reset();

    return 0;
}


/*
 * ngx_http_classify_module: the client's body -> query, session, context.
 *
 * classify_input openai: a chat-completions request; the query is the
 * last "user" message and the context the user and assistant messages
 * before it ("system" and tool messages are the application's business,
 * not the classifiers').  classify_input fields: {"user_query": ...,
 * "session_id": ...}, with names set by classify_query_field and
 * classify_session_field.  auto: openai when "messages" is an array.
 *
 * The body is read with the pull reader in linear time, whatever its
 * shape.  One pass validates it, notes where the members that matter are
 * and walks "messages" for the roles alone: where the newest user turn
 * starts, and where the context window before it starts (the "context"
 * of the location's hungriest classifier).  A second walk goes from the
 * window to that turn and decodes what is there.  Nothing else is
 * decoded, no tree is built.
 *
 * Returns NGX_OK, NGX_DECLINED with *err naming what is wrong with the
 * body (the client gets a 400), or NGX_ERROR when memory ran out.
 */


#include "ngx_http_classify.h"
#include "ngx_http_classify_jsonr.h"


/* the members of the body that matter */
#define NGX_HTTP_CLASSIFY_FIELD_STREAM     0
#define NGX_HTTP_CLASSIFY_FIELD_MODEL      1
#define NGX_HTTP_CLASSIFY_FIELD_MESSAGES   2
#define NGX_HTTP_CLASSIFY_FIELD_QUERY      3
#define NGX_HTTP_CLASSIFY_FIELD_SESSION    4
#define NGX_HTTP_CLASSIFY_FIELD_N          5

/* a message's "role" */
#define NGX_HTTP_CLASSIFY_ROLE_NONE        0   /* missing, not a string */
#define NGX_HTTP_CLASSIFY_ROLE_OTHER       1
#define NGX_HTTP_CLASSIFY_ROLE_USER        2
#define NGX_HTTP_CLASSIFY_ROLE_ASSISTANT   3


/* what the first walk of "messages" found */
typedef struct {
    u_char                **ring;      /* where the last "window" turns start */
    ngx_uint_t              window;
    ngx_uint_t              count;     /* user and assistant messages */
    ngx_int_t               last;      /* the newest user turn, or -1 */
    ngx_int_t               norole;    /* the first message without a role */
    u_char                 *query;     /* where the newest user turn starts */
    u_char                 *start;     /* ... and the window before it */
} ngx_http_classify_turns_t;


static ngx_int_t ngx_http_classify_check_text(u_char *p, size_t len,
    const char **err);
static ngx_int_t ngx_http_classify_read_body(ngx_pool_t *pool,
    ngx_http_classify_loc_conf_t *clcf, u_char *data, size_t len,
    ngx_http_classify_jsonr_field_t *f, ngx_http_classify_turns_t *turns,
    const char **err);
static ngx_int_t ngx_http_classify_read_turns(ngx_http_classify_jsonr_t *jr,
    void *data);
static ngx_int_t ngx_http_classify_parse_openai(ngx_pool_t *pool,
    ngx_str_t *messages, ngx_http_classify_turns_t *turns,
    ngx_http_classify_input_t *in, const char **err);
static ngx_int_t ngx_http_classify_parse_fields(ngx_pool_t *pool,
    ngx_http_classify_jsonr_field_t *f, ngx_http_classify_input_t *in,
    const char **err);
static ngx_uint_t ngx_http_classify_message(ngx_http_classify_jsonr_t *jr,
    ngx_http_classify_jsonr_field_t *content);
static ngx_int_t ngx_http_classify_content(ngx_pool_t *pool,
    ngx_http_classify_jsonr_field_t *content, ngx_str_t *dst);
static ngx_int_t ngx_http_classify_string(ngx_pool_t *pool,
    ngx_str_t *span, ngx_str_t *dst);


static ngx_str_t  ngx_http_classify_role[] = {
    ngx_null_string,
    ngx_null_string,
    ngx_string("user"),
    ngx_string("assistant")
};


ngx_int_t
ngx_http_classify_parse_input(ngx_pool_t *pool,
    ngx_http_classify_loc_conf_t *clcf, u_char *data, size_t len,
    ngx_http_classify_input_t *in, const char **err)
{
    ngx_int_t                         rc;
    ngx_uint_t                        openai;
    ngx_http_classify_turns_t         turns;
    ngx_http_classify_jsonr_field_t   f[NGX_HTTP_CLASSIFY_FIELD_N];

    if (len == 0) {
        *err = "empty request body";
        return NGX_DECLINED;
    }

    rc = ngx_http_classify_check_text(data, len, err);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_http_classify_read_body(pool, clcf, data, len, f, &turns, err);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_array_init(&in->context, pool, 8, sizeof(ngx_http_classify_msg_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    in->stream = (f[NGX_HTTP_CLASSIFY_FIELD_STREAM].type
                  == NGX_HTTP_CLASSIFY_JSON_TRUE);

    if (f[NGX_HTTP_CLASSIFY_FIELD_MODEL].type == NGX_HTTP_CLASSIFY_JSON_STRING
        && ngx_http_classify_string(pool,
                                    &f[NGX_HTTP_CLASSIFY_FIELD_MODEL].value,
                                    &in->model)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    openai = (f[NGX_HTTP_CLASSIFY_FIELD_MESSAGES].type
              == NGX_HTTP_CLASSIFY_JSON_ARRAY);

    switch (clcf->input) {

    case NGX_HTTP_CLASSIFY_INPUT_OPENAI:
        if (!openai) {
            *err = "no \"messages\" array in the request body";
            return NGX_DECLINED;
        }

        break;

    case NGX_HTTP_CLASSIFY_INPUT_FIELDS:
        openai = 0;
        break;

    default: /* NGX_HTTP_CLASSIFY_INPUT_AUTO */
        break;
    }

    if (!openai) {
        return ngx_http_classify_parse_fields(pool, f, in, err);
    }

    rc = ngx_http_classify_parse_openai(pool,
                                    &f[NGX_HTTP_CLASSIFY_FIELD_MESSAGES].value,
                                    &turns, in, err);

    /* an openai client may still name its conversation */

    if (rc == NGX_OK
        && f[NGX_HTTP_CLASSIFY_FIELD_SESSION].type
           == NGX_HTTP_CLASSIFY_JSON_STRING)
    {
        rc = ngx_http_classify_string(pool,
                                      &f[NGX_HTTP_CLASSIFY_FIELD_SESSION].value,
                                      &in->session);
    }

    return rc;
}


/*
 * The pass over the whole body: validated, the members that matter noted
 * (f), "messages" walked for its roles (turns) unless the input is fields.
 */

static ngx_int_t
ngx_http_classify_read_body(ngx_pool_t *pool,
    ngx_http_classify_loc_conf_t *clcf, u_char *data, size_t len,
    ngx_http_classify_jsonr_field_t *f, ngx_http_classify_turns_t *turns,
    const char **err)
{
    ngx_int_t                   rc;
    ngx_uint_t                  object;
    ngx_http_classify_jsonr_t   jr;

    ngx_memzero(f, NGX_HTTP_CLASSIFY_FIELD_N
                   * sizeof(ngx_http_classify_jsonr_field_t));
    ngx_str_set(&f[NGX_HTTP_CLASSIFY_FIELD_STREAM].name, "stream");
    ngx_str_set(&f[NGX_HTTP_CLASSIFY_FIELD_MODEL].name, "model");
    ngx_str_set(&f[NGX_HTTP_CLASSIFY_FIELD_MESSAGES].name, "messages");
    f[NGX_HTTP_CLASSIFY_FIELD_QUERY].name = clcf->query_field;
    f[NGX_HTTP_CLASSIFY_FIELD_SESSION].name = clcf->session_field;

    ngx_memzero(turns, sizeof(ngx_http_classify_turns_t));
    turns->last = -1;
    turns->norole = -1;

    if (clcf->input != NGX_HTTP_CLASSIFY_INPUT_FIELDS) {

        /*
         * The window is the location's max_context, and at least one
         * message, so that whether the body carries any history at all
         * stays known (Redis is read only for a body without).
         */

        turns->window = ngx_max(clcf->max_context, 1);

        turns->ring = ngx_palloc(pool, turns->window * sizeof(u_char *));
        if (turns->ring == NULL) {
            return NGX_ERROR;
        }

        f[NGX_HTTP_CLASSIFY_FIELD_MESSAGES].read = ngx_http_classify_read_turns;
        f[NGX_HTTP_CLASSIFY_FIELD_MESSAGES].data = turns;
    }

    ngx_http_classify_jsonr_init(&jr, data, len);

    object = (ngx_http_classify_jsonr_peek(&jr)
              == NGX_HTTP_CLASSIFY_JSON_OBJECT);

    if (object) {
        rc = ngx_http_classify_jsonr_fields(&jr, f, NGX_HTTP_CLASSIFY_FIELD_N);

    } else {
        rc = ngx_http_classify_jsonr_skip(&jr, NULL);
    }

    if (rc != NGX_OK || ngx_http_classify_jsonr_end(&jr) != NGX_OK) {
        *err = jr.too_deep ? "request body is nested deeper than "
                             ngx_value(NGX_HTTP_CLASSIFY_JSONR_MAX_DEPTH)
                             " levels"
                           : "request body is not valid JSON";
        return NGX_DECLINED;
    }

    if (!object) {
        *err = "request body is not a JSON object";
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * JSON is UTF-8 (RFC 8259): anything else would reach the classifiers as it
 * came, so the body is checked strictly (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF).  And a NUL byte or an escaped
 * "\u0000" would cut the query short wherever it is read as a C string:
 * refused instead.  Done before the JSON is read, so that such a body is
 * named for what it is even when it is not valid JSON either.
 */

static ngx_int_t
ngx_http_classify_check_text(u_char *p, size_t len, const char **err)
{
    u_char  *last;
    size_t   n;

    last = p + len;

    while (p < last) {

        if (*p >= 0x80) {
            n = ngx_http_classify_utf8_len(p, last);

            if (n == 0) {
                *err = "request body is not valid UTF-8";
                return NGX_DECLINED;
            }

            p += n;
            continue;
        }

        if (*p == '\\' && last - p > 1) {
            if (last - p >= 6 && ngx_strncmp(p + 1, "u0000", 5) == 0) {
                goto nul;
            }

            p += 2;
            continue;
        }

        if (*p++ == '\0') {
            goto nul;
        }
    }

    return NGX_OK;

nul:

    *err = "NUL characters (\\u0000) are not allowed";
    return NGX_DECLINED;
}


/*
 * The first walk of "messages", in the pass that validates the body: the
 * roles alone.  For each user turn it notes where the turn starts and
 * where the window of the "window" user and assistant messages before it
 * starts, from a ring of where the latest ones started.
 */

static ngx_int_t
ngx_http_classify_read_turns(ngx_http_classify_jsonr_t *jr, void *data)
{
    ngx_http_classify_turns_t  *turns = data;

    u_char                           *pos;
    ngx_int_t                         i;
    ngx_uint_t                        role, slot;
    ngx_http_classify_jsonr_field_t   content;

    if (ngx_http_classify_jsonr_peek(jr) != NGX_HTTP_CLASSIFY_JSON_ARRAY) {
        return ngx_http_classify_jsonr_skip(jr, NULL);
    }

    (void) ngx_http_classify_jsonr_array(jr);

    for (i = 0; ngx_http_classify_jsonr_element(jr) == NGX_OK; i++) {

        (void) ngx_http_classify_jsonr_peek(jr);
        pos = jr->pos;

        role = ngx_http_classify_message(jr, &content);

        if (role == NGX_HTTP_CLASSIFY_ROLE_NONE && turns->norole == -1) {
            turns->norole = i;
        }

        if (role < NGX_HTTP_CLASSIFY_ROLE_USER) {
            continue;
        }

        slot = turns->count % turns->window;

        if (role == NGX_HTTP_CLASSIFY_ROLE_USER) {
            turns->last = i;
            turns->query = pos;

            /* the slot of the oldest turn of the window, until overwritten */

            turns->start = (turns->count == 0) ? pos
                           : turns->ring[turns->count < turns->window
                                         ? 0 : slot];
        }

        turns->ring[slot] = pos;
        turns->count++;
    }

    return jr->err ? NGX_ERROR : NGX_OK;
}


/* the second walk: from the window's start to the newest user turn */

static ngx_int_t
ngx_http_classify_parse_openai(ngx_pool_t *pool, ngx_str_t *messages,
    ngx_http_classify_turns_t *turns, ngx_http_classify_input_t *in,
    const char **err)
{
    u_char                           *pos;
    ngx_uint_t                        role;
    ngx_http_classify_msg_t          *m;
    ngx_http_classify_jsonr_t         jr;
    ngx_http_classify_jsonr_field_t   content;

    in->openai = 1;

    if (turns->last == -1) {
        *err = "no \"user\" message in \"messages\"";
        return NGX_DECLINED;
    }

    if (turns->norole != -1 && turns->norole < turns->last) {
        *err = "a message in \"messages\" has no \"role\"";
        return NGX_DECLINED;
    }

    ngx_http_classify_jsonr_resume(&jr, messages, turns->start);

    while (ngx_http_classify_jsonr_element(&jr) == NGX_OK) {

        (void) ngx_http_classify_jsonr_peek(&jr);
        pos = jr.pos;

        role = ngx_http_classify_message(&jr, &content);

        if (pos == turns->query) {
            if (ngx_http_classify_content(pool, &content, &in->query)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            break;
        }

        if (role < NGX_HTTP_CLASSIFY_ROLE_USER) {
            continue;
        }

        m = ngx_array_push(&in->context);
        if (m == NULL) {
            return NGX_ERROR;
        }

        m->role = ngx_http_classify_role[role];

        if (ngx_http_classify_content(pool, &content, &m->content) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (jr.err) {
        /* cannot happen: the whole body was validated */
        return NGX_ERROR;
    }

    if (in->query.len == 0) {
        *err = "the last \"user\" message has no text content";
        return NGX_DECLINED;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_classify_parse_fields(ngx_pool_t *pool,
    ngx_http_classify_jsonr_field_t *f, ngx_http_classify_input_t *in,
    const char **err)
{
    ngx_http_classify_jsonr_field_t  *query, *session;

    query = &f[NGX_HTTP_CLASSIFY_FIELD_QUERY];
    session = &f[NGX_HTTP_CLASSIFY_FIELD_SESSION];

    /* an empty string's span is its two quotes */

    if (query->type != NGX_HTTP_CLASSIFY_JSON_STRING || query->value.len == 2)
    {
        *err = "no query: the query field is missing, empty or not a string";
        return NGX_DECLINED;
    }

    if (ngx_http_classify_string(pool, &query->value, &in->query) != NGX_OK) {
        return NGX_ERROR;
    }

    switch (session->type) {

    case NGX_HTTP_CLASSIFY_JSON_STRING:
        return ngx_http_classify_string(pool, &session->value, &in->session);

    case NGX_HTTP_CLASSIFY_JSON_NONE:
    case NGX_HTTP_CLASSIFY_JSON_NULL:
        return NGX_OK;

    default:
        *err = "the session field is not a string";
        return NGX_DECLINED;
    }
}


/* one element of "messages": its role, and its "content" member */

static ngx_uint_t
ngx_http_classify_message(ngx_http_classify_jsonr_t *jr,
    ngx_http_classify_jsonr_field_t *content)
{
    ngx_str_t                         raw;
    ngx_http_classify_jsonr_field_t   f[2];

    content->type = NGX_HTTP_CLASSIFY_JSON_NONE;

    if (ngx_http_classify_jsonr_peek(jr) != NGX_HTTP_CLASSIFY_JSON_OBJECT) {
        (void) ngx_http_classify_jsonr_skip(jr, NULL);
        return NGX_HTTP_CLASSIFY_ROLE_NONE;
    }

    ngx_memzero(f, sizeof(f));
    ngx_str_set(&f[0].name, "role");
    ngx_str_set(&f[1].name, "content");

    if (ngx_http_classify_jsonr_fields(jr, f, 2) != NGX_OK
        || f[0].type != NGX_HTTP_CLASSIFY_JSON_STRING)
    {
        return NGX_HTTP_CLASSIFY_ROLE_NONE;
    }

    *content = f[1];

    ngx_http_classify_jsonr_unquote(&f[0].value, &raw);

    if (ngx_http_classify_jsonr_is(&raw, "user")) {
        return NGX_HTTP_CLASSIFY_ROLE_USER;
    }

    if (ngx_http_classify_jsonr_is(&raw, "assistant")) {
        return NGX_HTTP_CLASSIFY_ROLE_ASSISTANT;
    }

    return NGX_HTTP_CLASSIFY_ROLE_OTHER;
}


/* "content" is a string, or an array of parts whose "text" parts count */

static ngx_int_t
ngx_http_classify_content(ngx_pool_t *pool,
    ngx_http_classify_jsonr_field_t *content, ngx_str_t *dst)
{
    u_char                           *p;
    ngx_str_t                         raw;
    ngx_http_classify_jsonr_t         jr;
    ngx_http_classify_jsonr_field_t   text;

    if (content->type == NGX_HTTP_CLASSIFY_JSON_STRING) {
        return ngx_http_classify_string(pool, &content->value, dst);
    }

    ngx_str_null(dst);

    if (content->type != NGX_HTTP_CLASSIFY_JSON_ARRAY) {
        return NGX_OK;
    }

    /* the texts and a "\n" between two never take more than the array */

    p = ngx_pnalloc(pool, content->value.len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    dst->data = p;

    ngx_memzero(&text, sizeof(ngx_http_classify_jsonr_field_t));
    ngx_str_set(&text.name, "text");

    ngx_http_classify_jsonr_init(&jr, content->value.data, content->value.len);
    (void) ngx_http_classify_jsonr_array(&jr);

    while (ngx_http_classify_jsonr_element(&jr) == NGX_OK) {

        if (ngx_http_classify_jsonr_peek(&jr) != NGX_HTTP_CLASSIFY_JSON_OBJECT)
        {
            (void) ngx_http_classify_jsonr_skip(&jr, NULL);
            continue;
        }

        if (ngx_http_classify_jsonr_fields(&jr, &text, 1) != NGX_OK
            || text.type != NGX_HTTP_CLASSIFY_JSON_STRING)
        {
            continue;
        }

        if (p != dst->data) {
            *p++ = '\n';
        }

        ngx_http_classify_jsonr_unquote(&text.value, &raw);
        p = ngx_http_classify_jsonr_copy(p, &raw);
    }

    dst->len = p - dst->data;

    return jr.err ? NGX_ERROR : NGX_OK;
}


/* a string value's span, decoded */

static ngx_int_t
ngx_http_classify_string(ngx_pool_t *pool, ngx_str_t *span, ngx_str_t *dst)
{
    ngx_str_t  raw;

    ngx_http_classify_jsonr_unquote(span, &raw);

    return ngx_http_classify_jsonr_decode(pool, &raw, dst);
}


/*
 * One element of a Redis context list: {"role": ..., "content": ...},
 * both strings.  NGX_DECLINED for anything else.
 */

ngx_int_t
ngx_http_classify_parse_message(ngx_pool_t *pool, u_char *data, size_t len,
    ngx_http_classify_msg_t *msg)
{
    ngx_http_classify_jsonr_t         jr;
    ngx_http_classify_jsonr_field_t   f[2];

    ngx_memzero(f, sizeof(f));
    ngx_str_set(&f[0].name, "role");
    ngx_str_set(&f[1].name, "content");

    ngx_http_classify_jsonr_init(&jr, data, len);

    if (ngx_http_classify_jsonr_peek(&jr) != NGX_HTTP_CLASSIFY_JSON_OBJECT
        || ngx_http_classify_jsonr_fields(&jr, f, 2) != NGX_OK
        || ngx_http_classify_jsonr_end(&jr) != NGX_OK
        || f[0].type != NGX_HTTP_CLASSIFY_JSON_STRING
        || f[1].type != NGX_HTTP_CLASSIFY_JSON_STRING)
    {
        return NGX_DECLINED;
    }

    if (ngx_http_classify_string(pool, &f[0].value, &msg->role) != NGX_OK
        || ngx_http_classify_string(pool, &f[1].value, &msg->content)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}

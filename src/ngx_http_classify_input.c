
/*
 * ngx_http_classify_module: the client's body -> query, session, context.
 *
 * Four wire formats (classify_input; ngx_http_classify_input.h):
 *   openai     a chat-completions request: the conversation is "messages";
 *   anthropic  an Anthropic Messages request: "messages" too, and a user
 *              message that carries a "tool_result" block is a tool's
 *              answer, not the user's turn;
 *   responses  an OpenAI Responses request: "input" is the query itself
 *              (a string) or the conversation (an array of items: messages
 *              with a "role", function calls and their outputs without);
 *   fields     {"user_query": ..., "session_id": ...}, with names set by
 *              classify_query_field and classify_session_field.
 * auto: responses when the body has "input" and no "messages"; anthropic
 * when it has a "messages" array and the request an "anthropic-version"
 * header; openai when it has a "messages" array; else fields.
 *
 * The query is the newest user turn's text: a string, or the text parts of
 * a content array joined by "\n" (image, file, audio parts are skipped and
 * counted); the context is the user and assistant messages before it.
 * Whatever comes after that turn (assistant tool calls, tool results) is
 * not read: an agent's tool loop shows the classifiers the same query and
 * context at every step.  System prompts ("system" and "developer"
 * messages, Anthropic's top-level "system", Responses' "instructions") are
 * the application's words, not the user's: classifiers never see them.
 *
 * The body is read with the pull reader in linear time, whatever its
 * shape.  One pass validates it, notes where the members that matter are
 * and walks the conversation for the roles alone: where the newest user
 * turn starts, and where the context window before it starts (the
 * "context" of the location's hungriest classifier).  A second walk goes
 * from the window to that turn and decodes what is there.  Nothing else
 * is decoded, no tree is built.
 *
 * Returns NGX_OK, NGX_DECLINED with *err naming what is wrong with the
 * body (the client gets a 400), or NGX_ERROR when memory ran out.
 * in->format is set as soon as the format is known, even for a body then
 * refused, so that the refusal has the format's error shape.
 */


#include "ngx_http_classify.h"
#include "ngx_http_classify_jsonr.h"


/* the members of the body that matter */
#define NGX_HTTP_CLASSIFY_FIELD_STREAM     0
#define NGX_HTTP_CLASSIFY_FIELD_MODEL      1
#define NGX_HTTP_CLASSIFY_FIELD_MESSAGES   2
#define NGX_HTTP_CLASSIFY_FIELD_INPUT      3
#define NGX_HTTP_CLASSIFY_FIELD_OPTIONS    4   /* "stream_options" */
#define NGX_HTTP_CLASSIFY_FIELD_PREVIOUS   5   /* "previous_response_id" */
#define NGX_HTTP_CLASSIFY_FIELD_QUERY      6
#define NGX_HTTP_CLASSIFY_FIELD_SESSION    7
#define NGX_HTTP_CLASSIFY_FIELD_N          8

/* what an element of the conversation is */
#define NGX_HTTP_CLASSIFY_ROLE_NONE        0   /* no "role" string */
#define NGX_HTTP_CLASSIFY_ROLE_OTHER       1   /* system, tool, a call ... */
#define NGX_HTTP_CLASSIFY_ROLE_USER        2
#define NGX_HTTP_CLASSIFY_ROLE_ASSISTANT   3

/* the conversations walked in the first pass */
#define NGX_HTTP_CLASSIFY_TURNS_MESSAGES   0
#define NGX_HTTP_CLASSIFY_TURNS_INPUT      1


/* what the first walk of a conversation found */
typedef struct {
    ngx_http_classify_format_e  format;    /* how its elements read */
    u_char                    **ring;      /* where the last "window" start */
    ngx_uint_t                  window;
    ngx_uint_t                  count;     /* user and assistant messages */
    ngx_int_t                   last;      /* the newest user turn, or -1 */
    ngx_int_t                   norole;    /* the first without a role */
    u_char                     *query;     /* where that user turn starts */
    u_char                     *start;     /* ... and the window before it */
} ngx_http_classify_turns_t;


static ngx_int_t ngx_http_classify_check_text(u_char *p, size_t len,
    const char **err);
static ngx_int_t ngx_http_classify_read_body(ngx_pool_t *pool,
    ngx_http_classify_loc_conf_t *clcf, ngx_flag_t anthropic, u_char *data,
    size_t len, ngx_http_classify_jsonr_field_t *f,
    ngx_http_classify_turns_t *turns, const char **err);
static ngx_int_t ngx_http_classify_walk(ngx_pool_t *pool,
    ngx_http_classify_turns_t *turns, ngx_uint_t window,
    ngx_http_classify_format_e format, ngx_http_classify_jsonr_field_t *f);
static ngx_http_classify_format_e ngx_http_classify_detect(ngx_uint_t input,
    ngx_flag_t anthropic, ngx_http_classify_jsonr_field_t *f);
static ngx_int_t ngx_http_classify_read_turns(ngx_http_classify_jsonr_t *jr,
    void *data);
static ngx_int_t ngx_http_classify_parse_responses(ngx_pool_t *pool,
    ngx_http_classify_jsonr_field_t *f, ngx_http_classify_turns_t *turns,
    ngx_http_classify_input_t *in, const char **err);
static ngx_int_t ngx_http_classify_parse_conversation(ngx_pool_t *pool,
    ngx_str_t *array, ngx_http_classify_turns_t *turns,
    ngx_http_classify_input_t *in, const char **err);
static ngx_int_t ngx_http_classify_parse_fields(ngx_pool_t *pool,
    ngx_http_classify_jsonr_field_t *f, ngx_http_classify_input_t *in,
    const char **err);
static ngx_uint_t ngx_http_classify_message(ngx_http_classify_jsonr_t *jr,
    ngx_http_classify_format_e format, ngx_uint_t known,
    ngx_http_classify_jsonr_field_t *content);
static ngx_uint_t ngx_http_classify_tool_result(
    ngx_http_classify_jsonr_field_t *content);
static ngx_uint_t ngx_http_classify_include_usage(
    ngx_http_classify_jsonr_field_t *options);
static ngx_int_t ngx_http_classify_content(ngx_pool_t *pool,
    ngx_http_classify_jsonr_field_t *content, ngx_str_t *dst,
    ngx_uint_t *skipped);
static ngx_uint_t ngx_http_classify_text_part(ngx_http_classify_jsonr_t *jr,
    ngx_str_t *raw);
static ngx_int_t ngx_http_classify_string(ngx_pool_t *pool,
    ngx_str_t *span, ngx_str_t *dst);


ngx_str_t  ngx_http_classify_format_names[] = {
    ngx_null_string,
    ngx_string("openai"),
    ngx_string("fields"),
    ngx_string("responses"),
    ngx_string("anthropic")
};


static ngx_str_t  ngx_http_classify_role[] = {
    ngx_null_string,
    ngx_null_string,
    ngx_string("user"),
    ngx_string("assistant")
};


ngx_int_t
ngx_http_classify_parse_input(ngx_pool_t *pool,
    ngx_http_classify_loc_conf_t *clcf, ngx_flag_t anthropic, u_char *data,
    size_t len, ngx_http_classify_input_t *in, const char **err)
{
    ngx_int_t                         rc;
    ngx_http_classify_turns_t         turns[2];
    ngx_http_classify_jsonr_field_t   f[NGX_HTTP_CLASSIFY_FIELD_N], *session;

    if (len == 0) {
        *err = "empty request body";
        return NGX_DECLINED;
    }

    rc = ngx_http_classify_check_text(data, len, err);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_http_classify_read_body(pool, clcf, anthropic, data, len, f,
                                     turns, err);
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

    in->format = ngx_http_classify_detect(clcf->input, anthropic, f);

    switch (in->format) {

    case NGX_HTTP_CLASSIFY_FORMAT_FIELDS:
        return ngx_http_classify_parse_fields(pool, f, in, err);

    case NGX_HTTP_CLASSIFY_FORMAT_RESPONSES:
        rc = ngx_http_classify_parse_responses(pool, f,
                                    &turns[NGX_HTTP_CLASSIFY_TURNS_INPUT],
                                    in, err);
        break;

    default: /* openai, anthropic */

        if (f[NGX_HTTP_CLASSIFY_FIELD_MESSAGES].type
            != NGX_HTTP_CLASSIFY_JSON_ARRAY)
        {
            *err = "no \"messages\" array in the request body";
            return NGX_DECLINED;
        }

        rc = ngx_http_classify_parse_conversation(pool,
                                    &f[NGX_HTTP_CLASSIFY_FIELD_MESSAGES].value,
                                    &turns[NGX_HTTP_CLASSIFY_TURNS_MESSAGES],
                                    in, err);

        in->include_usage = (in->format == NGX_HTTP_CLASSIFY_FORMAT_OPENAI)
                            && ngx_http_classify_include_usage(
                                   &f[NGX_HTTP_CLASSIFY_FIELD_OPTIONS]);
        break;
    }

    /* a chat client may still name its conversation */

    session = &f[NGX_HTTP_CLASSIFY_FIELD_SESSION];

    if (rc == NGX_OK && session->type == NGX_HTTP_CLASSIFY_JSON_STRING) {
        rc = ngx_http_classify_string(pool, &session->value, &in->session);
    }

    return rc;
}


/*
 * The format of the body; the members the first pass noted are enough.
 * The explicit formats are what they say, whatever the body then holds.
 */

static ngx_http_classify_format_e
ngx_http_classify_detect(ngx_uint_t input, ngx_flag_t anthropic,
    ngx_http_classify_jsonr_field_t *f)
{
    if (input != NGX_HTTP_CLASSIFY_INPUT_AUTO) {
        return input;
    }

    if (f[NGX_HTTP_CLASSIFY_FIELD_INPUT].type != NGX_HTTP_CLASSIFY_JSON_NONE
        && f[NGX_HTTP_CLASSIFY_FIELD_MESSAGES].type
           == NGX_HTTP_CLASSIFY_JSON_NONE)
    {
        return NGX_HTTP_CLASSIFY_FORMAT_RESPONSES;
    }

    if (f[NGX_HTTP_CLASSIFY_FIELD_MESSAGES].type
        != NGX_HTTP_CLASSIFY_JSON_ARRAY)
    {
        return NGX_HTTP_CLASSIFY_FORMAT_FIELDS;
    }

    return anthropic ? NGX_HTTP_CLASSIFY_FORMAT_ANTHROPIC
                     : NGX_HTTP_CLASSIFY_FORMAT_OPENAI;
}


/*
 * The pass over the whole body: validated, the members that matter noted
 * (f), and each conversation the format may have ("messages", "input")
 * walked for its roles (turns).
 */

static ngx_int_t
ngx_http_classify_read_body(ngx_pool_t *pool,
    ngx_http_classify_loc_conf_t *clcf, ngx_flag_t anthropic, u_char *data,
    size_t len, ngx_http_classify_jsonr_field_t *f,
    ngx_http_classify_turns_t *turns, const char **err)
{
    ngx_int_t                    rc;
    ngx_uint_t                   object, window;
    ngx_http_classify_jsonr_t    jr;
    ngx_http_classify_format_e   messages;

    ngx_memzero(f, NGX_HTTP_CLASSIFY_FIELD_N
                   * sizeof(ngx_http_classify_jsonr_field_t));
    ngx_str_set(&f[NGX_HTTP_CLASSIFY_FIELD_STREAM].name, "stream");
    ngx_str_set(&f[NGX_HTTP_CLASSIFY_FIELD_MODEL].name, "model");
    ngx_str_set(&f[NGX_HTTP_CLASSIFY_FIELD_MESSAGES].name, "messages");
    ngx_str_set(&f[NGX_HTTP_CLASSIFY_FIELD_INPUT].name, "input");
    ngx_str_set(&f[NGX_HTTP_CLASSIFY_FIELD_OPTIONS].name, "stream_options");
    ngx_str_set(&f[NGX_HTTP_CLASSIFY_FIELD_PREVIOUS].name,
                "previous_response_id");
    f[NGX_HTTP_CLASSIFY_FIELD_QUERY].name = clcf->query_field;
    f[NGX_HTTP_CLASSIFY_FIELD_SESSION].name = clcf->session_field;

    /*
     * The window is the location's max_context, and at least one
     * message, so that whether the body carries any history at all stays
     * known (Redis is read only for a body without).
     */

    window = ngx_max(clcf->max_context, 1);

    messages = (clcf->input == NGX_HTTP_CLASSIFY_INPUT_ANTHROPIC
                || (clcf->input == NGX_HTTP_CLASSIFY_INPUT_AUTO && anthropic))
               ? NGX_HTTP_CLASSIFY_FORMAT_ANTHROPIC
               : NGX_HTTP_CLASSIFY_FORMAT_OPENAI;

    if ((clcf->input == NGX_HTTP_CLASSIFY_INPUT_AUTO
         || clcf->input == NGX_HTTP_CLASSIFY_INPUT_OPENAI
         || clcf->input == NGX_HTTP_CLASSIFY_INPUT_ANTHROPIC)
        && ngx_http_classify_walk(pool,
                                  &turns[NGX_HTTP_CLASSIFY_TURNS_MESSAGES],
                                  window, messages,
                                  &f[NGX_HTTP_CLASSIFY_FIELD_MESSAGES])
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if ((clcf->input == NGX_HTTP_CLASSIFY_INPUT_AUTO
         || clcf->input == NGX_HTTP_CLASSIFY_INPUT_RESPONSES)
        && ngx_http_classify_walk(pool, &turns[NGX_HTTP_CLASSIFY_TURNS_INPUT],
                                  window, NGX_HTTP_CLASSIFY_FORMAT_RESPONSES,
                                  &f[NGX_HTTP_CLASSIFY_FIELD_INPUT])
           != NGX_OK)
    {
        return NGX_ERROR;
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


/* a conversation member f to be walked for its roles into turns */

static ngx_int_t
ngx_http_classify_walk(ngx_pool_t *pool, ngx_http_classify_turns_t *turns,
    ngx_uint_t window, ngx_http_classify_format_e format,
    ngx_http_classify_jsonr_field_t *f)
{
    ngx_memzero(turns, sizeof(ngx_http_classify_turns_t));
    turns->format = format;
    turns->window = window;
    turns->last = -1;
    turns->norole = -1;

    turns->ring = ngx_palloc(pool, window * sizeof(u_char *));
    if (turns->ring == NULL) {
        return NGX_ERROR;
    }

    f->read = ngx_http_classify_read_turns;
    f->data = turns;

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
 * The first walk of a conversation, in the pass that validates the body:
 * the roles alone.  For each user turn it notes where the turn starts and
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

        role = ngx_http_classify_message(jr, turns->format, 0, &content);

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


/*
 * Responses: "input" is the query itself, or the conversation.  With
 * "previous_response_id" the history is the backend's: the body has none,
 * and the context comes from Redis, as for a body without history.
 */

static ngx_int_t
ngx_http_classify_parse_responses(ngx_pool_t *pool,
    ngx_http_classify_jsonr_field_t *f, ngx_http_classify_turns_t *turns,
    ngx_http_classify_input_t *in, const char **err)
{
    ngx_http_classify_jsonr_field_t  *input;

    input = &f[NGX_HTTP_CLASSIFY_FIELD_INPUT];

    in->previous = (f[NGX_HTTP_CLASSIFY_FIELD_PREVIOUS].type
                    == NGX_HTTP_CLASSIFY_JSON_STRING);

    switch (input->type) {

    case NGX_HTTP_CLASSIFY_JSON_STRING:

        /* an empty string's span is its two quotes */

        if (input->value.len == 2) {
            *err = "\"input\" is an empty string";
            return NGX_DECLINED;
        }

        return ngx_http_classify_string(pool, &input->value, &in->query);

    case NGX_HTTP_CLASSIFY_JSON_ARRAY:
        return ngx_http_classify_parse_conversation(pool, &input->value, turns,
                                                    in, err);

    default:
        *err = "no \"input\" string or array in the request body";
        return NGX_DECLINED;
    }
}


/* the second walk: from the window's start to the newest user turn */

static ngx_int_t
ngx_http_classify_parse_conversation(ngx_pool_t *pool, ngx_str_t *array,
    ngx_http_classify_turns_t *turns, ngx_http_classify_input_t *in,
    const char **err)
{
    u_char                           *pos;
    ngx_uint_t                        role, responses;
    ngx_http_classify_msg_t          *m;
    ngx_http_classify_jsonr_t         jr;
    ngx_http_classify_jsonr_field_t   content;

    responses = (turns->format == NGX_HTTP_CLASSIFY_FORMAT_RESPONSES);

    if (turns->last == -1) {
        *err = responses ? "no \"user\" message in \"input\""
                         : "no \"user\" message in \"messages\"";
        return NGX_DECLINED;
    }

    if (turns->norole != -1 && turns->norole < turns->last) {
        *err = "a message in \"messages\" has no \"role\"";
        return NGX_DECLINED;
    }

    ngx_http_classify_jsonr_resume(&jr, array, turns->start);

    while (ngx_http_classify_jsonr_element(&jr) == NGX_OK) {

        (void) ngx_http_classify_jsonr_peek(&jr);
        pos = jr.pos;

        /* the user turn the first walk found is not looked at again */

        role = ngx_http_classify_message(&jr, turns->format,
                                         pos == turns->query, &content);

        if (pos == turns->query) {
            if (ngx_http_classify_content(pool, &content, &in->query,
                                          &in->skipped)
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

        if (ngx_http_classify_content(pool, &content, &m->content,
                                      &in->skipped)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (jr.err) {
        /* cannot happen: the whole body was validated */
        return NGX_ERROR;
    }

    if (in->query.len == 0) {
        *err = responses ? "the last \"user\" message in \"input\" has no "
                           "text content"
                         : "the last \"user\" message has no text content";
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


/*
 * One element of a conversation: what it is, and its "content" member.
 * A Responses item without a "role" is a function call, its output, a
 * reasoning item: not a message, and no error.  An element "known" to be
 * the user's turn has its content blocks not searched for a tool result.
 */

static ngx_uint_t
ngx_http_classify_message(ngx_http_classify_jsonr_t *jr,
    ngx_http_classify_format_e format, ngx_uint_t known,
    ngx_http_classify_jsonr_field_t *content)
{
    ngx_str_t                         raw;
    ngx_uint_t                        responses;
    ngx_http_classify_jsonr_field_t   f[3];

    content->type = NGX_HTTP_CLASSIFY_JSON_NONE;
    responses = (format == NGX_HTTP_CLASSIFY_FORMAT_RESPONSES);

    if (ngx_http_classify_jsonr_peek(jr) != NGX_HTTP_CLASSIFY_JSON_OBJECT) {
        (void) ngx_http_classify_jsonr_skip(jr, NULL);
        return responses ? NGX_HTTP_CLASSIFY_ROLE_OTHER
                         : NGX_HTTP_CLASSIFY_ROLE_NONE;
    }

    ngx_memzero(f, sizeof(f));
    ngx_str_set(&f[0].name, "role");
    ngx_str_set(&f[1].name, "content");
    ngx_str_set(&f[2].name, "type");

    if (ngx_http_classify_jsonr_fields(jr, f, 3) != NGX_OK) {
        return NGX_HTTP_CLASSIFY_ROLE_NONE;
    }

    if (f[0].type != NGX_HTTP_CLASSIFY_JSON_STRING) {
        return responses ? NGX_HTTP_CLASSIFY_ROLE_OTHER
                         : NGX_HTTP_CLASSIFY_ROLE_NONE;
    }

    if (responses && f[2].type != NGX_HTTP_CLASSIFY_JSON_NONE) {

        if (f[2].type != NGX_HTTP_CLASSIFY_JSON_STRING) {
            return NGX_HTTP_CLASSIFY_ROLE_OTHER;
        }

        ngx_http_classify_jsonr_unquote(&f[2].value, &raw);

        if (!ngx_http_classify_jsonr_is(&raw, "message")) {
            return NGX_HTTP_CLASSIFY_ROLE_OTHER;
        }
    }

    *content = f[1];

    ngx_http_classify_jsonr_unquote(&f[0].value, &raw);

    if (ngx_http_classify_jsonr_is(&raw, "user")) {

        if (format == NGX_HTTP_CLASSIFY_FORMAT_ANTHROPIC
            && !known
            && ngx_http_classify_tool_result(content))
        {
            return NGX_HTTP_CLASSIFY_ROLE_OTHER;
        }

        return NGX_HTTP_CLASSIFY_ROLE_USER;
    }

    if (ngx_http_classify_jsonr_is(&raw, "assistant")) {
        return NGX_HTTP_CLASSIFY_ROLE_ASSISTANT;
    }

    return NGX_HTTP_CLASSIFY_ROLE_OTHER;
}


/* an Anthropic user message that answers a tool: a "tool_result" block */

static ngx_uint_t
ngx_http_classify_tool_result(ngx_http_classify_jsonr_field_t *content)
{
    ngx_str_t                         raw;
    ngx_http_classify_jsonr_t         jr;
    ngx_http_classify_jsonr_field_t   type;

    if (content->type != NGX_HTTP_CLASSIFY_JSON_ARRAY) {
        return 0;
    }

    ngx_memzero(&type, sizeof(ngx_http_classify_jsonr_field_t));
    ngx_str_set(&type.name, "type");

    ngx_http_classify_jsonr_init(&jr, content->value.data, content->value.len);
    (void) ngx_http_classify_jsonr_array(&jr);

    while (ngx_http_classify_jsonr_element(&jr) == NGX_OK) {

        if (ngx_http_classify_jsonr_peek(&jr) != NGX_HTTP_CLASSIFY_JSON_OBJECT)
        {
            (void) ngx_http_classify_jsonr_skip(&jr, NULL);
            continue;
        }

        if (ngx_http_classify_jsonr_fields(&jr, &type, 1) != NGX_OK) {
            return 0;
        }

        if (type.type == NGX_HTTP_CLASSIFY_JSON_STRING) {
            ngx_http_classify_jsonr_unquote(&type.value, &raw);

            if (ngx_http_classify_jsonr_is(&raw, "tool_result")) {
                return 1;
            }
        }
    }

    return 0;
}


/* chat completions: "stream_options": {"include_usage": true} */

static ngx_uint_t
ngx_http_classify_include_usage(ngx_http_classify_jsonr_field_t *options)
{
    ngx_http_classify_jsonr_t  jr;

    if (options->type != NGX_HTTP_CLASSIFY_JSON_OBJECT) {
        return 0;
    }

    ngx_http_classify_jsonr_init(&jr, options->value.data, options->value.len);

    return ngx_http_classify_jsonr_get(&jr, (u_char *) "include_usage",
                                       sizeof("include_usage") - 1)
           == NGX_OK
           && ngx_http_classify_jsonr_peek(&jr) == NGX_HTTP_CLASSIFY_JSON_TRUE;
}


/*
 * "content" is a string, or an array of parts whose text parts count
 * (ngx_http_classify_text_part()); the others are counted in *skipped
 */

static ngx_int_t
ngx_http_classify_content(ngx_pool_t *pool,
    ngx_http_classify_jsonr_field_t *content, ngx_str_t *dst,
    ngx_uint_t *skipped)
{
    u_char                     *p;
    ngx_str_t                   raw;
    ngx_http_classify_jsonr_t   jr;

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

    ngx_http_classify_jsonr_init(&jr, content->value.data, content->value.len);
    (void) ngx_http_classify_jsonr_array(&jr);

    while (ngx_http_classify_jsonr_element(&jr) == NGX_OK) {

        if (!ngx_http_classify_text_part(&jr, &raw)) {
            (*skipped)++;
            continue;
        }

        if (p != dst->data) {
            *p++ = '\n';
        }

        p = ngx_http_classify_jsonr_copy(p, &raw);
    }

    dst->len = p - dst->data;

    return jr.err ? NGX_ERROR : NGX_OK;
}


/*
 * A part with a "text" string and a text "type" (none, "text" in chat
 * completions and Anthropic, "input_text" and "output_text" in
 * Responses); images, files, audio, tool calls and results are not text.
 */

static ngx_uint_t
ngx_http_classify_text_part(ngx_http_classify_jsonr_t *jr, ngx_str_t *raw)
{
    ngx_str_t                         type;
    ngx_http_classify_jsonr_field_t   f[2];

    if (ngx_http_classify_jsonr_peek(jr) != NGX_HTTP_CLASSIFY_JSON_OBJECT) {
        (void) ngx_http_classify_jsonr_skip(jr, NULL);
        return 0;
    }

    ngx_memzero(f, sizeof(f));
    ngx_str_set(&f[0].name, "type");
    ngx_str_set(&f[1].name, "text");

    if (ngx_http_classify_jsonr_fields(jr, f, 2) != NGX_OK
        || f[1].type != NGX_HTTP_CLASSIFY_JSON_STRING)
    {
        return 0;
    }

    if (f[0].type != NGX_HTTP_CLASSIFY_JSON_NONE) {

        if (f[0].type != NGX_HTTP_CLASSIFY_JSON_STRING) {
            return 0;
        }

        ngx_http_classify_jsonr_unquote(&f[0].value, &type);

        if (!ngx_http_classify_jsonr_is(&type, "text")
            && !ngx_http_classify_jsonr_is(&type, "input_text")
            && !ngx_http_classify_jsonr_is(&type, "output_text"))
        {
            return 0;
        }
    }

    ngx_http_classify_jsonr_unquote(&f[1].value, raw);

    return 1;
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

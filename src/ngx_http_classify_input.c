
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
 * Returns NGX_OK, NGX_DECLINED with *err naming what is wrong with the
 * body (the client gets a 400), or NGX_ERROR when memory ran out.
 */


#include "ngx_http_classify.h"

#include <cjson/cJSON.h>


static ngx_int_t ngx_http_classify_check_text(u_char *p, size_t len,
    const char **err);
static ngx_int_t ngx_http_classify_copy(ngx_pool_t *pool, ngx_str_t *dst,
    const char *src);
static ngx_int_t ngx_http_classify_content(ngx_pool_t *pool, cJSON *msg,
    ngx_str_t *dst);
static ngx_int_t ngx_http_classify_parse_openai(ngx_pool_t *pool,
    cJSON *root, cJSON *messages, ngx_http_classify_input_t *in,
    const char **err);
static ngx_int_t ngx_http_classify_parse_fields(ngx_pool_t *pool,
    ngx_http_classify_loc_conf_t *clcf, cJSON *root,
    ngx_http_classify_input_t *in, const char **err);


ngx_int_t
ngx_http_classify_parse_input(ngx_pool_t *pool,
    ngx_http_classify_loc_conf_t *clcf, u_char *data, size_t len,
    ngx_http_classify_input_t *in, const char **err)
{
    cJSON      *root, *messages, *item;
    ngx_int_t   rc;

    if (len == 0) {
        *err = "empty request body";
        return NGX_DECLINED;
    }

    rc = ngx_http_classify_check_text(data, len, err);
    if (rc != NGX_OK) {
        return rc;
    }

    root = cJSON_ParseWithLength((const char *) data, len);

    if (root == NULL) {
        *err = "request body is not valid JSON";
        return NGX_DECLINED;
    }

    if (!cJSON_IsObject(root)) {
        *err = "request body is not a JSON object";
        rc = NGX_DECLINED;
        goto done;
    }

    if (ngx_array_init(&in->context, pool, 8, sizeof(ngx_http_classify_msg_t))
        != NGX_OK)
    {
        rc = NGX_ERROR;
        goto done;
    }

    item = cJSON_GetObjectItemCaseSensitive(root, "stream");
    in->stream = cJSON_IsTrue(item) ? 1 : 0;

    item = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (cJSON_IsString(item)
        && ngx_http_classify_copy(pool, &in->model, item->valuestring)
           != NGX_OK)
    {
        rc = NGX_ERROR;
        goto done;
    }

    messages = cJSON_GetObjectItemCaseSensitive(root, "messages");

    switch (clcf->input) {

    case NGX_HTTP_CLASSIFY_INPUT_OPENAI:
        if (!cJSON_IsArray(messages)) {
            *err = "no \"messages\" array in the request body";
            rc = NGX_DECLINED;
            goto done;
        }

        rc = ngx_http_classify_parse_openai(pool, root, messages, in, err);
        break;

    case NGX_HTTP_CLASSIFY_INPUT_FIELDS:
        rc = ngx_http_classify_parse_fields(pool, clcf, root, in, err);
        break;

    default: /* NGX_HTTP_CLASSIFY_INPUT_AUTO */
        if (cJSON_IsArray(messages)) {
            rc = ngx_http_classify_parse_openai(pool, root, messages, in,
                                                err);
        } else {
            rc = ngx_http_classify_parse_fields(pool, clcf, root, in, err);
        }
    }

    if (rc == NGX_OK && in->openai) {
        /* an openai client may still name its conversation */

        item = cJSON_GetObjectItemCaseSensitive(root,
                                           (char *) clcf->session_field.data);
        if (cJSON_IsString(item)
            && ngx_http_classify_copy(pool, &in->session, item->valuestring)
               != NGX_OK)
        {
            rc = NGX_ERROR;
        }
    }

done:

    cJSON_Delete(root);

    return rc;
}


/*
 * JSON is UTF-8 (RFC 8259): anything else would reach the classifiers as it
 * came, so the body is checked strictly (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF).  And cJSON's strings end at a NUL,
 * so a NUL byte or an escaped "\u0000" would silently cut the query short:
 * refused instead.
 */

static ngx_int_t
ngx_http_classify_check_text(u_char *p, size_t len, const char **err)
{
    u_char    *last;
    size_t     n;
    uint32_t   c, min;

    last = p + len;

    while (p < last) {

        c = *p++;

        if (c < 0x80) {
            if (c == '\\' && p < last) {
                if (last - p >= 5 && ngx_strncmp(p, "u0000", 5) == 0) {
                    goto nul;
                }

                p++;

            } else if (c == '\0') {
                goto nul;
            }

            continue;
        }

        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            c &= 0x1f;
            min = 0x80;

        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            c &= 0x0f;
            min = 0x800;

        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            c &= 0x07;
            min = 0x10000;

        } else {
            goto invalid;
        }

        if ((size_t) (last - p) < n) {
            goto invalid;
        }

        while (n--) {
            if ((*p & 0xc0) != 0x80) {
                goto invalid;
            }

            c = (c << 6) | (*p++ & 0x3f);
        }

        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
            goto invalid;
        }
    }

    return NGX_OK;

nul:

    *err = "NUL characters (\\u0000) are not allowed";
    return NGX_DECLINED;

invalid:

    *err = "request body is not valid UTF-8";
    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_classify_parse_openai(ngx_pool_t *pool, cJSON *root,
    cJSON *messages, ngx_http_classify_input_t *in, const char **err)
{
    int                       i, n, last;
    cJSON                    *msg, *role;
    ngx_http_classify_msg_t  *m;

    in->openai = 1;

    n = cJSON_GetArraySize(messages);
    last = -1;

    for (i = 0; i < n; i++) {
        msg = cJSON_GetArrayItem(messages, i);
        role = cJSON_GetObjectItemCaseSensitive(msg, "role");

        if (cJSON_IsString(role) && ngx_strcmp(role->valuestring, "user") == 0)
        {
            last = i;
        }
    }

    if (last == -1) {
        *err = "no \"user\" message in \"messages\"";
        return NGX_DECLINED;
    }

    for (i = 0; i <= last; i++) {
        msg = cJSON_GetArrayItem(messages, i);
        role = cJSON_GetObjectItemCaseSensitive(msg, "role");

        if (!cJSON_IsString(role)) {
            *err = "a message in \"messages\" has no \"role\"";
            return NGX_DECLINED;
        }

        if (i == last) {
            if (ngx_http_classify_content(pool, msg, &in->query) != NGX_OK) {
                return NGX_ERROR;
            }

            break;
        }

        if (ngx_strcmp(role->valuestring, "user") != 0
            && ngx_strcmp(role->valuestring, "assistant") != 0)
        {
            continue;
        }

        m = ngx_array_push(&in->context);
        if (m == NULL) {
            return NGX_ERROR;
        }

        if (ngx_http_classify_copy(pool, &m->role, role->valuestring)
            != NGX_OK
            || ngx_http_classify_content(pool, msg, &m->content) != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (in->query.len == 0) {
        *err = "the last \"user\" message has no text content";
        return NGX_DECLINED;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_classify_parse_fields(ngx_pool_t *pool,
    ngx_http_classify_loc_conf_t *clcf, cJSON *root,
    ngx_http_classify_input_t *in, const char **err)
{
    cJSON  *item;

    item = cJSON_GetObjectItemCaseSensitive(root,
                                            (char *) clcf->query_field.data);

    if (!cJSON_IsString(item) || item->valuestring[0] == '\0') {
        *err = "no query: the query field is missing, empty or not a string";
        return NGX_DECLINED;
    }

    if (ngx_http_classify_copy(pool, &in->query, item->valuestring)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    item = cJSON_GetObjectItemCaseSensitive(root,
                                           (char *) clcf->session_field.data);

    if (item && !cJSON_IsString(item) && !cJSON_IsNull(item)) {
        *err = "the session field is not a string";
        return NGX_DECLINED;
    }

    if (cJSON_IsString(item)
        && ngx_http_classify_copy(pool, &in->session, item->valuestring)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* "content" is a string, or an array of parts whose "text" parts count */

static ngx_int_t
ngx_http_classify_content(ngx_pool_t *pool, cJSON *msg, ngx_str_t *dst)
{
    u_char  *p;
    size_t   len;
    cJSON   *content, *part, *text;

    content = cJSON_GetObjectItemCaseSensitive(msg, "content");

    if (cJSON_IsString(content)) {
        return ngx_http_classify_copy(pool, dst, content->valuestring);
    }

    ngx_str_null(dst);

    if (!cJSON_IsArray(content)) {
        return NGX_OK;
    }

    len = 0;

    cJSON_ArrayForEach(part, content) {
        text = cJSON_GetObjectItemCaseSensitive(part, "text");

        if (cJSON_IsString(text)) {
            len += ngx_strlen(text->valuestring) + 1;
        }
    }

    if (len == 0) {
        return NGX_OK;
    }

    p = ngx_pnalloc(pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    dst->data = p;

    cJSON_ArrayForEach(part, content) {
        text = cJSON_GetObjectItemCaseSensitive(part, "text");

        if (cJSON_IsString(text)) {
            if (p != dst->data) {
                *p++ = '\n';
            }

            p = ngx_cpymem(p, text->valuestring, ngx_strlen(text->valuestring));
        }
    }

    dst->len = p - dst->data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_classify_copy(ngx_pool_t *pool, ngx_str_t *dst, const char *src)
{
    dst->len = ngx_strlen(src);

    if (dst->len == 0) {
        dst->data = NULL;
        return NGX_OK;
    }

    dst->data = ngx_pnalloc(pool, dst->len);
    if (dst->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(dst->data, src, dst->len);

    return NGX_OK;
}


/*
 * One element of a Redis context list: {"role": ..., "content": ...}.
 * NGX_DECLINED for anything else.
 */

ngx_int_t
ngx_http_classify_parse_message(ngx_pool_t *pool, u_char *data, size_t len,
    ngx_http_classify_msg_t *msg)
{
    cJSON      *root, *role;
    ngx_int_t   rc;

    root = cJSON_ParseWithLength((const char *) data, len);

    if (root == NULL) {
        return NGX_DECLINED;
    }

    role = cJSON_GetObjectItemCaseSensitive(root, "role");

    if (!cJSON_IsString(role)
        || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(root, "content")))
    {
        rc = NGX_DECLINED;
        goto done;
    }

    rc = NGX_ERROR;

    if (ngx_http_classify_copy(pool, &msg->role, role->valuestring) != NGX_OK
        || ngx_http_classify_content(pool, root, &msg->content) != NGX_OK)
    {
        goto done;
    }

    rc = NGX_OK;

done:

    cJSON_Delete(root);

    return rc;
}

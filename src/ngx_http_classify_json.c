
/*
 * ngx_http_classify_module: the JSON bodies sent to classifiers.
 *
 * Bodies are written straight into one pool buffer: the length is
 * computed first, then the bytes, so a request costs one allocation and
 * no intermediate tree.  The part that never changes (model, prompt) is
 * built once at configuration time.
 */


#include "ngx_http_classify.h"
#include "ngx_http_classify_json.h"


static ngx_str_t  ngx_http_classify_role_user = ngx_string("user");


size_t
ngx_http_classify_json_str_len(ngx_str_t *s)
{
    return 2 + s->len + ngx_escape_json(NULL, s->data, s->len);
}


u_char *
ngx_http_classify_json_str(u_char *p, ngx_str_t *s)
{
    *p++ = '"';
    p = (u_char *) ngx_escape_json(p, s->data, s->len);
    *p++ = '"';

    return p;
}


static size_t
ngx_http_classify_msg_len(ngx_str_t *role, ngx_str_t *content)
{
    return sizeof("{\"role\":,\"content\":}") - 1
           + ngx_http_classify_json_str_len(role)
           + ngx_http_classify_json_str_len(content);
}


static u_char *
ngx_http_classify_msg(u_char *p, ngx_str_t *role, ngx_str_t *content)
{
    p = ngx_cpymem(p, "{\"role\":", sizeof("{\"role\":") - 1);
    p = ngx_http_classify_json_str(p, role);
    p = ngx_cpymem(p, ",\"content\":", sizeof(",\"content\":") - 1);
    p = ngx_http_classify_json_str(p, content);
    *p++ = '}';

    return p;
}


ngx_int_t
ngx_http_classify_build_prefix(ngx_pool_t *pool,
    ngx_http_classify_classifier_t *cl)
{
    size_t      len;
    u_char     *p;
    ngx_str_t   system = ngx_string("system");

    len = sizeof("{\"model\":,") - 1
          + ngx_http_classify_json_str_len(&cl->model)
          + sizeof("\"temperature\":0,\"max_tokens\":,\"messages\":[") - 1
          + NGX_INT_T_LEN
          + ngx_http_classify_msg_len(&system, &cl->prompt);

    p = ngx_pnalloc(pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    cl->body_prefix.data = p;

    *p++ = '{';

    if (cl->model.len) {
        p = ngx_cpymem(p, "\"model\":", sizeof("\"model\":") - 1);
        p = ngx_http_classify_json_str(p, &cl->model);
        *p++ = ',';
    }

    p = ngx_sprintf(p, "\"temperature\":0,\"max_tokens\":%ui,\"messages\":[",
                    cl->max_tokens);
    p = ngx_http_classify_msg(p, &system, &cl->prompt);

    cl->body_prefix.len = p - cl->body_prefix.data;

    return NGX_OK;
}


ngx_int_t
ngx_http_classify_build_body(ngx_pool_t *pool,
    ngx_http_classify_classifier_t *cl, ngx_http_classify_input_t *in,
    ngx_str_t *body)
{
    size_t                    len;
    u_char                   *p;
    ngx_uint_t                i, first;
    ngx_http_classify_msg_t  *msg;

    msg = in->context.elts;

    /* the classifier's own last-k slice of the context */

    first = in->context.nelts > cl->context
            ? in->context.nelts - cl->context : 0;

    if (cl->protocol == NGX_HTTP_CLASSIFY_PROTO_OPENAI) {
        len = cl->body_prefix.len
              + ngx_http_classify_msg_len(&ngx_http_classify_role_user,
                                          &in->query)
              + sizeof(",]}") - 1;

        for (i = first; i < in->context.nelts; i++) {
            len += 1 + ngx_http_classify_msg_len(&msg[i].role,
                                                 &msg[i].content);
        }

    } else {
        len = sizeof("{\"query\":,\"context\":[],\"session\":}") - 1
              + ngx_http_classify_json_str_len(&in->query)
              + ngx_http_classify_json_str_len(&in->session);

        for (i = first; i < in->context.nelts; i++) {
            len += 1 + ngx_http_classify_msg_len(&msg[i].role,
                                                 &msg[i].content);
        }
    }

    p = ngx_pnalloc(pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;

    if (cl->protocol == NGX_HTTP_CLASSIFY_PROTO_OPENAI) {
        p = ngx_cpymem(p, cl->body_prefix.data, cl->body_prefix.len);

        for (i = first; i < in->context.nelts; i++) {
            *p++ = ',';
            p = ngx_http_classify_msg(p, &msg[i].role, &msg[i].content);
        }

        *p++ = ',';
        p = ngx_http_classify_msg(p, &ngx_http_classify_role_user,
                                  &in->query);
        *p++ = ']';
        *p++ = '}';

    } else {
        p = ngx_cpymem(p, "{\"query\":", sizeof("{\"query\":") - 1);
        p = ngx_http_classify_json_str(p, &in->query);
        p = ngx_cpymem(p, ",\"context\":[", sizeof(",\"context\":[") - 1);

        for (i = first; i < in->context.nelts; i++) {
            if (i != first) {
                *p++ = ',';
            }

            p = ngx_http_classify_msg(p, &msg[i].role, &msg[i].content);
        }

        p = ngx_cpymem(p, "],\"session\":", sizeof("],\"session\":") - 1);
        p = ngx_http_classify_json_str(p, &in->session);
        *p++ = '}';
    }

    body->len = p - body->data;

    return NGX_OK;
}


/* {"role":"...","content":"..."}: one element of a Redis context list */

ngx_int_t
ngx_http_classify_build_message(ngx_pool_t *pool, ngx_str_t *role,
    ngx_str_t *content, ngx_str_t *json)
{
    json->data = ngx_pnalloc(pool, ngx_http_classify_msg_len(role, content));
    if (json->data == NULL) {
        return NGX_ERROR;
    }

    json->len = ngx_http_classify_msg(json->data, role, content) - json->data;

    return NGX_OK;
}

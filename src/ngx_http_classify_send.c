
/*
 * ngx_http_classify_module: whole responses from memory.
 *
 * The gate's reply and errors and the status page are sent by these: a
 * status, a content type and a body built in the request's pool, with a
 * Content-Length, or chunked for a stream.  A classifier's reply is sent
 * by ngx_http_classify_send_reply(), for the gate's verdict and for the
 * output guard's verdict on a whole answer alike.
 */


#include "ngx_http_classify.h"
#include "ngx_http_classify_send.h"
#include "ngx_http_classify_json.h"
#include "ngx_http_classify_reply.h"


ngx_int_t
ngx_http_classify_add_header(ngx_http_request_t *r, const char *key,
    ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) key;
    h->key.len = ngx_strlen(key);
    h->value = *value;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return NGX_OK;
}


/*
 * Classifier cl's reply, in the format the client asked for (reply.c),
 * status 200 and X-Classify-Verdict: the classifier's name.  Returns what
 * the handler finalizes with.
 */

ngx_int_t
ngx_http_classify_send_reply(ngx_http_request_t *r, ngx_uint_t reply_format,
    ngx_http_classify_input_t *in, ngx_http_classify_classifier_t *cl)
{
    ngx_str_t   body, id, content_type;
    ngx_uint_t  format, stream;
    u_char      idbuf[NGX_HTTP_CLASSIFY_ID_LEN];

    static ngx_str_t  no_cache = ngx_string("no-cache");

    ngx_http_classify_reply_id(r, idbuf, &id);

    format = ngx_http_classify_reply_format(reply_format, in,
                                       ngx_http_classify_header_in(r,
                                             "accept", sizeof("accept") - 1));

    if (ngx_http_classify_render_reply(r->pool, format, cl, in, &id,
                                       ngx_time(), &content_type, &body,
                                       &stream)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if ((stream
         && ngx_http_classify_add_header(r, "Cache-Control", &no_cache)
            != NGX_OK)
        || ngx_http_classify_add_header(r, "X-Classify-Verdict", &cl->name)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* an event stream goes out chunked, as a stream */

    return ngx_http_classify_send(r, NGX_HTTP_OK, &content_type, &body,
                                  stream);
}


/*
 * The id of a reply, "classify-<connection>-<request>": unique while the
 * master lives, since the connection counter is shared.  buf has
 * NGX_HTTP_CLASSIFY_ID_LEN bytes.
 */

void
ngx_http_classify_reply_id(ngx_http_request_t *r, u_char *buf, ngx_str_t *id)
{
    id->data = buf;
    id->len = ngx_sprintf(buf, "classify-%uA-%ui", r->connection->number,
                          r->connection->requests)
              - buf;
}


/*
 * A whole response from memory; without a length (chunked) for a stream.
 * Returns what the handler finalizes with.
 */

ngx_int_t
ngx_http_classify_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *content_type, ngx_str_t *body, ngx_uint_t stream)
{
    ngx_buf_t    *b;
    ngx_chain_t   out;

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = body->data;
    b->last = body->data + body->len;
    b->memory = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_classify_send_chain(r, status, content_type, &out,
                                        body->len, stream);
}


/* the same for a body in several buffers, len bytes in all */

ngx_int_t
ngx_http_classify_send_chain(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *content_type, ngx_chain_t *out, size_t len, ngx_uint_t stream)
{
    ngx_int_t     rc;
    ngx_chain_t  *cl;

    r->headers_out.status = status;
    r->headers_out.content_type = *content_type;
    r->headers_out.content_type_len = content_type->len;
    r->headers_out.content_type_lowcase = NULL;

    if (!stream) {
        r->headers_out.content_length_n = len;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    for (cl = out; cl->next; cl = cl->next) { /* void */ }

    cl->buf->last_buf = (r == r->main) ? 1 : 0;
    cl->buf->last_in_chain = 1;

    return ngx_http_output_filter(r, out);
}


/*
 * A client error as a JSON body in the shape of the client's API, so that
 * its SDK shows the message: Anthropic's {"type":"error","error":{"type",
 * "message"}} for an Anthropic client, OpenAI's {"error":{"message",
 * "type","code"}} for any other.  Returns what the handler should
 * finalize with.
 */

ngx_int_t
ngx_http_classify_error(ngx_http_request_t *r,
    ngx_http_classify_format_e format, ngx_uint_t status, const char *message)
{
    size_t        len;
    u_char       *p;
    ngx_buf_t    *b;
    ngx_str_t     msg, type, body;
    ngx_uint_t    anthropic;

    static ngx_str_t  json = ngx_string("application/json");

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /*
     * as nginx's own error pages do: after these the rest of the body may
     * still be on the wire (a chunked body over client_max_body_size),
     * and it must not be read as the next request
     */

    switch (status) {
    case NGX_HTTP_BAD_REQUEST:
    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
    case NGX_HTTP_INTERNAL_SERVER_ERROR:
        r->keepalive = 0;
        break;
    default:
        break;
    }

    anthropic = (format == NGX_HTTP_CLASSIFY_FORMAT_ANTHROPIC);

    if (status >= NGX_HTTP_INTERNAL_SERVER_ERROR) {
        if (anthropic) {
            ngx_str_set(&type, "api_error");

        } else {
            ngx_str_set(&type, "server_error");
        }

    } else if (anthropic && status == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
        ngx_str_set(&type, "request_too_large");

    } else {
        ngx_str_set(&type, "invalid_request_error");
    }

    msg.data = (u_char *) message;
    msg.len = ngx_strlen(message);

    len = sizeof("{\"type\":\"error\",\"error\":{\"type\":\"\","
                 "\"message\":,\"code\":}}\n") - 1
          + ngx_http_classify_json_str_len(&msg) + type.len + NGX_INT_T_LEN;

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (anthropic) {
        p = ngx_sprintf(b->last, "{\"type\":\"error\",\"error\":"
                        "{\"type\":\"%V\",\"message\":", &type);
        p = ngx_http_classify_json_str(p, &msg);
        p = ngx_cpymem(p, "}}\n", sizeof("}}\n") - 1);

    } else {
        p = ngx_cpymem(b->last, "{\"error\":{\"message\":",
                       sizeof("{\"error\":{\"message\":") - 1);
        p = ngx_http_classify_json_str(p, &msg);
        p = ngx_sprintf(p, ",\"type\":\"%V\",\"code\":%ui}}\n",
                        &type, status);
    }

    b->last = p;
    body.data = b->pos;
    body.len = b->last - b->pos;

    return ngx_http_classify_send(r, status, &json, &body, 0);
}


ngx_str_t *
ngx_http_classify_header_in(ngx_http_request_t *r, const char *name,
    size_t len)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
        {
            return &h[i].value;
        }
    }
}

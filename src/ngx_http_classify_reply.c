
/*
 * ngx_http_classify_module: a classifier's reply in the client's format.
 *
 * openai: chat.completion.chunk events ending in "data: [DONE]" when the
 * client asked to stream, one chat.completion object when it did not;
 * sse: the reply's lines as one event's "data:" lines; text: the reply
 * as it is; json: {"verdict": name, "reply": text}.
 */


#include "ngx_http_classify.h"


#define NGX_HTTP_CLASSIFY_CHUNK_HEAD                                          \
    "data: {\"id\":\"\",\"object\":\"chat.completion.chunk\","                \
    "\"created\":,\"model\":,\"choices\":[{\"index\":0,\"delta\":"

#define NGX_HTTP_CLASSIFY_CHUNK_TAIL  ",\"finish_reason\":null}]}\n\n"
#define NGX_HTTP_CLASSIFY_CHUNK_STOP  ",\"finish_reason\":\"stop\"}]}\n\n"

#define NGX_HTTP_CLASSIFY_ROLE                                                \
    "{\"role\":\"assistant\",\"content\":\"\"}"
#define NGX_HTTP_CLASSIFY_DONE        "data: [DONE]\n\n"

#define NGX_HTTP_CLASSIFY_COMPLETION                                          \
    "{\"id\":\"\",\"object\":\"chat.completion\",\"created\":,\"model\":,"    \
    "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","          \
    "\"content\":},\"finish_reason\":\"stop\"}],\"usage\":{"                  \
    "\"prompt_tokens\":0,\"completion_tokens\":0,\"total_tokens\":0}}"


static u_char *ngx_http_classify_chunk(u_char *p, ngx_str_t *id, time_t now,
    ngx_str_t *model, const char *delta, ngx_str_t *content, ngx_uint_t stop);


ngx_uint_t
ngx_http_classify_reply_format(ngx_uint_t conf, ngx_http_classify_input_t *in,
    ngx_str_t *accept)
{
    if (conf != NGX_HTTP_CLASSIFY_REPLY_AUTO) {
        return conf;
    }

    if (in->openai) {
        return NGX_HTTP_CLASSIFY_REPLY_OPENAI;
    }

    if (accept && accept->len) {
        if (ngx_strlcasestrn(accept->data, accept->data + accept->len,
                             (u_char *) "text/event-stream",
                             sizeof("text/event-stream") - 2)
            != NULL)
        {
            return NGX_HTTP_CLASSIFY_REPLY_SSE;
        }

        if (ngx_strlcasestrn(accept->data, accept->data + accept->len,
                             (u_char *) "application/json",
                             sizeof("application/json") - 2)
            != NULL)
        {
            return NGX_HTTP_CLASSIFY_REPLY_JSON;
        }
    }

    return NGX_HTTP_CLASSIFY_REPLY_TEXT;
}


ngx_int_t
ngx_http_classify_render_reply(ngx_pool_t *pool, ngx_uint_t format,
    ngx_http_classify_classifier_t *cl, ngx_http_classify_input_t *in,
    ngx_str_t *id, time_t now, ngx_str_t *content_type, ngx_str_t *body,
    ngx_uint_t *stream)
{
    size_t      len, fixed;
    u_char     *p, *last, *nl, *start;
    ngx_str_t   model, *reply;

    reply = &cl->reply;
    model = in->model;
    *stream = 0;

    if (model.len == 0) {
        ngx_str_set(&model, "classify");
    }

    switch (format) {

    case NGX_HTTP_CLASSIFY_REPLY_OPENAI:

        fixed = id->len + NGX_TIME_T_LEN
                + ngx_http_classify_json_str_len(&model);

        if (in->stream) {
            ngx_str_set(content_type, "text/event-stream");
            *stream = 1;

            len = 3 * (sizeof(NGX_HTTP_CLASSIFY_CHUNK_HEAD) - 1 + fixed
                       + sizeof(NGX_HTTP_CLASSIFY_CHUNK_STOP) - 1)
                  + sizeof(NGX_HTTP_CLASSIFY_ROLE) - 1
                  + sizeof("{\"content\":}") - 1
                  + ngx_http_classify_json_str_len(reply)
                  + sizeof("{}") - 1
                  + sizeof(NGX_HTTP_CLASSIFY_DONE) - 1;

            p = ngx_pnalloc(pool, len);
            if (p == NULL) {
                return NGX_ERROR;
            }

            body->data = p;

            p = ngx_http_classify_chunk(p, id, now, &model,
                                        NGX_HTTP_CLASSIFY_ROLE, NULL, 0);
            p = ngx_http_classify_chunk(p, id, now, &model, NULL, reply, 0);
            p = ngx_http_classify_chunk(p, id, now, &model, "{}", NULL, 1);
            p = ngx_cpymem(p, NGX_HTTP_CLASSIFY_DONE,
                           sizeof(NGX_HTTP_CLASSIFY_DONE) - 1);
            break;
        }

        ngx_str_set(content_type, "application/json");

        len = sizeof(NGX_HTTP_CLASSIFY_COMPLETION) - 1 + fixed
              + ngx_http_classify_json_str_len(reply);

        p = ngx_pnalloc(pool, len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        body->data = p;

        p = ngx_sprintf(p, "{\"id\":\"%V\",\"object\":\"chat.completion\","
                        "\"created\":%T,\"model\":", id, now);
        p = ngx_http_classify_json_str(p, &model);
        p = ngx_cpymem(p, ",\"choices\":[{\"index\":0,\"message\":"
                       "{\"role\":\"assistant\",\"content\":",
                       sizeof(",\"choices\":[{\"index\":0,\"message\":"
                              "{\"role\":\"assistant\",\"content\":") - 1);
        p = ngx_http_classify_json_str(p, reply);
        p = ngx_cpymem(p, "},\"finish_reason\":\"stop\"}],\"usage\":"
                       "{\"prompt_tokens\":0,\"completion_tokens\":0,"
                       "\"total_tokens\":0}}",
                       sizeof("},\"finish_reason\":\"stop\"}],\"usage\":"
                              "{\"prompt_tokens\":0,\"completion_tokens\":0,"
                              "\"total_tokens\":0}}") - 1);
        break;

    case NGX_HTTP_CLASSIFY_REPLY_SSE:

        ngx_str_set(content_type, "text/event-stream");
        *stream = 1;

        /*
         * one "data: " line per line of the reply, then a blank line;
         * "\r\n" and a lone "\r" end a line too (SSE's own line ends, and a
         * reply_file saved with CRLF), and go out as "\n"
         */

        len = sizeof("data: \n\n") - 1 + reply->len;

        for (p = reply->data; p < reply->data + reply->len; p++) {
            if (*p == '\n' || *p == '\r') {
                len += sizeof("data: ") - 1;
            }
        }

        p = ngx_pnalloc(pool, len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        body->data = p;

        last = reply->data + reply->len;

        for (nl = reply->data; /* void */ ; nl++) {
            start = nl;

            while (nl < last && *nl != '\n' && *nl != '\r') {
                nl++;
            }

            p = ngx_cpymem(p, "data: ", sizeof("data: ") - 1);
            p = ngx_cpymem(p, start, nl - start);
            *p++ = '\n';

            if (nl >= last) {
                break;
            }

            if (*nl == '\r' && nl + 1 < last && nl[1] == '\n') {
                nl++;
            }
        }

        *p++ = '\n';
        break;

    case NGX_HTTP_CLASSIFY_REPLY_JSON:

        ngx_str_set(content_type, "application/json");

        len = sizeof("{\"verdict\":,\"reply\":}") - 1
              + ngx_http_classify_json_str_len(&cl->name)
              + ngx_http_classify_json_str_len(reply);

        p = ngx_pnalloc(pool, len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        body->data = p;

        p = ngx_cpymem(p, "{\"verdict\":", sizeof("{\"verdict\":") - 1);
        p = ngx_http_classify_json_str(p, &cl->name);
        p = ngx_cpymem(p, ",\"reply\":", sizeof(",\"reply\":") - 1);
        p = ngx_http_classify_json_str(p, reply);
        *p++ = '}';
        break;

    default: /* NGX_HTTP_CLASSIFY_REPLY_TEXT */

        ngx_str_set(content_type, "text/plain; charset=utf-8");
        *body = *reply;
        return NGX_OK;
    }

    body->len = p - body->data;

    return NGX_OK;
}


static u_char *
ngx_http_classify_chunk(u_char *p, ngx_str_t *id, time_t now,
    ngx_str_t *model, const char *delta, ngx_str_t *content, ngx_uint_t stop)
{
    p = ngx_sprintf(p, "data: {\"id\":\"%V\","
                    "\"object\":\"chat.completion.chunk\","
                    "\"created\":%T,\"model\":", id, now);
    p = ngx_http_classify_json_str(p, model);
    p = ngx_cpymem(p, ",\"choices\":[{\"index\":0,\"delta\":",
                   sizeof(",\"choices\":[{\"index\":0,\"delta\":") - 1);

    if (content) {
        p = ngx_cpymem(p, "{\"content\":", sizeof("{\"content\":") - 1);
        p = ngx_http_classify_json_str(p, content);
        *p++ = '}';

    } else {
        p = ngx_cpymem(p, delta, ngx_strlen(delta));
    }

    if (stop) {
        return ngx_cpymem(p, NGX_HTTP_CLASSIFY_CHUNK_STOP,
                          sizeof(NGX_HTTP_CLASSIFY_CHUNK_STOP) - 1);
    }

    return ngx_cpymem(p, NGX_HTTP_CLASSIFY_CHUNK_TAIL,
                      sizeof(NGX_HTTP_CLASSIFY_CHUNK_TAIL) - 1);
}

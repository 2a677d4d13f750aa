
/*
 * ngx_http_classify_module: what the client's body says (input.c, pure).
 *
 * The wire format a client speaks is one enum for the whole module: the
 * values of classify_input (auto aside), what input.c found the body to
 * be, the reply's default (reply.c), the error shape (send.c), the
 * $classify_format variable and the metrics' "format" label.
 */


#ifndef _NGX_HTTP_CLASSIFY_INPUT_H_INCLUDED_
#define _NGX_HTTP_CLASSIFY_INPUT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


typedef enum {
    NGX_HTTP_CLASSIFY_FORMAT_NONE = 0,   /* not known (yet) */
    NGX_HTTP_CLASSIFY_FORMAT_OPENAI,     /* OpenAI chat completions */
    NGX_HTTP_CLASSIFY_FORMAT_FIELDS,     /* {"user_query", "session_id"} */
    NGX_HTTP_CLASSIFY_FORMAT_RESPONSES,  /* OpenAI Responses */
    NGX_HTTP_CLASSIFY_FORMAT_ANTHROPIC,  /* Anthropic Messages */
    NGX_HTTP_CLASSIFY_NFORMATS
} ngx_http_classify_format_e;


/* classify_input: "auto", or the format itself */
#define NGX_HTTP_CLASSIFY_INPUT_AUTO       NGX_HTTP_CLASSIFY_FORMAT_NONE
#define NGX_HTTP_CLASSIFY_INPUT_OPENAI     NGX_HTTP_CLASSIFY_FORMAT_OPENAI
#define NGX_HTTP_CLASSIFY_INPUT_FIELDS     NGX_HTTP_CLASSIFY_FORMAT_FIELDS
#define NGX_HTTP_CLASSIFY_INPUT_RESPONSES  NGX_HTTP_CLASSIFY_FORMAT_RESPONSES
#define NGX_HTTP_CLASSIFY_INPUT_ANTHROPIC  NGX_HTTP_CLASSIFY_FORMAT_ANTHROPIC


/* one message of conversation context */
typedef struct {
    ngx_str_t                      role;
    ngx_str_t                      content;
} ngx_http_classify_msg_t;


/* what the client's body says */
typedef struct {
    ngx_str_t                      query;
    ngx_str_t                      session;
    ngx_str_t                      model;
    ngx_array_t                    context;       /* of msg_t, oldest first */
    ngx_http_classify_format_e     format;        /* set once detected */
    ngx_uint_t                     skipped;       /* non-text parts */
    unsigned                       stream:1;      /* "stream": true */
    unsigned                       include_usage:1;  /* stream_options */
    unsigned                       previous:1;    /* previous_response_id */
} ngx_http_classify_input_t;


/* "openai", "fields", "responses", "anthropic"; "" for none */
extern ngx_str_t  ngx_http_classify_format_names[];


#endif /* _NGX_HTTP_CLASSIFY_INPUT_H_INCLUDED_ */

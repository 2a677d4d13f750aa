
/*
 * ngx_http_classify_module: a generation's answer as it streams (pure).
 *
 * The one reader of the three chat formats' answers: an SSE splitter fed
 * the bytes as they come (ngx_http_classify_sse_feed()), the reader of one
 * event (ngx_http_classify_stream_event()), what the events said so far
 * (ngx_http_classify_stream_t, ngx_http_classify_stream_apply()), and the
 * text of a whole answer (ngx_http_classify_answer_text()).  Used by
 * classify_context_store's capture and by the output guard.
 */


#ifndef _NGX_HTTP_CLASSIFY_STREAM_H_INCLUDED_
#define _NGX_HTTP_CLASSIFY_STREAM_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_classify.h"


/* what an event is, as far as the answer's text and its end go */
typedef enum {
    NGX_HTTP_CLASSIFY_EV_OTHER = 0,       /* nothing followed: passes */
    NGX_HTTP_CLASSIFY_EV_CHAT,            /* a chat.completion.chunk */
    NGX_HTTP_CLASSIFY_EV_CHAT_DONE,       /* data: [DONE] */
    NGX_HTTP_CLASSIFY_EV_RESP_CREATED,    /* response.created */
    NGX_HTTP_CLASSIFY_EV_RESP_ITEM_ADDED, /* response.output_item.added */
    NGX_HTTP_CLASSIFY_EV_RESP_ITEM_DONE,  /* response.output_item.done */
    NGX_HTTP_CLASSIFY_EV_RESP_PART_ADDED, /* response.content_part.added */
    NGX_HTTP_CLASSIFY_EV_RESP_PART_DONE,  /* response.content_part.done */
    NGX_HTTP_CLASSIFY_EV_RESP_TEXT,       /* response.output_text.delta */
    NGX_HTTP_CLASSIFY_EV_RESP_END,        /* .completed .incomplete .failed */
    NGX_HTTP_CLASSIFY_EV_RESP_OTHER,      /* any other response.* event */
    NGX_HTTP_CLASSIFY_EV_ANT_START,       /* message_start */
    NGX_HTTP_CLASSIFY_EV_ANT_BLOCK_START, /* content_block_start */
    NGX_HTTP_CLASSIFY_EV_ANT_BLOCK_DELTA, /* content_block_delta */
    NGX_HTTP_CLASSIFY_EV_ANT_BLOCK_STOP,  /* content_block_stop */
    NGX_HTTP_CLASSIFY_EV_ANT_DELTA,       /* message_delta */
    NGX_HTTP_CLASSIFY_EV_ANT_STOP         /* message_stop */
} ngx_http_classify_event_e;


/* one event, read: spans into its bytes */
typedef struct {
    ngx_http_classify_event_e      kind;
    ngx_str_t                      text;      /* raw JSON string, or empty */
    ngx_str_t                      id;        /* raw: chunk, response, item */
    ngx_str_t                      model;     /* raw */
    ngx_int_t                      created;   /* chat, -1 */
    ngx_int_t                      seq;       /* sequence_number, -1 */
    ngx_int_t                      index;     /* block, output_index, -1 */
    ngx_int_t                      content;   /* content_index, -1 */
    unsigned                       has_text:1;
    unsigned                       is_text:1; /* a text item, part, block */
    unsigned                       closing:1; /* the message ends: no text */
    unsigned                       done:1;    /* the stream's last event */
} ngx_http_classify_event_t;


/*
 * What a stream's events have said up to a point: enough to end it there
 * in its own format (reply.c, ngx_http_classify_render_cut()).
 */
typedef struct {
    ngx_http_classify_format_e     format;    /* NONE until an event says */
    ngx_str_t                      id;        /* chat chunk's, response's */
    ngx_str_t                      model;
    time_t                         created;   /* chat, 0 */
    size_t                         text;      /* answer text in the events */

    /* Responses */
    ngx_uint_t                     seq;       /* the next sequence_number */
    ngx_uint_t                     items;     /* output items added */
    ngx_int_t                      item;      /* open message item, -1 */
    ngx_str_t                      item_id;
    ngx_uint_t                     parts;     /* its content parts */
    ngx_int_t                      part;      /* open output_text part, -1 */
    size_t                         part_text; /* where its text starts */

    /* Anthropic */
    ngx_uint_t                     blocks;    /* content blocks started */
    ngx_int_t                      block;     /* the open one, -1 */

    unsigned                       block_text:1;
    unsigned                       started:1; /* an event of a format came */
    unsigned                       closing:1;
    unsigned                       done:1;
} ngx_http_classify_stream_t;


typedef struct ngx_http_classify_sse_s  ngx_http_classify_sse_t;

/* a whole event: its bytes (NULL when it was bigger than sse->max) */
typedef ngx_int_t (*ngx_http_classify_sse_handler_pt)(
    ngx_http_classify_sse_t *sse, ngx_str_t *event);

#define NGX_HTTP_CLASSIFY_SSE_TYPE_LEN  64

struct ngx_http_classify_sse_s {
    ngx_pool_t                      *pool;
    size_t                           max;     /* an event's bytes, kept */
    ngx_http_classify_sse_handler_pt handler;
    void                            *data;

    u_char                          *buf;     /* an event in pieces */
    size_t                           len;
    size_t                           size;

    off_t                            offset;  /* stream bytes seen */
    off_t                            start;   /* where this event starts */
    off_t                            end;     /* ... and ends (handler) */

    /* its "event:" line's type, once that first line is whole */
    u_char                           type[NGX_HTTP_CLASSIFY_SSE_TYPE_LEN];
    size_t                           type_len;

    unsigned                         content:1;   /* the event has a line */
    unsigned                         line:1;      /* the line has a byte */
    unsigned                         first:1;     /* on its first line */
    unsigned                         typed:1;     /* type known */
    unsigned                         too_big:1;
};


void ngx_http_classify_sse_init(ngx_http_classify_sse_t *sse,
    ngx_pool_t *pool, size_t max);
ngx_int_t ngx_http_classify_sse_feed(ngx_http_classify_sse_t *sse,
    u_char *p, size_t len);

ngx_int_t ngx_http_classify_stream_event(ngx_pool_t *pool, ngx_str_t *event,
    ngx_str_t *type, ngx_http_classify_event_t *ev);
void ngx_http_classify_stream_type(ngx_str_t *type,
    ngx_http_classify_event_t *ev);
ngx_uint_t ngx_http_classify_stream_textless(ngx_str_t *type);

void ngx_http_classify_stream_init(ngx_http_classify_stream_t *st);
ngx_int_t ngx_http_classify_stream_apply(ngx_pool_t *pool,
    ngx_http_classify_stream_t *st, ngx_http_classify_event_t *ev,
    size_t text);

u_char *ngx_http_classify_answer_text(u_char *data, size_t len, u_char *out);

/* reply.c: the end of a stream cut after its state st */
ngx_int_t ngx_http_classify_render_cut(ngx_pool_t *pool,
    ngx_http_classify_format_e format, ngx_http_classify_stream_t *st,
    ngx_str_t *part, ngx_http_classify_classifier_t *cl,
    ngx_http_classify_input_t *in, ngx_str_t *id, time_t now,
    ngx_str_t *body);


#endif /* _NGX_HTTP_CLASSIFY_STREAM_H_INCLUDED_ */


/*
 * ngx_http_classify_module: a classifier's reply in the client's format.
 *
 * openai: chat.completion.chunk events ending in "data: [DONE]" when the
 * client asked to stream (with the usage chunk of stream_options
 * include_usage before it), one chat.completion object when it did not;
 * responses: the Responses events from response.created to
 * response.completed, or one Response object; anthropic: the Messages
 * events from message_start to message_stop, or one Message object;
 * sse: the reply's lines as one event's "data:" lines; text: the reply
 * as it is; json: {"verdict": name, "reply": text}.
 *
 * A generation's stream cut by the output guard ends the same way, in
 * its own format, after what the client was sent of it
 * (ngx_http_classify_render_cut()): the reply as the last text, the
 * finish of a content filter, the terminating events; its steps are a
 * table too, each taken or not by what the stream had opened.
 *
 * Every reply but sse and text is a table of templates, each written
 * once: ngx_http_classify_expand() runs over them twice, first to
 * measure, then to write, so the size and the bytes come from the same
 * place.  In a template:
 *     %i  the reply's unique id ("classify-..."), after each format's prefix
 *     %t  the time, in seconds since the epoch
 *     %m  the client's model (or "classify"), a JSON string
 *     %r  the reply, a JSON string
 *     %n  the classifier's name, a JSON string
 *     %s  the next sequence number (Responses' "sequence_number"), from 0
 * and, in a cut stream, the generation's own:
 *     %G  its id (the chat chunks', the Response's), a JSON string
 *     %X  the message item's id (Responses), a JSON string
 *     %P  the whole text of the part the reply ends (Responses), a JSON string
 *     %o  the output_index (Responses), the block to close (Anthropic)
 *     %k  the content_index (Responses), the text block's index (Anthropic)
 */


#include "ngx_http_classify.h"
#include "ngx_http_classify_reply.h"
#include "ngx_http_classify_json.h"
#include "ngx_http_classify_stream.h"


/* what the templates are filled with */
typedef struct {
    ngx_str_t                      *id;
    time_t                          now;
    ngx_str_t                       model;
    ngx_str_t                      *reply;
    ngx_str_t                      *name;
    ngx_uint_t                      seq;

    ngx_str_t                      *gen_id;
    ngx_str_t                      *item;
    ngx_str_t                      *part;
    ngx_uint_t                      index;
    ngx_uint_t                      content;
} ngx_http_classify_fill_t;


/* one reply: a format, streamed or not, and its templates */
typedef struct {
    ngx_uint_t                      format;
    ngx_uint_t                      stream;      /* the client asked */
    ngx_uint_t                      usage;       /* ... and include_usage */
    ngx_str_t                       content_type;
    const char                    **tpl;         /* NULL-terminated */
} ngx_http_classify_reply_t;


/* OpenAI chat completions */

#define NGX_HTTP_CLASSIFY_CHAT_CHUNK(delta, finish)                           \
    "data: {\"id\":\"chatcmpl-%i\",\"object\":\"chat.completion.chunk\","     \
    "\"created\":%t,\"model\":%m,\"choices\":[{\"index\":0,\"delta\":"        \
    delta ",\"finish_reason\":" finish "}]}\n\n"

#define NGX_HTTP_CLASSIFY_CHAT_USAGE                                          \
    "{\"prompt_tokens\":0,\"completion_tokens\":0,\"total_tokens\":0}"

#define NGX_HTTP_CLASSIFY_CHAT_EVENTS                                         \
    NGX_HTTP_CLASSIFY_CHAT_CHUNK("{\"role\":\"assistant\",\"content\":\"\"}", \
                                 "null"),                                     \
    NGX_HTTP_CLASSIFY_CHAT_CHUNK("{\"content\":%r}", "null"),                 \
    NGX_HTTP_CLASSIFY_CHAT_CHUNK("{}", "\"stop\"")

static const char  *ngx_http_classify_chat_stream[] = {
    NGX_HTTP_CLASSIFY_CHAT_EVENTS,
    "data: [DONE]\n\n",
    NULL
};

static const char  *ngx_http_classify_chat_stream_usage[] = {
    NGX_HTTP_CLASSIFY_CHAT_EVENTS,
    "data: {\"id\":\"chatcmpl-%i\",\"object\":\"chat.completion.chunk\","
    "\"created\":%t,\"model\":%m,\"choices\":[],\"usage\":"
    NGX_HTTP_CLASSIFY_CHAT_USAGE "}\n\n",
    "data: [DONE]\n\n",
    NULL
};

static const char  *ngx_http_classify_chat_whole[] = {
    "{\"id\":\"chatcmpl-%i\",\"object\":\"chat.completion\",\"created\":%t,"
    "\"model\":%m,\"choices\":[{\"index\":0,\"message\":{\"role\":"
    "\"assistant\",\"content\":%r},\"finish_reason\":\"stop\"}],\"usage\":"
    NGX_HTTP_CLASSIFY_CHAT_USAGE "}",
    NULL
};


/* OpenAI Responses */

#define NGX_HTTP_CLASSIFY_RESP_TEXT(text)                                     \
    "{\"type\":\"output_text\",\"text\":" text ",\"annotations\":[]}"

#define NGX_HTTP_CLASSIFY_RESP_ITEM(id, status, content)                      \
    "{\"id\":" id ",\"type\":\"message\",\"status\":\"" status "\","           \
    "\"role\":\"assistant\",\"content\":[" content "]}"

#define NGX_HTTP_CLASSIFY_RESP_MESSAGE(status, content)                       \
    NGX_HTTP_CLASSIFY_RESP_ITEM("\"msg_%i\"", status, content)

#define NGX_HTTP_CLASSIFY_RESP_DONE                                           \
    NGX_HTTP_CLASSIFY_RESP_MESSAGE("completed",                               \
                                   NGX_HTTP_CLASSIFY_RESP_TEXT("%r"))

#define NGX_HTTP_CLASSIFY_RESP_USAGE                                          \
    "{\"input_tokens\":0,\"input_tokens_details\":{\"cached_tokens\":0},"     \
    "\"output_tokens\":0,\"output_tokens_details\":{\"reasoning_tokens\":0},"  \
    "\"total_tokens\":0}"

#define NGX_HTTP_CLASSIFY_RESPONSE(status, output, usage)                     \
    NGX_HTTP_CLASSIFY_RESPONSE_OF("\"resp_%i\"", status, "null", output,      \
                                  usage)

#define NGX_HTTP_CLASSIFY_RESPONSE_OF(id, status, incomplete, output, usage)  \
    "{\"id\":" id ",\"object\":\"response\",\"created_at\":%t,"               \
    "\"status\":\"" status "\",\"error\":null,\"incomplete_details\":"         \
    incomplete ",\"instructions\":null,\"max_output_tokens\":null,"          \
    "\"model\":%m,"                                                          \
    "\"output\":[" output "],\"parallel_tool_calls\":true,"                   \
    "\"previous_response_id\":null,\"reasoning\":{\"effort\":null,"           \
    "\"summary\":null},\"store\":false,\"temperature\":null,\"text\":"        \
    "{\"format\":{\"type\":\"text\"}},\"tool_choice\":\"auto\",\"tools\":[],"  \
    "\"top_p\":null,\"truncation\":\"disabled\",\"usage\":" usage ","         \
    "\"user\":null,\"metadata\":{}}"

#define NGX_HTTP_CLASSIFY_RESP_EVENT(type, fields)                            \
    "event: " type "\ndata: {\"type\":\"" type "\",\"sequence_number\":%s,"   \
    fields "}\n\n"

#define NGX_HTTP_CLASSIFY_RESP_PART                                           \
    "\"item_id\":\"msg_%i\",\"output_index\":0,\"content_index\":0,"

static const char  *ngx_http_classify_responses_stream[] = {
    NGX_HTTP_CLASSIFY_RESP_EVENT("response.created", "\"response\":"
        NGX_HTTP_CLASSIFY_RESPONSE("in_progress", "", "null")),
    NGX_HTTP_CLASSIFY_RESP_EVENT("response.in_progress", "\"response\":"
        NGX_HTTP_CLASSIFY_RESPONSE("in_progress", "", "null")),
    NGX_HTTP_CLASSIFY_RESP_EVENT("response.output_item.added",
        "\"output_index\":0,\"item\":"
        NGX_HTTP_CLASSIFY_RESP_MESSAGE("in_progress", "")),
    NGX_HTTP_CLASSIFY_RESP_EVENT("response.content_part.added",
        NGX_HTTP_CLASSIFY_RESP_PART "\"part\":"
        NGX_HTTP_CLASSIFY_RESP_TEXT("\"\"")),
    NGX_HTTP_CLASSIFY_RESP_EVENT("response.output_text.delta",
        NGX_HTTP_CLASSIFY_RESP_PART "\"delta\":%r"),
    NGX_HTTP_CLASSIFY_RESP_EVENT("response.output_text.done",
        NGX_HTTP_CLASSIFY_RESP_PART "\"text\":%r"),
    NGX_HTTP_CLASSIFY_RESP_EVENT("response.content_part.done",
        NGX_HTTP_CLASSIFY_RESP_PART "\"part\":"
        NGX_HTTP_CLASSIFY_RESP_TEXT("%r")),
    NGX_HTTP_CLASSIFY_RESP_EVENT("response.output_item.done",
        "\"output_index\":0,\"item\":" NGX_HTTP_CLASSIFY_RESP_DONE),
    NGX_HTTP_CLASSIFY_RESP_EVENT("response.completed", "\"response\":"
        NGX_HTTP_CLASSIFY_RESPONSE("completed", NGX_HTTP_CLASSIFY_RESP_DONE,
                                   NGX_HTTP_CLASSIFY_RESP_USAGE)),
    NULL
};

static const char  *ngx_http_classify_responses_whole[] = {
    NGX_HTTP_CLASSIFY_RESPONSE("completed", NGX_HTTP_CLASSIFY_RESP_DONE,
                               NGX_HTTP_CLASSIFY_RESP_USAGE),
    NULL
};


/* Anthropic Messages */

#define NGX_HTTP_CLASSIFY_ANT_EVENT(type, fields)                             \
    "event: " type "\ndata: {\"type\":\"" type "\"" fields "}\n\n"

#define NGX_HTTP_CLASSIFY_ANT_MESSAGE(content, stop)                          \
    "{\"id\":\"msg_%i\",\"type\":\"message\",\"role\":\"assistant\","         \
    "\"model\":%m,\"content\":[" content "],\"stop_reason\":" stop ","        \
    "\"stop_sequence\":null,\"usage\":{\"input_tokens\":0,"                   \
    "\"output_tokens\":0}}"

static const char  *ngx_http_classify_anthropic_stream[] = {
    NGX_HTTP_CLASSIFY_ANT_EVENT("message_start", ",\"message\":"
        NGX_HTTP_CLASSIFY_ANT_MESSAGE("", "null")),
    NGX_HTTP_CLASSIFY_ANT_EVENT("content_block_start",
        ",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}"),
    NGX_HTTP_CLASSIFY_ANT_EVENT("content_block_delta",
        ",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":%r}"),
    NGX_HTTP_CLASSIFY_ANT_EVENT("content_block_stop", ",\"index\":0"),
    NGX_HTTP_CLASSIFY_ANT_EVENT("message_delta",
        ",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},"
        "\"usage\":{\"output_tokens\":0}"),
    NGX_HTTP_CLASSIFY_ANT_EVENT("message_stop", ""),
    NULL
};

static const char  *ngx_http_classify_anthropic_whole[] = {
    NGX_HTTP_CLASSIFY_ANT_MESSAGE("{\"type\":\"text\",\"text\":%r}",
                                  "\"end_turn\""),
    NULL
};


/*
 * A generation's stream cut after what the client was sent: each step is
 * taken when the stream's state has every condition it names.
 */

#define NGX_HTTP_CLASSIFY_CUT_FRESH     0x01   /* nothing of it was sent */
#define NGX_HTTP_CLASSIFY_CUT_USAGE     0x02   /* include_usage */
#define NGX_HTTP_CLASSIFY_CUT_NEW_ITEM  0x04   /* no message item open */
#define NGX_HTTP_CLASSIFY_CUT_NEW_PART  0x08   /* no output_text part open */
#define NGX_HTTP_CLASSIFY_CUT_CLOSE     0x10   /* a block not of text open */
#define NGX_HTTP_CLASSIFY_CUT_NEW_BLOCK 0x20   /* no text block open */

typedef struct {
    ngx_uint_t                      when;
    const char                     *tpl;
} ngx_http_classify_cut_t;


#define NGX_HTTP_CLASSIFY_CHAT_CUT(delta, finish)                             \
    "data: {\"id\":%G,\"object\":\"chat.completion.chunk\",\"created\":%t,"   \
    "\"model\":%m,\"choices\":[{\"index\":0,\"delta\":" delta                 \
    ",\"finish_reason\":" finish "}]}\n\n"

static ngx_http_classify_cut_t  ngx_http_classify_chat_cut[] = {
    { NGX_HTTP_CLASSIFY_CUT_FRESH,
      NGX_HTTP_CLASSIFY_CHAT_CUT("{\"role\":\"assistant\",\"content\":\"\"}",
                                 "null") },
    { 0, NGX_HTTP_CLASSIFY_CHAT_CUT("{\"content\":%r}", "null") },
    { 0, NGX_HTTP_CLASSIFY_CHAT_CUT("{}", "\"content_filter\"") },
    { NGX_HTTP_CLASSIFY_CUT_USAGE,
      "data: {\"id\":%G,\"object\":\"chat.completion.chunk\",\"created\":%t,"
      "\"model\":%m,\"choices\":[],\"usage\":" NGX_HTTP_CLASSIFY_CHAT_USAGE
      "}\n\n" },
    { 0, "data: [DONE]\n\n" },
    { 0, NULL }
};


#define NGX_HTTP_CLASSIFY_RESP_CUT_PART                                       \
    "\"item_id\":%X,\"output_index\":%o,\"content_index\":%k,"

#define NGX_HTTP_CLASSIFY_RESP_CUT_ITEM(status, content)                      \
    NGX_HTTP_CLASSIFY_RESP_ITEM("%X", status, content)

static ngx_http_classify_cut_t  ngx_http_classify_responses_cut[] = {
    { NGX_HTTP_CLASSIFY_CUT_FRESH,
      NGX_HTTP_CLASSIFY_RESP_EVENT("response.created", "\"response\":"
          NGX_HTTP_CLASSIFY_RESPONSE_OF("%G", "in_progress", "null", "",
                                        "null")) },
    { NGX_HTTP_CLASSIFY_CUT_NEW_ITEM,
      NGX_HTTP_CLASSIFY_RESP_EVENT("response.output_item.added",
          "\"output_index\":%o,\"item\":"
          NGX_HTTP_CLASSIFY_RESP_CUT_ITEM("in_progress", "")) },
    { NGX_HTTP_CLASSIFY_CUT_NEW_PART,
      NGX_HTTP_CLASSIFY_RESP_EVENT("response.content_part.added",
          NGX_HTTP_CLASSIFY_RESP_CUT_PART "\"part\":"
          NGX_HTTP_CLASSIFY_RESP_TEXT("\"\"")) },
    { 0, NGX_HTTP_CLASSIFY_RESP_EVENT("response.output_text.delta",
             NGX_HTTP_CLASSIFY_RESP_CUT_PART "\"delta\":%r") },
    { 0, NGX_HTTP_CLASSIFY_RESP_EVENT("response.output_text.done",
             NGX_HTTP_CLASSIFY_RESP_CUT_PART "\"text\":%P") },
    { 0, NGX_HTTP_CLASSIFY_RESP_EVENT("response.content_part.done",
             NGX_HTTP_CLASSIFY_RESP_CUT_PART "\"part\":"
             NGX_HTTP_CLASSIFY_RESP_TEXT("%P")) },
    { 0, NGX_HTTP_CLASSIFY_RESP_EVENT("response.output_item.done",
             "\"output_index\":%o,\"item\":"
             NGX_HTTP_CLASSIFY_RESP_CUT_ITEM("completed",
                 NGX_HTTP_CLASSIFY_RESP_TEXT("%P"))) },
    { 0, NGX_HTTP_CLASSIFY_RESP_EVENT("response.completed", "\"response\":"
             NGX_HTTP_CLASSIFY_RESPONSE_OF("%G", "incomplete",
                 "{\"reason\":\"content_filter\"}",
                 NGX_HTTP_CLASSIFY_RESP_CUT_ITEM("completed",
                     NGX_HTTP_CLASSIFY_RESP_TEXT("%P")),
                 NGX_HTTP_CLASSIFY_RESP_USAGE)) },
    { 0, NULL }
};


static ngx_http_classify_cut_t  ngx_http_classify_anthropic_cut[] = {
    { NGX_HTTP_CLASSIFY_CUT_FRESH,
      NGX_HTTP_CLASSIFY_ANT_EVENT("message_start", ",\"message\":"
          NGX_HTTP_CLASSIFY_ANT_MESSAGE("", "null")) },
    { NGX_HTTP_CLASSIFY_CUT_CLOSE,
      NGX_HTTP_CLASSIFY_ANT_EVENT("content_block_stop", ",\"index\":%o") },
    { NGX_HTTP_CLASSIFY_CUT_NEW_BLOCK,
      NGX_HTTP_CLASSIFY_ANT_EVENT("content_block_start",
          ",\"index\":%k,\"content_block\":"
          "{\"type\":\"text\",\"text\":\"\"}") },
    { 0, NGX_HTTP_CLASSIFY_ANT_EVENT("content_block_delta",
             ",\"index\":%k,\"delta\":{\"type\":\"text_delta\",\"text\":%r}") },
    { 0, NGX_HTTP_CLASSIFY_ANT_EVENT("content_block_stop", ",\"index\":%k") },
    { 0, NGX_HTTP_CLASSIFY_ANT_EVENT("message_delta",
             ",\"delta\":{\"stop_reason\":\"refusal\",\"stop_sequence\":null},"
             "\"usage\":{\"output_tokens\":0}") },
    { 0, NGX_HTTP_CLASSIFY_ANT_EVENT("message_stop", "") },
    { 0, NULL }
};


static const char  *ngx_http_classify_json_whole[] = {
    "{\"verdict\":%n,\"reply\":%r}",
    NULL
};


/* the first entry that fits the format, the stream flag and include_usage */

static ngx_http_classify_reply_t  ngx_http_classify_replies[] = {

    { NGX_HTTP_CLASSIFY_REPLY_OPENAI, 1, 1, ngx_string("text/event-stream"),
      ngx_http_classify_chat_stream_usage },

    { NGX_HTTP_CLASSIFY_REPLY_OPENAI, 1, 0, ngx_string("text/event-stream"),
      ngx_http_classify_chat_stream },

    { NGX_HTTP_CLASSIFY_REPLY_OPENAI, 0, 0, ngx_string("application/json"),
      ngx_http_classify_chat_whole },

    { NGX_HTTP_CLASSIFY_REPLY_RESPONSES, 1, 0,
      ngx_string("text/event-stream"), ngx_http_classify_responses_stream },

    { NGX_HTTP_CLASSIFY_REPLY_RESPONSES, 0, 0, ngx_string("application/json"),
      ngx_http_classify_responses_whole },

    { NGX_HTTP_CLASSIFY_REPLY_ANTHROPIC, 1, 0,
      ngx_string("text/event-stream"), ngx_http_classify_anthropic_stream },

    { NGX_HTTP_CLASSIFY_REPLY_ANTHROPIC, 0, 0, ngx_string("application/json"),
      ngx_http_classify_anthropic_whole },

    { NGX_HTTP_CLASSIFY_REPLY_JSON, 0, 0, ngx_string("application/json"),
      ngx_http_classify_json_whole },

    { 0, 0, 0, ngx_null_string, NULL }
};


static ngx_int_t ngx_http_classify_render_table(ngx_pool_t *pool,
    const char **tpl, ngx_http_classify_fill_t *fill, ngx_str_t *body);
static ngx_int_t ngx_http_classify_cut_fill(ngx_pool_t *pool,
    ngx_http_classify_stream_t *st, ngx_str_t *part, ngx_str_t *id,
    ngx_http_classify_fill_t *fill, ngx_uint_t *when);
static ngx_int_t ngx_http_classify_prefixed(ngx_pool_t *pool,
    const char *prefix, ngx_str_t *id, ngx_str_t *s);
static u_char *ngx_http_classify_expand(u_char *p, const char *tpl,
    ngx_http_classify_fill_t *fill, size_t *len);
static ngx_int_t ngx_http_classify_render_sse(ngx_pool_t *pool,
    ngx_str_t *reply, ngx_str_t *body);


ngx_uint_t
ngx_http_classify_reply_format(ngx_uint_t conf, ngx_http_classify_input_t *in,
    ngx_str_t *accept)
{
    if (conf != NGX_HTTP_CLASSIFY_REPLY_AUTO) {
        return conf;
    }

    switch (in->format) {

    case NGX_HTTP_CLASSIFY_FORMAT_OPENAI:
        return NGX_HTTP_CLASSIFY_REPLY_OPENAI;

    case NGX_HTTP_CLASSIFY_FORMAT_RESPONSES:
        return NGX_HTTP_CLASSIFY_REPLY_RESPONSES;

    case NGX_HTTP_CLASSIFY_FORMAT_ANTHROPIC:
        return NGX_HTTP_CLASSIFY_REPLY_ANTHROPIC;

    default:
        break;
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


/*
 * The reply of classifier cl in the format, streamed or not as the
 * client asked (in); id is unique to this reply, "now" its time.
 */

ngx_int_t
ngx_http_classify_render_reply(ngx_pool_t *pool, ngx_uint_t format,
    ngx_http_classify_classifier_t *cl, ngx_http_classify_input_t *in,
    ngx_str_t *id, time_t now, ngx_str_t *content_type, ngx_str_t *body,
    ngx_uint_t *stream)
{
    ngx_http_classify_reply_t  *reply;
    ngx_http_classify_fill_t    fill;

    *stream = 0;

    switch (format) {

    case NGX_HTTP_CLASSIFY_REPLY_SSE:
        ngx_str_set(content_type, "text/event-stream");
        *stream = 1;
        return ngx_http_classify_render_sse(pool, &cl->reply, body);

    case NGX_HTTP_CLASSIFY_REPLY_TEXT:
        ngx_str_set(content_type, "text/plain; charset=utf-8");
        *body = cl->reply;
        return NGX_OK;

    default:
        break;
    }

    for (reply = ngx_http_classify_replies; reply->tpl; reply++) {
        if (reply->format == format
            && (reply->stream == 0 || in->stream)
            && (reply->usage == 0 || in->include_usage))
        {
            break;
        }
    }

    if (reply->tpl == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(&fill, sizeof(ngx_http_classify_fill_t));

    fill.id = id;
    fill.now = now;
    fill.model = in->model;
    fill.reply = &cl->reply;
    fill.name = &cl->name;

    if (fill.model.len == 0) {
        ngx_str_set(&fill.model, "classify");
    }

    *content_type = reply->content_type;
    *stream = reply->stream;

    return ngx_http_classify_render_table(pool, reply->tpl, &fill, body);
}


/*
 * The end of a generation's stream cut by classifier cl's verdict, after
 * what its state st says the client was sent: the reply as the last text
 * (of the part open, in Responses; part is that part's text so far), the
 * finish of a content filter ("content_filter", Anthropic's "refusal", a
 * Response "incomplete" for that reason) and the terminating events.  A
 * stream of which nothing of a format was sent starts anew, in format
 * (the client's: chat completions but for Responses and Anthropic).
 */

ngx_int_t
ngx_http_classify_render_cut(ngx_pool_t *pool,
    ngx_http_classify_format_e format,
    ngx_http_classify_stream_t *st, ngx_str_t *part,
    ngx_http_classify_classifier_t *cl, ngx_http_classify_input_t *in,
    ngx_str_t *id, time_t now, ngx_str_t *body)
{
    ngx_uint_t                 n, when;
    const char                *tpl[16];
    ngx_http_classify_cut_t   *cut;
    ngx_http_classify_fill_t   fill;

    ngx_memzero(&fill, sizeof(ngx_http_classify_fill_t));

    fill.id = id;
    fill.now = st->created ? st->created : now;
    fill.model = st->model.len ? st->model : in->model;
    fill.reply = &cl->reply;
    fill.name = &cl->name;
    fill.seq = st->seq;

    if (fill.model.len == 0) {
        ngx_str_set(&fill.model, "classify");
    }

    switch (st->started ? st->format : format) {

    case NGX_HTTP_CLASSIFY_FORMAT_RESPONSES:
        cut = ngx_http_classify_responses_cut;
        break;

    case NGX_HTTP_CLASSIFY_FORMAT_ANTHROPIC:
        cut = ngx_http_classify_anthropic_cut;
        break;

    default:
        cut = ngx_http_classify_chat_cut;
        break;
    }

    if (ngx_http_classify_cut_fill(pool, st, part, id, &fill, &when)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (!st->started) {
        when |= NGX_HTTP_CLASSIFY_CUT_FRESH;
    }

    if (in->include_usage) {
        when |= NGX_HTTP_CLASSIFY_CUT_USAGE;
    }

    for (n = 0; cut->tpl; cut++) {
        if ((cut->when & when) == cut->when) {
            tpl[n++] = cut->tpl;
        }
    }

    tpl[n] = NULL;

    return ngx_http_classify_render_table(pool, tpl, &fill, body);
}


/* what the cut's templates are filled with, and which steps it takes */

static ngx_int_t
ngx_http_classify_cut_fill(ngx_pool_t *pool, ngx_http_classify_stream_t *st,
    ngx_str_t *part, ngx_str_t *id, ngx_http_classify_fill_t *fill,
    ngx_uint_t *when)
{
    u_char     *p;
    ngx_str_t  *s;

    *when = 0;

    s = ngx_palloc(pool, 3 * sizeof(ngx_str_t));
    if (s == NULL) {
        return NGX_ERROR;
    }

    fill->gen_id = &s[0];
    fill->item = &s[1];
    fill->part = &s[2];

    /* the generation's ids, or the reply's own where it had none */

    if (st->id.len) {
        s[0] = st->id;

    } else if (ngx_http_classify_prefixed(pool,
                   st->format == NGX_HTTP_CLASSIFY_FORMAT_RESPONSES
                   ? "resp_" : "chatcmpl-", id, &s[0])
               != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* Responses: the reply ends the open text part, or a new one */

    if (st->item >= 0 && st->item_id.len) {
        s[1] = st->item_id;
        fill->index = st->item;

    } else {
        if (ngx_http_classify_prefixed(pool, "msg_", id, &s[1]) != NGX_OK) {
            return NGX_ERROR;
        }

        fill->index = st->items;
        *when |= NGX_HTTP_CLASSIFY_CUT_NEW_ITEM|NGX_HTTP_CLASSIFY_CUT_NEW_PART;
    }

    if (!(*when & NGX_HTTP_CLASSIFY_CUT_NEW_ITEM) && st->part >= 0) {
        fill->content = st->part;

    } else {
        fill->content = (*when & NGX_HTTP_CLASSIFY_CUT_NEW_ITEM) ? 0
                                                                 : st->parts;
        *when |= NGX_HTTP_CLASSIFY_CUT_NEW_PART;
        part = NULL;
    }

    s[2].len = (part ? part->len : 0) + fill->reply->len;

    p = ngx_pnalloc(pool, s[2].len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    s[2].data = p;

    if (part) {
        p = ngx_cpymem(p, part->data, part->len);
    }

    ngx_memcpy(p, fill->reply->data, fill->reply->len);

    /* Anthropic: the reply ends the open text block, or a new one */

    if (st->format == NGX_HTTP_CLASSIFY_FORMAT_ANTHROPIC) {
        if (st->block >= 0 && st->block_text) {
            fill->content = st->block;

        } else {
            if (st->block >= 0) {
                fill->index = st->block;
                *when |= NGX_HTTP_CLASSIFY_CUT_CLOSE;
            }

            fill->content = st->blocks;
            *when |= NGX_HTTP_CLASSIFY_CUT_NEW_BLOCK;
        }

    } else if (!st->started) {
        *when |= NGX_HTTP_CLASSIFY_CUT_NEW_BLOCK;
    }

    return NGX_OK;
}


/* "prefix" + id, into the pool */

static ngx_int_t
ngx_http_classify_prefixed(ngx_pool_t *pool, const char *prefix,
    ngx_str_t *id, ngx_str_t *s)
{
    size_t  n;

    n = ngx_strlen(prefix);

    s->data = ngx_pnalloc(pool, n + id->len);
    if (s->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(ngx_cpymem(s->data, prefix, n), id->data, id->len);
    s->len = n + id->len;

    return NGX_OK;
}


/* the templates measured (p NULL), then written */

static ngx_int_t
ngx_http_classify_render_table(ngx_pool_t *pool, const char **tpls,
    ngx_http_classify_fill_t *fill, ngx_str_t *body)
{
    u_char       *p;
    size_t        len;
    ngx_uint_t    seq;
    const char  **tpl;

    len = 0;
    seq = fill->seq;

    for (tpl = tpls; *tpl; tpl++) {
        (void) ngx_http_classify_expand(NULL, *tpl, fill, &len);
    }

    p = ngx_pnalloc(pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;
    fill->seq = seq;

    for (tpl = tpls; *tpl; tpl++) {
        p = ngx_http_classify_expand(p, *tpl, fill, NULL);
    }

    body->len = p - body->data;

    return NGX_OK;
}


/*
 * One template: written at p, or (p NULL) measured into *len, at most the
 * bytes it takes (a number is counted at its longest).
 */

static u_char *
ngx_http_classify_expand(u_char *p, const char *tpl,
    ngx_http_classify_fill_t *fill, size_t *len)
{
    size_t       n;
    ngx_str_t   *raw, *json;
    const char  *t, *start;

    for (t = tpl; *t; t += 2) {

        for (start = t; *t && *t != '%'; t++) { /* void */ }

        n = t - start;

        if (p) {
            p = ngx_cpymem(p, start, n);

        } else {
            *len += n;
        }

        if (*t == '\0') {
            break;
        }

        raw = NULL;
        json = NULL;

        switch (t[1]) {

        case 'i':
            raw = fill->id;
            break;

        case 't':
            if (p) {
                p = ngx_sprintf(p, "%T", fill->now);

            } else {
                *len += NGX_TIME_T_LEN;
            }

            break;

        case 's':
            if (p) {
                p = ngx_sprintf(p, "%ui", fill->seq);

            } else {
                *len += NGX_INT_T_LEN;
            }

            fill->seq++;
            break;

        case 'o':
        case 'k':
            if (p) {
                p = ngx_sprintf(p, "%ui", t[1] == 'o' ? fill->index
                                                      : fill->content);

            } else {
                *len += NGX_INT_T_LEN;
            }

            break;

        case 'm':
            json = &fill->model;
            break;

        case 'r':
            json = fill->reply;
            break;

        case 'G':
            json = fill->gen_id;
            break;

        case 'X':
            json = fill->item;
            break;

        case 'P':
            json = fill->part;
            break;

        default: /* 'n' */
            json = fill->name;
            break;
        }

        if (raw) {
            if (p) {
                p = ngx_cpymem(p, raw->data, raw->len);

            } else {
                *len += raw->len;
            }
        }

        if (json) {
            if (p) {
                p = ngx_http_classify_json_str(p, json);

            } else {
                *len += ngx_http_classify_json_str_len(json);
            }
        }
    }

    return p;
}


/*
 * One "data: " line per line of the reply, then a blank line; "\r\n" and
 * a lone "\r" end a line too (SSE's own line ends, and a reply_file saved
 * with CRLF), and go out as "\n".
 */

static ngx_int_t
ngx_http_classify_render_sse(ngx_pool_t *pool, ngx_str_t *reply,
    ngx_str_t *body)
{
    u_char  *p, *last, *nl, *start;
    size_t   len;

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

    body->len = p - body->data;

    return NGX_OK;
}

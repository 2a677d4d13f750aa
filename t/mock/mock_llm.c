/*
 * mock_llm.c -- the mock's LLM endpoints: the OpenAI-compatible and the
 * json classifiers, the generation, and the faults they inject (the
 * contract is at the top of mock.c).
 *
 * The generation's wire formats are a table (gen_formats): a format is the
 * stream's content type, the event of one piece, the events that end the
 * stream, and the whole answer when the client does not stream.
 */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "mock.h"


typedef struct llm_s  llm_t;

typedef struct {
    const char  *name;
    const char  *ctype;
    void       (*start)(mock_buf_t *b, llm_t *l);   /* NULL: none */
    void       (*piece)(mock_buf_t *b, llm_t *l, const char *p, size_t n);
    void       (*end)(mock_buf_t *b, llm_t *l);
    void       (*whole)(mock_buf_t *b, llm_t *l, const char *p, size_t n);
    void       (*tool)(mock_buf_t *b, llm_t *l);    /* NULL: tool= ignored */
} gen_format_t;

struct llm_s {
    char                *mode;        /* as given, for the 400 */
    char                *verdict;     /* verdict=, NULL: absent */
    char                *model;       /* the request's, or "mock" */
    char                *query;       /* the last user message, or "" */
    long                 size;        /* mode=big padding */
    size_t               prompt_bytes;
    long                 created;

    /* the generation */
    const gen_format_t  *fmt;
    int                  stream;
    int                  chunks;
    int                  sent;
    int                  seq;         /* Responses' sequence_number */
    int                  usage;       /* stream_options.include_usage */
    int                  role;        /* role=1: chat's role chunk first */
    int                  tool;        /* tool=K: a tool call after piece K */
    int                  block;       /* Anthropic: the text block's index */
    double               gap;
    char                *text;        /* text=, NULL: "chunkN " pieces */
    size_t              *cuts;        /* chunks + 1 offsets into text */
};


static void
llm_free(void *data)
{
    llm_t  *l = data;

    free(l->mode);
    free(l->verdict);
    free(l->model);
    free(l->query);
    free(l->text);
    free(l->cuts);
    free(l);
}


static long
tokens(size_t bytes)
{
    return (long) ((bytes + 3) / 4);
}


void
mock_error_json(mock_buf_t *b, int status, const char *message)
{
    buf_str(b, "{\"error\":{\"message\":");

    if (message) {
        buf_json(b, message, strlen(message));
    } else {
        buf_printf(b, "\"mock error %d\"", status);
    }

    buf_printf(b, ",\"type\":\"mock_error\",\"code\":%d}}", status);
}


static void
respond_error(mock_conn_t *c, int status, const char *message)
{
    mock_buf_t  b = { 0 };

    mock_error_json(&b, status, message);
    mock_respond(c, status, "application/json", b.p, b.len);
    buf_free(&b);
}


/* a whole answer, or half of it under mode=reset */

static void
respond_json(mock_conn_t *c, int status, mock_buf_t *b)
{
    if (c->r.mode == MOCK_RESET) {
        mock_respond_cut(c, status, "application/json", b->p, b->len);
    } else {
        mock_respond(c, status, "application/json", b->p, b->len);
    }
}


static void
chat_completion(mock_buf_t *b, llm_t *l, const char *id, const char *content,
    size_t n)
{
    long  pt = tokens(l->prompt_bytes), ct = tokens(n);

    buf_printf(b, "{\"id\":\"%s\",\"object\":\"chat.completion\","
               "\"created\":%ld,\"model\":", id, l->created);
    buf_json(b, l->model, strlen(l->model));
    buf_str(b, ",\"choices\":[{\"index\":0,\"message\":{\"role\":"
            "\"assistant\",\"content\":");
    buf_json(b, content, n);
    buf_printf(b, "},\"finish_reason\":\"stop\"}],\"usage\":{"
               "\"prompt_tokens\":%ld,\"completion_tokens\":%ld,"
               "\"total_tokens\":%ld}}", pt, ct, pt + ct);
}


/* the request's model and its last user message */

static void
read_request(mock_conn_t *c, llm_t *l)
{
    cJSON        *o, *v, *m, *role, *content;
    const char   *model = "mock", *query = "";

    o = cJSON_ParseWithLength(c->r.body, c->r.body_len);

    v = cJSON_GetObjectItemCaseSensitive(o, "model");
    if (cJSON_IsString(v)) {
        model = v->valuestring;
    }

    v = cJSON_GetObjectItemCaseSensitive(o, "messages");
    if (!cJSON_IsArray(v)) {
        v = NULL;
    }

    cJSON_ArrayForEach(m, v) {
        role = cJSON_GetObjectItemCaseSensitive(m, "role");
        content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (cJSON_IsString(role) && strcmp(role->valuestring, "user") == 0
            && cJSON_IsString(content))
        {
            query = content->valuestring;
        }
    }

    v = cJSON_GetObjectItemCaseSensitive(o, "stream");
    l->stream = cJSON_IsBool(v) ? cJSON_IsTrue(v) : -1;

    v = cJSON_GetObjectItemCaseSensitive(o, "stream_options");
    l->usage = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v,
                                                            "include_usage"));

    l->model = mock_strdup(model);
    l->query = mock_strdup(query);
    cJSON_Delete(o);
}


/* rule=NAME (the make run demo): "Yes." when the query has a rule's word */

static const char *
rule_verdict(const char *rule, const char *query)
{
    static const char  *offtopic[] = { "pizza", "football", "weather",
        "movie", "recipe", "stock", "bitcoin", "game", NULL };
    static const char  *fiqh[] = { "halal", "haram", "permissible",
        "allowed", "ruling", "fatwa", "forbidden", NULL };
    const char        **w;
    char               *lower, *p;
    int                 hit = 0;

    w = strcmp(rule, "offtopic") == 0 ? offtopic
        : strcmp(rule, "fiqh") == 0 ? fiqh : NULL;

    lower = mock_strdup(query);
    for (p = lower; *p; p++) {
        if (*p >= 'A' && *p <= 'Z') *p = (char) (*p - 'A' + 'a');
    }

    for ( ; w && *w && !hit; w++) {
        hit = (strstr(lower, *w) != NULL);
    }

    free(lower);
    return hit ? "Yes." : "No.";
}


static void
pad(mock_buf_t *b, long size)
{
    long  i;

    buf_reserve(b, b->len + (size_t) size);
    for (i = 0; i < size; i++) {
        b->p[b->len++] = "padding "[i % 8];
    }
}


/*
 * what every LLM endpoint does before its own answer: a bad mode, a hang
 * that ran out, a dropped connection, an error status; 1: answered
 */

static int
faults(mock_conn_t *c, llm_t *l)
{
    char  msg[128];
    int   st = c->r.status;

    switch (c->r.mode) {

    case MOCK_BAD_MODE:
        snprintf(msg, sizeof(msg), "mock: unknown mode %.60s", l->mode);
        respond_error(c, 400, msg);
        return 1;

    case MOCK_HANG:
        respond_error(c, 504, "mock hang ended");
        return 1;

    case MOCK_CLOSE:
    case MOCK_RST:
        mock_drop(c, c->r.mode == MOCK_RST);
        return 1;
    }

    if (st && (st < 200 || st > 299)) {
        respond_error(c, st, NULL);
        return 1;
    }

    return 0;
}


static int
ok_status(mock_conn_t *c)
{
    int  st = c->r.status;

    return (st >= 200 && st <= 299) ? st : 200;
}


static void
chat_fire(mock_conn_t *c)
{
    llm_t       *l = c->r.data;
    mock_buf_t   b = { 0 }, content = { 0 };
    const char  *v;

    if (faults(c, l)) {
        return;
    }

    if (c->r.mode == MOCK_GARBAGE) {
        buf_str(&b, "<html>mock garbage: this is not JSON {\"choices\": [\n");

    } else if (c->r.mode == MOCK_EMPTY) {
        buf_str(&b, "{\"choices\":[]}");

    } else {
        v = l->verdict ? l->verdict : "no";

        if (c->r.mode == MOCK_NOWORD) {
            v = l->verdict ? l->verdict : "???";
        }

        buf_str(&content, v);

        if (c->r.mode == MOCK_BIG) {
            buf_add(&content, " ", 1);
            pad(&content, l->size);
        }

        chat_completion(&b, l, "chatcmpl-mock", content.p ? content.p : "",
                        content.len);
    }

    respond_json(c, ok_status(c), &b);
    buf_free(&b);
    buf_free(&content);
}


static void
json_fire(mock_conn_t *c)
{
    llm_t       *l = c->r.data;
    mock_buf_t   b = { 0 };
    const char  *v = l->verdict ? l->verdict : "false";
    int          yes;

    if (faults(c, l)) {
        return;
    }

    yes = strcmp(v, "true") == 0 || strcmp(v, "1") == 0
          || strcmp(v, "yes") == 0;

    if (c->r.mode == MOCK_GARBAGE) {
        buf_str(&b, "<html>mock garbage: not JSON {\"verdict\": \n");

    } else if (c->r.mode == MOCK_EMPTY) {
        buf_str(&b, "{}");

    } else if (c->r.mode == MOCK_NOWORD) {
        buf_str(&b, "{\"verdict\":\"maybe\"}");

    } else {
        buf_printf(&b, "{\"verdict\":%s", yes ? "true" : "false");
        if (c->r.mode == MOCK_BIG) {
            buf_str(&b, ",\"pad\":\"");
            pad(&b, l->size);
            buf_str(&b, "\"");
        }
        buf_str(&b, "}");
    }

    respond_json(c, ok_status(c), &b);
    buf_free(&b);
}


static void gen_text(llm_t *l, mock_buf_t *text);


/* the OpenAI chat completions format of the generation */

static void
openai_chunk(mock_buf_t *b, llm_t *l)
{
    buf_printf(b, "data: {\"id\":\"chatcmpl-gen\",\"object\":"
               "\"chat.completion.chunk\",\"created\":%ld,\"model\":",
               l->created);
    buf_json(b, l->model, strlen(l->model));
    buf_str(b, ",\"choices\":[{\"index\":0,\"delta\":");
}


static void
openai_start(mock_buf_t *b, llm_t *l)
{
    if (l->role) {
        openai_chunk(b, l);
        buf_str(b, "{\"role\":\"assistant\",\"content\":\"\"},"
                "\"finish_reason\":null}]}\n\n");
    }
}


static void
openai_piece(mock_buf_t *b, llm_t *l, const char *p, size_t n)
{
    openai_chunk(b, l);
    buf_str(b, "{\"content\":");
    buf_json(b, p, n);
    buf_str(b, "},\"finish_reason\":null}]}\n\n");
}


/* tool=K: a tool call's chunk between the text */

static void
openai_tool(mock_buf_t *b, llm_t *l)
{
    openai_chunk(b, l);
    buf_str(b, "{\"tool_calls\":[{\"index\":0,\"id\":\"call_mock\","
            "\"type\":\"function\",\"function\":{\"name\":\"lookup\","
            "\"arguments\":\"{\\\"q\\\":1}\"}}]},\"finish_reason\":null}]}\n\n");
}


static void
openai_end(mock_buf_t *b, llm_t *l)
{
    mock_buf_t  text = { 0 };
    long        pt, ct;

    openai_chunk(b, l);
    buf_str(b, "{},\"finish_reason\":\"stop\"}]}\n\n");

    if (l->usage) {
        gen_text(l, &text);
        pt = tokens(l->prompt_bytes);
        ct = tokens(text.len);
        buf_printf(b, "data: {\"id\":\"chatcmpl-gen\",\"object\":"
                   "\"chat.completion.chunk\",\"created\":%ld,\"model\":",
                   l->created);
        buf_json(b, l->model, strlen(l->model));
        buf_printf(b, ",\"choices\":[],\"usage\":{\"prompt_tokens\":%ld,"
                   "\"completion_tokens\":%ld,\"total_tokens\":%ld}}\n\n",
                   pt, ct, pt + ct);
        buf_free(&text);
    }

    buf_str(b, "data: [DONE]\n\n");
}


static void
openai_whole(mock_buf_t *b, llm_t *l, const char *p, size_t n)
{
    chat_completion(b, l, "chatcmpl-gen", p, n);
}


/* the OpenAI Responses format */

static void
responses_object(mock_buf_t *b, llm_t *l, const char *status, const char *p,
    size_t n)
{
    long  pt = tokens(l->prompt_bytes), ct = tokens(n);

    buf_printf(b, "{\"id\":\"resp_gen\",\"object\":\"response\","
               "\"created_at\":%ld,\"status\":\"%s\",\"model\":",
               l->created, status);
    buf_json(b, l->model, strlen(l->model));
    buf_str(b, ",\"output\":[");

    if (p) {
        buf_str(b, "{\"id\":\"msg_gen\",\"type\":\"message\",\"status\":"
                "\"completed\",\"role\":\"assistant\",\"content\":[{\"type\":"
                "\"output_text\",\"text\":");
        buf_json(b, p, n);
        buf_str(b, ",\"annotations\":[]}]}");
    }

    buf_str(b, "],\"usage\":");

    if (p) {
        buf_printf(b, "{\"input_tokens\":%ld,\"output_tokens\":%ld,"
                   "\"total_tokens\":%ld}}", pt, ct, pt + ct);
    } else {
        buf_str(b, "null}");
    }
}


static void
responses_event(mock_buf_t *b, llm_t *l, const char *type)
{
    buf_printf(b, "event: %s\ndata: {\"type\":\"%s\",\"sequence_number\":%d,",
               type, type, l->seq++);
}


static void
responses_start(mock_buf_t *b, llm_t *l)
{
    responses_event(b, l, "response.created");
    buf_str(b, "\"response\":");
    responses_object(b, l, "in_progress", NULL, 0);
    buf_str(b, "}\n\n");

    responses_event(b, l, "response.output_item.added");
    buf_str(b, "\"output_index\":0,\"item\":{\"id\":\"msg_gen\",\"type\":"
            "\"message\",\"status\":\"in_progress\",\"role\":\"assistant\","
            "\"content\":[]}}\n\n");

    responses_event(b, l, "response.content_part.added");
    buf_str(b, "\"item_id\":\"msg_gen\",\"output_index\":0,\"content_index\":0,"
            "\"part\":{\"type\":\"output_text\",\"text\":\"\","
            "\"annotations\":[]}}\n\n");
}


static void
responses_piece(mock_buf_t *b, llm_t *l, const char *p, size_t n)
{
    responses_event(b, l, "response.output_text.delta");
    buf_str(b, "\"item_id\":\"msg_gen\",\"output_index\":0,\"content_index\":0,"
            "\"delta\":");
    buf_json(b, p, n);
    buf_str(b, "}\n\n");
}


static void
responses_end(mock_buf_t *b, llm_t *l)
{
    mock_buf_t  text = { 0 };

    gen_text(l, &text);

    responses_event(b, l, "response.output_text.done");
    buf_str(b, "\"item_id\":\"msg_gen\",\"output_index\":0,\"content_index\":0,"
            "\"text\":");
    buf_json(b, text.p ? text.p : "", text.len);
    buf_str(b, "}\n\n");

    responses_event(b, l, "response.completed");
    buf_str(b, "\"response\":");
    responses_object(b, l, "completed", text.p ? text.p : "", text.len);
    buf_str(b, "}\n\n");

    buf_free(&text);
}


static void
responses_whole(mock_buf_t *b, llm_t *l, const char *p, size_t n)
{
    responses_object(b, l, "completed", p, n);
}


/* the Anthropic Messages format */

static void
anthropic_message(mock_buf_t *b, llm_t *l, const char *p, size_t n)
{
    buf_str(b, "{\"id\":\"msg_gen\",\"type\":\"message\",\"role\":"
            "\"assistant\",\"model\":");
    buf_json(b, l->model, strlen(l->model));
    buf_str(b, ",\"content\":[");

    if (p) {
        buf_str(b, "{\"type\":\"text\",\"text\":");
        buf_json(b, p, n);
        buf_str(b, "}");
    }

    buf_printf(b, "],\"stop_reason\":%s,\"stop_sequence\":null,\"usage\":"
               "{\"input_tokens\":%ld,\"output_tokens\":%ld}}",
               p ? "\"end_turn\"" : "null", tokens(l->prompt_bytes),
               p ? tokens(n) : 0L);
}


static void
anthropic_start(mock_buf_t *b, llm_t *l)
{
    buf_str(b, "event: message_start\ndata: {\"type\":\"message_start\","
            "\"message\":");
    anthropic_message(b, l, NULL, 0);
    buf_str(b, "}\n\nevent: content_block_start\ndata: {\"type\":"
            "\"content_block_start\",\"index\":0,\"content_block\":"
            "{\"type\":\"text\",\"text\":\"\"}}\n\n"
            "event: ping\ndata: {\"type\":\"ping\"}\n\n");
}


static void
anthropic_piece(mock_buf_t *b, llm_t *l, const char *p, size_t n)
{
    buf_printf(b, "event: content_block_delta\ndata: {\"type\":"
               "\"content_block_delta\",\"index\":%d,\"delta\":{\"type\":"
               "\"text_delta\",\"text\":", l->block);
    buf_json(b, p, n);
    buf_str(b, "}}\n\n");
}


static void
anthropic_end(mock_buf_t *b, llm_t *l)
{
    mock_buf_t  text = { 0 };

    gen_text(l, &text);

    buf_printf(b, "event: content_block_stop\ndata: {\"type\":"
               "\"content_block_stop\",\"index\":%d}\n\n"
               "event: message_delta\ndata: {\"type\":\"message_delta\","
               "\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":"
               "null},\"usage\":{\"output_tokens\":%ld}}\n\n"
               "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
               l->block, tokens(text.len));

    buf_free(&text);
}


/* tool=K: the text block closed, a tool_use block, a new text block */

static void
anthropic_tool(mock_buf_t *b, llm_t *l)
{
    buf_printf(b, "event: content_block_stop\ndata: {\"type\":"
               "\"content_block_stop\",\"index\":%d}\n\n"
               "event: content_block_start\ndata: {\"type\":"
               "\"content_block_start\",\"index\":%d,\"content_block\":{"
               "\"type\":\"tool_use\",\"id\":\"toolu_mock\",\"name\":"
               "\"lookup\",\"input\":{}}}\n\n"
               "event: content_block_delta\ndata: {\"type\":"
               "\"content_block_delta\",\"index\":%d,\"delta\":{\"type\":"
               "\"input_json_delta\",\"partial_json\":\"{\\\"q\\\": 1}\"}}\n\n"
               "event: content_block_stop\ndata: {\"type\":"
               "\"content_block_stop\",\"index\":%d}\n\n"
               "event: content_block_start\ndata: {\"type\":"
               "\"content_block_start\",\"index\":%d,\"content_block\":{"
               "\"type\":\"text\",\"text\":\"\"}}\n\n",
               l->block, l->block + 1, l->block + 1, l->block + 1,
               l->block + 2);
    l->block += 2;
}


static void
anthropic_whole(mock_buf_t *b, llm_t *l, const char *p, size_t n)
{
    anthropic_message(b, l, p, n);
}


static const gen_format_t  gen_formats[] = {
    { "openai", "text/event-stream", openai_start, openai_piece, openai_end,
      openai_whole, openai_tool },
    { "responses", "text/event-stream", responses_start, responses_piece,
      responses_end, responses_whole, NULL },
    { "anthropic", "text/event-stream", anthropic_start, anthropic_piece,
      anthropic_end, anthropic_whole, anthropic_tool },
    { NULL, NULL, NULL, NULL, NULL, NULL, NULL }
};


/* piece i of the generation, into b */

static void
gen_piece(mock_buf_t *b, llm_t *l, int i)
{
    char  name[32];
    int   n;

    if (l->text) {
        l->fmt->piece(b, l, l->text + l->cuts[i], l->cuts[i + 1] - l->cuts[i]);
        return;
    }

    n = snprintf(name, sizeof(name), "chunk%d ", i + 1);
    l->fmt->piece(b, l, name, (size_t) n);
}


/* the pieces put together */

static void
gen_text(llm_t *l, mock_buf_t *text)
{
    char  name[32];
    int   i, n;

    for (i = 0; i < l->chunks; i++) {
        if (l->text) {
            buf_add(text, l->text + l->cuts[i], l->cuts[i + 1] - l->cuts[i]);
        } else {
            n = snprintf(name, sizeof(name), "chunk%d ", i + 1);
            buf_add(text, name, (size_t) n);
        }
    }
}


static void
gen_whole(mock_conn_t *c, llm_t *l)
{
    mock_buf_t  text = { 0 }, b = { 0 };

    gen_text(l, &text);

    l->fmt->whole(&b, l, text.p ? text.p : "", text.len);
    respond_json(c, ok_status(c), &b);
    buf_free(&b);
    buf_free(&text);
}


static void
gen_fire(mock_conn_t *c)
{
    llm_t       *l = c->r.data;
    mock_buf_t   b = { 0 };
    int          last, alive;

    if (!c->r.headers_sent) {
        if (faults(c, l)) {
            return;
        }

        if (!l->stream) {
            gen_whole(c, l);
            return;
        }

        mock_stream_head(c, ok_status(c), l->fmt->ctype);

        if (l->fmt->start) {
            l->fmt->start(&b, l);
        }
    }

    if (l->sent < l->chunks) {
        gen_piece(&b, l, l->sent++);

        if (l->sent == l->tool && l->fmt->tool) {
            l->fmt->tool(&b, l);
        }
    }

    if (c->r.mode == MOCK_RESET) {       /* the first piece, then close */
        mock_stream_cut(c, b.p ? b.p : "", b.len);
        buf_free(&b);
        return;
    }

    last = (l->sent >= l->chunks);
    if (last) {
        l->fmt->end(&b, l);
    }

    alive = mock_stream(c, b.p ? b.p : "", b.len, last);
    buf_free(&b);

    if (alive && !last) {
        mock_timer(c, l->gap);
    }
}


/* text= split evenly into chunks pieces on UTF-8 character boundaries */

static void
gen_cuts(llm_t *l)
{
    size_t   len = strlen(l->text), n = 0, i, *starts;
    int      k;

    starts = mock_alloc((len + 1) * sizeof(size_t));

    for (i = 0; i < len; i++) {
        if (i == 0 || ((unsigned char) l->text[i] & 0xc0) != 0x80) {
            starts[n++] = i;
        }
    }
    starts[n] = len;

    l->cuts = mock_alloc(((size_t) l->chunks + 1) * sizeof(size_t));
    for (k = 0; k <= l->chunks; k++) {
        l->cuts[k] = starts[(size_t) k * n / (size_t) l->chunks];
    }

    free(starts);
}


static int
mode_of(const char *name, int generation)
{
    static const char  *names[] = { "ok", "garbage", "empty", "noword",
        "big", "hang", "reset", "rst", "close" };
    int                 m;

    if (name == NULL || name[0] == '\0') {
        return MOCK_OK;
    }

    for (m = MOCK_OK; m <= MOCK_CLOSE; m++) {
        if (strcmp(name, names[m]) == 0) {
            break;
        }
    }

    if (m > MOCK_CLOSE
        || (generation && m != MOCK_OK && m != MOCK_HANG && m != MOCK_RESET
            && m != MOCK_RST && m != MOCK_CLOSE))
    {
        return MOCK_BAD_MODE;
    }

    return m;
}


static llm_t *
llm_start(mock_conn_t *c, int generation)
{
    mock_req_t  *r = &c->r;
    llm_t       *l;
    char        *rule;

    l = mock_alloc(sizeof(llm_t));
    r->data = l;
    r->free_data = llm_free;

    l->mode = mock_arg(r->query, "mode");
    r->mode = mode_of(l->mode, generation);
    r->status = (int) mock_arg_num(r->query, "status", 0);
    if (r->status != 0 && (r->status < 100 || r->status > 599)) {
        r->status = 500;
    }

    r->delay = mock_arg_num(r->query, "delay", 0);
    if (r->delay < 0 || r->delay > 1e6) {
        r->delay = 0;
    }
    if (r->mode == MOCK_HANG) {
        r->delay += MOCK_HANG_S;
    }

    l->verdict = mock_arg(r->query, "verdict");
    l->size = (long) mock_arg_num(r->query, "size", 140000);
    if (l->size < 0 || l->size > MOCK_BODY_MAX) {
        l->size = 140000;
    }
    l->prompt_bytes = r->body_len;
    l->created = (long) time(NULL);

    read_request(c, l);

    rule = mock_arg(r->query, "rule");
    if (rule) {
        free(l->verdict);
        l->verdict = mock_strdup(rule_verdict(rule, l->query));
        free(rule);
    }

    return l;
}


static void
llm_wait(mock_conn_t *c)
{
    if (c->r.delay > 0) {
        mock_timer(c, c->r.delay);
    } else {
        c->r.ep->fire(c);
    }
}


static void
classifier_start(mock_conn_t *c)
{
    llm_start(c, 0);
    llm_wait(c);
}


static void
gen_start(mock_conn_t *c)
{
    mock_req_t  *r = &c->r;
    llm_t       *l;
    char        *s;
    double       k;

    l = llm_start(c, 1);

    k = mock_arg_num(r->query, "chunks", 3);
    l->chunks = k < 0 ? 0 : k > 100000 ? 100000 : (int) k;
    l->gap = mock_arg_num(r->query, "gap", 0);
    if (l->gap < 0 || l->gap > 1e6) {
        l->gap = 0;
    }

    l->role = (mock_arg_num(r->query, "role", 0) != 0);
    l->tool = (int) mock_arg_num(r->query, "tool", 0);

    l->text = mock_arg(r->query, "text");
    if (l->text && l->chunks) {
        gen_cuts(l);
    }
    if (l->chunks == 0) {
        free(l->text);
        l->text = NULL;
    }

    /* strict=1: OpenAI's own rule, a stream only when "stream": true */
    s = mock_arg(r->query, "strict");
    if (s && strcmp(s, "0") != 0) {
        l->stream = (l->stream == 1);
    } else {
        l->stream = (l->stream != 0);
    }
    free(s);

    s = mock_arg(r->query, "format");
    for (l->fmt = gen_formats; l->fmt->name; l->fmt++) {
        if (s == NULL || strcmp(s, l->fmt->name) == 0) {
            break;
        }
    }
    if (l->fmt->name == NULL && r->mode != MOCK_BAD_MODE) {
        l->fmt = gen_formats;
        r->mode = MOCK_BAD_MODE;
        free(l->mode);
        l->mode = mock_alloc(strlen(s) + 8);
        sprintf(l->mode, "format=%s", s);
    }
    free(s);

    llm_wait(c);
}


static void
unknown_start(mock_conn_t *c)
{
    mock_buf_t  b = { 0 }, msg = { 0 };

    buf_str(&msg, "mock: no endpoint ");
    buf_add(&msg, c->r.uri, strcspn(c->r.uri, "?"));
    buf_add(&msg, "", 1);
    mock_error_json(&b, 404, msg.p);
    mock_respond(c, 404, "application/json", b.p, b.len);
    buf_free(&b);
    buf_free(&msg);
}


const mock_endpoint_t  mock_llm_endpoints[] = {
    { "/v1/chat/completions", 1, classifier_start, chat_fire },
    { "/classify/json", 1, classifier_start, json_fire },
    { "/v1/generate", 1, gen_start, gen_fire },
    { NULL, 1, unknown_start, unknown_start }
};

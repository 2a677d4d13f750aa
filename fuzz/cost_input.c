
/*
 * fuzz/cost_input.c: what the request-body parser costs on the bodies an
 * attacker would send: CPU time per parse and the bytes it allocates.
 *
 *     make fuzz-cost            # every body
 *     build/fuzz/cost_input NAME [RUNS]
 *     build/fuzz/cost_input --seeds DIR
 *
 * Each body is built here, parsed RUNS times (default 20) with the
 * classifiers' largest "context" at 6, and reported as the fastest and
 * the median CPU time of one parse (CLOCK_PROCESS_CPUTIME_ID), the bytes
 * asked of the pool, and the answer (the query's length and the context
 * messages, or the 400's reason).  Built with -DNGX_COST_CJSON, it also
 * counts cJSON's own malloc() peak: that is how the parser before the pull
 * reader was measured.  --seeds writes the bodies into DIR as fuzz_input
 * seeds (a settings byte first), so that the fuzzer's time budget meets
 * bodies large enough for anything slower than linear to show.
 */


#include "ngx_http_classify.h"
#include "ngx_fuzz.h"

#include <time.h>


#if (NGX_COST_CJSON)

#include <cjson/cJSON.h>

static size_t  ngx_cost_live, ngx_cost_peak;


static void *
ngx_cost_malloc(size_t size)
{
    size_t  *p;

    p = malloc(sizeof(size_t) + size);
    if (p == NULL) {
        return NULL;
    }

    *p = size;
    ngx_cost_live += size;

    if (ngx_cost_live > ngx_cost_peak) {
        ngx_cost_peak = ngx_cost_live;
    }

    return p + 1;
}


static void
ngx_cost_free(void *ptr)
{
    size_t  *p;

    if (ptr) {
        p = (size_t *) ptr - 1;
        ngx_cost_live -= *p;
        free(p);
    }
}

#endif


typedef struct {
    const char  *name;
    const char  *what;
    const char  *head;
    const char  *item;
    size_t       n;
    const char  *tail;
    ngx_uint_t   anthropic;     /* sent with an "anthropic-version" header */
} ngx_cost_body_t;


static ngx_cost_body_t  ngx_cost_bodies[] = {

    { "zeros-60k", "60k numbers before the user turn (117 KiB)",
      "{\"messages\":[", "0,", 60000,
      "{\"role\":\"user\",\"content\":\"x\"}]}", 0 },

    { "zeros-200k", "200k numbers before the user turn (400 KiB)",
      "{\"messages\":[", "0,", 200000,
      "{\"role\":\"user\",\"content\":\"x\"}]}", 0 },

    { "tools-30k", "30k tool messages before the user turn (880 KiB)",
      "{\"messages\":[", "{\"role\":\"tool\",\"content\":\"x\"},", 30000,
      "{\"role\":\"user\",\"content\":\"x\"}]}", 0 },

    { "turns-30k", "30k user and assistant turns (1 MiB)",
      "{\"messages\":[",
      "{\"role\":\"user\",\"content\":\"q\"},"
      "{\"role\":\"assistant\",\"content\":\"a\"},", 15000,
      "{\"role\":\"user\",\"content\":\"x\"}]}", 0 },

    { "responses-30k", "30k function calls before the user item (1 MiB)",
      "{\"input\":[",
      "{\"type\":\"function_call\",\"call_id\":\"c\",\"name\":\"f\","
      "\"arguments\":\"{}\"},", 15000,
      "{\"role\":\"user\",\"content\":\"x\"}]}", 0 },

    { "anthropic-15k", "15k tool uses and results after the user turn "
      "(1 MiB)",
      "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},",
      "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\","
      "\"id\":\"t\",\"name\":\"f\",\"input\":{}}]},"
      "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\","
      "\"tool_use_id\":\"t\",\"content\":\"r\"}]},", 7000,
      "{\"role\":\"assistant\",\"content\":\"a\"}]}", 1 },

    { "parts-1m", "a user turn of 1 MiB of image parts (Anthropic)",
      "{\"messages\":[{\"role\":\"user\",\"content\":[",
      "{\"type\":\"image\",\"source\":{}},", 30000,
      "{\"type\":\"text\",\"text\":\"x\"}]}]}", 1 },

    { "numbers-1m", "a 1 MiB array of numbers beside the query",
      "{\"user_query\":\"x\",\"pad\":[", "0,", 524000, "0]}", 0 },

    { "messages-1m", "a 1 MiB \"messages\" array of numbers",
      "{\"messages\":[", "0,", 524000,
      "{\"role\":\"user\",\"content\":\"x\"}]}", 0 },

    { "deep-1000", "1000 levels of nesting (the limit)",
      "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"d\":", "[", 999,
      NULL, 0 },

    { "deep-1001", "1001 levels of nesting (past the limit)",
      "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"d\":", "[", 1000,
      NULL, 0 },

    { "deep-1m", "1 MiB of \"[\"",
      "{\"d\":", "[", 1048000, "", 0 },

    { "escapes-1m", "a 1 MiB query of escapes",
      "{\"user_query\":\"", "\\u00e9\\n\\\"\\\\\\ud83d\\ude00", 40000,
      "\"}", 0 },

    { NULL, NULL, NULL, NULL, 0, NULL, 0 }
};


static u_char *
ngx_cost_build(ngx_cost_body_t *b, size_t *len)
{
    u_char  *body, *p;
    size_t   n, i, head, item, tail;

    head = strlen(b->head);
    item = strlen(b->item);
    tail = b->tail ? strlen(b->tail) : 0;

    /* a tail of NULL closes the nesting the items opened */
    n = head + item * b->n + (b->tail ? tail : b->n + 1);

    body = malloc(n);
    p = ngx_cpymem(body, b->head, head);

    for (i = 0; i < b->n; i++) {
        p = ngx_cpymem(p, b->item, item);
    }

    if (b->tail) {
        p = ngx_cpymem(p, b->tail, tail);

    } else {
        ngx_memset(p, ']', b->n);
        p += b->n;
        *p++ = '}';
    }

    *len = p - body;

    return body;
}


static double
ngx_cost_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);

    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}


static int
ngx_cost_cmp(const void *a, const void *b)
{
    double  x = *(double *) a, y = *(double *) b;

    return x < y ? -1 : x > y;
}


static void
ngx_cost_run(ngx_cost_body_t *b, ngx_uint_t runs)
{
    u_char                        *body;
    size_t                         len, bytes, peak;
    double                         t, ms[100];
    ngx_int_t                      rc;
    ngx_uint_t                     i;
    const char                    *err;
    ngx_http_classify_input_t      in;
    ngx_http_classify_loc_conf_t   clcf;

    body = ngx_cost_build(b, &len);

    ngx_memzero(&clcf, sizeof(ngx_http_classify_loc_conf_t));
    clcf.input = NGX_HTTP_CLASSIFY_INPUT_AUTO;
    clcf.max_context = 6;
    ngx_str_set(&clcf.query_field, "user_query");
    ngx_str_set(&clcf.session_field, "session_id");

    bytes = 0;
    peak = 0;
    rc = NGX_ERROR;
    err = NULL;

    for (i = 0; i < runs; i++) {
        ngx_memzero(&in, sizeof(ngx_http_classify_input_t));
        err = NULL;

        t = ngx_cost_now();
        rc = ngx_http_classify_parse_input(NULL, &clcf, b->anthropic, body,
                                           len, &in, &err);
        ms[i] = ngx_cost_now() - t;

        bytes = ngx_fuzz_pool_bytes();
        ngx_fuzz_pool_reset();
    }

#if (NGX_COST_CJSON)
    peak = ngx_cost_peak;
    ngx_cost_peak = 0;
#endif

    qsort(ms, runs, sizeof(double), ngx_cost_cmp);

    printf("%-12s %8zu B  %9.3f ms min %9.3f ms median  pool %8zu B"
           "  malloc peak %9zu B  %s",
           b->name, len, ms[0], ms[runs / 2], bytes, peak, b->what);

    if (rc == NGX_OK) {
        printf(": query %zu B, %zu context\n",
               (size_t) in.query.len, (size_t) in.context.nelts);

    } else {
        printf(": %s\n", err ? err : "out of memory");
    }

    free(body);
}


static int
ngx_cost_seeds(const char *dir)
{
    u_char           *body;
    char              path[4096];
    size_t            len;
    FILE             *f;
    ngx_cost_body_t  *b;

    for (b = ngx_cost_bodies; b->name; b++) {
        body = ngx_cost_build(b, &len);

        snprintf(path, sizeof(path), "%s/%s", dir, b->name);

        f = fopen(path, "w");
        if (f == NULL) {
            perror(path);
            return 1;
        }

        /* auto input (with the anthropic-version header), "context" 6 */
        fputc(b->anthropic ? 0x9b : 0x1b, f);
        fwrite(body, 1, len, f);
        fclose(f);
        free(body);
    }

    return 0;
}


int
main(int argc, char **argv)
{
    ngx_uint_t        runs;
    ngx_cost_body_t  *b;

#if (NGX_COST_CJSON)
    cJSON_Hooks  hooks = { ngx_cost_malloc, ngx_cost_free };

    cJSON_InitHooks(&hooks);
#endif

    if (argc > 2 && strcmp(argv[1], "--seeds") == 0) {
        return ngx_cost_seeds(argv[2]);
    }

    runs = (argc > 2) ? (ngx_uint_t) atoi(argv[2]) : 20;
    runs = ngx_max(1, ngx_min(runs, 100));

    for (b = ngx_cost_bodies; b->name; b++) {
        if (argc < 2 || strcmp(argv[1], "all") == 0
            || strcmp(argv[1], b->name) == 0)
        {
            ngx_cost_run(b, runs);
            fflush(stdout);
        }
    }

    return 0;
}

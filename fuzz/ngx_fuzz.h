
/*
 * fuzz/ngx_fuzz.h: what the fuzz targets share.
 */


#ifndef _NGX_FUZZ_H_INCLUDED_
#define _NGX_FUZZ_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include <time.h>


/* frees every block ngx_palloc() gave out since the last reset */
void ngx_fuzz_pool_reset(void);
/* the bytes ngx_palloc() gave out since the last reset */
size_t ngx_fuzz_pool_bytes(void);


/* a property of the module's output does not hold: report and crash */
#define ngx_fuzz_assert(cond, what)                                           \
    if (!(cond)) {                                                            \
        fprintf(stderr, "fuzz: %s:%d: %s\n", __FILE__, __LINE__, what);       \
        abort();                                                              \
    }


/*
 * The CPU time one call of a pure function may take for an input of n
 * bytes: linear, with room for the sanitizers and a loaded machine (the
 * reader costs some 30 ns a byte under ASan); anything worse than linear
 * blows it on a large enough input.
 */
#define NGX_FUZZ_BUDGET(n)  (20000000 + (uint64_t) (n) * 500)


static ngx_inline uint64_t
ngx_fuzz_cpu_ns(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);

    return (uint64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}


/*
 * Runs "call" (a statement that may run twice) and asserts it took no more
 * than NGX_FUZZ_BUDGET() for n bytes of input; a second run forgives one
 * slow first one (noise), a blow-up is slow both times.
 */
#define ngx_fuzz_timed(n, call, what)                                         \
    do {                                                                      \
        uint64_t    ngx_fuzz_start, ngx_fuzz_took;                            \
        ngx_uint_t  ngx_fuzz_try;                                             \
                                                                              \
        for (ngx_fuzz_try = 0; /* void */; ngx_fuzz_try++) {                 \
            ngx_fuzz_start = ngx_fuzz_cpu_ns();                               \
            call;                                                             \
            ngx_fuzz_took = ngx_fuzz_cpu_ns() - ngx_fuzz_start;               \
                                                                              \
            if (ngx_fuzz_took <= NGX_FUZZ_BUDGET(n) || ngx_fuzz_try) {       \
                break;                                                        \
            }                                                                 \
        }                                                                     \
                                                                              \
        ngx_fuzz_assert(ngx_fuzz_took <= NGX_FUZZ_BUDGET(n),                  \
                        what " took more than linear time");                  \
    } while (0)


/* as the module looks keys up: case-sensitively */
#define ngx_fuzz_get(object, key)                                             \
    cJSON_GetObjectItemCaseSensitive(object, key)


/* the fuzz input, cut into fields */
typedef struct {
    const u_char  *p;
    const u_char  *last;
} ngx_fuzz_input_t;


static ngx_inline u_char
ngx_fuzz_byte(ngx_fuzz_input_t *in)
{
    return in->p < in->last ? *in->p++ : 0;
}


/*
 * The next field, up to a "\n--\n" separator or the end, copied into a
 * block of its own exact size, so that reading past it is caught.
 */

static ngx_inline void
ngx_fuzz_field(ngx_fuzz_input_t *in, ngx_pool_t *pool, ngx_str_t *s)
{
    const u_char  *end;

    end = in->p;

    while (end < in->last
           && !(in->last - end >= 4 && ngx_strncmp(end, "\n--\n", 4) == 0))
    {
        end++;
    }

    s->len = end - in->p;
    s->data = ngx_pnalloc(pool, s->len ? s->len : 1);
    ngx_memcpy(s->data, in->p, s->len);

    in->p = (end < in->last) ? end + 4 : end;
}


#endif /* _NGX_FUZZ_H_INCLUDED_ */

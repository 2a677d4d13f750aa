
/*
 * fuzz/ngx_fuzz.h: what the fuzz targets share.
 */


#ifndef _NGX_FUZZ_H_INCLUDED_
#define _NGX_FUZZ_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/* frees every block ngx_palloc() gave out since the last reset */
void ngx_fuzz_pool_reset(void);


/* a property of the module's output does not hold: report and crash */
#define ngx_fuzz_assert(cond, what)                                           \
    if (!(cond)) {                                                            \
        fprintf(stderr, "fuzz: %s:%d: %s\n", __FILE__, __LINE__, what);       \
        abort();                                                              \
    }


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

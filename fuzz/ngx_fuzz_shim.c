
/*
 * fuzz/ngx_fuzz_shim.c: the few nginx core functions that the module's pure
 * parts call, written for the fuzzers.
 *
 * nginx-dev ships nginx's headers, not its core sources, so the fuzz
 * targets cannot link nginx's own ngx_string.c and ngx_palloc.c.  These are
 * this project's implementations of the same contracts (as documented by
 * the prototypes in ngx_string.h, ngx_palloc.h and ngx_array.h), narrowed
 * to what the pure files use:
 *
 *   - the pool gives every allocation its own malloc() block, so that
 *     AddressSanitizer sees an overrun of a single buffer (a real pool
 *     would hide it inside a larger block); ngx_fuzz_pool_reset() frees
 *     them all after each input, and ngx_fuzz_pool_bytes() says how many
 *     bytes were asked for since (a pool never frees, so that is its peak);
 *   - ngx_sprintf() knows %V, %T, %ui, %i, %uz, %s and %d, and aborts on
 *     anything else, so that a new format in the module fails loudly here
 *     instead of being printed wrongly;
 *   - ngx_atoi() reads a non-negative decimal number, NGX_ERROR for
 *     anything else or one too big, as nginx's;
 *   - ngx_escape_json(), ngx_strlow() and ngx_strlcasestrn() give nginx's
 *     results byte for byte: the module sizes its buffers with
 *     ngx_escape_json(NULL, ...), so the length and the bytes written must
 *     agree exactly.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_fuzz.h"


typedef struct ngx_fuzz_block_s  ngx_fuzz_block_t;

struct ngx_fuzz_block_s {
    ngx_fuzz_block_t  *next;
    /* the caller's bytes follow, aligned as malloc() aligns */
    max_align_t        data[];
};


static ngx_fuzz_block_t  *ngx_fuzz_blocks;
static size_t             ngx_fuzz_bytes;


void
ngx_fuzz_pool_reset(void)
{
    ngx_fuzz_block_t  *b, *next;

    for (b = ngx_fuzz_blocks; b; b = next) {
        next = b->next;
        free(b);
    }

    ngx_fuzz_blocks = NULL;
    ngx_fuzz_bytes = 0;
}


size_t
ngx_fuzz_pool_bytes(void)
{
    return ngx_fuzz_bytes;
}


void *
ngx_palloc(ngx_pool_t *pool, size_t size)
{
    ngx_fuzz_block_t  *b;

    b = malloc(sizeof(ngx_fuzz_block_t) + size);
    if (b == NULL) {
        return NULL;
    }

    b->next = ngx_fuzz_blocks;
    ngx_fuzz_blocks = b;
    ngx_fuzz_bytes += size;

    return b->data;
}


void *
ngx_pnalloc(ngx_pool_t *pool, size_t size)
{
    return ngx_palloc(pool, size);
}


void *
ngx_pcalloc(ngx_pool_t *pool, size_t size)
{
    void  *p;

    p = ngx_palloc(pool, size);
    if (p) {
        memset(p, 0, size);
    }

    return p;
}


void *
ngx_array_push(ngx_array_t *a)
{
    void  *elts;

    if (a->nelts == a->nalloc) {
        elts = ngx_palloc(a->pool, 2 * a->nalloc * a->size);
        if (elts == NULL) {
            return NULL;
        }

        memcpy(elts, a->elts, a->nelts * a->size);
        a->elts = elts;
        a->nalloc *= 2;
    }

    return (u_char *) a->elts + a->size * a->nelts++;
}


static u_char *
ngx_fuzz_number(u_char *p, uint64_t n, ngx_uint_t negative)
{
    u_char  tmp[NGX_INT64_LEN + 1], *t;

    t = tmp + sizeof(tmp);

    do {
        *--t = (u_char) ('0' + n % 10);
        n /= 10;
    } while (n);

    if (negative) {
        *p++ = '-';
    }

    return ngx_cpymem(p, t, tmp + sizeof(tmp) - t);
}


static u_char *
ngx_fuzz_signed(u_char *p, int64_t n)
{
    if (n < 0) {
        return ngx_fuzz_number(p, (uint64_t) 0 - (uint64_t) n, 1);
    }

    return ngx_fuzz_number(p, (uint64_t) n, 0);
}


u_char * ngx_cdecl
ngx_sprintf(u_char *buf, const char *fmt, ...)
{
    u_char      *p;
    size_t       len;
    va_list      args;
    ngx_str_t   *v;
    const char  *s;

    p = buf;

    va_start(args, fmt);

    while (*fmt) {

        if (*fmt != '%') {
            *p++ = (u_char) *fmt++;
            continue;
        }

        fmt++;

        if (fmt[0] == 'V') {
            v = va_arg(args, ngx_str_t *);
            p = ngx_cpymem(p, v->data, v->len);
            fmt++;

        } else if (fmt[0] == 'T') {
            p = ngx_fuzz_signed(p, (int64_t) va_arg(args, time_t));
            fmt++;

        } else if (fmt[0] == 'u' && fmt[1] == 'i') {
            p = ngx_fuzz_number(p, va_arg(args, ngx_uint_t), 0);
            fmt += 2;

        } else if (fmt[0] == 'u' && fmt[1] == 'z') {
            p = ngx_fuzz_number(p, va_arg(args, size_t), 0);
            fmt += 2;

        } else if (fmt[0] == 'i') {
            p = ngx_fuzz_signed(p, va_arg(args, ngx_int_t));
            fmt++;

        } else if (fmt[0] == 'd') {
            p = ngx_fuzz_signed(p, va_arg(args, int));
            fmt++;

        } else if (fmt[0] == 's') {
            s = va_arg(args, const char *);
            len = strlen(s);
            p = ngx_cpymem(p, s, len);
            fmt++;

        } else {
            fprintf(stderr, "ngx_fuzz_shim: ngx_sprintf format \"%%%s\" is "
                    "not implemented\n", fmt);
            abort();
        }
    }

    va_end(args);

    return p;
}


ngx_int_t
ngx_atoi(u_char *line, size_t n)
{
    ngx_int_t  value, cutoff, cutlim;

    if (n == 0) {
        return NGX_ERROR;
    }

    cutoff = NGX_MAX_INT_T_VALUE / 10;
    cutlim = NGX_MAX_INT_T_VALUE % 10;

    for (value = 0; n--; line++) {
        if (*line < '0' || *line > '9') {
            return NGX_ERROR;
        }

        if (value >= cutoff && (value > cutoff || *line - '0' > cutlim)) {
            return NGX_ERROR;
        }

        value = value * 10 + (*line - '0');
    }

    return value;
}


/*
 * '"' and '\\' get a backslash, \n \r \t \b \f their short escapes, the
 * other bytes below 0x20 "\u00XX"; everything else is copied.  With
 * dst == NULL: the number of bytes the escaping adds.
 */

uintptr_t
ngx_escape_json(u_char *dst, u_char *src, size_t size)
{
    u_char      c;
    ngx_uint_t  extra;

    static u_char  hex[] = "0123456789ABCDEF";

    if (dst == NULL) {
        extra = 0;

        while (size--) {
            c = *src++;

            if (c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t'
                || c == '\b' || c == '\f')
            {
                extra += 1;

            } else if (c < 0x20) {
                extra += sizeof("\\u0000") - 2;
            }
        }

        return extra;
    }

    while (size--) {
        c = *src++;

        switch (c) {

        case '"':
        case '\\':
            *dst++ = '\\';
            *dst++ = c;
            break;

        case '\n':
            *dst++ = '\\'; *dst++ = 'n';
            break;

        case '\r':
            *dst++ = '\\'; *dst++ = 'r';
            break;

        case '\t':
            *dst++ = '\\'; *dst++ = 't';
            break;

        case '\b':
            *dst++ = '\\'; *dst++ = 'b';
            break;

        case '\f':
            *dst++ = '\\'; *dst++ = 'f';
            break;

        default:
            if (c < 0x20) {
                dst = ngx_cpymem(dst, "\\u00", 4);
                *dst++ = hex[c >> 4];
                *dst++ = hex[c & 0xf];

            } else {
                *dst++ = c;
            }
        }
    }

    return (uintptr_t) dst;
}


void
ngx_strlow(u_char *dst, u_char *src, size_t n)
{
    while (n--) {
        *dst++ = ngx_tolower(*src);
        src++;
    }
}


/* s2 (n + 1 bytes, lowercase) anywhere in [s1, last), case-insensitively */

u_char *
ngx_strlcasestrn(u_char *s1, u_char *last, u_char *s2, size_t n)
{
    size_t  i;

    if ((size_t) (last - s1) < n + 1) {
        return NULL;
    }

    last -= n;

    for ( /* void */ ; s1 < last; s1++) {
        for (i = 0; i <= n; i++) {
            if (ngx_tolower(s1[i]) != s2[i]) {
                break;
            }
        }

        if (i > n) {
            return s1;
        }
    }

    return NULL;
}

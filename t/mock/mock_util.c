/*
 * mock_util.c -- growing buffers, JSON strings and query arguments for the
 * mock LLM backend.
 */

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock.h"


void *
mock_alloc(size_t size)
{
    void  *p;

    p = calloc(1, size ? size : 1);
    if (p == NULL) {
        perror("mock: calloc");
        exit(1);
    }

    return p;
}


char *
mock_strdup(const char *s)
{
    size_t  n = strlen(s);
    char   *p = mock_alloc(n + 1);

    memcpy(p, s, n + 1);
    return p;
}


void
buf_reserve(mock_buf_t *b, size_t need)
{
    if (need <= b->cap) {
        return;
    }

    while (b->cap < need) {
        b->cap = b->cap ? b->cap * 2 : 4096;
    }

    b->p = realloc(b->p, b->cap);
    if (b->p == NULL) {
        perror("mock: realloc");
        exit(1);
    }
}


void
buf_add(mock_buf_t *b, const void *p, size_t n)
{
    if (n == 0) {
        return;
    }

    buf_reserve(b, b->len + n);
    memcpy(b->p + b->len, p, n);
    b->len += n;
}


void
buf_str(mock_buf_t *b, const char *s)
{
    buf_add(b, s, strlen(s));
}


void
buf_printf(mock_buf_t *b, const char *fmt, ...)
{
    int      n;
    va_list  ap;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);

    if (n <= 0) {
        return;
    }

    buf_reserve(b, b->len + (size_t) n + 1);

    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t) n + 1, fmt, ap);
    va_end(ap);

    b->len += (size_t) n;
}


/* a JSON string, quotes included; bytes from 0x80 on go as they are */

void
buf_json(mock_buf_t *b, const char *s, size_t n)
{
    size_t         i;
    unsigned char  ch;

    buf_reserve(b, b->len + n + 2);
    buf_add(b, "\"", 1);

    for (i = 0; i < n; i++) {
        ch = (unsigned char) s[i];

        switch (ch) {
        case '"':  buf_add(b, "\\\"", 2); break;
        case '\\': buf_add(b, "\\\\", 2); break;
        case '\n': buf_add(b, "\\n", 2); break;
        case '\r': buf_add(b, "\\r", 2); break;
        case '\t': buf_add(b, "\\t", 2); break;
        default:
            if (ch < 0x20) {
                buf_printf(b, "\\u%04x", ch);
            } else {
                buf_add(b, &s[i], 1);
            }
        }
    }

    buf_add(b, "\"", 1);
}


void
buf_free(mock_buf_t *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}


static int
hexval(int ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}


/*
 * the last value of a query argument, URL-decoded ('+' is a space), in a
 * new string; NULL when absent ("?x" without '=' counts as absent)
 */

char *
mock_arg(const char *query, const char *name)
{
    size_t       len = strlen(name), n;
    const char  *p, *e, *v = NULL, *ve = NULL;
    char        *out, *o;
    int          h, l;

    for (p = query; p && *p; p = (*e == '&') ? e + 1 : NULL) {
        e = p + strcspn(p, "&");

        if ((size_t) (e - p) > len && strncmp(p, name, len) == 0
            && p[len] == '=')
        {
            v = p + len + 1;
            ve = e;
        }
    }

    if (v == NULL) {
        return NULL;
    }

    n = (size_t) (ve - v);
    out = o = mock_alloc(n + 1);

    for (p = v; p < ve; p++) {
        if (*p == '+') {
            *o++ = ' ';

        } else if (*p == '%' && ve - p > 2
                   && (h = hexval(p[1])) >= 0 && (l = hexval(p[2])) >= 0)
        {
            *o++ = (char) (h * 16 + l);
            p += 2;

        } else {
            *o++ = *p;
        }
    }

    *o = '\0';
    return out;
}


double
mock_arg_num(const char *query, const char *name, double dflt)
{
    char    *s, *end;
    double   v;

    s = mock_arg(query, name);
    if (s == NULL) {
        return dflt;
    }

    v = strtod(s, &end);
    if (end == s || *end != '\0' || isnan(v)) {
        v = dflt;
    }

    free(s);
    return v;
}

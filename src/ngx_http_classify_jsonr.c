
/*
 * ngx_http_classify_module: a pull reader for JSON.
 *
 * See ngx_http_classify_jsonr.h for the contract.  Nothing here recurses:
 * a value is skipped by a loop that keeps reading the innermost open
 * object or array until the level it started at is closed again.
 */


#include "ngx_http_classify_jsonr.h"


#define ngx_http_classify_jsonr_blank(c)                                      \
    ((c) == ' ' || (c) == '\n' || (c) == '\r' || (c) == '\t')

#define ngx_http_classify_jsonr_digit(c)  ((c) >= '0' && (c) <= '9')

#define ngx_http_classify_jsonr_blanks(p, last)                               \
    while (p < last && ngx_http_classify_jsonr_blank(*p)) { p++; }

#define ngx_http_classify_jsonr_in_object(jr)                                 \
    ((jr)->objects[((jr)->depth - 1) >> 3] & (1 << (((jr)->depth - 1) & 7)))


static ngx_int_t ngx_http_classify_jsonr_fail(ngx_http_classify_jsonr_t *jr,
    u_char *p, const char *err);
static ngx_int_t ngx_http_classify_jsonr_unexpected(
    ngx_http_classify_jsonr_t *jr);
static ngx_int_t ngx_http_classify_jsonr_open(ngx_http_classify_jsonr_t *jr,
    ngx_uint_t type);
static ngx_int_t ngx_http_classify_jsonr_push(ngx_http_classify_jsonr_t *jr,
    ngx_uint_t object);
static ngx_int_t ngx_http_classify_jsonr_next(ngx_http_classify_jsonr_t *jr,
    ngx_uint_t object);
static ngx_int_t ngx_http_classify_jsonr_key(ngx_http_classify_jsonr_t *jr,
    ngx_str_t *key);
static ngx_int_t ngx_http_classify_jsonr_scan(ngx_http_classify_jsonr_t *jr,
    ngx_str_t *raw);
static ngx_int_t ngx_http_classify_jsonr_scan_number(
    ngx_http_classify_jsonr_t *jr, ngx_str_t *text);
static ngx_int_t ngx_http_classify_jsonr_scalar(
    ngx_http_classify_jsonr_t *jr);
static ngx_int_t ngx_http_classify_jsonr_literal(
    ngx_http_classify_jsonr_t *jr, const char *word, size_t len);
static ngx_uint_t ngx_http_classify_jsonr_hex(u_char *p);


/* what a value starting with that byte is: NGX_HTTP_CLASSIFY_JSON_... */
static u_char  ngx_http_classify_jsonr_type[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 7, 0,
    0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

/* what the escape "\c" stands for, 0 if it is not one ("\u" is apart) */
static u_char  ngx_http_classify_jsonr_escape[128] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0x22, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x2f,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x5c, 0, 0, 0,
    0, 0, 0x08, 0, 0, 0, 0x0c, 0, 0, 0, 0, 0, 0, 0, 0x0a, 0,
    0, 0, 0x0d, 0, 0x09, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

/* the bytes a string holds as they are: printable ASCII but '"' and '\' */
static u_char  ngx_http_classify_jsonr_plain[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};


void
ngx_http_classify_jsonr_init(ngx_http_classify_jsonr_t *jr, u_char *data,
    size_t len)
{
    jr->pos = data;
    jr->last = data + len;
    jr->err = NULL;
    jr->depth = 0;
    jr->first = 0;
    jr->too_deep = 0;

    /* RFC 8259 8.1: a parser may ignore a byte order mark */

    if (len >= 3 && data[0] == 0xef && data[1] == 0xbb && data[2] == 0xbf) {
        jr->pos += 3;
    }
}


ngx_uint_t
ngx_http_classify_jsonr_peek(ngx_http_classify_jsonr_t *jr)
{
    u_char  *p;

    if (jr->err) {
        return NGX_HTTP_CLASSIFY_JSON_NONE;
    }

    p = jr->pos;
    ngx_http_classify_jsonr_blanks(p, jr->last);
    jr->pos = p;

    if (p == jr->last) {
        return NGX_HTTP_CLASSIFY_JSON_NONE;
    }

    return ngx_http_classify_jsonr_type[*p];
}


ngx_int_t
ngx_http_classify_jsonr_object(ngx_http_classify_jsonr_t *jr)
{
    return ngx_http_classify_jsonr_open(jr, NGX_HTTP_CLASSIFY_JSON_OBJECT);
}


ngx_int_t
ngx_http_classify_jsonr_array(ngx_http_classify_jsonr_t *jr)
{
    return ngx_http_classify_jsonr_open(jr, NGX_HTTP_CLASSIFY_JSON_ARRAY);
}


/*
 * The next member of the object last opened: NGX_OK with its raw name in
 * *key, the reader at its value (which the caller reads or skips before
 * asking for the next member), or NGX_DONE at the object's end.
 */

ngx_int_t
ngx_http_classify_jsonr_member(ngx_http_classify_jsonr_t *jr, ngx_str_t *key)
{
    ngx_int_t  rc;

    rc = ngx_http_classify_jsonr_next(jr, 1);

    if (rc != NGX_OK) {
        return rc;
    }

    return ngx_http_classify_jsonr_key(jr, key);
}


/* the next element of the array last opened: NGX_OK, or NGX_DONE */

ngx_int_t
ngx_http_classify_jsonr_element(ngx_http_classify_jsonr_t *jr)
{
    return ngx_http_classify_jsonr_next(jr, 0);
}


ngx_int_t
ngx_http_classify_jsonr_string(ngx_http_classify_jsonr_t *jr, ngx_str_t *raw)
{
    if (ngx_http_classify_jsonr_peek(jr) != NGX_HTTP_CLASSIFY_JSON_STRING) {
        return ngx_http_classify_jsonr_unexpected(jr);
    }

    return ngx_http_classify_jsonr_scan(jr, raw);
}


/* NGX_DECLINED: the value is not true or false, and is left unread */

ngx_int_t
ngx_http_classify_jsonr_bool(ngx_http_classify_jsonr_t *jr, ngx_flag_t *value)
{
    switch (ngx_http_classify_jsonr_peek(jr)) {

    case NGX_HTTP_CLASSIFY_JSON_TRUE:
        *value = 1;
        return ngx_http_classify_jsonr_literal(jr, "true", 4);

    case NGX_HTTP_CLASSIFY_JSON_FALSE:
        *value = 0;
        return ngx_http_classify_jsonr_literal(jr, "false", 5);

    default:
        return jr->err ? NGX_ERROR : NGX_DECLINED;
    }
}


/*
 * Any value, validated; *span (if not NULL) gets its bytes.  One loop over
 * the bytes, the innermost object or array open telling what may come
 * next: this is where a big body's time goes, so it does not go through
 * member() and element() for each value.
 */

ngx_int_t
ngx_http_classify_jsonr_skip(ngx_http_classify_jsonr_t *jr, ngx_str_t *span)
{
    u_char      *p, *last, *start;
    ngx_str_t    s;
    ngx_uint_t   depth, object;

    if (jr->err) {
        return NGX_ERROR;
    }

    depth = jr->depth;
    last = jr->last;

    p = jr->pos;
    ngx_http_classify_jsonr_blanks(p, last);
    start = p;

value:

    jr->pos = p;

    if (p == last) {
        return ngx_http_classify_jsonr_unexpected(jr);
    }

    switch (*p) {

    case '{':
    case '[':
        object = (*p == '{');

        if (ngx_http_classify_jsonr_push(jr, object) != NGX_OK) {
            return NGX_ERROR;
        }

        p = jr->pos;
        ngx_http_classify_jsonr_blanks(p, last);

        if (p < last && *p == (object ? '}' : ']')) {
            p++;
            jr->depth--;
            goto next;
        }

        if (object) {
            goto key;
        }

        goto value;

    default:
        if (ngx_http_classify_jsonr_scalar(jr) != NGX_OK) {
            return NGX_ERROR;
        }

        p = jr->pos;
    }

next:

    /* after a value: the end of the skipped one, a comma or a close */

    if (jr->depth == depth) {
        jr->pos = p;
        jr->first = 0;

        if (span) {
            span->data = start;
            span->len = p - start;
        }

        return NGX_OK;
    }

    ngx_http_classify_jsonr_blanks(p, last);

    object = ngx_http_classify_jsonr_in_object(jr);

    if (p < last && *p == ',') {
        p++;
        ngx_http_classify_jsonr_blanks(p, last);

        if (object) {
            goto key;
        }

        goto value;
    }

    if (p < last && *p == (object ? '}' : ']')) {
        p++;
        jr->depth--;
        goto next;
    }

    return ngx_http_classify_jsonr_fail(jr, p,
                                        p == last ? "unexpected end of JSON"
                                        : object ? "expected \",\" or \"}\""
                                                 : "expected \",\" or \"]\"");

key:

    jr->pos = p;

    if (ngx_http_classify_jsonr_key(jr, &s) != NGX_OK) {
        return NGX_ERROR;
    }

    p = jr->pos;

    goto value;
}


/* nothing but white space after the value */

ngx_int_t
ngx_http_classify_jsonr_end(ngx_http_classify_jsonr_t *jr)
{
    (void) ngx_http_classify_jsonr_peek(jr);

    if (jr->pos != jr->last || jr->depth) {
        return ngx_http_classify_jsonr_fail(jr, jr->pos,
                                            "bytes after the JSON value");
    }

    return jr->err ? NGX_ERROR : NGX_OK;
}


/*
 * A reader for the rest of an array read before: from the element that
 * starts at "element" to the end of the array's span.
 */

void
ngx_http_classify_jsonr_resume(ngx_http_classify_jsonr_t *jr,
    ngx_str_t *array, u_char *element)
{
    jr->pos = element;
    jr->last = array->data + array->len;
    jr->err = NULL;
    jr->depth = 1;
    jr->objects[0] = 0;
    jr->first = 1;
    jr->too_deep = 0;
}


/* the whole text is one valid JSON value; jr says why not */

ngx_int_t
ngx_http_classify_jsonr_valid(u_char *data, size_t len,
    ngx_http_classify_jsonr_t *jr)
{
    ngx_http_classify_jsonr_init(jr, data, len);

    if (ngx_http_classify_jsonr_skip(jr, NULL) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_classify_jsonr_end(jr);
}


/*
 * Reads the object at the reader whole, and notes for each of the n
 * fields the type and the span of the first member of that name (the one
 * a lookup in a tree would find).  A field with a read handler has that
 * first member's value read by the handler, in place, instead of skipped:
 * a big array is walked once, not skipped here and read again.
 */

ngx_int_t
ngx_http_classify_jsonr_fields(ngx_http_classify_jsonr_t *jr,
    ngx_http_classify_jsonr_field_t *fields, ngx_uint_t n)
{
    u_char                           *start;
    ngx_int_t                         rc;
    ngx_str_t                         key;
    ngx_uint_t                        i, type;
    ngx_http_classify_jsonr_field_t  *reader;

    for (i = 0; i < n; i++) {
        fields[i].type = NGX_HTTP_CLASSIFY_JSON_NONE;
        ngx_str_null(&fields[i].value);
    }

    if (ngx_http_classify_jsonr_object(jr) != NGX_OK) {
        return NGX_ERROR;
    }

    while ((rc = ngx_http_classify_jsonr_member(jr, &key)) == NGX_OK) {

        type = ngx_http_classify_jsonr_peek(jr);
        start = jr->pos;
        reader = NULL;

        for (i = 0; i < n; i++) {
            if (fields[i].read
                && fields[i].type == NGX_HTTP_CLASSIFY_JSON_NONE
                && ngx_http_classify_jsonr_eq(&key, fields[i].name.data,
                                              fields[i].name.len))
            {
                reader = &fields[i];
                break;
            }
        }

        rc = reader ? reader->read(jr, reader->data)
                    : ngx_http_classify_jsonr_skip(jr, NULL);

        if (rc != NGX_OK || jr->err) {
            return NGX_ERROR;
        }

        for (i = 0; i < n; i++) {
            if (fields[i].type == NGX_HTTP_CLASSIFY_JSON_NONE
                && ngx_http_classify_jsonr_eq(&key, fields[i].name.data,
                                              fields[i].name.len))
            {
                fields[i].type = type;
                fields[i].value.data = start;
                fields[i].value.len = jr->pos - start;
            }
        }
    }

    return rc == NGX_DONE ? NGX_OK : NGX_ERROR;
}


/*
 * The reader at the value of the first member of that name of the object
 * at the reader; NGX_DECLINED if that is not an object or has no such
 * member.  The rest of the object is not read: for text already
 * validated.
 */

ngx_int_t
ngx_http_classify_jsonr_get(ngx_http_classify_jsonr_t *jr, u_char *name,
    size_t len)
{
    ngx_int_t  rc;
    ngx_str_t  key;

    if (ngx_http_classify_jsonr_peek(jr) != NGX_HTTP_CLASSIFY_JSON_OBJECT) {
        return jr->err ? NGX_ERROR : NGX_DECLINED;
    }

    if (ngx_http_classify_jsonr_object(jr) != NGX_OK) {
        return NGX_ERROR;
    }

    while ((rc = ngx_http_classify_jsonr_member(jr, &key)) == NGX_OK) {

        if (ngx_http_classify_jsonr_eq(&key, name, len)) {
            return NGX_OK;
        }

        if (ngx_http_classify_jsonr_skip(jr, NULL) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return rc == NGX_DONE ? NGX_DECLINED : NGX_ERROR;
}


/* the reader at element n of the array at the reader, or NGX_DECLINED */

ngx_int_t
ngx_http_classify_jsonr_nth(ngx_http_classify_jsonr_t *jr, ngx_uint_t n)
{
    ngx_int_t  rc;

    if (ngx_http_classify_jsonr_peek(jr) != NGX_HTTP_CLASSIFY_JSON_ARRAY) {
        return jr->err ? NGX_ERROR : NGX_DECLINED;
    }

    if (ngx_http_classify_jsonr_array(jr) != NGX_OK) {
        return NGX_ERROR;
    }

    for ( ;; ) {
        rc = ngx_http_classify_jsonr_element(jr);

        if (rc != NGX_OK) {
            return rc == NGX_DONE ? NGX_DECLINED : NGX_ERROR;
        }

        if (n-- == 0) {
            return NGX_OK;
        }

        if (ngx_http_classify_jsonr_skip(jr, NULL) != NGX_OK) {
            return NGX_ERROR;
        }
    }
}


/* a raw string (from the reader) equals those bytes once decoded */

ngx_uint_t
ngx_http_classify_jsonr_eq(ngx_str_t *raw, u_char *s, size_t len)
{
    u_char  *p, *last, buf[4];
    size_t   n;

    if (raw->len == 0 || ngx_strlchr(raw->data, raw->data + raw->len, '\\')
                         == NULL)
    {
        return raw->len == len && ngx_memcmp(raw->data, s, len) == 0;
    }

    p = raw->data;
    last = raw->data + raw->len;

    while (p < last) {
        n = ngx_http_classify_jsonr_char(&p, buf);

        if (n > len || ngx_memcmp(buf, s, n) != 0) {
            return 0;
        }

        s += n;
        len -= n;
    }

    return len == 0;
}


/*
 * One character of a raw string from the reader, decoded into buf (at
 * most 4 bytes of UTF-8); returns its length and moves *p past it.
 */

size_t
ngx_http_classify_jsonr_char(u_char **p, u_char *buf)
{
    u_char      *s;
    ngx_uint_t   u;

    s = *p;

    if (s[0] != '\\') {
        buf[0] = s[0];
        *p = s + 1;
        return 1;
    }

    if (s[1] != 'u') {
        /* the reader let in only escapes that stand for something */
        buf[0] = ngx_http_classify_jsonr_escape[s[1]];
        *p = s + 2;
        return 1;
    }

    u = ngx_http_classify_jsonr_hex(s + 2);
    *p = s + 6;

    if (u >= 0xd800 && u <= 0xdbff) {
        /* the reader let a high surrogate in only with its low one */
        u = 0x10000 + ((u - 0xd800) << 10)
            + (ngx_http_classify_jsonr_hex(s + 8) - 0xdc00);
        *p = s + 12;
    }

    if (u < 0x80) {
        buf[0] = (u_char) u;
        return 1;
    }

    if (u < 0x800) {
        buf[0] = (u_char) (0xc0 | (u >> 6));
        buf[1] = (u_char) (0x80 | (u & 0x3f));
        return 2;
    }

    if (u < 0x10000) {
        buf[0] = (u_char) (0xe0 | (u >> 12));
        buf[1] = (u_char) (0x80 | ((u >> 6) & 0x3f));
        buf[2] = (u_char) (0x80 | (u & 0x3f));
        return 3;
    }

    buf[0] = (u_char) (0xf0 | (u >> 18));
    buf[1] = (u_char) (0x80 | ((u >> 12) & 0x3f));
    buf[2] = (u_char) (0x80 | ((u >> 6) & 0x3f));
    buf[3] = (u_char) (0x80 | (u & 0x3f));
    return 4;
}


/* a raw string decoded into dst: never more bytes than raw->len */

u_char *
ngx_http_classify_jsonr_copy(u_char *dst, ngx_str_t *raw)
{
    u_char  *p, *last, *esc;

    p = raw->data;
    last = raw->data + raw->len;

    while (p < last) {
        esc = ngx_strlchr(p, last, '\\');

        if (esc == NULL) {
            return ngx_cpymem(dst, p, last - p);
        }

        dst = ngx_cpymem(dst, p, esc - p);
        p = esc;
        dst += ngx_http_classify_jsonr_char(&p, dst);
    }

    return dst;
}


ngx_int_t
ngx_http_classify_jsonr_decode(ngx_pool_t *pool, ngx_str_t *raw,
    ngx_str_t *s)
{
    if (raw->len == 0) {
        ngx_str_null(s);
        return NGX_OK;
    }

    s->data = ngx_pnalloc(pool, raw->len);
    if (s->data == NULL) {
        return NGX_ERROR;
    }

    s->len = ngx_http_classify_jsonr_copy(s->data, raw) - s->data;

    return NGX_OK;
}


/*
 * The length of the UTF-8 sequence at p, 0 if it is not one (RFC 3629:
 * no overlong forms, no surrogates, nothing above U+10FFFF, not cut).
 */

size_t
ngx_http_classify_utf8_len(u_char *p, u_char *last)
{
    size_t    i, n;
    uint32_t  c, min;

    c = p[0];

    if (c < 0x80) {
        return 1;
    }

    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        c &= 0x1f;
        min = 0x80;

    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        c &= 0x0f;
        min = 0x800;

    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        c &= 0x07;
        min = 0x10000;

    } else {
        return 0;
    }

    if ((size_t) (last - p) < n) {
        return 0;
    }

    for (i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }

        c = (c << 6) | (p[i] & 0x3f);
    }

    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
        return 0;
    }

    return n;
}


static ngx_int_t
ngx_http_classify_jsonr_fail(ngx_http_classify_jsonr_t *jr, u_char *p,
    const char *err)
{
    if (jr->err == NULL) {
        jr->err = err;
        jr->pos = p;
    }

    return NGX_ERROR;
}


/* where a value should start there is none */

static ngx_int_t
ngx_http_classify_jsonr_unexpected(ngx_http_classify_jsonr_t *jr)
{
    return ngx_http_classify_jsonr_fail(jr, jr->pos,
                                        jr->pos == jr->last
                                        ? "unexpected end of JSON"
                                        : "unexpected character");
}


static ngx_int_t
ngx_http_classify_jsonr_open(ngx_http_classify_jsonr_t *jr, ngx_uint_t type)
{
    if (ngx_http_classify_jsonr_peek(jr) != type) {
        return ngx_http_classify_jsonr_unexpected(jr);
    }

    return ngx_http_classify_jsonr_push(jr,
                                        type == NGX_HTTP_CLASSIFY_JSON_OBJECT);
}


/* at the '{' or '[': one level deeper */

static ngx_int_t
ngx_http_classify_jsonr_push(ngx_http_classify_jsonr_t *jr,
    ngx_uint_t object)
{
    u_char      bit;
    ngx_uint_t  level;

    if (jr->depth == NGX_HTTP_CLASSIFY_JSONR_MAX_DEPTH) {
        jr->too_deep = 1;
        return ngx_http_classify_jsonr_fail(jr, jr->pos,
                   "nested deeper than "
                   ngx_value(NGX_HTTP_CLASSIFY_JSONR_MAX_DEPTH) " levels");
    }

    level = jr->depth++;
    bit = (u_char) (1 << (level & 7));

    if (object) {
        jr->objects[level >> 3] |= bit;

    } else {
        jr->objects[level >> 3] &= (u_char) ~bit;
    }

    jr->pos++;
    jr->first = 1;

    return NGX_OK;
}


/* before a member or an element: the end of its container, or a comma */

static ngx_int_t
ngx_http_classify_jsonr_next(ngx_http_classify_jsonr_t *jr,
    ngx_uint_t object)
{
    u_char  *p;

    if (jr->err) {
        return NGX_ERROR;
    }

    if (jr->depth == 0 || !ngx_http_classify_jsonr_in_object(jr) != !object)
    {
        /* the caller's mistake, not the text's */
        return ngx_http_classify_jsonr_fail(jr, jr->pos,
                                            object ? "not in an object"
                                                   : "not in an array");
    }

    p = jr->pos;
    ngx_http_classify_jsonr_blanks(p, jr->last);

    if (p == jr->last) {
        return ngx_http_classify_jsonr_fail(jr, p, "unexpected end of JSON");
    }

    if (*p == (object ? '}' : ']')) {
        jr->pos = p + 1;
        jr->depth--;
        jr->first = 0;
        return NGX_DONE;
    }

    jr->pos = p;

    if (jr->first) {
        jr->first = 0;
        return NGX_OK;
    }

    if (*p != ',') {
        return ngx_http_classify_jsonr_fail(jr, p,
                                            object ? "expected \",\" or \"}\""
                                                   : "expected \",\" or \"]\"");
    }

    p++;
    ngx_http_classify_jsonr_blanks(p, jr->last);
    jr->pos = p;

    return NGX_OK;
}


/* a member's name and its colon; the reader then at the value */

static ngx_int_t
ngx_http_classify_jsonr_key(ngx_http_classify_jsonr_t *jr, ngx_str_t *key)
{
    u_char  *p;

    if (jr->pos == jr->last || *jr->pos != '"') {
        return ngx_http_classify_jsonr_fail(jr, jr->pos,
                                            "expected a member name");
    }

    if (ngx_http_classify_jsonr_scan(jr, key) != NGX_OK) {
        return NGX_ERROR;
    }

    p = jr->pos;
    ngx_http_classify_jsonr_blanks(p, jr->last);

    if (p == jr->last || *p != ':') {
        return ngx_http_classify_jsonr_fail(jr, p, "expected \":\"");
    }

    p++;
    ngx_http_classify_jsonr_blanks(p, jr->last);
    jr->pos = p;

    return NGX_OK;
}


/* a string at its opening quote: validated, *raw what is between quotes */

static ngx_int_t
ngx_http_classify_jsonr_scan(ngx_http_classify_jsonr_t *jr, ngx_str_t *raw)
{
    u_char      *p, *last;
    size_t       n;
    ngx_uint_t   u;

    p = jr->pos + 1;
    last = jr->last;

    raw->data = p;

    for ( ;; ) {

        while (p < last && ngx_http_classify_jsonr_plain[*p]) {
            p++;
        }

        if (p == last) {
            return ngx_http_classify_jsonr_fail(jr, p, "unterminated string");
        }

        if (*p == '"') {
            break;
        }

        if (*p >= 0x80) {
            n = ngx_http_classify_utf8_len(p, last);

            if (n == 0) {
                return ngx_http_classify_jsonr_fail(jr, p, "invalid UTF-8 "
                                                           "in a string");
            }

            p += n;
            continue;
        }

        if (*p != '\\') {
            return ngx_http_classify_jsonr_fail(jr, p,
                                                "control character in a "
                                                "string");
        }

        if (last - p < 2) {
            return ngx_http_classify_jsonr_fail(jr, p, "unterminated string");
        }

        if (p[1] < 0x80 && ngx_http_classify_jsonr_escape[p[1]]) {
            p += 2;
            continue;
        }

        if (p[1] != 'u' || last - p < 6
            || (u = ngx_http_classify_jsonr_hex(p + 2)) > 0xffff)
        {
            return ngx_http_classify_jsonr_fail(jr, p,
                                                "invalid escape in a string");
        }

        if (u == 0) {
            return ngx_http_classify_jsonr_fail(jr, p,
                                       "NUL character (\\u0000) in a string");
        }

        if (u >= 0xdc00 && u <= 0xdfff) {
            return ngx_http_classify_jsonr_fail(jr, p,
                                                "unpaired surrogate escape");
        }

        if (u >= 0xd800 && u <= 0xdbff) {
            if (last - p < 12 || p[6] != '\\' || p[7] != 'u'
                || (u = ngx_http_classify_jsonr_hex(p + 8)) < 0xdc00
                || u > 0xdfff)
            {
                return ngx_http_classify_jsonr_fail(jr, p,
                                                "unpaired surrogate escape");
            }

            p += 6;
        }

        p += 6;
    }

    raw->len = p - raw->data;
    jr->pos = p + 1;

    return NGX_OK;
}


/* RFC 8259: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */

static ngx_int_t
ngx_http_classify_jsonr_scan_number(ngx_http_classify_jsonr_t *jr,
    ngx_str_t *text)
{
    u_char  *p, *last;

    p = jr->pos;
    last = jr->last;

    if (*p == '-') {
        p++;
    }

    if (p == last || !ngx_http_classify_jsonr_digit(*p)) {
        goto invalid;
    }

    if (*p++ != '0') {
        while (p < last && ngx_http_classify_jsonr_digit(*p)) {
            p++;
        }
    }

    if (p < last && *p == '.') {
        p++;

        if (p == last || !ngx_http_classify_jsonr_digit(*p)) {
            goto invalid;
        }

        while (p < last && ngx_http_classify_jsonr_digit(*p)) {
            p++;
        }
    }

    if (p < last && (*p == 'e' || *p == 'E')) {
        p++;

        if (p < last && (*p == '+' || *p == '-')) {
            p++;
        }

        if (p == last || !ngx_http_classify_jsonr_digit(*p)) {
            goto invalid;
        }

        while (p < last && ngx_http_classify_jsonr_digit(*p)) {
            p++;
        }
    }

    text->data = jr->pos;
    text->len = p - jr->pos;
    jr->pos = p;

    return NGX_OK;

invalid:

    return ngx_http_classify_jsonr_fail(jr, p, "invalid number");
}


/* a string, number, true, false or null at the reader, read and dropped */

static ngx_int_t
ngx_http_classify_jsonr_scalar(ngx_http_classify_jsonr_t *jr)
{
    ngx_str_t  s;

    switch (ngx_http_classify_jsonr_type[*jr->pos]) {

    case NGX_HTTP_CLASSIFY_JSON_STRING:
        return ngx_http_classify_jsonr_scan(jr, &s);

    case NGX_HTTP_CLASSIFY_JSON_NUMBER:
        return ngx_http_classify_jsonr_scan_number(jr, &s);

    case NGX_HTTP_CLASSIFY_JSON_TRUE:
        return ngx_http_classify_jsonr_literal(jr, "true", 4);

    case NGX_HTTP_CLASSIFY_JSON_FALSE:
        return ngx_http_classify_jsonr_literal(jr, "false", 5);

    case NGX_HTTP_CLASSIFY_JSON_NULL:
        return ngx_http_classify_jsonr_literal(jr, "null", 4);

    default:
        return ngx_http_classify_jsonr_unexpected(jr);
    }
}


static ngx_int_t
ngx_http_classify_jsonr_literal(ngx_http_classify_jsonr_t *jr,
    const char *word, size_t len)
{
    if ((size_t) (jr->last - jr->pos) < len
        || ngx_strncmp(jr->pos, word, len) != 0)
    {
        return ngx_http_classify_jsonr_fail(jr, jr->pos,
                                            "unexpected character");
    }

    jr->pos += len;

    return NGX_OK;
}


/* four hex digits; more than 0xffff if they are not */

static ngx_uint_t
ngx_http_classify_jsonr_hex(u_char *p)
{
    u_char      c;
    ngx_uint_t  i, u;

    u = 0;

    for (i = 0; i < 4; i++) {
        c = p[i];

        if (c >= '0' && c <= '9') {
            c -= '0';

        } else {
            c |= 0x20;

            if (c < 'a' || c > 'f') {
                return 0x10000;
            }

            c -= 'a' - 10;
        }

        u = (u << 4) | c;
    }

    return u;
}


/*
 * ngx_http_classify_module: a pull reader for JSON (pure).
 *
 * The caller walks the text with the reader, asking for what it wants
 * and skipping the rest; no tree is built.  Everything the reader reads
 * or skips is validated strictly: RFC 8259 (a UTF-8 byte order mark at
 * the start is ignored, as RFC 8259 8.1 allows), RFC 3629 UTF-8 in
 * strings, and no NUL character, raw or as "\u0000", so that a decoded
 * string is always text.  Cost: one pass, linear in the bytes; memory:
 * the reader itself, which follows nesting with one bit per level up to
 * NGX_HTTP_CLASSIFY_JSONR_MAX_DEPTH levels and never recurses, plus the
 * strings the caller decodes into its pool.
 *
 * Strings are returned raw, as they are between their quotes: compare
 * one with a name by ngx_http_classify_jsonr_eq() (escapes are decoded
 * on the fly, nothing is allocated), decode it by
 * ngx_http_classify_jsonr_decode() when it is wanted.  A value's span
 * (its bytes, as ngx_http_classify_jsonr_skip() or _fields() return it)
 * is read again by a reader of its own, initialized on the span.
 *
 * ngx_http_classify_jsonr_fields() reads an object in one go, noting the
 * members a caller names, and may hand one member's value to a read
 * handler in place (a conversation array walked once, while the rest is
 * validated); ngx_http_classify_jsonr_resume() comes back into an array
 * at an element whose position was noted.
 *
 * The functions return NGX_OK, NGX_DONE (the end of an object or array),
 * NGX_DECLINED (not there) or NGX_ERROR; after an error every call fails
 * and jr->err says what was wrong (jr->pos points at it).  A walk:
 *
 *     ngx_http_classify_jsonr_init(&jr, data, len);
 *     rc = ngx_http_classify_jsonr_object(&jr);
 *
 *     while (rc == NGX_OK
 *            && (rc = ngx_http_classify_jsonr_member(&jr, &key)) == NGX_OK)
 *     {
 *         if (ngx_http_classify_jsonr_is(&key, "model")
 *             && ngx_http_classify_jsonr_peek(&jr)
 *                == NGX_HTTP_CLASSIFY_JSON_STRING)
 *         {
 *             rc = ngx_http_classify_jsonr_string(&jr, &raw);
 *
 *         } else {
 *             rc = ngx_http_classify_jsonr_skip(&jr, NULL);
 *         }
 *     }
 *
 *     (rc == NGX_DONE: the object was read whole, and valid)
 */


#ifndef _NGX_HTTP_CLASSIFY_JSONR_H_INCLUDED_
#define _NGX_HTTP_CLASSIFY_JSONR_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


#define NGX_HTTP_CLASSIFY_JSONR_MAX_DEPTH  1000

/* what the next value is, by its first byte */
#define NGX_HTTP_CLASSIFY_JSON_NONE        0   /* no value there */
#define NGX_HTTP_CLASSIFY_JSON_OBJECT      1
#define NGX_HTTP_CLASSIFY_JSON_ARRAY       2
#define NGX_HTTP_CLASSIFY_JSON_STRING      3
#define NGX_HTTP_CLASSIFY_JSON_NUMBER      4
#define NGX_HTTP_CLASSIFY_JSON_TRUE        5
#define NGX_HTTP_CLASSIFY_JSON_FALSE       6
#define NGX_HTTP_CLASSIFY_JSON_NULL        7


typedef struct {
    u_char          *pos;
    u_char          *last;
    const char      *err;         /* why the text was refused */
    ngx_uint_t       depth;       /* objects and arrays open */

    unsigned         first:1;     /* nothing read yet in the innermost */
    unsigned         too_deep:1;  /* refused for its nesting */

    /* one bit per level open: 1 an object, 0 an array */
    u_char           objects[(NGX_HTTP_CLASSIFY_JSONR_MAX_DEPTH + 7) / 8];
} ngx_http_classify_jsonr_t;


/* reads a value in place, all of it (or skips it) */
typedef ngx_int_t (*ngx_http_classify_jsonr_read_pt)(
    ngx_http_classify_jsonr_t *jr, void *data);


/* a member ngx_http_classify_jsonr_fields() looks for */
typedef struct {
    ngx_str_t                        name;
    ngx_http_classify_jsonr_read_pt  read;    /* NULL: skipped */
    void                            *data;

    ngx_uint_t                       type;    /* JSON_NONE: not there */
    ngx_str_t                        value;   /* the first one's span */
} ngx_http_classify_jsonr_field_t;


void ngx_http_classify_jsonr_init(ngx_http_classify_jsonr_t *jr, u_char *data,
    size_t len);
ngx_uint_t ngx_http_classify_jsonr_peek(ngx_http_classify_jsonr_t *jr);

ngx_int_t ngx_http_classify_jsonr_object(ngx_http_classify_jsonr_t *jr);
ngx_int_t ngx_http_classify_jsonr_member(ngx_http_classify_jsonr_t *jr,
    ngx_str_t *key);
ngx_int_t ngx_http_classify_jsonr_array(ngx_http_classify_jsonr_t *jr);
ngx_int_t ngx_http_classify_jsonr_element(ngx_http_classify_jsonr_t *jr);

ngx_int_t ngx_http_classify_jsonr_string(ngx_http_classify_jsonr_t *jr,
    ngx_str_t *raw);
ngx_int_t ngx_http_classify_jsonr_bool(ngx_http_classify_jsonr_t *jr,
    ngx_flag_t *value);
ngx_int_t ngx_http_classify_jsonr_skip(ngx_http_classify_jsonr_t *jr,
    ngx_str_t *span);
ngx_int_t ngx_http_classify_jsonr_end(ngx_http_classify_jsonr_t *jr);
void ngx_http_classify_jsonr_resume(ngx_http_classify_jsonr_t *jr,
    ngx_str_t *array, u_char *element);

ngx_int_t ngx_http_classify_jsonr_fields(ngx_http_classify_jsonr_t *jr,
    ngx_http_classify_jsonr_field_t *fields, ngx_uint_t n);
ngx_int_t ngx_http_classify_jsonr_get(ngx_http_classify_jsonr_t *jr,
    u_char *name, size_t len);
ngx_int_t ngx_http_classify_jsonr_nth(ngx_http_classify_jsonr_t *jr,
    ngx_uint_t n);
ngx_int_t ngx_http_classify_jsonr_valid(u_char *data, size_t len,
    ngx_http_classify_jsonr_t *jr);

ngx_uint_t ngx_http_classify_jsonr_eq(ngx_str_t *raw, u_char *s, size_t len);
size_t ngx_http_classify_jsonr_char(u_char **p, u_char *buf);
u_char *ngx_http_classify_jsonr_copy(u_char *dst, ngx_str_t *raw);
ngx_int_t ngx_http_classify_jsonr_decode(ngx_pool_t *pool, ngx_str_t *raw,
    ngx_str_t *s);
size_t ngx_http_classify_utf8_len(u_char *p, u_char *last);


#define ngx_http_classify_jsonr_is(raw, name)                                 \
    ngx_http_classify_jsonr_eq(raw, (u_char *) name, sizeof(name) - 1)

/* the raw string of a string value's span: without its quotes */
static ngx_inline void
ngx_http_classify_jsonr_unquote(ngx_str_t *span, ngx_str_t *raw)
{
    raw->data = span->data + 1;
    raw->len = span->len - 2;
}


#endif /* _NGX_HTTP_CLASSIFY_JSONR_H_INCLUDED_ */

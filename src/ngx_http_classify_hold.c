
/*
 * ngx_http_classify_module: a generation's bytes held back from the
 * client, within a bound.
 *
 * What comes is copied into blocks of 4 KiB while fewer than h->limit
 * bytes are held; past that the buffers are kept as they came, not
 * consumed, in order.  An upstream read with proxy_buffering off reuses
 * its one buffer only once everything it passed on is consumed, so it
 * stops reading the backend when that buffer is full: nginx's own
 * backpressure, nothing is dropped.  When room is made, the kept buffers
 * are copied in turn (ngx_http_classify_hold_add() with no input), and
 * their upstream may read again.
 *
 * The copies go out in pieces (ngx_http_classify_hold_give()): buffers
 * pointing into the blocks, each given once, in order.  Once the client's
 * filters have consumed a piece its bytes no longer count against the
 * limit, and a block whose pieces are all consumed is used again: a long
 * stream held a window at a time takes no more memory than its bound.
 */


#include "ngx_http_classify.h"
#include "ngx_http_classify_hold.h"


#define NGX_HTTP_CLASSIFY_HOLD_BLOCK  4096


struct ngx_http_classify_hold_block_s {
    u_char                          *start;
    u_char                          *end;
    u_char                          *last;      /* copied up to */
    u_char                          *given;     /* given out up to */
    ngx_uint_t                       busy;      /* pieces not consumed */
    ngx_http_classify_hold_block_t  *next;
};


/* a piece given out: the buffer the client's filters see, first */
struct ngx_http_classify_hold_piece_s {
    ngx_buf_t                        buf;
    ngx_chain_t                      link;
    ngx_http_classify_hold_block_t  *block;
    size_t                           len;
    ngx_http_classify_hold_piece_t  *next;
};


static ngx_int_t ngx_http_classify_hold_take(ngx_http_classify_hold_t *h,
    ngx_buf_t *b);
static ngx_int_t ngx_http_classify_hold_keep(ngx_http_classify_hold_t *h,
    ngx_buf_t *b);
static ngx_int_t ngx_http_classify_hold_refill(ngx_http_classify_hold_t *h);
static ngx_http_classify_hold_block_t *ngx_http_classify_hold_block(
    ngx_http_classify_hold_t *h);


void
ngx_http_classify_hold_init(ngx_http_classify_hold_t *h, ngx_pool_t *pool,
    size_t limit)
{
    ngx_memzero(h, sizeof(ngx_http_classify_hold_t));

    h->pool = pool;
    h->limit = limit;
    h->busy_last = &h->busy;
    h->kept_last = &h->kept;
}


/*
 * The next buffers of the generation (copied while there is room, the
 * rest kept, in order), or with in NULL the kept ones again, as far as
 * the room made allows.  Buffers without data (flush, last_buf) are the
 * owner's to note.
 */

ngx_int_t
ngx_http_classify_hold_add(ngx_http_classify_hold_t *h, ngx_chain_t *in)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    if (h->kept && ngx_http_classify_hold_refill(h) != NGX_OK) {
        return NGX_ERROR;
    }

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;

        if (ngx_buf_special(b) || ngx_buf_size(b) == 0) {
            continue;
        }

        if (h->kept == NULL && ngx_buf_in_memory_only(b)) {
            if (ngx_http_classify_hold_take(h, b) != NGX_OK) {
                return NGX_ERROR;
            }

            if (b->pos == b->last) {
                continue;
            }
        }

        if (ngx_http_classify_hold_keep(h, b) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* as much of b as there is room for, copied and consumed */

static ngx_int_t
ngx_http_classify_hold_take(ngx_http_classify_hold_t *h, ngx_buf_t *b)
{
    size_t                           n, m;
    ngx_http_classify_hold_block_t  *blk;

    n = ngx_min(ngx_http_classify_hold_room(h), (size_t) (b->last - b->pos));

    while (n) {
        blk = h->tail;

        if (blk == NULL || blk->last == blk->end) {
            blk = ngx_http_classify_hold_block(h);
            if (blk == NULL) {
                return NGX_ERROR;
            }
        }

        m = ngx_min(n, (size_t) (blk->end - blk->last));

        if (h->feed && h->feed(h->data, b->pos, m) != NGX_OK) {
            return NGX_ERROR;
        }

        blk->last = ngx_cpymem(blk->last, b->pos, m);
        b->pos += m;
        n -= m;

        h->size += m;
        h->copied += m;
    }

    return NGX_OK;
}


/* a buffer left unconsumed: its producer waits until it is */

static ngx_int_t
ngx_http_classify_hold_keep(ngx_http_classify_hold_t *h, ngx_buf_t *b)
{
    ngx_chain_t  *ln;

    ln = ngx_alloc_chain_link(h->pool);
    if (ln == NULL) {
        return NGX_ERROR;
    }

    ln->buf = b;
    ln->next = NULL;

    *h->kept_last = ln;
    h->kept_last = &ln->next;

    return NGX_OK;
}


static ngx_int_t
ngx_http_classify_hold_refill(ngx_http_classify_hold_t *h)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    while (h->kept) {
        cl = h->kept;
        b = cl->buf;

        if (!ngx_buf_in_memory_only(b)) {
            break;
        }

        if (ngx_http_classify_hold_take(h, b) != NGX_OK) {
            return NGX_ERROR;
        }

        if (b->pos < b->last) {
            break;
        }

        h->kept = cl->next;
        ngx_free_chain(h->pool, cl);
    }

    if (h->kept == NULL) {
        h->kept_last = &h->kept;
    }

    return NGX_OK;
}


static ngx_http_classify_hold_block_t *
ngx_http_classify_hold_block(ngx_http_classify_hold_t *h)
{
    size_t                           size;
    ngx_http_classify_hold_block_t  *blk;

    blk = h->free_blocks;

    if (blk) {
        h->free_blocks = blk->next;

    } else {
        size = ngx_min(NGX_HTTP_CLASSIFY_HOLD_BLOCK, h->limit);

        blk = ngx_palloc(h->pool,
                         sizeof(ngx_http_classify_hold_block_t) + size);
        if (blk == NULL) {
            return NULL;
        }

        blk->start = (u_char *) blk + sizeof(ngx_http_classify_hold_block_t);
        blk->end = blk->start + size;
    }

    blk->last = blk->start;
    blk->given = blk->start;
    blk->busy = 0;
    blk->next = NULL;

    if (h->tail) {
        h->tail->next = blk;

    } else {
        h->head = blk;
    }

    h->tail = blk;

    return blk;
}


/*
 * The copied bytes up to the stream offset upto, as pieces, in order;
 * the last one flushes, so that what is given reaches the client now.
 */

ngx_int_t
ngx_http_classify_hold_give(ngx_http_classify_hold_t *h, off_t upto,
    ngx_chain_t **out)
{
    size_t                           m;
    off_t                            left;
    ngx_chain_t                    **ll;
    ngx_http_classify_hold_piece_t  *p;
    ngx_http_classify_hold_block_t  *blk;

    *out = NULL;
    ll = out;
    p = NULL;

    left = ngx_min(upto, h->copied) - h->given;

    for (blk = h->head; blk && left > 0; blk = blk->next) {

        m = ngx_min((off_t) (blk->last - blk->given), left);

        if (m == 0) {
            continue;
        }

        p = h->free;

        if (p) {
            h->free = p->next;

        } else {
            p = ngx_palloc(h->pool, sizeof(ngx_http_classify_hold_piece_t));
            if (p == NULL) {
                return NGX_ERROR;
            }
        }

        ngx_memzero(&p->buf, sizeof(ngx_buf_t));

        p->buf.start = blk->start;
        p->buf.end = blk->end;
        p->buf.pos = blk->given;
        p->buf.last = blk->given + m;
        p->buf.memory = 1;
        p->buf.tag = (ngx_buf_tag_t) &ngx_http_classify_module;

        p->block = blk;
        p->len = m;
        p->next = NULL;

        p->link.buf = &p->buf;
        p->link.next = NULL;

        *ll = &p->link;
        ll = &p->link.next;

        *h->busy_last = p;
        h->busy_last = &p->next;

        blk->given += m;
        blk->busy++;

        h->given += m;
        left -= m;
    }

    if (p) {
        p->buf.flush = 1;
    }

    return NGX_OK;
}


/*
 * Everything held, to the client at once (a speculative generation
 * released): the copies, then the kept buffers themselves.
 */

ngx_chain_t *
ngx_http_classify_hold_all(ngx_http_classify_hold_t *h)
{
    ngx_chain_t  *out, **ll;

    if (ngx_http_classify_hold_give(h, h->copied, &out) != NGX_OK) {
        return NULL;
    }

    for (ll = &out; *ll; ll = &(*ll)->next) { /* void */ }

    *ll = h->kept;

    h->kept = NULL;
    h->kept_last = &h->kept;

    return out;
}


/* the pieces the client's filters consumed make room; blocks are reused */

void
ngx_http_classify_hold_update(ngx_http_classify_hold_t *h)
{
    ngx_http_classify_hold_piece_t  *p;
    ngx_http_classify_hold_block_t  *blk;

    while (h->busy && h->busy->buf.pos == h->busy->buf.last) {
        p = h->busy;
        h->busy = p->next;

        h->size -= p->len;
        p->block->busy--;

        p->next = h->free;
        h->free = p;
    }

    if (h->busy == NULL) {
        h->busy_last = &h->busy;
    }

    /* a block is filled before the next one: only the tail may have room */

    while (h->head
           && h->head->busy == 0
           && h->head->given == h->head->last
           && (h->head != h->tail || h->head->last == h->head->end))
    {
        blk = h->head;
        h->head = blk->next;

        if (h->tail == blk) {
            h->tail = NULL;
        }

        blk->next = h->free_blocks;
        h->free_blocks = blk;
    }
}


/* nothing more goes out: the kept buffers are let go of, consumed */

void
ngx_http_classify_hold_drop(ngx_http_classify_hold_t *h)
{
    ngx_chain_t  *cl;

    for (cl = h->kept; cl; cl = cl->next) {
        cl->buf->pos = cl->buf->last;
        cl->buf->file_pos = cl->buf->file_last;
    }

    h->kept = NULL;
    h->kept_last = &h->kept;
    h->limit = 0;
}


/* the bytes copied and not given yet, in one piece of memory */

ngx_int_t
ngx_http_classify_hold_flatten(ngx_http_classify_hold_t *h, ngx_str_t *s)
{
    u_char                          *p;
    ngx_http_classify_hold_block_t  *blk;

    s->len = h->copied - h->given;

    p = ngx_pnalloc(h->pool, s->len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    s->data = p;

    for (blk = h->head; blk; blk = blk->next) {
        p = ngx_cpymem(p, blk->given, blk->last - blk->given);
    }

    return NGX_OK;
}

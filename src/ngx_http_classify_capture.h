
/*
 * ngx_http_classify_module: the module's filters (capture.c): the
 * client's body kept as it arrives, classifier answers handed to their
 * calls, the generation held (speculation) or copied for
 * classify_context_store.
 */


#ifndef _NGX_HTTP_CLASSIFY_CAPTURE_H_INCLUDED_
#define _NGX_HTTP_CLASSIFY_CAPTURE_H_INCLUDED_


#include "ngx_http_classify.h"


ngx_int_t ngx_http_classify_capture_init(ngx_conf_t *cf);


#endif /* _NGX_HTTP_CLASSIFY_CAPTURE_H_INCLUDED_ */

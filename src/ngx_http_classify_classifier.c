
/*
 * ngx_http_classify_module: the "classifier" block.
 *
 *     classifier NAME { pass /uri; protocol openai; prompt_file p.txt; ... }
 *
 * Its settings are read through a command table of their own, with nginx's
 * slot functions where one fits (as upstream{} does), into one
 * ngx_http_classify_classifier_t; then the defaults and the checks that
 * need the whole block.
 */


#include "ngx_http_classify.h"
#include "ngx_http_classify_json.h"


#define NGX_HTTP_CLASSIFY_MAX_FILE      (1024 * 1024)
#define NGX_HTTP_CLASSIFY_MAX_WORD      32


static char *ngx_http_classifier_setting(ngx_conf_t *cf, ngx_command_t *dummy,
    void *conf);
static char *ngx_http_classifier_args(ngx_conf_t *cf, ngx_command_t *cmd);
static char *ngx_http_classifier_check(ngx_conf_t *cf,
    ngx_http_classify_classifier_t *cl);
static char *ngx_http_classifier_pass(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_classifier_enum(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_classifier_text(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_classifier_positive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_classifier_cache_valid(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_classifier_read_file(ngx_conf_t *cf,
    ngx_http_classify_classifier_t *cl, ngx_str_t *name, ngx_str_t *text);
static char *ngx_http_classifier_bounds(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_classifier_positive_time(ngx_conf_t *cf, void *post,
    void *data);
static void ngx_http_classifier_trim(ngx_str_t *s);


static ngx_conf_enum_t  ngx_http_classifier_protocols[] = {
    { ngx_string("openai"), NGX_HTTP_CLASSIFY_PROTO_OPENAI },
    { ngx_string("json"), NGX_HTTP_CLASSIFY_PROTO_JSON },
    { ngx_null_string, 0 }
};


/* a classifier's on_error, and classify_redis_on_error */
ngx_conf_enum_t  ngx_http_classify_on_errors[] = {
    { ngx_string("pass"), NGX_HTTP_CLASSIFY_ON_ERROR_PASS },
    { ngx_string("block"), NGX_HTTP_CLASSIFY_ON_ERROR_BLOCK },
    { ngx_null_string, 0 }
};


static ngx_conf_num_bounds_t  ngx_http_classifier_context_bounds = {
    ngx_http_classifier_bounds, 0, 1000
};

static ngx_conf_num_bounds_t  ngx_http_classifier_max_tokens_bounds = {
    ngx_http_classifier_bounds, 1, 1000
};

static ngx_conf_post_t  ngx_http_classifier_timeout_post = {
    ngx_http_classifier_positive_time
};


/* cmd->post of prompt_file and reply_file: the argument names a file */
static ngx_str_t  ngx_http_classifier_file = ngx_string("file");


static ngx_command_t  ngx_http_classifier_commands[] = {

    { ngx_string("pass"),
      NGX_CONF_TAKE1,
      ngx_http_classifier_pass,
      0,
      0,
      NULL },

    { ngx_string("protocol"),
      NGX_CONF_TAKE1,
      ngx_http_classifier_enum,
      0,
      offsetof(ngx_http_classify_classifier_t, protocol),
      &ngx_http_classifier_protocols },

    { ngx_string("model"),
      NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      0,
      offsetof(ngx_http_classify_classifier_t, model),
      NULL },

    { ngx_string("prompt"),
      NGX_CONF_TAKE1,
      ngx_http_classifier_text,
      0,
      offsetof(ngx_http_classify_classifier_t, prompt),
      NULL },

    { ngx_string("prompt_file"),
      NGX_CONF_TAKE1,
      ngx_http_classifier_text,
      0,
      offsetof(ngx_http_classify_classifier_t, prompt),
      &ngx_http_classifier_file },

    { ngx_string("context"),
      NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      0,
      offsetof(ngx_http_classify_classifier_t, context),
      &ngx_http_classifier_context_bounds },

    { ngx_string("max_tokens"),
      NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      0,
      offsetof(ngx_http_classify_classifier_t, max_tokens),
      &ngx_http_classifier_max_tokens_bounds },

    { ngx_string("positive"),
      NGX_CONF_1MORE,
      ngx_http_classifier_positive,
      0,
      0,
      NULL },

    { ngx_string("timeout"),
      NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      0,
      offsetof(ngx_http_classify_classifier_t, timeout),
      &ngx_http_classifier_timeout_post },

    { ngx_string("on_error"),
      NGX_CONF_TAKE1,
      ngx_http_classifier_enum,
      0,
      offsetof(ngx_http_classify_classifier_t, on_error),
      &ngx_http_classify_on_errors },

    { ngx_string("reply"),
      NGX_CONF_TAKE1,
      ngx_http_classifier_text,
      0,
      offsetof(ngx_http_classify_classifier_t, reply),
      NULL },

    { ngx_string("reply_file"),
      NGX_CONF_TAKE1,
      ngx_http_classifier_text,
      0,
      offsetof(ngx_http_classify_classifier_t, reply),
      &ngx_http_classifier_file },

    { ngx_string("shadow"),
      NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      0,
      offsetof(ngx_http_classify_classifier_t, shadow),
      NULL },

    { ngx_string("cache_valid"),
      NGX_CONF_TAKE1,
      ngx_http_classifier_cache_valid,
      0,
      offsetof(ngx_http_classify_classifier_t, cache_valid),
      NULL },

      ngx_null_command
};


/* classifier NAME { ... } */

char *
ngx_http_classifier_block(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_classify_main_conf_t *cmcf = conf;

    char                            *rv;
    ngx_str_t                       *value;
    ngx_uint_t                       i;
    ngx_conf_t                       save;
    ngx_http_classify_classifier_t  *cl;

    value = cf->args->elts;

    cl = cmcf->classifiers.elts;

    for (i = 0; i < cmcf->classifiers.nelts; i++) {
        if (cl[i].name.len == value[1].len
            && ngx_strncmp(cl[i].name.data, value[1].data, value[1].len) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate classifier \"%V\"", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    for (i = 0; i < value[1].len; i++) {
        if (!ngx_http_classify_isalnum(value[1].data[i])
            && value[1].data[i] != '_')
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid classifier name \"%V\": use letters, "
                               "digits and \"_\"", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    cl = ngx_array_push(&cmcf->classifiers);
    if (cl == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(cl, sizeof(ngx_http_classify_classifier_t));

    cl->name = value[1];
    cl->index = cmcf->classifiers.nelts - 1;
    cl->protocol = NGX_CONF_UNSET_UINT;
    cl->context = NGX_CONF_UNSET_UINT;
    cl->max_tokens = NGX_CONF_UNSET_UINT;
    cl->timeout = NGX_CONF_UNSET_MSEC;
    cl->on_error = NGX_CONF_UNSET_UINT;
    cl->shadow = NGX_CONF_UNSET;
    cl->positive = NGX_CONF_UNSET_PTR;
    cl->cache_valid = NGX_CONF_UNSET_MSEC;

    save = *cf;
    cf->handler = ngx_http_classifier_setting;
    cf->handler_conf = (char *) cl;

    rv = ngx_conf_parse(cf, NULL);

    *cf = save;

    if (rv != NGX_CONF_OK) {
        return rv;
    }

    return ngx_http_classifier_check(cf, cl);
}


/*
 * One setting of the block: its command is looked up in the table, its
 * arguments counted as nginx counts them, and its slot called with the
 * classifier as the conf.  A slot's complaint is logged with the setting
 * and the classifier named.
 */

static char *
ngx_http_classifier_setting(ngx_conf_t *cf, ngx_command_t *dummy, void *conf)
{
    ngx_http_classify_classifier_t  *cl = conf;

    char           *rv;
    ngx_str_t      *value;
    ngx_command_t  *cmd;

    value = cf->args->elts;

    for (cmd = ngx_http_classifier_commands; cmd->name.len; cmd++) {
        if (cmd->name.len == value[0].len
            && ngx_strncmp(cmd->name.data, value[0].data, value[0].len) == 0)
        {
            break;
        }
    }

    if (cmd->name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unknown directive \"%V\" in classifier \"%V\"",
                           &value[0], &cl->name);
        return NGX_CONF_ERROR;
    }

    rv = ngx_http_classifier_args(cf, cmd);

    if (rv == NGX_CONF_OK) {
        rv = cmd->set(cf, cmd, cl);
    }

    if (rv == NGX_CONF_OK || rv == NGX_CONF_ERROR) {
        return rv;
    }

    if (ngx_strcmp(rv, "is duplicate") == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" is duplicate in classifier \"%V\"",
                           &value[0], &cl->name);

    } else if (ngx_strcmp(rv, "invalid number of arguments") == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid number of arguments in \"%V\" of "
                           "classifier \"%V\"", &value[0], &cl->name);

    } else {
        /* "invalid value", "invalid number" */
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\" of classifier "
                           "\"%V\"", &value[1], &value[0], &cl->name);
    }

    return NGX_CONF_ERROR;
}


static char *
ngx_http_classifier_args(ngx_conf_t *cf, ngx_command_t *cmd)
{
    ngx_uint_t  n;

    n = cf->args->nelts - 1;

    if ((cmd->type & NGX_CONF_1MORE) ? n >= 1 : n == 1) {
        return NGX_CONF_OK;
    }

    return "invalid number of arguments";
}


/* pass /uri[?args]; */

static char *
ngx_http_classifier_pass(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_classify_classifier_t  *cl = conf;

    u_char     *p;
    ngx_str_t  *value;

    value = cf->args->elts;

    if (cl->pass_uri.data) {
        return "is duplicate";
    }

    if (value[1].data[0] != '/') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"pass\" \"%V\" in classifier \"%V\": "
                           "a location URI starting with \"/\"",
                           &value[1], &cl->name);
        return NGX_CONF_ERROR;
    }

    cl->pass_uri = value[1];

    p = (u_char *) ngx_strlchr(value[1].data, value[1].data + value[1].len,
                               '?');
    if (p) {
        cl->pass_uri.len = p - value[1].data;
        cl->pass_args.data = p + 1;
        cl->pass_args.len = value[1].data + value[1].len - p - 1;
    }

    return NGX_CONF_OK;
}


/* ngx_conf_set_enum_slot(), with its complaint returned, not logged */

static char *
ngx_http_classifier_enum(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_uint_t       *np;
    ngx_str_t        *value;
    ngx_conf_enum_t  *e;

    np = (ngx_uint_t *) ((u_char *) conf + cmd->offset);

    if (*np != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (e = cmd->post; e->name.len; e++) {
        if (e->name.len == value[1].len
            && ngx_strcmp(e->name.data, value[1].data) == 0)
        {
            *np = e->value;
            return NGX_CONF_OK;
        }
    }

    return "invalid value";
}


/*
 * prompt "text", reply "text"; prompt_file path, reply_file path (relative
 * to the configuration prefix, at most 1 MiB): one text each, trailing
 * white space trimmed, never empty
 */

static char *
ngx_http_classifier_text(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_classify_classifier_t  *cl = conf;

    ngx_str_t  *value, *text;

    value = cf->args->elts;
    text = (ngx_str_t *) ((u_char *) conf + cmd->offset);

    if (text->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" is duplicate in classifier \"%V\": it "
                           "has a text already", &value[0], &cl->name);
        return NGX_CONF_ERROR;
    }

    if (cmd->post == NULL) {
        *text = value[1];

    } else if (ngx_http_classifier_read_file(cf, cl, &value[1], text)
               != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    ngx_http_classifier_trim(text);

    if (text->len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "empty \"%V\" in classifier \"%V\"",
                           &value[0], &cl->name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_classifier_read_file(ngx_conf_t *cf,
    ngx_http_classify_classifier_t *cl, ngx_str_t *name, ngx_str_t *text)
{
    off_t            size;
    ssize_t          n;
    ngx_fd_t         fd;
    ngx_str_t        file;
    ngx_file_info_t  fi;

    file = *name;

    if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    fd = ngx_open_file(file.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "classifier \"%V\": cannot open \"%s\"",
                           &cl->name, file.data);
        return NGX_CONF_ERROR;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "classifier \"%V\": cannot stat \"%s\"",
                           &cl->name, file.data);
        goto failed;
    }

    size = ngx_file_size(&fi);

    if (size > NGX_HTTP_CLASSIFY_MAX_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "classifier \"%V\": \"%s\" is bigger than %d bytes",
                           &cl->name, file.data, NGX_HTTP_CLASSIFY_MAX_FILE);
        goto failed;
    }

    text->data = ngx_pnalloc(cf->pool, size + 1);
    if (text->data == NULL) {
        goto failed;
    }

    n = ngx_read_fd(fd, text->data, size);

    if (n != size) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "classifier \"%V\": cannot read \"%s\"",
                           &cl->name, file.data);
        goto failed;
    }

    text->len = size;
    text->data[size] = '\0';

    ngx_close_file(fd);

    return NGX_CONF_OK;

failed:

    ngx_close_file(fd);

    return NGX_CONF_ERROR;
}


/* positive word ...; letters and digits, at most 32, compared lowercase */

static char *
ngx_http_classifier_positive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_classify_classifier_t  *cl = conf;

    u_char      *p;
    ngx_str_t   *value, *word;
    ngx_uint_t   i;

    value = cf->args->elts;

    if (cl->positive != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    cl->positive = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                    sizeof(ngx_str_t));
    if (cl->positive == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < cf->args->nelts; i++) {
        if (value[i].len == 0 || value[i].len > NGX_HTTP_CLASSIFY_MAX_WORD) {
            goto invalid;
        }

        for (p = value[i].data; p < value[i].data + value[i].len; p++) {
            if (!ngx_http_classify_isalnum(*p)) {
                goto invalid;
            }
        }

        word = ngx_array_push(cl->positive);
        if (word == NULL) {
            return NGX_CONF_ERROR;
        }

        *word = value[i];
        ngx_strlow(word->data, word->data, word->len);
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid word \"%V\" in \"positive\" of classifier "
                       "\"%V\": letters and digits, at most %d",
                       &value[i], &cl->name, NGX_HTTP_CLASSIFY_MAX_WORD);
    return NGX_CONF_ERROR;
}


/* cache_valid time | off;  off: this classifier's verdicts are not cached */

static char *
ngx_http_classifier_cache_valid(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_classify_classifier_t  *cl = conf;

    ngx_str_t  *value;

    if (cl->cache_valid != NGX_CONF_UNSET_MSEC) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 3 && ngx_strncmp(value[1].data, "off", 3) == 0) {
        cl->cache_valid = 0;
        return NGX_CONF_OK;
    }

    cl->cache_valid = ngx_parse_time(&value[1], 0);

    if (cl->cache_valid == (ngx_msec_t) NGX_ERROR || cl->cache_valid == 0) {
        return "invalid value";
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_classifier_bounds(ngx_conf_t *cf, void *post, void *data)
{
    ngx_conf_num_bounds_t  *bounds = post;
    ngx_int_t              *np = data;

    if (*np < bounds->low || *np > bounds->high) {
        return "invalid value";
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_classifier_positive_time(ngx_conf_t *cf, void *post, void *data)
{
    ngx_msec_t  *msp = data;

    return *msp == 0 ? "invalid value" : NGX_CONF_OK;
}


/* the defaults, and what a classifier cannot do without */

static char *
ngx_http_classifier_check(ngx_conf_t *cf, ngx_http_classify_classifier_t *cl)
{
    ngx_str_t  *word;

    if (cl->pass_uri.data == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "classifier \"%V\" has no \"pass\"", &cl->name);
        return NGX_CONF_ERROR;
    }

    ngx_conf_init_uint_value(cl->protocol, NGX_HTTP_CLASSIFY_PROTO_OPENAI);

    if (cl->protocol == NGX_HTTP_CLASSIFY_PROTO_OPENAI
        && cl->prompt.data == NULL)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "classifier \"%V\" has no \"prompt\" or "
                           "\"prompt_file\"", &cl->name);
        return NGX_CONF_ERROR;
    }

    ngx_conf_init_value(cl->shadow, 0);

    if (!cl->shadow && cl->reply.data == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "classifier \"%V\" has no \"reply\" or "
                           "\"reply_file\"", &cl->name);
        return NGX_CONF_ERROR;
    }

    ngx_conf_init_uint_value(cl->context, 0);
    ngx_conf_init_uint_value(cl->max_tokens,
                             NGX_HTTP_CLASSIFY_DEFAULT_MAX_TOKENS);
    ngx_conf_init_msec_value(cl->timeout, 5000);
    ngx_conf_init_uint_value(cl->on_error, NGX_HTTP_CLASSIFY_ON_ERROR_PASS);

    if (cl->positive == NGX_CONF_UNSET_PTR) {
        cl->positive = ngx_array_create(cf->pool, 2, sizeof(ngx_str_t));
        if (cl->positive == NULL) {
            return NGX_CONF_ERROR;
        }

        word = ngx_array_push_n(cl->positive, 2);
        if (word == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_str_set(&word[0], "true");
        ngx_str_set(&word[1], "yes");
    }

    if (cl->protocol == NGX_HTTP_CLASSIFY_PROTO_OPENAI
        && ngx_http_classify_build_prefix(cf->pool, cl) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void
ngx_http_classifier_trim(ngx_str_t *s)
{
    while (s->len
           && (s->data[s->len - 1] == '\n' || s->data[s->len - 1] == '\r'
               || s->data[s->len - 1] == ' ' || s->data[s->len - 1] == '\t'))
    {
        s->len--;
    }
}

/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
#include <string.h>

#include "apr_fnmatch.h"
#include "apr_strings.h"
#include "http_core.h"
#include "mod_watchdog.h"

#include "mod_bbstatus_method.h"
#include "mod_bbstatus_config.h"

void *bbs_create_dir_conf(apr_pool_t *p, char *dir)
{
    bbs_dir_conf *c = apr_pcalloc(p, sizeof(*c));

    (void)dir;
    c->timeout = BBS_UNSET;
    c->reprobe = BBS_UNSET;
    c->fast_block = BBS_UNSET;
    c->panic = BBS_UNSET;
    c->retry = BBS_UNSET;
    return c;
}

void *bbs_merge_dir_conf(apr_pool_t *p, void *basev, void *addv)
{
    const bbs_dir_conf *base = basev, *add = addv;
    bbs_dir_conf *c = apr_pcalloc(p, sizeof(*c));

    c->route = add->route ? add->route : base->route;
    c->standby = add->standby ? add->standby : base->standby;
    c->max_body = add->max_body ? add->max_body : base->max_body;
    c->timeout = add->timeout != BBS_UNSET ? add->timeout : base->timeout;
    c->reprobe = add->reprobe != BBS_UNSET ? add->reprobe : base->reprobe;
    c->fast_block = add->fast_block != BBS_UNSET ? add->fast_block
                                                 : base->fast_block;
    c->panic = add->panic != BBS_UNSET ? add->panic : base->panic;
    c->retry = add->retry != BBS_UNSET ? add->retry : base->retry;
    c->fast_interval_set = add->fast_interval_set || base->fast_interval_set;
    c->fast_interval = add->fast_interval_set ? add->fast_interval
                                              : base->fast_interval;
    return c;
}

void *bbs_create_server_conf(apr_pool_t *p, server_rec *s)
{
    bbs_server_conf *c = apr_pcalloc(p, sizeof(*c));

    (void)s;
    c->threads = BBS_THREADS_DEFAULT;
    return c;
}

/* The per-directory configuration a request to this balancer would get:
 * the server's, merged with every <Proxy> section matching
 * "balancer://name/", as mod_proxy's own walk does. httpd records a
 * balancer's section in balancer->section_config only when the <Proxy>
 * line has parameters, so the sections are matched here. */
ap_conf_vector_t *bbs_balancer_dir_config(apr_pool_t *p, server_rec *s,
                                          proxy_balancer *b)
{
    proxy_server_conf *sconf = ap_get_module_config(s->module_config,
                                                    &proxy_module);
    ap_conf_vector_t *dc = s->lookup_defaults;
    const char *url = apr_pstrcat(p, b->s->name, "/", NULL);
    ap_conf_vector_t **sec;
    int i;

    if (!sconf || !sconf->sec_proxy) {
        return dc;
    }
    sec = (ap_conf_vector_t **)sconf->sec_proxy->elts;
    for (i = 0; i < sconf->sec_proxy->nelts; ++i) {
        const proxy_dir_conf *pd = ap_get_module_config(sec[i],
                                                        &proxy_module);
        int match;

        if (!pd || !pd->p) {
            continue;
        }
        if (pd->r) {
            match = !ap_regexec(pd->r, url, 0, NULL, 0);
        }
        else if (pd->p_is_fnmatch) {
            match = !apr_fnmatch(pd->p, url, 0);
        }
        else {
            match = !strncmp(url, pd->p, strlen(pd->p));
        }
        if (match) {
            dc = ap_merge_per_dir_configs(p, dc, sec[i]);
        }
    }
    return dc;
}

void bbs_settings_for(bbs_settings *out, ap_conf_vector_t *dir_config)
{
    const bbs_dir_conf *c = ap_get_module_config(dir_config,
                                                 &bbstatus_module);

    bbs_rules_default(&out->rules);
    out->timeout = BBS_TIMEOUT_DEFAULT;
    out->reprobe = BBS_REPROBE_DEFAULT;
    out->fast_interval = 0;
    out->fast_block = 1;
    out->panic = 1;
    if (!c) {
        return;
    }
    if (c->route) {
        out->rules.route = c->route;
    }
    if (c->standby) {
        out->rules.standby = c->standby;
    }
    if (c->max_body) {
        out->rules.max_body = c->max_body;
    }
    if (c->timeout != BBS_UNSET) {
        out->timeout = c->timeout;
    }
    if (c->reprobe != BBS_UNSET) {
        out->reprobe = c->reprobe;
    }
    if (c->fast_block != BBS_UNSET) {
        out->fast_block = c->fast_block;
    }
    if (c->panic != BBS_UNSET) {
        out->panic = c->panic;
    }
    if (c->fast_interval_set) {
        out->fast_interval = c->fast_interval;
    }
}

void bbs_each_balancer(server_rec *s, bbs_balancer_fn *fn, void *baton)
{
    for (; s; s = s->next) {
        proxy_server_conf *conf = ap_get_module_config(s->module_config,
                                                       &proxy_module);
        proxy_balancer *b;
        int i;

        if (!conf) {
            continue;
        }
        b = (proxy_balancer *)conf->balancers->elts;
        for (i = 0; i < conf->balancers->nelts; ++i, ++b) {
            fn(s, conf, b, baton);
        }
    }
}

proxy_balancer *bbs_balancer_of(const proxy_server_conf *conf,
                                const proxy_worker *w)
{
    int i;

    /* the copies share the members array: that tells them apart from
     * another server's balancer of the same name */
    for (i = 0; conf && w->balancer && i < conf->balancers->nelts; ++i) {
        proxy_balancer *b = &APR_ARRAY_IDX(conf->balancers, i,
                                           proxy_balancer);
        if (b->workers == w->balancer->workers) {
            return b;
        }
    }
    return w->balancer;
}

int bbs_member_slots(const proxy_balancer *b)
{
    return b->max_workers > b->workers->nelts ? b->max_workers
                                              : b->workers->nelts;
}

typedef struct {
    bbs_member_fn *fn;
    void *baton;
} each_member_t;

static void each_member_of(server_rec *s, proxy_server_conf *conf,
                           proxy_balancer *b, void *baton)
{
    each_member_t *em = baton;
    int i;

    (void)s;
    (void)conf;
    for (i = 0; i < b->workers->nelts; ++i) {
        em->fn(b, APR_ARRAY_IDX(b->workers, i, proxy_worker *), em->baton);
    }
}

void bbs_each_member(server_rec *s, bbs_member_fn *fn, void *baton)
{
    each_member_t em;

    em.fn = fn;
    em.baton = baton;
    bbs_each_balancer(s, each_member_of, &em);
}

/* Every message names the directive and the value, on one line. */
static const char *bad(cmd_parms *cmd, const char *value, const char *why)
{
    return apr_psprintf(cmd->pool, "%s '%s': %s", cmd->cmd->name, value,
                        why);
}

/* The settings are read for balancers: in the server config, a virtual
 * host and <Proxy> sections. Nothing reads them in <Directory>,
 * <Location>, <Files>, <If> or <Limit>, so they are refused there. (The
 * three section flags passed together would refuse <Proxy> as well: any
 * directory context then counts, see ap_check_cmd_context.) */
static const char *in_balancer_context(cmd_parms *cmd)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIRECTORY
                                                    | NOT_IN_LOCATION
                                                    | NOT_IN_LIMIT);

    if (!err) {
        err = ap_check_cmd_context(cmd, NOT_IN_FILES);
    }
    return err ? apr_pstrcat(cmd->pool, err, "; it applies to balancers: "
                             "use it in the server config, a <VirtualHost> "
                             "or a <Proxy balancer://...> section", NULL)
               : NULL;
}

#define REFUSE_OUTSIDE_BALANCER_CONTEXT(cmd)                                 \
    do {                                                                     \
        const char *where_ = in_balancer_context(cmd);                       \
        if (where_) {                                                        \
            return where_;                                                   \
        }                                                                    \
    } while (0)

static const char *joined(cmd_parms *cmd, int argc, char *const argv[])
{
    const char *s = "";
    int i;

    for (i = 0; i < argc; ++i) {
        s = apr_pstrcat(cmd->pool, s, i ? " " : "", argv[i], NULL);
    }
    return s;
}

static const char *set_route(cmd_parms *cmd, void *dconf, int argc,
                             char *const argv[])
{
    bbs_dir_conf *c = dconf;
    const char *err = NULL;

    REFUSE_OUTSIDE_BALANCER_CONTEXT(cmd);
    c->route = bbs_stateset_make(cmd->pool, argc, (const char *const *)argv,
                                 &err);
    return c->route ? NULL : bad(cmd, joined(cmd, argc, argv), err);
}

static const char *set_standby(cmd_parms *cmd, void *dconf, int argc,
                               char *const argv[])
{
    bbs_dir_conf *c = dconf;
    const char *err = NULL;

    REFUSE_OUTSIDE_BALANCER_CONTEXT(cmd);
    if (argc == 1 && !strcasecmp(argv[0], "none")) {
        c->standby = bbs_stateset_empty();
        return NULL;
    }
    c->standby = bbs_stateset_make(cmd->pool, argc,
                                   (const char *const *)argv, &err);
    return c->standby ? NULL : bad(cmd, joined(cmd, argc, argv), err);
}

static const char *set_max_body(cmd_parms *cmd, void *dconf, const char *arg)
{
    bbs_dir_conf *c = dconf;
    const char *err;

    REFUSE_OUTSIDE_BALANCER_CONTEXT(cmd);
    err = bbs_parse_size(arg, &c->max_body);
    return err ? bad(cmd, arg, err) : NULL;
}

static const char *parse_duration(cmd_parms *cmd, const char *arg,
                                  apr_interval_time_t min,
                                  apr_interval_time_t max,
                                  apr_interval_time_t *out)
{
    apr_interval_time_t t;

    if (ap_timeout_parameter_parse(arg, &t, "s") != APR_SUCCESS || t < 0) {
        return bad(cmd, arg, "must be a duration such as 5, 5s or 500ms");
    }
    if (t < min || t > max) {
        return bad(cmd, arg, apr_psprintf(cmd->pool,
                                          "must be between %" APR_TIME_T_FMT
                                          "ms and %" APR_TIME_T_FMT "s",
                                          apr_time_as_msec(min),
                                          apr_time_sec(max)));
    }
    *out = t;
    return NULL;
}

static const char *set_timeout(cmd_parms *cmd, void *dconf, const char *arg)
{
    bbs_dir_conf *c = dconf;

    REFUSE_OUTSIDE_BALANCER_CONTEXT(cmd);
    return parse_duration(cmd, arg, apr_time_from_msec(100),
                          apr_time_from_sec(300), &c->timeout);
}

static const char *set_reprobe(cmd_parms *cmd, void *dconf, const char *arg)
{
    bbs_dir_conf *c = dconf;

    REFUSE_OUTSIDE_BALANCER_CONTEXT(cmd);
    return parse_duration(cmd, arg, 0, apr_time_from_sec(3600), &c->reprobe);
}

static const char *set_fast_interval(cmd_parms *cmd, void *dconf,
                                     const char *arg)
{
    bbs_dir_conf *c = dconf;

    REFUSE_OUTSIDE_BALANCER_CONTEXT(cmd);
    c->fast_interval_set = 1;
    if (!strcasecmp(arg, "off")) {
        c->fast_interval = 0;
        return NULL;
    }
    return parse_duration(cmd, arg, AP_WD_TM_SLICE, apr_time_from_sec(3600),
                          &c->fast_interval);
}

static const char *set_flag(cmd_parms *cmd, void *dconf, const char *arg)
{
    bbs_dir_conf *c = dconf;
    int *field = (int *)((char *)c + (apr_size_t)cmd->info);

    REFUSE_OUTSIDE_BALANCER_CONTEXT(cmd);
    if (!strcasecmp(arg, "on")) {
        *field = 1;
    }
    else if (!strcasecmp(arg, "off")) {
        *field = 0;
    }
    else {
        return bad(cmd, arg, "must be on or off");
    }
    return NULL;
}

static const char *set_threads(cmd_parms *cmd, void *dconf, const char *arg)
{
    bbs_server_conf *c = ap_get_module_config(cmd->server->module_config,
                                              &bbstatus_module);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    char *end;
    apr_int64_t n;

    (void)dconf;
    if (err) {
        return err;
    }
    n = apr_strtoi64(arg, &end, 10);
    if (*arg == '\0' || *end || n < 1 || n > 256) {
        return bad(cmd, arg, "must be a number of threads from 1 to 256");
    }
    c->threads = (int)n;
    return NULL;
}

#define DIR_CONTEXT (RSRC_CONF | ACCESS_CONF)

const command_rec bbs_cmds[] = {
    AP_INIT_TAKE_ARGV("BBStatusRoute", set_route, NULL, DIR_CONTEXT,
                      "states that keep a member in rotation (default: "
                      "STARTING FIRST_RUN RUNNING MAINTENANCE)"),
    AP_INIT_TAKE_ARGV("BBStatusStandby", set_standby, NULL, DIR_CONTEXT,
                      "routable states used only while no member of the "
                      "balancer is in a better one, or 'none' (default: "
                      "STARTING MAINTENANCE)"),
    AP_INIT_TAKE1("BBStatusMaxBody", set_max_body, NULL, DIR_CONTEXT,
                  "largest /status body read, 1 to 1M bytes (default 8192)"),
    AP_INIT_TAKE1("BBStatusTimeout", set_timeout, NULL, DIR_CONTEXT,
                  "time limit of one probe, connect to last byte "
                  "(default 5s)"),
    AP_INIT_TAKE1("BBStatusFastBlock", set_flag,
                  (void *)APR_OFFSETOF(bbs_dir_conf, fast_block), DIR_CONTEXT,
                  "on: a node saying it is not serving leaves at once; off: "
                  "it counts towards hcfails (default on)"),
    AP_INIT_TAKE1("BBStatusReprobeInterval", set_reprobe, NULL, DIR_CONTEXT,
                  "least time between two out-of-turn probes of a member "
                  "after failed requests, 0 to turn them off "
                  "(default 250ms)"),
    AP_INIT_TAKE1("BBStatusRetry", set_flag,
                  (void *)APR_OFFSETOF(bbs_dir_conf, retry), DIR_CONTEXT,
                  "on: a GET, HEAD or OPTIONS answered 5xx by a member that "
                  "a probe then finds leaving goes to another member "
                  "(default on)"),
    AP_INIT_TAKE1("BBStatusPanic", set_flag,
                  (void *)APR_OFFSETOF(bbs_dir_conf, panic), DIR_CONTEXT,
                  "on: keep routing when every member of a balancer failed "
                  "its checks and none said it is stopping (default on)"),
    AP_INIT_TAKE1("BBStatusFastInterval", set_fast_interval, NULL,
                  DIR_CONTEXT,
                  "check interval while a member's pass or fail count is "
                  "running, or off (default off)"),
    AP_INIT_TAKE1("BBStatusThreads", set_threads, NULL, RSRC_CONF,
                  "threads that run probes (default 16)"),
    {NULL}
};

/* ---- one balancer, one set of settings ------------------------------- */

static const char *duration(apr_pool_t *p, apr_interval_time_t t)
{
    return t ? apr_psprintf(p, "%" APR_TIME_T_FMT "ms", apr_time_as_msec(t))
             : "0";
}

/* The first directive whose value differs, with both values. */
static const char *differs(apr_pool_t *p, const bbs_settings *a,
                           const bbs_settings *b, const char **va,
                           const char **vb)
{
    if (!bbs_stateset_same(a->rules.route, b->rules.route)) {
        *va = bbs_stateset_str(a->rules.route, p);
        *vb = bbs_stateset_str(b->rules.route, p);
        return "BBStatusRoute";
    }
    if (!bbs_stateset_same(a->rules.standby, b->rules.standby)) {
        *va = bbs_stateset_str(a->rules.standby, p);
        *vb = bbs_stateset_str(b->rules.standby, p);
        return "BBStatusStandby";
    }
    if (a->rules.max_body != b->rules.max_body) {
        *va = apr_psprintf(p, "%" APR_SIZE_T_FMT, a->rules.max_body);
        *vb = apr_psprintf(p, "%" APR_SIZE_T_FMT, b->rules.max_body);
        return "BBStatusMaxBody";
    }
    if (a->timeout != b->timeout) {
        *va = duration(p, a->timeout);
        *vb = duration(p, b->timeout);
        return "BBStatusTimeout";
    }
    if (a->reprobe != b->reprobe) {
        *va = duration(p, a->reprobe);
        *vb = duration(p, b->reprobe);
        return "BBStatusReprobeInterval";
    }
    if (a->fast_interval != b->fast_interval) {
        *va = a->fast_interval ? duration(p, a->fast_interval) : "off";
        *vb = b->fast_interval ? duration(p, b->fast_interval) : "off";
        return "BBStatusFastInterval";
    }
    if (a->fast_block != b->fast_block) {
        *va = a->fast_block ? "on" : "off";
        *vb = b->fast_block ? "on" : "off";
        return "BBStatusFastBlock";
    }
    if (a->panic != b->panic) {
        *va = a->panic ? "on" : "off";
        *vb = b->panic ? "on" : "off";
        return "BBStatusPanic";
    }
    return NULL;
}

static const char *server_desc(apr_pool_t *p, const server_rec *s)
{
    if (!s->is_virtual) {
        return "the main server";
    }
    return apr_psprintf(p, "<VirtualHost %s:%u> (%s line %d)",
                        s->addrs ? s->addrs->virthost : "?",
                        s->addrs ? (unsigned)s->addrs->host_port : 0,
                        s->defn_name ? s->defn_name : "?",
                        s->defn_line_number);
}

typedef struct {
    server_rec *s;
    bbs_settings set;
} first_seen_t;

typedef struct {
    apr_pool_t *p;
    apr_hash_t *seen;   /* by members array */
    int failed;
} shared_check_t;

static void check_balancer(server_rec *s, proxy_server_conf *conf,
                           proxy_balancer *b, void *baton)
{
    shared_check_t *c = baton;
    first_seen_t *first;
    bbs_settings set;
    const char *directive, *va = NULL, *vb = NULL;
    int i, ours = 0;

    (void)conf;
    for (i = 0; i < b->workers->nelts; ++i) {
        ours |= bbs_method_is(APR_ARRAY_IDX(b->workers, i, proxy_worker *));
    }
    if (!ours || c->failed) {
        return;
    }
    bbs_settings_for(&set, bbs_balancer_dir_config(c->p, s, b));
    first = apr_hash_get(c->seen, &b->workers, sizeof(b->workers));
    if (!first) {
        first = apr_pcalloc(c->p, sizeof(*first));
        first->s = s;
        first->set = set;
        apr_hash_set(c->seen, &b->workers, sizeof(b->workers), first);
        return;
    }
    directive = differs(c->p, &first->set, &set, &va, &vb);
    if (directive) {
        c->failed = 1;
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s,
                     BBSLOGNO(0060) "%s is one balancer in %s and in %s (the "
                     "virtual host inherits it, members included), but "
                     "%s is '%s' in the first and '%s' in the second; a "
                     "member has one check: set %s the same in both, or "
                     "once in <Proxy %s>", b->s->name,
                     server_desc(c->p, first->s), server_desc(c->p, s),
                     directive, va, vb, directive, b->s->name);
    }
}

/* A virtual host's copy of a main-server balancer shares the members
 * (the same workers, so the same flags and the same check); each server
 * may still merge other BBStatus* settings for it. Two answers for one
 * check would flip the member's flags every time, so they are refused. */
int bbs_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                     server_rec *s)
{
    shared_check_t c;

    (void)pconf;
    (void)plog;
    c.p = ptemp;
    c.seen = apr_hash_make(ptemp);
    c.failed = 0;
    bbs_each_balancer(s, check_balancer, &c);
    return c.failed ? HTTP_INTERNAL_SERVER_ERROR : OK;
}

/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
#include <string.h>

#include "apr_fnmatch.h"
#include "apr_lib.h"
#include "apr_strings.h"
#include "http_core.h"
#include "mod_watchdog.h"

#include "mod_bbstatus_method.h"
#include "mod_bbstatus_config.h"

/* Every default of the module, in one place. The member rules' own
 * (BBStatusRoute, BBStatusStandby, BBStatusMaxBody) are the core's,
 * bbs_rules_default(), which its tests and fuzzers use without httpd. */
static const struct {
    apr_interval_time_t timeout;
    apr_interval_time_t reprobe;
    apr_interval_time_t fast_interval;
    int fast_block;
    int panic;
    int retry;
    bbs_warmup_conf_t warmup;
    int threads; /* BBStatusThreads, per server */
} defconf = {
    .timeout = apr_time_from_sec(5),
    .reprobe = apr_time_from_msec(250),
    .fast_interval = 0,
    .fast_block = 1,
    .panic = 1,
    .retry = 1,
    /* a floor of 5% of the full share, where DURATION comes alone */
    .warmup = {.duration = 0, .floor = 50},
    .threads = 16,
};

void *bbs_create_dir_conf(apr_pool_t *p, char *dir)
{
    bbs_dir_conf_t *c = apr_pcalloc(p, sizeof(*c));

    (void)dir;
    c->timeout = BBS_UNSET;
    c->reprobe = BBS_UNSET;
    c->fast_interval = BBS_UNSET;
    c->fast_block = BBS_UNSET;
    c->panic = BBS_UNSET;
    c->retry = BBS_UNSET;
    c->warmup = BBS_UNSET;
    return c;
}

void *bbs_merge_dir_conf(apr_pool_t *p, void *basev, void *addv)
{
    const bbs_dir_conf_t *base = basev, *add = addv;
    bbs_dir_conf_t *c = apr_pcalloc(p, sizeof(*c));

    c->route = add->route ? add->route : base->route;
    c->standby = add->standby ? add->standby : base->standby;
    c->max_body = add->max_body ? add->max_body : base->max_body;
    c->timeout = add->timeout != BBS_UNSET ? add->timeout : base->timeout;
    c->reprobe = add->reprobe != BBS_UNSET ? add->reprobe : base->reprobe;
    c->fast_block = add->fast_block != BBS_UNSET ? add->fast_block
                                                 : base->fast_block;
    c->panic = add->panic != BBS_UNSET ? add->panic : base->panic;
    c->retry = add->retry != BBS_UNSET ? add->retry : base->retry;
    c->warm_floor = add->warmup != BBS_UNSET ? add->warm_floor
                                             : base->warm_floor;
    c->warmup = add->warmup != BBS_UNSET ? add->warmup : base->warmup;
    c->fast_interval = add->fast_interval != BBS_UNSET ? add->fast_interval
                                                       : base->fast_interval;
    return c;
}

void *bbs_create_server_conf(apr_pool_t *p, server_rec *s)
{
    bbs_server_conf_t *c = apr_pcalloc(p, sizeof(*c));

    (void)s;
    c->threads = defconf.threads;
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

void bbs_settings_for(bbs_settings_t *out, ap_conf_vector_t *dir_config)
{
    const bbs_dir_conf_t *c = ap_get_module_config(dir_config,
                                                   &bbstatus_module);

    bbs_rules_default(&out->rules);
    out->timeout = defconf.timeout;
    out->reprobe = defconf.reprobe;
    out->fast_interval = defconf.fast_interval;
    out->fast_block = defconf.fast_block;
    out->panic = defconf.panic;
    out->warmup = defconf.warmup;
    if (!c) {
        return;
    }
    if (c->warmup != BBS_UNSET) {
        out->warmup.duration = c->warmup;
        out->warmup.floor = c->warm_floor;
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
    if (c->fast_interval != BBS_UNSET) {
        out->fast_interval = c->fast_interval;
    }
}

int bbs_retry_on(const bbs_dir_conf_t *c)
{
    return c && c->retry != BBS_UNSET ? c->retry : defconf.retry;
}

apr_interval_time_t bbs_warmup_of(const bbs_dir_conf_t *c)
{
    return c && c->warmup != BBS_UNSET ? c->warmup
                                       : defconf.warmup.duration;
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
    bbs_dir_conf_t *c = dconf;
    const char *err = NULL;

    REFUSE_OUTSIDE_BALANCER_CONTEXT(cmd);
    c->route = bbs_stateset_make(cmd->pool, argc, (const char *const *)argv,
                                 &err);
    return c->route ? NULL : bad(cmd, joined(cmd, argc, argv), err);
}

static const char *set_standby(cmd_parms *cmd, void *dconf, int argc,
                               char *const argv[])
{
    bbs_dir_conf_t *c = dconf;
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
    bbs_dir_conf_t *c = dconf;
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
    bbs_dir_conf_t *c = dconf;

    REFUSE_OUTSIDE_BALANCER_CONTEXT(cmd);
    return parse_duration(cmd, arg, apr_time_from_msec(100),
                          apr_time_from_sec(300), &c->timeout);
}

static const char *set_reprobe(cmd_parms *cmd, void *dconf, const char *arg)
{
    bbs_dir_conf_t *c = dconf;

    REFUSE_OUTSIDE_BALANCER_CONTEXT(cmd);
    return parse_duration(cmd, arg, 0, apr_time_from_sec(3600), &c->reprobe);
}

static const char *set_fast_interval(cmd_parms *cmd, void *dconf,
                                     const char *arg)
{
    bbs_dir_conf_t *c = dconf;

    REFUSE_OUTSIDE_BALANCER_CONTEXT(cmd);
    if (!strcasecmp(arg, "off")) {
        c->fast_interval = 0;
        return NULL;
    }
    return parse_duration(cmd, arg, AP_WD_TM_SLICE, apr_time_from_sec(3600),
                          &c->fast_interval);
}

/* BBStatusWarmup off | DURATION [FLOOR%] */
static const char *set_warmup(cmd_parms *cmd, void *dconf, const char *arg,
                              const char *floor)
{
    bbs_dir_conf_t *c = dconf;
    const char *err;
    char *end;
    apr_int64_t pct;

    REFUSE_OUTSIDE_BALANCER_CONTEXT(cmd);
    c->warm_floor = defconf.warmup.floor;
    if (!strcasecmp(arg, "off") && !floor) {
        c->warmup = 0;
        return NULL;
    }
    if ((err = parse_duration(cmd, arg, apr_time_from_sec(1),
                              apr_time_from_sec(3600), &c->warmup))) {
        return err;
    }
    if (floor) {
        pct = apr_isdigit(*floor) ? apr_strtoi64(floor, &end, 10) : -1;
        if (pct < 1 || pct > 100 || strcmp(end, "%")) {
            return bad(cmd, floor, "the floor must be a share such as 5%, "
                                   "1% to 100%");
        }
        c->warm_floor = (unsigned)pct * 10;
    }
    return NULL;
}

static const char *set_flag(cmd_parms *cmd, void *dconf, const char *arg)
{
    bbs_dir_conf_t *c = dconf;
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
    bbs_server_conf_t *c = ap_get_module_config(cmd->server->module_config,
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
                  (void *)APR_OFFSETOF(bbs_dir_conf_t, fast_block), DIR_CONTEXT,
                  "on: a node saying it is not serving leaves at once; off: "
                  "it counts towards hcfails (default on)"),
    AP_INIT_TAKE1("BBStatusReprobeInterval", set_reprobe, NULL, DIR_CONTEXT,
                  "least time between two out-of-turn probes of a member "
                  "after failed requests, 0 to turn them off "
                  "(default 250ms)"),
    AP_INIT_TAKE1("BBStatusRetry", set_flag,
                  (void *)APR_OFFSETOF(bbs_dir_conf_t, retry), DIR_CONTEXT,
                  "on: a GET, HEAD or OPTIONS answered 5xx by a member that "
                  "a probe then finds leaving goes to another member "
                  "(default on)"),
    AP_INIT_TAKE1("BBStatusPanic", set_flag,
                  (void *)APR_OFFSETOF(bbs_dir_conf_t, panic), DIR_CONTEXT,
                  "on: keep routing when every member of a balancer failed "
                  "its checks and none said it is stopping (default on)"),
    AP_INIT_TAKE1("BBStatusFastInterval", set_fast_interval, NULL,
                  DIR_CONTEXT,
                  "check interval while a member's pass or fail count is "
                  "running, or off (default off)"),
    AP_INIT_TAKE12("BBStatusWarmup", set_warmup, NULL, DIR_CONTEXT,
                   "a member back in rotation takes a share of new requests "
                   "without a route that grows from FLOOR% (default 5%) to "
                   "its full share over DURATION while it answers about as "
                   "fast as its peers, or off (default off)"),
    AP_INIT_TAKE1("BBStatusThreads", set_threads, NULL, RSRC_CONF,
                  "threads that run probes (default 16)"),
    {NULL}
};

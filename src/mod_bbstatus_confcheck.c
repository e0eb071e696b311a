/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * One balancer, one set of settings: a balancer a virtual host inherits
 * from the main server has one check per member, so the two servers may
 * not give it different BBStatus* settings; apachectl -t says which.
 */
#include "apr_strings.h"

#include "mod_bbstatus_method.h"
#include "mod_bbstatus_config.h"
#include "mod_bbstatus_confcheck.h"

static const char *duration(apr_pool_t *p, apr_interval_time_t t)
{
    return t ? apr_psprintf(p, "%" APR_TIME_T_FMT "ms", apr_time_as_msec(t))
             : "0";
}

/* The first directive whose value differs, with both values. */
static const char *differs(apr_pool_t *p, const bbs_settings_t *a,
                           const bbs_settings_t *b, const char **va,
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
    if (a->warmup.duration != b->warmup.duration
        || a->warmup.floor != b->warmup.floor) {
        *va = a->warmup.duration
                  ? apr_psprintf(p, "%s %u%%", duration(p, a->warmup.duration),
                                 a->warmup.floor / 10)
                  : "off";
        *vb = b->warmup.duration
                  ? apr_psprintf(p, "%s %u%%", duration(p, b->warmup.duration),
                                 b->warmup.floor / 10)
                  : "off";
        return "BBStatusWarmup";
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
    bbs_settings_t set;
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
    bbs_settings_t set;
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

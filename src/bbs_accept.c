/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
#include <string.h>
#include <strings.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include "bbs_accept.h"

/* qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), then
 * optional white space; -1 for anything else. */
static int qvalue(const char *v)
{
    int q, digits = 0, scale = 100;

    if (*v != '0' && *v != '1') {
        return -1;
    }
    q = (*v++ - '0') * 1000;
    if (*v == '.') {
        for (++v; apr_isdigit(*v) && digits < 3; ++v, ++digits) {
            q += (*v - '0') * scale;
            scale /= 10;
        }
    }
    while (apr_isspace(*v)) {
        ++v;
    }
    return !*v && q <= 1000 ? q : -1;
}

int bbs_accept_weight(apr_pool_t *p, const char *accept, const char *type,
                      const char *sub)
{
    char *list = apr_pstrdup(p, accept), *elt, *last;
    int best = -1, weight = 0;

    for (elt = apr_strtok(list, ",", &last); elt;
         elt = apr_strtok(NULL, ",", &last)) {
        char *params = strchr(elt, ';'), *slash, *param, *plast;
        int q = 1000, spec;

        if (params) {
            *params++ = '\0';
        }
        apr_collapse_spaces(elt, elt);
        slash = strchr(elt, '/');
        if (!slash || slash == elt || !slash[1]) {
            continue;
        }
        *slash++ = '\0';
        /* the most specific matching range counts (RFC 9110, 12.5.1):
         * 0 any type, 1 any subtype of type, 2 type/sub, negative none */
        if (!strcmp(elt, "*")) {
            spec = strcmp(slash, "*") ? -1 : 0;
        }
        else if (strcasecmp(elt, type)) {
            continue;
        }
        else {
            spec = !strcmp(slash, "*") ? 1 : !strcasecmp(slash, sub) ? 2 : -2;
        }
        if (spec < 0) {
            continue;
        }
        /* a later q= wins over an earlier one, as the parameters come */
        for (param = params ? apr_strtok(params, ";", &plast) : NULL;
             param && q >= 0; param = apr_strtok(NULL, ";", &plast)) {
            while (apr_isspace(*param)) {
                ++param;
            }
            if (!strncasecmp(param, "q=", 2)) {
                q = qvalue(param + 2);
            }
        }
        if (q < 0) {
            continue;
        }
        if (spec > best || (spec == best && q > weight)) {
            best = spec;
            weight = q;
        }
    }
    return weight;
}

int bbs_accept_prefers_json(apr_pool_t *p, const char *accept)
{
    return accept
           && bbs_accept_weight(p, accept, "application", "json")
                  > bbs_accept_weight(p, accept, "text", "html");
}

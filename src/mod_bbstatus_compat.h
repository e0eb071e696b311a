/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * What differs between the httpd 2.4 releases the distributions ship
 * (2.4.37 on RHEL 8 up to the newest). Every test is on the module magic
 * number (include/ap_mmn.h), which names the release that brought each
 * change; the comment beside it says which. Distributions backport fixes
 * without changing that number, so behaviour that matters at run time
 * (how members are parked, see mod_bbstatus_method.c) is written to work
 * the same on every release instead of being chosen here.
 */
#ifndef MOD_BBSTATUS_COMPAT_H
#define MOD_BBSTATUS_COMPAT_H

#include "ap_mmn.h"
#include "apr_version.h"
#include "apr_atomic.h"
#include "mod_proxy.h"

/* 20120211.75: hostname_ex of proxy_worker_shared (2.4.30). The oldest
 * release tested is 2.4.37 (RHEL 8). */
#if !AP_MODULE_MAGIC_AT_LEAST(20120211, 75)
#error "mod_bbstatus needs httpd 2.4.30 or later (2.4.37 or later is tested)"
#endif
/* APR_UNIX addresses (unix-socket members), apr_hash_this_val */
#if !APR_VERSION_AT_LEAST(1, 6, 0)
#error "mod_bbstatus needs APR 1.6.0 or later"
#endif

/* 20120211.124: name_ex, the member URL without the 96-byte limit of
 * name (2.4.53). Before, httpd cuts longer URLs and says so (AH02808). */
#if AP_MODULE_MAGIC_AT_LEAST(20120211, 124)
#define BBS_HAVE_NAME_EX 1
#define bbs_wname(w) ((w)->s->name_ex)
#else
#define BBS_HAVE_NAME_EX 0
#define bbs_wname(w) ((w)->s->name)
#endif

/* 20120211.126: PROXY_WORKER_IS_ERROR (2.4.55) */
#ifndef PROXY_WORKER_IS_ERROR
#define PROXY_WORKER_IS_ERROR(f) ((f)->s->status & PROXY_WORKER_IN_ERROR)
#endif

/* 20120211.116: http_ssl.h with ap_ssl_has_outgoing_handlers() (2.4.49).
 * Before, mod_proxy's ap_proxy_ssl_enable(NULL) tells whether mod_ssl
 * offered to take outgoing connections. */
#if AP_MODULE_MAGIC_AT_LEAST(20120211, 116)
#include "http_ssl.h"
#define bbs_ssl_available() ap_ssl_has_outgoing_handlers()
#else
#define bbs_ssl_available() ap_proxy_ssl_enable(NULL)
#endif

/* 20120211.130: ap_proxy_determine_address(), address caching and TTL of
 * a worker (2.4.59). Before, the probe resolves the member's address
 * itself, as mod_proxy_hcheck of those releases did. */
#define BBS_HAVE_DETERMINE_ADDRESS AP_MODULE_MAGIC_AT_LEAST(20120211, 130)

/* 64-bit atomics came with APR 1.7.0; RHEL 8 ships APR 1.6.3. The lease
 * word needs one atomic 64-bit compare-and-swap; GCC and clang provide it
 * on every platform httpd runs on. */
#if APR_VERSION_AT_LEAST(1, 7, 0) && !defined(BBS_NO_APR_ATOMIC64)
#define bbs_atomic_read64(p) apr_atomic_read64(p)
#define bbs_atomic_cas64(p, with, cmp) apr_atomic_cas64((p), (with), (cmp))
#else
static APR_INLINE apr_uint64_t bbs_atomic_read64(volatile apr_uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}
static APR_INLINE apr_uint64_t bbs_atomic_cas64(volatile apr_uint64_t *p,
                                                apr_uint64_t with,
                                                apr_uint64_t cmp)
{
    __atomic_compare_exchange_n(p, &cmp, with, 0, __ATOMIC_SEQ_CST,
                                __ATOMIC_SEQ_CST);
    return cmp;
}
#endif

/* httpd.h's DOCTYPE macros stop at HTML 4.01 before 2.4.63; the pages
 * are HTML5 on every release. */
#define BBS_DOCTYPE_HTML5 "<!DOCTYPE html>\n"

#endif /* MOD_BBSTATUS_COMPAT_H */

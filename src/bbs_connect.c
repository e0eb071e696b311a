/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
#include <apr_errno.h>

#include "bbs_connect.h"

/* A TCP connect is refused by the peer with ECONNREFUSED and by the
 * network with EHOSTUNREACH or ENETUNREACH; EACCES comes from this host's
 * own security policy. On RHEL that is SELinux's targeted policy, which
 * lets httpd_t connect only to ports labelled http_port_t (an AVC
 * name_connect denial): "Permission denied" alone sends an operator to
 * file permissions, so the reason names the usual cause and where the
 * README says what to do about it. */
const char *bbs_connect_cause(apr_status_t rv, char *buf, apr_size_t len)
{
    if (APR_STATUS_IS_EACCES(rv)) {
        return "permission denied (SELinux? see README)";
    }
    if (!buf || !len) {
        return "connect failed";
    }
    return apr_strerror(rv, buf, len);
}

/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * BBStatusRetry's rule: when a probe, run at once after a member answered
 * a request with a 5xx, says the member is leaving, so that the request
 * goes to another member instead.
 */
#ifndef BBS_RETRY_H
#define BBS_RETRY_H

#include "bbs_decide.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Whether the probe's verdict and how it ended say the member is leaving:
 * its node names a state outside BBStatusRoute, or nothing listens any
 * more (connection refused). */
int bbs_retry_leaving(bbs_verdict_e verdict, bbs_transport_e transport);

#ifdef __cplusplus
}
#endif

#endif /* BBS_RETRY_H */

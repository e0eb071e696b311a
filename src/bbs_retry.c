/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
#include "bbs_retry.h"

int bbs_retry_leaving(bbs_verdict_e verdict, bbs_transport_e transport)
{
    /* Only these two say the node is going away. Otherwise the held 5xx
     * is the node's own answer (a MAINTENANCE or starting page, an
     * application error of a RUNNING node) and reaches the client as it
     * came: a probe that timed out or read garbage proves nothing
     * against it. */
    return verdict == BBS_BLOCK || transport == BBS_TX_REFUSED;
}

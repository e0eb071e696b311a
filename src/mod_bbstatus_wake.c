/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * Early re-probes without waiting for the next watchdog tick. A child whose
 * request to a BBSTATUS member failed raises the member's re-probe flag in
 * shared memory and, when the flag was not up yet, writes one byte to a
 * pipe that the parent made before any child forked. The checking child
 * has a thread waiting on the read end, which runs the checker's schedule
 * at once, so the probe starts within milliseconds instead of up to
 * 100 ms later.
 *
 * The byte says nothing but "look": the flags say which members want a
 * probe. Every child inherits the read end, but only the checking child
 * waits on it, from the moment it starts checking until it stops; between
 * two checkers bytes wait in the pipe. A byte lost (the pipe full) or read
 * by a checker on its way out costs only time: the flag stays up and the
 * next tick finds it.
 *
 * The pipe hangs off the process pool, made once, so it survives graceful
 * restarts and children of every generation share it. Both ends are
 * non-blocking: a request never waits on it.
 */
#include <string.h>

#include "apr_atomic.h"
#include "apr_poll.h"
#include "apr_thread_proc.h"

#include "mod_bbstatus_wake.h"

#define WAKE_USERDATA "mod_bbstatus-wake"
/* how long the thread waits before it looks whether it must stop */
#define WAKE_WAIT apr_time_from_msec(50)

typedef struct {
    apr_file_t *rd;
    apr_file_t *wr;
} wake_pipe_t;

struct bbs_wake_t {
    apr_pool_t *pool;
    apr_thread_t *thread;
    apr_thread_mutex_t *lock;
    bbs_wake_fn *fn;
    void *baton;
    volatile apr_uint32_t stop;
};

/* Set in the parent at post_config, before children fork; read-only
 * afterwards. */
static wake_pipe_t *wake_pipe;

void bbs_wake_post_config(server_rec *s)
{
    apr_pool_t *pp = s->process->pool;
    void *data = NULL;
    wake_pipe_t *wp;
    apr_status_t rv;

    apr_pool_userdata_get(&data, WAKE_USERDATA, pp);
    if (data) {
        wake_pipe = data;
        return;
    }
    wp = apr_pcalloc(pp, sizeof(*wp));
    rv = apr_file_pipe_create_ex(&wp->rd, &wp->wr, APR_FULL_NONBLOCK, pp);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s,
                     BBSLOGNO(0080) "no wake-up pipe; members whose requests "
                     "fail are re-probed at the next tick (100 ms)");
        wake_pipe = NULL;
        return;
    }
    apr_pool_userdata_set(wp, WAKE_USERDATA, apr_pool_cleanup_null, pp);
    wake_pipe = wp;
}

void bbs_wake_signal(void)
{
    char b = 0;
    apr_size_t n = 1;

    /* a full pipe already holds enough bytes to wake the checker */
    if (wake_pipe) {
        apr_file_write(wake_pipe->wr, &b, &n);
    }
}

static void drain(apr_file_t *rd)
{
    char buf[256];
    apr_size_t n;
    int i;

    /* bounded: children keep writing while this reads */
    for (i = 0; i < 64; ++i) {
        n = sizeof(buf);
        if (apr_file_read(rd, buf, &n) != APR_SUCCESS || n < sizeof(buf)) {
            return;
        }
    }
}

static void *APR_THREAD_FUNC wake_main(apr_thread_t *thread, void *data)
{
    bbs_wake_t *w = data;
    apr_pollfd_t pfd;

    memset(&pfd, 0, sizeof(pfd));
    pfd.p = w->pool;
    pfd.desc_type = APR_POLL_FILE;
    pfd.reqevents = APR_POLLIN;
    pfd.desc.f = wake_pipe->rd;
    while (!apr_atomic_read32(&w->stop)) {
        apr_int32_t n = 0;
        apr_status_t rv = apr_poll(&pfd, 1, &n, WAKE_WAIT);

        if (rv != APR_SUCCESS || n < 1) {
            if (rv != APR_SUCCESS && !APR_STATUS_IS_TIMEUP(rv)
                && !APR_STATUS_IS_EINTR(rv)) {
                apr_sleep(WAKE_WAIT);
            }
            continue;
        }
        /* never blocks on the lock: the checker stops this thread, and
         * waits for it, while it holds that lock */
        while ((rv = apr_thread_mutex_trylock(w->lock)) != APR_SUCCESS
               && !apr_atomic_read32(&w->stop)) {
            apr_sleep(apr_time_from_msec(1));
        }
        if (rv != APR_SUCCESS) {
            break;
        }
        drain(wake_pipe->rd);
        w->fn(w->baton);
        apr_thread_mutex_unlock(w->lock);
    }
    apr_thread_exit(thread, APR_SUCCESS);
    return NULL;
}

bbs_wake_t *bbs_wake_start(apr_pool_t *p, apr_thread_mutex_t *lock,
                           bbs_wake_fn *fn, void *baton, server_rec *s)
{
    bbs_wake_t *w;
    apr_status_t rv;

    if (!wake_pipe || !lock) {
        return NULL;
    }
    w = apr_pcalloc(p, sizeof(*w));
    w->pool = p;
    w->lock = lock;
    w->fn = fn;
    w->baton = baton;
    rv = apr_thread_create(&w->thread, NULL, wake_main, w, p);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s, BBSLOGNO(0081)
                     "no wake-up thread; members whose requests "
                     "fail are re-probed at the next tick (100 ms)");
        return NULL;
    }
    return w;
}

void bbs_wake_stop(bbs_wake_t *w)
{
    apr_status_t rv;

    if (w) {
        apr_atomic_set32(&w->stop, 1);
        apr_thread_join(&rv, w->thread);
    }
}

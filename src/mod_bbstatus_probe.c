/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * One GET of a member's /status through mod_proxy's own connection code,
 * so https members (SSLProxy* settings of the <Proxy> section), IPv6,
 * connectiontimeout and address caching work as for user traffic. The
 * probe never carries anything of a client's request: it is built here
 * from the member's URL alone, and redirects are reported, not followed.
 *
 * Everything is bounded: BBStatusTimeout from connect to last byte (the
 * socket timeout is re-armed with what is left before every read, so a
 * node that drips one byte a second cannot stretch it), at most MAX_LINES
 * header lines of MAX_LINE bytes, and the body stops one byte past
 * BBStatusMaxBody.
 */
#include <string.h>

#include "apr_strings.h"
#include "apr_uri.h"
#include "http_core.h"
#include "http_protocol.h"
#include "http_request.h"
#include "util_filter.h"

#include "bbs_connect.h"
#include "bbs_head.h"
#include "bbs_url.h"
#include "mod_bbstatus_probe.h"

#define PROXY_FUNCTION "BBSTATUS"
#define MAX_LINE 8192
#define MAX_LINES 100

const char *bbs_probe_path(apr_pool_t *p, const proxy_worker *w)
{
    apr_uri_t uri;
    const char *base = NULL;

    if (apr_uri_parse(p, bbs_wname(w), &uri) == APR_SUCCESS) {
        base = uri.path;
    }
    return bbs_url_probe_path(p, base, w->s->hcuri);
}

const char *bbs_probe_url(apr_pool_t *p, const proxy_worker *w)
{
    apr_port_t port = w->s->port ? w->s->port
                                 : ap_proxy_port_of_scheme(w->s->scheme);
    const char *url = apr_pstrcat(p, w->s->scheme, "://",
                                  bbs_url_authority(p, w->s->hostname_ex,
                                                    port),
                                  bbs_probe_path(p, w), NULL);

    /* said the way BalancerMember takes it */
    return *w->s->uds_path ? apr_pstrcat(p, "unix:", w->s->uds_path, "|",
                                         url, NULL)
                           : url;
}

proxy_worker *bbs_probe_worker_create(proxy_worker *w, server_rec *s,
                                      const bbs_settings_t *set, apr_pool_t *p)
{
    proxy_worker *hc = NULL;
    const char *err;

    err = ap_proxy_define_worker(p, &hc, NULL, NULL, bbs_wname(w), 0);
    if (err || !hc) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     BBSLOGNO(0020) "cannot set up probing of %s: %s",
                     bbs_wname(w), err ? err : "no worker");
        return NULL;
    }
    apr_snprintf(hc->s->name, sizeof(hc->s->name), "bbstatus:%pp", w);
#if BBS_HAVE_NAME_EX
    apr_snprintf(hc->s->name_ex, sizeof(hc->s->name_ex), "bbstatus:%pp", w);
#endif
    PROXY_STRNCPY(hc->s->hostname, w->s->hostname);
    PROXY_STRNCPY(hc->s->hostname_ex, w->s->hostname_ex);
    PROXY_STRNCPY(hc->s->scheme, w->s->scheme);
    /* user traffic of a unix:/path|http://host/ member goes over the
     * socket; so does the probe, with the URL's host in its Host header */
    PROXY_STRNCPY(hc->s->uds_path, w->s->uds_path);
    hc->hash.def = hc->s->hash.def =
        ap_proxy_hashfunc(bbs_wname(hc), PROXY_HASHFUNC_DEFAULT);
    hc->hash.fnv = hc->s->hash.fnv =
        ap_proxy_hashfunc(bbs_wname(hc), PROXY_HASHFUNC_FNV);
    hc->s->port = w->s->port ? w->s->port
                             : ap_proxy_port_of_scheme(w->s->scheme);
    /* The member's request timeout is often minutes (long git operations);
     * the probe has its own, shorter limit. */
    hc->s->timeout_set = 1;
    hc->s->timeout = set->timeout;
    hc->s->conn_timeout_set = 1;
    hc->s->conn_timeout = (w->s->conn_timeout_set
                           && w->s->conn_timeout < set->timeout)
                              ? w->s->conn_timeout
                              : set->timeout;
    /* our failures are verdicts, never this private worker's error state */
    hc->s->status |= PROXY_WORKER_IGNORE_ERRORS | PROXY_WORKER_GENERIC;
    if (ap_proxy_initialize_worker(hc, s, p) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     BBSLOGNO(0021) "cannot initialise probing of %s",
                     bbs_wname(w));
        return NULL;
    }
    hc->s->is_address_reusable = w->s->is_address_reusable;
    hc->s->disablereuse = 1;
    hc->s->method = w->s->method;
    return hc;
}

/* A request_rec just complete enough for the proxy's connection code and
 * httpd's input filters, with the configuration a request to the balancer
 * gets, so SSLProxy* settings of its <Proxy> section apply to the probe. */
static request_rec *make_request(apr_pool_t *p, server_rec *s,
                                 ap_conf_vector_t *dir_config)
{
    request_rec *r = apr_pcalloc(p, sizeof(*r));

    r->pool = p;
    r->server = s;
    r->per_dir_config = dir_config;
    r->proxyreq = PROXYREQ_RESPONSE;
    r->headers_in = apr_table_make(p, 4);
    r->headers_out = apr_table_make(p, 8);
    r->err_headers_out = apr_table_make(p, 2);
    r->trailers_in = apr_table_make(p, 1);
    r->trailers_out = apr_table_make(p, 1);
    r->subprocess_env = apr_table_make(p, 4);
    r->notes = apr_table_make(p, 4);
    r->request_config = ap_create_request_config(p);
    r->allowed_methods = ap_make_method_list(p, 1);
    r->method = "GET";
    r->method_number = M_GET;
    r->protocol = "HTTP/1.1";
    r->proto_num = HTTP_VERSION(1, 1);
    r->status = HTTP_OK;
    r->read_body = REQUEST_NO_BODY;
    r->used_path_info = AP_REQ_DEFAULT_PATH_INFO;
    return r;
}

static void attach(request_rec *r, conn_rec *c)
{
    c->bucket_alloc = apr_bucket_alloc_create(r->pool);
    r->connection = c;
    r->kept_body = apr_brigade_create(r->pool, c->bucket_alloc);
    r->output_filters = r->proto_output_filters = c->output_filters;
    r->input_filters = r->proto_input_filters = c->input_filters;
    r->useragent_addr = c->client_addr;
    r->useragent_ip = c->client_ip;
}

typedef struct {
    apr_pool_t *pool;       /* outlives the connection: reasons live here */
    request_rec *r;
    proxy_conn_rec *backend;
    apr_bucket_brigade *bb;
    apr_time_t deadline;
    bbs_answer_t *a;
} probe_t;

static void transport(probe_t *pr, bbs_transport_e t, const char *detail)
{
    pr->a->transport = t;
    pr->a->detail = detail;
}

/* Re-arms the socket with the time left; 0 when none is left. */
static int arm(probe_t *pr)
{
    apr_interval_time_t left = pr->deadline - apr_time_now();

    if (left <= 0) {
        return 0;
    }
    apr_socket_timeout_set(pr->backend->sock, left);
    return 1;
}

static void io_failure(probe_t *pr, apr_status_t rv, int in_body,
                       const char *where)
{
    apr_pool_t *p = pr->pool;
    char buf[120];

    if (APR_STATUS_IS_TIMEUP(rv) || APR_STATUS_IS_EAGAIN(rv)) {
        transport(pr, BBS_TX_TIMEOUT, apr_psprintf(p, "%s", where));
    }
    else if (APR_STATUS_IS_ECONNRESET(rv)) {
        transport(pr, BBS_TX_RESET, apr_psprintf(p, "%s", where));
    }
    else if (APR_STATUS_IS_EOF(rv) && !in_body) {
        transport(pr, BBS_TX_EMPTY, NULL);
    }
    else if (pr->backend->is_ssl && !in_body) {
        transport(pr, BBS_TX_TLS, apr_pstrdup(p, apr_strerror(rv, buf,
                                                              sizeof(buf))));
    }
    else if (in_body) {
        /* HTTP_IN says no more than "general error" for bad chunking or a
         * body cut short of its Content-Length */
        transport(pr, BBS_TX_BODY, APR_STATUS_IS_EGENERAL(rv)
                                       ? "bad chunked encoding or the body "
                                         "ended before its length"
                                       : apr_psprintf(p, "%s", apr_strerror(
                                             rv, buf, sizeof(buf))));
    }
    else {
        transport(pr, BBS_TX_OTHER,
                  apr_psprintf(p, "%s: %s", where,
                               apr_strerror(rv, buf, sizeof(buf))));
    }
}

static int send_request(probe_t *pr, const char *path, const proxy_worker *hc)
{
    request_rec *r = pr->r;
    conn_rec *c = r->connection;
    const char *req = apr_psprintf(r->pool,
                                   "GET %s HTTP/1.1\r\n"
                                   "Host: %s\r\n"
                                   "User-Agent: " BBS_MODULE_NAME "/"
                                   BBS_VERSION "\r\n"
                                   "Accept: application/json\r\n"
                                   "Accept-Encoding: identity\r\n"
                                   "Connection: close\r\n"
                                   "\r\n",
                                   path, bbs_url_authority(r->pool,
                                                           hc->s->hostname_ex,
                                                           hc->s->port));
    apr_status_t rv;

    if (!arm(pr)) {
        transport(pr, BBS_TX_TIMEOUT, "before the request was sent");
        return 0;
    }
    APR_BRIGADE_INSERT_TAIL(pr->bb, apr_bucket_immortal_create(
                                        req, strlen(req), c->bucket_alloc));
    APR_BRIGADE_INSERT_TAIL(pr->bb, apr_bucket_flush_create(c->bucket_alloc));
    rv = ap_pass_brigade(c->output_filters, pr->bb);
    apr_brigade_cleanup(pr->bb);
    if (rv != APR_SUCCESS) {
        io_failure(pr, rv, 0, "sending the request");
        return 0;
    }
    return 1;
}

static int read_line(probe_t *pr, char *buf, apr_size_t *len,
                     const char *where)
{
    apr_status_t rv;
    char *line = buf;

    if (!arm(pr)) {
        transport(pr, BBS_TX_TIMEOUT, where);
        return 0;
    }
    rv = ap_rgetline(&line, MAX_LINE, len, pr->r, 0, pr->bb);
    apr_brigade_cleanup(pr->bb);
    if (rv == APR_ENOSPC) {
        transport(pr, BBS_TX_PROTOCOL, apr_psprintf(pr->r->pool,
                  "a line longer than %d bytes %s", MAX_LINE, where));
        return 0;
    }
    if (rv != APR_SUCCESS) {
        io_failure(pr, rv, 0, where);
        return 0;
    }
    return 1;
}

/* Looks at the first bytes before reading a line: nothing at all is an
 * empty reply, anything but "HTTP/1." is not an HTTP/1.x response (an
 * HTTP/0.9 body, garbage), whatever the line reader would make of it. */
static int first_bytes(probe_t *pr)
{
    char got[sizeof(BBS_HEAD_PREFIX)];
    apr_size_t n = sizeof(BBS_HEAD_PREFIX) - 1;
    const char *not_http1;
    apr_status_t rv;

    if (!arm(pr)) {
        transport(pr, BBS_TX_TIMEOUT, "waiting for the status line");
        return 0;
    }
    rv = ap_get_brigade(pr->r->proto_input_filters, pr->bb,
                        AP_MODE_SPECULATIVE, APR_BLOCK_READ, (apr_off_t)n);
    if (rv == APR_SUCCESS) {
        rv = apr_brigade_flatten(pr->bb, got, &n);
    }
    apr_brigade_cleanup(pr->bb);
    if (APR_STATUS_IS_EOF(rv) || (rv == APR_SUCCESS && n == 0)) {
        transport(pr, BBS_TX_EMPTY, NULL);
        return 0;
    }
    if (rv != APR_SUCCESS) {
        io_failure(pr, rv, 0, "waiting for the status line");
        return 0;
    }
    if ((not_http1 = bbs_head_not_http1(pr->pool, got, n))) {
        transport(pr, BBS_TX_PROTOCOL, not_http1);
        return 0;
    }
    return 1;
}

static int read_head(probe_t *pr)
{
    request_rec *r = pr->r;
    char *buf = apr_palloc(r->pool, MAX_LINE);
    apr_size_t len = 0;
    int lines, status;

    if (!first_bytes(pr)
        || !read_line(pr, buf, &len, "waiting for the status line")) {
        return 0;
    }
    if (len == 0 && pr->a->transport == BBS_TX_OK) {
        transport(pr, BBS_TX_EMPTY, NULL);
        return 0;
    }
    if ((status = bbs_head_status(buf, len)) < 0) {
        transport(pr, BBS_TX_PROTOCOL, apr_psprintf(r->pool,
                  "status line '%.40s'", buf));
        return 0;
    }
    r->status = status;
    for (lines = 0; lines < MAX_LINES; ++lines) {
        char *value;

        if (!read_line(pr, buf, &len, "while reading the headers")) {
            return 0;
        }
        if (len == 0) {
            return 1;
        }
        if (!bbs_head_field(buf, &value)) {
            transport(pr, BBS_TX_PROTOCOL, apr_psprintf(r->pool,
                      "header line '%.40s'", buf));
            return 0;
        }
        apr_table_add(r->headers_out, buf, value);
    }
    transport(pr, BBS_TX_PROTOCOL, apr_psprintf(r->pool,
              "more than %d header lines", MAX_LINES));
    return 0;
}

static void read_body(probe_t *pr, apr_size_t max_body)
{
    request_rec *r = pr->r;
    bbs_answer_t *a = pr->a;
    apr_size_t cap = max_body + 1, have = 0;
    char *body = apr_palloc(r->pool, cap);
    apr_table_t *saved = r->headers_in;
    int eos = 0;

    /* HTTP_IN reads a response's framing (Content-Length, chunked, or up
     * to close) from what it takes for the request's headers_in. */
    r->headers_in = apr_table_copy(r->pool, r->headers_out);
    ap_proxy_pre_http_request(r->connection, r);
    while (!eos && have < cap) {
        apr_status_t rv;
        apr_bucket *b;

        if (!arm(pr)) {
            transport(pr, BBS_TX_TIMEOUT, "while reading the body");
            break;
        }
        rv = ap_get_brigade(r->proto_input_filters, pr->bb,
                            AP_MODE_READBYTES, APR_BLOCK_READ, cap - have);
        if (rv != APR_SUCCESS) {
            if (!APR_STATUS_IS_EOF(rv)) {
                io_failure(pr, rv, 1, "while reading the body");
            }
            break;
        }
        for (b = APR_BRIGADE_FIRST(pr->bb);
             b != APR_BRIGADE_SENTINEL(pr->bb) && have < cap;
             b = APR_BUCKET_NEXT(b)) {
            const char *data;
            apr_size_t n;

            if (APR_BUCKET_IS_EOS(b)) {
                eos = 1;
                break;
            }
            if (APR_BUCKET_IS_METADATA(b)) {
                continue;
            }
            rv = apr_bucket_read(b, &data, &n, APR_BLOCK_READ);
            if (rv != APR_SUCCESS) {
                io_failure(pr, rv, 1, "while reading the body");
                eos = 1;
                break;
            }
            if (n > cap - have) {
                n = cap - have;
            }
            memcpy(body + have, data, n);
            have += n;
        }
        apr_brigade_cleanup(pr->bb);
    }
    r->headers_in = saved;
    a->body = body;
    a->body_len = have > max_body ? max_body : have;
    a->body_truncated = have > max_body;
}

/* Resolves the member's address, through mod_proxy's cache where httpd
 * has one; else the way mod_proxy_hcheck of those releases did. */
static apr_status_t determine_address(proxy_conn_rec *backend,
                                      proxy_worker *hc, server_rec *s)
{
#if BBS_HAVE_DETERMINE_ADDRESS
    return ap_proxy_determine_address(PROXY_FUNCTION, backend,
                                      hc->s->hostname_ex, hc->s->port, 0,
                                      NULL, s);
#else
    (void)s;
    return apr_sockaddr_info_get(&backend->addr, hc->s->hostname_ex,
                                 APR_UNSPEC, hc->s->port, 0,
                                 backend->scpool);
#endif
}

/* A unix-socket member: connected here, not by mod_proxy, for the same
 * reasons as TCP below; a missing socket file is the usual way a stopped
 * node shows, and is said as such. */
static int connect_uds(probe_t *pr, proxy_worker *hc)
{
    proxy_conn_rec *backend = pr->backend;
    apr_socket_t *sock;
    apr_interval_time_t left = pr->deadline - apr_time_now();
    apr_interval_time_t limit = hc->s->conn_timeout;
    apr_status_t rv;
    char buf[120];

    rv = apr_socket_create(&sock, APR_UNIX, SOCK_STREAM, 0, backend->scpool);
    if (rv == APR_SUCCESS) {
        apr_socket_timeout_set(sock, limit < left ? limit : left);
        rv = ap_proxy_connect_uds(sock, backend->uds_path, backend->scpool);
        if (rv == APR_SUCCESS) {
            apr_socket_timeout_set(sock, hc->s->timeout);
            backend->sock = sock;
            return 1;
        }
        apr_socket_close(sock);
    }
    if (APR_STATUS_IS_ECONNREFUSED(rv)) {
        transport(pr, BBS_TX_REFUSED, backend->uds_path);
    }
    else if (APR_STATUS_IS_ENOENT(rv)) {
        transport(pr, BBS_TX_REFUSED, apr_psprintf(pr->pool,
                  "%s does not exist", backend->uds_path));
    }
    else if (APR_STATUS_IS_TIMEUP(rv) || APR_STATUS_IS_EAGAIN(rv)) {
        transport(pr, BBS_TX_TIMEOUT, "connecting");
    }
    else {
        transport(pr, BBS_TX_OTHER, apr_psprintf(pr->pool,
                  "connecting to %s: %s", backend->uds_path,
                  apr_strerror(rv, buf, sizeof(buf))));
    }
    return 0;
}

/* TCP members are connected here rather than by mod_proxy, which would
 * log an error line for every refused probe of a stopped node and does not
 * say why a connect failed; a refused, timed-out or reset connect is a
 * verdict with its reason here. */
static int connect_member(probe_t *pr, proxy_worker *hc)
{
    proxy_conn_rec *backend = pr->backend;
    apr_sockaddr_t *addr;
    apr_status_t rv = APR_EGENERAL;
    apr_interval_time_t limit = hc->s->conn_timeout;

    if (backend->uds_path) {
        return connect_uds(pr, hc);
    }
    for (addr = backend->addr; addr; addr = addr->next) {
        apr_socket_t *sock;
        apr_interval_time_t left = pr->deadline - apr_time_now();

        if (left <= 0) {
            rv = APR_TIMEUP;
            break;
        }
        rv = apr_socket_create(&sock, addr->family, SOCK_STREAM,
                               APR_PROTO_TCP, backend->scpool);
        if (rv != APR_SUCCESS) {
            continue;
        }
        apr_socket_opt_set(sock, APR_TCP_NODELAY, 1);
        apr_socket_timeout_set(sock, limit < left ? limit : left);
        rv = apr_socket_connect(sock, addr);
        if (rv == APR_SUCCESS) {
            apr_socket_timeout_set(sock, hc->s->timeout);
            backend->sock = sock;
            backend->addr = addr;
            return 1;
        }
        apr_socket_close(sock);
    }
    if (APR_STATUS_IS_ECONNREFUSED(rv)) {
        transport(pr, BBS_TX_REFUSED, NULL);
    }
    else if (APR_STATUS_IS_TIMEUP(rv) || APR_STATUS_IS_ETIMEDOUT(rv)
             || APR_STATUS_IS_EAGAIN(rv)) {
        transport(pr, BBS_TX_TIMEOUT, "connecting");
    }
    else if (APR_STATUS_IS_ECONNRESET(rv)) {
        transport(pr, BBS_TX_RESET, "connecting");
    }
    else {
        char buf[120];
        transport(pr, BBS_TX_OTHER, apr_psprintf(pr->pool,
                  "connecting: %s", bbs_connect_cause(rv, buf, sizeof(buf))));
    }
    return 0;
}

void bbs_probe_run(proxy_worker *hc, const char *path, server_rec *s,
                   ap_conf_vector_t *dir_config, const bbs_settings_t *set,
                   apr_pool_t *p, apr_thread_t *thread,
                   bbs_probe_result_t *out)
{
    apr_time_t start = apr_time_now();
    probe_t pr;
    apr_status_t rv;

    memset(out, 0, sizeof(*out));
    memset(&pr, 0, sizeof(pr));
    pr.a = &out->answer;
    pr.pool = p;
    pr.deadline = start + set->timeout;

    if (ap_proxy_acquire_connection(PROXY_FUNCTION, &pr.backend, hc, s)
        != OK) {
        transport(&pr, BBS_TX_OTHER, "no connection to the member available");
        goto done;
    }
    if (!strcasecmp(hc->s->scheme, "https")) {
        if (!bbs_ssl_available()) {
            transport(&pr, BBS_TX_TLS, "mod_ssl is not loaded");
            goto done;
        }
        pr.backend->is_ssl = 1;
    }
    if (*hc->s->uds_path) {
        pr.backend->uds_path = apr_pstrdup(pr.backend->scpool,
                                           hc->s->uds_path);
    }
    else if ((rv = determine_address(pr.backend, hc, s)) != APR_SUCCESS) {
        transport(&pr, BBS_TX_DNS, hc->s->hostname_ex);
        goto done;
    }
    if (!connect_member(&pr, hc)) {
        goto done;
    }
    pr.r = make_request(p, s, dir_config);
    if (ap_proxy_connection_create_ex(PROXY_FUNCTION, pr.backend, pr.r)
        != OK) {
        transport(&pr, pr.backend->is_ssl ? BBS_TX_TLS : BBS_TX_OTHER,
                  "setting up the connection");
        goto done;
    }
    attach(pr.r, pr.backend->connection);
    pr.backend->connection->current_thread = thread;
    pr.bb = apr_brigade_create(p, pr.r->connection->bucket_alloc);

    if (send_request(&pr, path, hc) && read_head(&pr)) {
        bbs_answer_t *a = pr.a;
        a->http_status = pr.r->status;
        a->content_type = apr_table_get(pr.r->headers_out, "Content-Type");
        a->content_encoding = apr_table_get(pr.r->headers_out,
                                            "Content-Encoding");
        a->location = apr_table_get(pr.r->headers_out, "Location");
        if (bbs_head_body_wanted(pr.r->status)) {
            read_body(&pr, set->rules.max_body);
        }
    }

done:
    if (pr.backend) {
        pr.backend->close = 1;
        /* lives in the connection's subpool, cleared on release */
        pr.backend->uds_path = NULL;
        ap_proxy_release_connection(PROXY_FUNCTION, pr.backend, s);
    }
    out->latency = apr_time_now() - start;
}

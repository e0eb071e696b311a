#!/usr/bin/env python3
"""Simulated Atlassian Data Center nodes (Bitbucket, Jira, Confluence,
Bamboo, Crowd) for tests and benchmarks.

Every simulated node is a small HTTP/1.1 server that answers its status
path (``GET /status``; Bamboo ``GET /rest/api/latest/status``) the way a
real node's Tomcat does, and answers every other path like proxied
user traffic.  Nodes can be switched at run time into misbehaving modes (hangs,
resets, garbage, ...) through a JSON control API, so that a real httpd can be
tested and benchmarked against them.  Everything runs on one asyncio event loop
in one thread, so a single process can simulate a thousand nodes.

Command line::

    simnode.py [--control-port P] [--node NAME=PORT[:FLAVOR[:STATE]]]...
               [--unix-node NAME=PATH[:FLAVOR[:STATE]]]...
               [--many N] [--base-name n] [--host 127.0.0.1|::1]
               [--ports-file F] [--idle-timeout S] [--reason-phrases]

A node port of 0 picks a free port.  A ``--unix-node`` listens on a unix
socket at PATH instead (mode 0666, so httpd children of any user reach it);
refusing and STOPPED work the same way: a bound socket that does not listen
refuses connections.  Once everything listens, the ports are
written as ``{"control": P, "nodes": {"name": port, ...}, ...}`` to the ports
file (atomically: written to a temporary name, then renamed).  ``--many N``
adds N Bitbucket nodes in state RUNNING named ``<base-name>1`` ..
``<base-name>N``.  Only loopback addresses are accepted for ``--host``; the
control API listens on the same address.  SIGTERM, SIGINT or
``POST /shutdown`` end the process cleanly.

Control API (HTTP/1.1, JSON):

    GET  /nodes                   {name: record, ...}
    GET  /nodes/NAME              record
    POST /nodes/NAME              update any of state, mode, scope, flavor,
                                  custom, reset_counts; answers the new record
                                  (scope: the mode applies to "status", to
                                  "all" paths, or to the "pages", all but
                                  the status path; status_path: where the
                                  state is answered, default the
                                  flavour's: /status, Bamboo's
                                  /rest/api/latest/status; synchrony:
                                  false takes a Confluence node's
                                  Synchrony down: /synchrony/heartbeat
                                  and every /synchrony/ path answer 503;
                                  delay_ms: service time of every answer
                                  to a path other than the status path,
                                  default 0; cold: a cold JVM, null or
                                  {"extra_ms", "tau_s", "concurrency"},
                                  see "Cold start" below; cold_start:
                                  true arms it now)
    GET  /nodes/NAME/requests     [[t, path, status], ...] of the last 10,000
                                  requests to paths other than /status
    POST /script/NAME             {"steps": [[STATE, seconds], ...]} runs in the
                                  background (a step may also be [{fields}, s])
    GET  /events                  [{"t", "node", "state", "mode"}, ...]
    POST /shutdown                ends the process

Cold start: a node with ``cold`` set is cold from the moment its state
turns RUNNING from another one (or ``cold_start`` is posted): a page
then takes delay_ms + extra_ms * exp(-t / tau_s) milliseconds, t the
seconds since it turned RUNNING, and at most ``concurrency`` pages are
served at once (the others wait in arrival order; 0: no bound).  The
extra time is fixed when a page's service begins; the status path is
neither delayed nor counted.  Defaults: extra_ms 200, tau_s 10,
concurrency 8.  The node is warm again (not armed) once it is STOPPED or
``cold`` is set to null.  The record shows ``cold_since`` (time.time()
of the start, or null), ``cold_extra_ms`` (the extra time a page starting
now takes), ``in_service`` and ``queued``.

``SimNodes`` in simclient.py starts the simulator as a subprocess and drives
the control API.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import email.utils
import gzip
import http
import ipaddress
import json
import math
import os
import random
import re
import resource
import signal
import socket
import struct
import sys
import time
import traceback
import urllib.parse

# ---------------------------------------------------------------------------
# Reference behaviour of a node
# ---------------------------------------------------------------------------

FLAVORS = ("bitbucket", "jira", "confluence", "bamboo", "crowd")

# HTTP code of GET /status per state; any other state string answers 200.
# Sources: docs/atlassian-products.md. Bitbucket, Jira and Bamboo document
# their codes; Confluence and Crowd document RUNNING with 200 only, so
# their other codes are Bitbucket's (the module never decides by them).
_LIFECYCLE_CODES = {"STARTING": 503, "FIRST_RUN": 200, "RUNNING": 200,
                    "STOPPING": 503, "ERROR": 500}
STATUS_CODES = {
    "bitbucket": {"STARTING": 503, "FIRST_RUN": 200, "RUNNING": 200,
                  "MAINTENANCE": 200, "STOPPING": 503, "ERROR": 500},
    # MAINTENANCE: start-up delayed by a reindex
    "jira": {"STARTING": 200, "STOPPING": 200, "FIRST_RUN": 200,
             "RUNNING": 200, "MAINTENANCE": 503, "ERROR": 500},
    # no MAINTENANCE state
    "confluence": dict(_LIFECYCLE_CODES),
    "crowd": dict(_LIFECYCLE_CODES),
    # a paused Bamboo builds nothing but serves its UI
    "bamboo": {"RUNNING": 200, "PAUSED": 200},
}

# Where each flavor answers its state (below a context path, set
# status_path: Jira at /jira/status).
STATUS_PATHS = {"bamboo": "/rest/api/latest/status"}
DEFAULT_STATUS_PATH = "/status"

# Confluence's collaborative editor, Synchrony, has a health URL of its
# own that answers plain text, not a /status answer.
SYNCHRONY_PREFIX = "/synchrony/"
SYNCHRONY_HEARTBEAT = "/synchrony/heartbeat"
SYNCHRONY_OK = b"OK"
SYNCHRONY_DOWN = b"Synchrony is not running\n"

# HTTP code of user traffic (every path but /status), the same for every
# flavor; any other state string answers 200.
OTHER_CODES = {"RUNNING": 200, "FIRST_RUN": 200, "STARTING": 503,
               "STOPPING": 503, "ERROR": 500, "MAINTENANCE": 503,
               "PAUSED": 200}

# During MAINTENANCE this path keeps answering: the backup client polls it.
MAINTENANCE_PATH = "/mvc/maintenance"

# The state in which Tomcat does not run: the port refuses connections.
STOPPED = "STOPPED"

JSON_TYPE = "application/json;charset=UTF-8"
TEXT_TYPE = "text/plain;charset=UTF-8"
HTML_TYPE = "text/html;charset=UTF-8"

MODES = (
    "normal", "refuse", "hang", "reset", "reset_headers", "reset_body",
    "empty", "headers_never_end", "drip", "short_body", "huge", "bad_chunk",
    "http09", "garbage", "redirect", "status401", "status403", "html200",
    "gzip", "deep", "invalid_utf8", "nul", "custom",
)
# where a mode applies: /status only, every path, or every path but
# /status (a node whose pages misbehave while it reports its state well)
SCOPES = ("status", "all", "pages")

DEFAULT_CUSTOM = {"status": 200, "content_type": JSON_TYPE,
                  "body": '{"state":"RUNNING"}'}

# A cold JVM (the cold field): extra service time falling exponentially
# from extra_ms with time constant tau_s after the node turns RUNNING, and
# at most `concurrency` pages served at once (0: no bound).
DEFAULT_COLD = {"extra_ms": 200.0, "tau_s": 10.0, "concurrency": 8}
MAX_DELAY_MS = 60_000.0

LOGIN_PATH = "/login.jsp?os_destination=%2Fstatus"
REDIRECT_HTML = (b'<html><head><title>Redirecting</title></head><body>'
                 b'<a href="' + LOGIN_PATH.encode() + b'">Log in</a>'
                 b'</body></html>\n')
LOGIN_HTML = (b'<!DOCTYPE html>\n<html><head><title>Log in</title></head>'
              b'<body><form id="login-form" method="post" '
              b'action="/j_atl_security_check">'
              b'<input name="j_username" type="text">'
              b'<input name="j_password" type="password">'
              b'<button type="submit">Log in</button></form></body></html>\n')
DEEP_BODY = b"[" * 100_000 + b"]" * 100_000
INVALID_UTF8_BODY = b'{"state":"RUN\xffNING"}'
NUL_BODY = b'{"state":"RUNNING"}\x00garbage'
HUGE_SIZE = 10 * 1024 * 1024
HUGE_PREFIX = b'{"state":"RUNNING","pad":"'
HUGE_SUFFIX = b'"}'
HUGE_CHUNK = b"x" * (256 * 1024)


def _make_garbage() -> bytes:
    # Fixed seed: "random-looking" but the same bytes on every run.
    data = bytearray(random.Random(0x5EED).randbytes(512))
    data[0] = 0x9C          # never accidentally the "H" of "HTTP/"
    return bytes(data)


GARBAGE = _make_garbage()

# Every never-ending behaviour gives up after this many seconds.
HOSTILE_LIMIT = 600.0
# Pause between the partial answer and the RST of the reset_* modes, so the
# peer has read the partial answer before the reset arrives.
RST_DELAY = 0.1

LINE_LIMIT = 64 * 1024          # longest request or header line
MAX_HEADER_LINES = 200
CONTROL_BODY_LIMIT = 16 * 1024 * 1024
BACKLOG = 1024
STATUS_TIMES = 200
REQUEST_LOG = 10_000
MAX_PATHS = 10_000              # distinct keys kept in counts.by_path
OVERFLOW_PATH = "(other paths)"
MAX_LOGGED_PATH = 2048
MAX_EVENTS = 100_000
MAX_SCRIPT_STEPS = 10_000
NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,100}")
REASONS = {s.value: s.phrase for s in http.HTTPStatus}


def log(message: str) -> None:
    """One line on stderr.  Request headers are never passed in here."""
    try:
        print(f"simnode: {message}", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


_date_cache = [0, ""]


def http_date() -> str:
    now = int(time.time())
    if now != _date_cache[0]:
        _date_cache[0] = now
        _date_cache[1] = email.utils.formatdate(now, usegmt=True)
    return _date_cache[1]


def status_body(state: str) -> bytes:
    """The compact JSON body every flavor sends on its status path."""
    text = json.dumps({"state": state}, separators=(",", ":"),
                      ensure_ascii=False)
    return text.encode("utf-8", "replace")


# ---------------------------------------------------------------------------
# Minimal HTTP/1.x request reading
# ---------------------------------------------------------------------------

class BadRequest(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


class Request:
    __slots__ = ("method", "target", "path", "http10", "keep_alive",
                 "length", "chunked", "expect_continue")

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.length)


async def _readline(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readline()
    except ValueError:          # the line is longer than the reader's limit
        raise BadRequest(431, "request line or header too long") from None


def _path_of(target: str) -> str:
    if target.startswith(("http://", "https://")):  # absolute form
        target = urllib.parse.urlsplit(target).path or "/"
    path = target.split("?", 1)[0].split("#", 1)[0]
    return path or "/"


async def read_request(reader: asyncio.StreamReader,
                       idle_timeout: float) -> Request | None:
    """Read one request head; None when the peer closed or stayed idle.

    Only the headers that frame the message are looked at; all others are
    dropped unread (so e.g. X-Atlassian-Maintenance-Token never reaches any
    record or log).
    """
    try:
        async with asyncio.timeout(idle_timeout):
            # Tolerate stray empty lines between pipelined requests.
            for _ in range(8):
                line = await _readline(reader)
                if not line.endswith(b"\n"):
                    return None
                if line.strip():
                    break
            else:
                raise BadRequest(400, "no request line")
            parts = line.split()
            if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
                raise BadRequest(400, "malformed request line")
            method, target, version = parts
            if version == b"HTTP/1.0":
                http10 = True
            elif version.startswith(b"HTTP/1."):
                http10 = False
            else:
                raise BadRequest(505, "unsupported HTTP version")

            tokens: set[bytes] = set()
            length = None
            chunked = expect = False
            for _ in range(MAX_HEADER_LINES + 1):
                line = await _readline(reader)
                if not line.endswith(b"\n"):
                    return None
                if line in (b"\r\n", b"\n"):
                    break
                if line[:1] in (b" ", b"\t"):   # obsolete line folding
                    continue
                name, sep, value = line.partition(b":")
                if not sep:
                    raise BadRequest(400, "malformed header line")
                name = name.strip().lower()
                value = value.strip()
                if name == b"connection":
                    tokens.update(t.strip().lower() for t in value.split(b","))
                elif name == b"content-length":
                    if not value.isdigit():
                        raise BadRequest(400, "bad Content-Length")
                    if length is not None and int(value) != length:
                        raise BadRequest(400, "conflicting Content-Length")
                    length = int(value)
                elif name == b"transfer-encoding":
                    chunked = b"chunked" in value.lower()
                elif name == b"expect":
                    expect = value.lower() == b"100-continue"
            else:
                raise BadRequest(431, "too many header lines")
    except TimeoutError:
        return None

    req = Request()
    req.method = method.decode("latin-1")
    req.target = target.decode("latin-1")
    req.path = _path_of(req.target)
    req.http10 = http10
    req.keep_alive = (b"keep-alive" in tokens) if http10 else (b"close" not in tokens)
    req.length = None if chunked else length
    req.chunked = chunked
    req.expect_continue = expect and not http10
    return req


async def read_body(reader: asyncio.StreamReader, req: Request,
                    keep: bool = False, limit: int = 0) -> bytes:
    """Read the request body (Content-Length or chunked).

    With keep=False the bytes are discarded as they arrive, so bodies of any
    size cost no memory; with keep=True they are returned (at most limit).
    """
    parts: list[bytes] = []
    total = 0

    async def take(n: int) -> None:
        nonlocal total
        while n > 0:
            chunk = await reader.read(min(n, 65536))
            if not chunk:
                raise ConnectionError("peer closed inside the request body")
            n -= len(chunk)
            if keep:
                total += len(chunk)
                if limit and total > limit:
                    raise BadRequest(413, "request body too large")
                parts.append(chunk)

    async def crlf_line() -> bytes:
        line = await _readline(reader)
        if not line.endswith(b"\n"):
            raise ConnectionError("peer closed inside the request body")
        return line

    if req.chunked:
        while True:
            size_text = (await crlf_line()).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise BadRequest(400, "bad chunk size in request") from None
            if size < 0:
                raise BadRequest(400, "bad chunk size in request")
            if size == 0:
                for _ in range(MAX_HEADER_LINES + 1):  # trailer section
                    if not (await crlf_line()).strip():
                        break
                else:
                    raise BadRequest(431, "too many trailer lines")
                break
            await take(size)
            if (await crlf_line()).strip():
                raise BadRequest(400, "chunk not followed by CRLF")
    elif req.length:
        await take(req.length)
    return b"".join(parts)


# ---------------------------------------------------------------------------
# Nodes
# ---------------------------------------------------------------------------

class Conn:
    """One accepted connection of a node."""

    __slots__ = ("reader", "writer", "busy")

    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer
        self.busy = False       # a request is being answered

    def reset(self) -> None:
        """Close with RST instead of FIN."""
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                struct.pack("ii", 1, 0))
            except OSError:
                pass
        self.writer.transport.abort()

    def close(self) -> None:
        if not self.writer.transport.is_closing():
            self.writer.close()


class Interrupt:
    """Ends a slow answer early: fires when the peer closes the connection
    or when the node's mode changes.

    While armed it reads (and drops) whatever the peer sends, so a connection
    that carried a slow answer is never reused: it is closed afterwards.
    """

    def __init__(self, node: "Node", conn: Conn):
        self.fired = asyncio.Event()
        self._tasks = [asyncio.create_task(self._watch_peer(conn.reader)),
                       asyncio.create_task(self._watch_mode(node.mode_changed))]

    async def _watch_peer(self, reader) -> None:
        try:
            while await reader.read(65536):
                pass
        except Exception:
            pass
        self.fired.set()

    async def _watch_mode(self, event: asyncio.Event) -> None:
        await event.wait()
        self.fired.set()

    async def sleep(self, seconds: float) -> bool:
        """Sleep; False if interrupted, True if the full time passed."""
        if self.fired.is_set():
            return False
        try:
            async with asyncio.timeout(seconds):
                await self.fired.wait()
        except TimeoutError:
            return True
        return False

    def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()


def validate_update(fields) -> dict:
    """Check a POST /nodes/NAME body (or a script step); raise ValueError."""
    if not isinstance(fields, dict):
        raise ValueError("expected a JSON object")
    unknown = set(fields) - {"state", "mode", "scope", "flavor", "custom",
                             "reset_counts", "status_path", "synchrony",
                             "delay_ms", "cold", "cold_start"}
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
    if "state" in fields and (not isinstance(fields["state"], str)
                              or not fields["state"]):
        raise ValueError("state must be a non-empty string")
    if "mode" in fields and fields["mode"] not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    if "scope" in fields and fields["scope"] not in SCOPES:
        raise ValueError("scope must be 'status', 'all' or 'pages'")
    if "flavor" in fields and fields["flavor"] not in FLAVORS:
        raise ValueError(f"flavor must be one of {', '.join(FLAVORS)}")
    if "status_path" in fields and (
            not isinstance(fields["status_path"], str)
            or not fields["status_path"].startswith("/")):
        raise ValueError("status_path must be a path starting with /")
    if "synchrony" in fields and not isinstance(fields["synchrony"], bool):
        raise ValueError("synchrony must be true or false")
    if "reset_counts" in fields and not isinstance(fields["reset_counts"], bool):
        raise ValueError("reset_counts must be true or false")
    if "delay_ms" in fields and not _number(fields["delay_ms"], 0.0,
                                            MAX_DELAY_MS):
        raise ValueError(f"delay_ms must be a number 0..{MAX_DELAY_MS:g}")
    if "cold" in fields and fields["cold"] is not None:
        cold = fields["cold"]
        if not isinstance(cold, dict) or set(cold) - set(DEFAULT_COLD):
            raise ValueError("cold is null or takes extra_ms, tau_s and "
                             "concurrency")
        if "extra_ms" in cold and not _number(cold["extra_ms"], 0.0,
                                              MAX_DELAY_MS):
            raise ValueError(f"cold.extra_ms must be a number "
                             f"0..{MAX_DELAY_MS:g}")
        if "tau_s" in cold and (not _number(cold["tau_s"], 0.0, 3600.0)
                                or cold["tau_s"] <= 0):
            raise ValueError("cold.tau_s must be a number > 0 and <= 3600")
        conc = cold.get("concurrency", 0)
        if type(conc) is not int or not 0 <= conc <= 10_000:
            raise ValueError("cold.concurrency must be an integer 0..10000")
    if "cold_start" in fields and not isinstance(fields["cold_start"], bool):
        raise ValueError("cold_start must be true or false")
    if "custom" in fields:
        custom = fields["custom"]
        if not isinstance(custom, dict) or set(custom) - set(DEFAULT_CUSTOM):
            raise ValueError("custom takes status, content_type and body")
        code = custom.get("status", 200)
        if type(code) is not int or not 100 <= code <= 999:
            raise ValueError("custom.status must be an integer 100..999")
        ctype = custom.get("content_type", "")
        if (not isinstance(ctype, str) or any(c in ctype for c in "\r\n")
                or not all(" " <= c <= "\xff" for c in ctype)):
            raise ValueError("custom.content_type must be one printable line")
        if not isinstance(custom.get("body", ""), str):
            raise ValueError("custom.body must be a string")
    return fields


def _number(x, lo: float, hi: float) -> bool:
    return (type(x) in (int, float) and math.isfinite(x)
            and lo <= x <= hi)


class Node:
    def __init__(self, sim: "Simulator", name: str, port: int, flavor: str,
                 state: str, path: str | None = None):
        self.sim = sim
        self.name = name
        self.port = port
        self.path = path            # a unix socket instead of a TCP port
        self.flavor = flavor
        self.state = state
        self.mode = "normal"
        self.scope = "status"
        # where the node answers its state: the flavor's path, or below a
        # context path (Jira at /jira/status)
        self.status_path = STATUS_PATHS.get(flavor, DEFAULT_STATUS_PATH)
        # a Confluence node's Synchrony answers its heartbeat
        self.synchrony = True
        self.custom = dict(DEFAULT_CUSTOM)
        # service time of pages, and the cold-JVM model (see the module's
        # docstring): cold_since is when the node last turned RUNNING with
        # cold set, slots bounds the pages served at once while it is armed
        self.delay_ms = 0.0
        self.cold: dict | None = None
        self.cold_since: float | None = None
        self.slots: asyncio.Semaphore | None = None
        self.in_service = 0
        self.queued = 0
        # While the port must refuse connections, self.sock holds a bound but
        # not listening socket: the kernel answers SYNs with RST, and nobody
        # else can take the port before it is reopened.
        self.sock: socket.socket | None = None
        self.server: asyncio.Server | None = None
        self.conns: set[Conn] = set()
        self.lock = asyncio.Lock()
        # Replaced by a fresh event on each mode change; slow answers wait on
        # the one current when they started.
        self.mode_changed = asyncio.Event()
        self.script_task: asyncio.Task | None = None
        self.reset_counts()

    # -- bookkeeping -------------------------------------------------------

    def reset_counts(self) -> None:
        self.n_status = 0
        self.n_other = 0
        self.by_path: dict[str, int] = {}
        self.status_times: collections.deque = collections.deque(maxlen=STATUS_TIMES)
        self.requests: collections.deque = collections.deque(maxlen=REQUEST_LOG)

    def record(self) -> dict:
        return {
            "name": self.name,
            "port": self.port,
            "flavor": self.flavor,
            "state": self.state,
            "mode": self.mode,
            "scope": self.scope,
            "status_path": self.status_path,
            "synchrony": self.synchrony,
            "custom": dict(self.custom),
            "delay_ms": self.delay_ms,
            "cold": dict(self.cold) if self.cold is not None else None,
            "cold_since": self.cold_since,
            "cold_extra_ms": self.cold_extra_ms(),
            "in_service": self.in_service,
            "queued": self.queued,
            "listening": self.server is not None,
            "connections": len(self.conns),
            "script_running": bool(self.script_task and not self.script_task.done()),
            "counts": {"status": self.n_status, "other": self.n_other,
                       "by_path": dict(self.by_path)},
            "status_times": list(self.status_times),
        }

    def _count(self, path: str, is_status: bool) -> list | None:
        """Count an arriving request; returns the request-log entry whose
        status is filled in once known (None for /status)."""
        now = time.time()
        key = path if (path in self.by_path or len(self.by_path) < MAX_PATHS) \
            else OVERFLOW_PATH
        self.by_path[key] = self.by_path.get(key, 0) + 1
        if is_status:
            self.n_status += 1
            self.status_times.append(now)
            return None
        self.n_other += 1
        entry = [now, path[:MAX_LOGGED_PATH], None]
        self.requests.append(entry)
        return entry

    # -- state changes -----------------------------------------------------

    async def update(self, fields: dict) -> dict:
        fields = validate_update(fields)
        if fields.get("cold_start") and not (
                fields["cold"] if "cold" in fields else self.cold):
            raise ValueError("cold_start needs cold set")
        old = (self.state, self.mode)
        if "flavor" in fields:
            # a node at its old flavor's status path moves to the new one's
            old_path = STATUS_PATHS.get(self.flavor, DEFAULT_STATUS_PATH)
            self.flavor = fields["flavor"]
            if self.status_path == old_path:
                self.status_path = STATUS_PATHS.get(self.flavor,
                                                    DEFAULT_STATUS_PATH)
        if "scope" in fields:
            self.scope = fields["scope"]
        if "status_path" in fields:
            self.status_path = fields["status_path"]
        if "custom" in fields:
            self.custom = {**self.custom, **fields["custom"]}
        if "synchrony" in fields:
            self.synchrony = fields["synchrony"]
        if "delay_ms" in fields:
            self.delay_ms = float(fields["delay_ms"])
        if "cold" in fields:
            if fields["cold"] is None:
                self.cold = None
                self.disarm_cold()
            else:
                self.cold = {**DEFAULT_COLD, **(self.cold or {}),
                             **fields["cold"]}
        if "state" in fields:
            self.state = fields["state"]
        if "mode" in fields:
            self.mode = fields["mode"]
        if self.state == STOPPED:
            self.disarm_cold()
        elif self.cold is not None and (
                fields.get("cold_start")
                or (self.state == "RUNNING" and old[0] != "RUNNING")):
            self.arm_cold()
        if fields.get("reset_counts"):
            self.reset_counts()
        if self.mode != old[1]:
            self.mode_changed.set()
            self.mode_changed = asyncio.Event()
        if (self.state, self.mode) != old:
            self.sim.add_event(self)
        await self.sync_listener()
        return self.record()

    # -- the cold-JVM model -------------------------------------------------

    def arm_cold(self) -> None:
        self.cold_since = time.time()
        conc = self.cold["concurrency"]
        # requests already waiting keep the semaphore they wait on
        self.slots = asyncio.Semaphore(conc) if conc else None

    def disarm_cold(self) -> None:
        self.cold_since = None
        self.slots = None

    def cold_extra_ms(self) -> float:
        if self.cold_since is None or self.cold is None:
            return 0.0
        t = max(0.0, time.time() - self.cold_since)
        return self.cold["extra_ms"] * math.exp(-t / self.cold["tau_s"])

    async def serve_time(self) -> None:
        """The service time of one page: delay_ms, plus the cold extra
        while armed, in one of the node's slots (queued for a free one)."""
        slots = self.slots
        if slots is not None:
            self.queued += 1
            try:
                await slots.acquire()
            finally:
                self.queued -= 1
        self.in_service += 1
        try:
            seconds = (self.delay_ms + self.cold_extra_ms()) / 1000.0
            if seconds > 0:
                await asyncio.sleep(seconds)
        finally:
            self.in_service -= 1
            if slots is not None:
                slots.release()

    def start_script(self, steps: list) -> None:
        if self.script_task and not self.script_task.done():
            self.script_task.cancel()       # a new script replaces the old
        self.script_task = asyncio.create_task(self._run_script(steps))

    async def _run_script(self, steps: list) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        try:
            for fields, wait in steps:
                await self.update(fields)
                # Waits are measured from the script's start, so the steps
                # do not drift by the time each update takes.
                due += wait
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log(f"script for {self.name} failed: {exc!r}")

    # -- listening socket --------------------------------------------------

    def _bind(self) -> socket.socket:
        if self.path:
            return self._bind_unix()
        host = self.sim.host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((host, self.port))
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        return sock

    def _bind_unix(self) -> socket.socket:
        _unlink(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(self.path)
            os.chmod(self.path, 0o666)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    async def sync_listener(self) -> None:
        """Listen exactly when Tomcat would: not STOPPED, not refusing."""
        async with self.lock:
            want = self.state != STOPPED and self.mode != "refuse"
            if want and self.server is None:
                await self._open()
            elif not want and self.server is not None:
                self._close_listener()

    async def _open(self) -> None:
        # The bound socket kept the port while closed, so this normally
        # succeeds at once; retry briefly in case another socket took the port.
        deadline = time.monotonic() + 5.0
        while True:
            sock = self.sock
            self.sock = None
            try:
                if sock is None:
                    sock = self._bind()
                sock.listen(BACKLOG)
                break
            except OSError as exc:
                if sock is not None:
                    sock.close()
                if time.monotonic() > deadline:
                    raise OSError(f"cannot reopen port {self.port}: {exc}") from exc
                await asyncio.sleep(0.05)
        try:
            self.server = await asyncio.start_server(
                self._serve, sock=sock, backlog=BACKLOG, limit=LINE_LIMIT)
        except BaseException:
            sock.close()
            raise

    def _close_listener(self) -> None:
        server, self.server = self.server, None
        server.close()              # closes the listening socket right away
        self._drop_connections()
        try:
            self.sock = self._bind()
        except OSError as exc:
            log(f"{self.name}: cannot hold port {self.port} while closed: {exc}")
            self.sock = None

    def _drop_connections(self) -> None:
        # Like a Tomcat going away: idle keep-alive connections get a FIN,
        # connections in the middle of an answer are cut.
        for conn in list(self.conns):
            if conn.busy:
                conn.writer.transport.abort()
            else:
                conn.close()

    def close(self) -> None:
        if self.script_task:
            self.script_task.cancel()
        if self.server is not None:
            self.server.close()
            self.server = None
        for conn in list(self.conns):
            conn.writer.transport.abort()
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.path:
            _unlink(self.path)

    # -- serving -----------------------------------------------------------

    async def _serve(self, reader, writer) -> None:
        if self.server is None:     # accepted just before the port closed
            writer.transport.abort()
            return
        conn = Conn(reader, writer)
        self.conns.add(conn)
        try:
            while True:
                req = await read_request(reader, self.sim.idle_timeout)
                if req is None:
                    break
                conn.busy = True
                if not await self._respond(conn, req):
                    break
                conn.busy = False
        except BadRequest as exc:
            try:
                body = f"{exc}\n".encode()
                writer.write(self._head(exc.code, [
                    ("Content-Type", TEXT_TYPE),
                    ("Content-Length", str(len(body))),
                    ("Connection", "close")]) + body)
                await writer.drain()
            except (OSError, RuntimeError):
                pass
        except (OSError, asyncio.IncompleteReadError):
            pass                    # the peer went away; nothing to report
        except Exception:
            log(f"{self.name}: error while answering:\n{traceback.format_exc()}")
        finally:
            self.conns.discard(conn)
            conn.close()

    def _head(self, code: int, headers: list) -> bytes:
        # Tomcat 9 (which the products embed) sends no reason phrase:
        # "HTTP/1.1 200 ".  --reason-phrases adds the standard ones.
        reason = REASONS.get(code, "") if self.sim.reason_phrases else ""
        lines = [f"HTTP/1.1 {code} {reason}", f"Date: {http_date()}",
                 f"X-Node: {self.name}"]
        lines += [f"{name}: {value}" for name, value in headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _regular(self, req: Request, is_status: bool) -> tuple[int, str, bytes]:
        """Code, content type and body of a well-behaved node."""
        if is_status:
            code = STATUS_CODES[self.flavor].get(self.state, 200)
            return code, JSON_TYPE, status_body(self.state)
        if self.flavor == "confluence" and (
                req.path.startswith(SYNCHRONY_PREFIX)
                or req.path == SYNCHRONY_PREFIX[:-1]):
            # Synchrony is a process of its own: its answers follow it,
            # not the node's state
            if not self.synchrony:
                return 503, TEXT_TYPE, SYNCHRONY_DOWN
            if req.path == SYNCHRONY_HEARTBEAT:
                return 200, TEXT_TYPE, SYNCHRONY_OK
            code = 200
        else:
            code = OTHER_CODES.get(self.state, 200)
        if self.state == "MAINTENANCE" and req.path == MAINTENANCE_PATH:
            code = 200
        body = (b"node=" + self.name.encode() + b" path="
                + req.path.encode("latin-1") + b" state="
                + self.state.encode("utf-8", "replace") + b"\n")
        return code, TEXT_TYPE, body

    async def _respond(self, conn: Conn, req: Request) -> bool:
        """Answer one request; True if the connection may be reused."""
        is_status = req.path == self.status_path
        entry = self._count(req.path, is_status)
        mode = self.mode
        applies = {"status": is_status, "all": True,
                   "pages": not is_status}[self.scope]
        if mode == "refuse" or not applies:
            mode = "normal"
        return await getattr(self, "_mode_" + mode)(conn, req, is_status, entry)

    async def _consume_body(self, conn: Conn, req: Request,
                            allow_continue: bool) -> bool:
        """Read and drop the request body; False if it was left unread."""
        if not req.has_body:
            return True
        if req.expect_continue:
            if not allow_continue:
                return False
            reason = REASONS[100] if self.sim.reason_phrases else ""
            conn.writer.write(f"HTTP/1.1 100 {reason}\r\n\r\n".encode())
        await read_body(conn.reader, req)
        return True

    async def _reply(self, conn: Conn, req: Request, entry, code: int,
                     headers: list, body: bytes) -> bool:
        keep = req.keep_alive
        if not await self._consume_body(conn, req, allow_continue=True):
            keep = False
        headers = headers + [("Content-Length", str(len(body)))]
        if not keep:
            headers.append(("Connection", "close"))
        elif req.http10:
            headers.append(("Connection", "keep-alive"))
        if entry is not None:
            entry[2] = code
        data = self._head(code, headers)
        if req.method != "HEAD":
            data += body
        conn.writer.write(data)
        await conn.writer.drain()
        return keep

    # Each _mode_* answers one request and returns True if the connection
    # may carry another one.

    async def _mode_normal(self, conn, req, is_status, entry):
        if not is_status and (self.delay_ms or self.cold_since is not None):
            await self.serve_time()
        code, ctype, body = self._regular(req, is_status)
        return await self._reply(conn, req, entry, code,
                                 [("Content-Type", ctype)], body)

    async def _mode_custom(self, conn, req, is_status, entry):
        custom = self.custom
        return await self._reply(conn, req, entry, custom["status"],
                                 [("Content-Type", custom["content_type"])],
                                 custom["body"].encode("utf-8", "replace"))

    async def _mode_redirect(self, conn, req, is_status, entry):
        return await self._reply(conn, req, entry, 302,
                                 [("Location", LOGIN_PATH),
                                  ("Content-Type", HTML_TYPE)], REDIRECT_HTML)

    async def _error_page(self, conn, req, entry, code):
        body = (f"<!doctype html><html><head><title>HTTP Status {code}"
                f"</title></head><body><h1>HTTP Status {code} - "
                f"{REASONS[code]}</h1></body></html>\n").encode()
        return await self._reply(conn, req, entry, code,
                                 [("Content-Type", HTML_TYPE)], body)

    async def _mode_status401(self, conn, req, is_status, entry):
        return await self._error_page(conn, req, entry, 401)

    async def _mode_status403(self, conn, req, is_status, entry):
        return await self._error_page(conn, req, entry, 403)

    async def _mode_html200(self, conn, req, is_status, entry):
        return await self._reply(conn, req, entry, 200,
                                 [("Content-Type", HTML_TYPE)], LOGIN_HTML)

    async def _mode_gzip(self, conn, req, is_status, entry):
        # Compressed although the request did not offer Accept-Encoding.
        code, ctype, body = self._regular(req, is_status)
        return await self._reply(conn, req, entry, code,
                                 [("Content-Type", ctype),
                                  ("Content-Encoding", "gzip")],
                                 gzip.compress(body, mtime=0))

    async def _mode_deep(self, conn, req, is_status, entry):
        return await self._reply(conn, req, entry, 200,
                                 [("Content-Type", JSON_TYPE)], DEEP_BODY)

    async def _mode_invalid_utf8(self, conn, req, is_status, entry):
        return await self._reply(conn, req, entry, 200,
                                 [("Content-Type", JSON_TYPE)], INVALID_UTF8_BODY)

    async def _mode_nul(self, conn, req, is_status, entry):
        return await self._reply(conn, req, entry, 200,
                                 [("Content-Type", JSON_TYPE)], NUL_BODY)

    async def _mode_huge(self, conn, req, is_status, entry):
        keep = req.keep_alive
        if not await self._consume_body(conn, req, allow_continue=True):
            keep = False
        headers = [("Content-Type", JSON_TYPE), ("Content-Length", str(HUGE_SIZE))]
        if not keep:
            headers.append(("Connection", "close"))
        elif req.http10:
            headers.append(("Connection", "keep-alive"))
        if entry is not None:
            entry[2] = 200
        writer = conn.writer
        writer.write(self._head(200, headers))
        if req.method != "HEAD":
            # Streamed at the reader's pace; a peer that hangs up makes
            # drain() raise, which ends the connection quietly.
            writer.write(HUGE_PREFIX)
            left = HUGE_SIZE - len(HUGE_PREFIX) - len(HUGE_SUFFIX)
            chunk = memoryview(HUGE_CHUNK)
            while left > 0:
                n = min(left, len(chunk))
                writer.write(chunk[:n])
                left -= n
                await writer.drain()
            writer.write(HUGE_SUFFIX)
        await writer.drain()
        return keep

    async def _mode_hang(self, conn, req, is_status, entry):
        guard = Interrupt(self, conn)
        try:
            await guard.sleep(HOSTILE_LIMIT)
        finally:
            guard.cancel()
        return False

    async def _mode_reset(self, conn, req, is_status, entry):
        conn.reset()
        return False

    async def _mode_reset_headers(self, conn, req, is_status, entry):
        code, ctype, body = self._regular(req, is_status)
        head = self._head(code, [("Content-Type", ctype),
                                 ("Content-Length", str(len(body)))])
        conn.writer.write(head[:len(head) // 2])
        await conn.writer.drain()
        await asyncio.sleep(RST_DELAY)
        conn.reset()
        return False

    async def _mode_reset_body(self, conn, req, is_status, entry):
        code, ctype, body = self._regular(req, is_status)
        if entry is not None:
            entry[2] = code
        head = self._head(code, [("Content-Type", ctype),
                                 ("Content-Length", "100")])
        conn.writer.write(head + (body + b" " * 10)[:10])
        await conn.writer.drain()
        await asyncio.sleep(RST_DELAY)
        conn.reset()
        return False

    async def _mode_empty(self, conn, req, is_status, entry):
        # Reading the body first makes the close a FIN, not an RST.
        await self._consume_body(conn, req, allow_continue=False)
        return False

    async def _mode_headers_never_end(self, conn, req, is_status, entry):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + HOSTILE_LIMIT
        guard = Interrupt(self, conn)
        try:
            conn.writer.write(b"HTTP/1.1 200 OK\r\n")
            await conn.writer.drain()
            n = 0
            while loop.time() < deadline and await guard.sleep(0.2):
                n += 1
                conn.writer.write(f"X-Filler-{n}: {n:08d}\r\n".encode())
                await conn.writer.drain()
        finally:
            guard.cancel()
        return False

    async def _mode_drip(self, conn, req, is_status, entry):
        code, ctype, body = self._regular(req, is_status)
        if entry is not None:
            entry[2] = code
        guard = Interrupt(self, conn)
        try:
            conn.writer.write(self._head(code, [
                ("Content-Type", ctype), ("Content-Length", str(len(body))),
                ("Connection", "close")]))
            for i in range(len(body)):
                if i and not await guard.sleep(1.0):
                    break
                conn.writer.write(body[i:i + 1])
                await conn.writer.drain()
        finally:
            guard.cancel()
        return False

    async def _mode_short_body(self, conn, req, is_status, entry):
        code, ctype, body = self._regular(req, is_status)
        if entry is not None:
            entry[2] = code
        guard = Interrupt(self, conn)
        try:
            conn.writer.write(self._head(code, [("Content-Type", ctype),
                                                ("Content-Length", "1000")]) + body)
            await conn.writer.drain()
            await guard.sleep(HOSTILE_LIMIT)
        finally:
            guard.cancel()
        return False

    async def _mode_bad_chunk(self, conn, req, is_status, entry):
        code, ctype, body = self._regular(req, is_status)
        if entry is not None:
            entry[2] = code
        await self._consume_body(conn, req, allow_continue=False)
        head = self._head(code, [("Content-Type", ctype),
                                 ("Transfer-Encoding", "chunked"),
                                 ("Connection", "close")])
        conn.writer.write(head + b"zz\r\n" + body + b"\r\n0\r\n\r\n")
        await conn.writer.drain()
        return False

    async def _mode_http09(self, conn, req, is_status, entry):
        await self._consume_body(conn, req, allow_continue=False)
        conn.writer.write(self._regular(req, is_status)[2])
        await conn.writer.drain()
        return False

    async def _mode_garbage(self, conn, req, is_status, entry):
        await self._consume_body(conn, req, allow_continue=False)
        conn.writer.write(GARBAGE)
        await conn.writer.drain()
        return False


# ---------------------------------------------------------------------------
# The simulator: nodes plus the control API
# ---------------------------------------------------------------------------

class Simulator:
    def __init__(self, host: str, control_port: int, specs: list,
                 ports_file: str | None, idle_timeout: float,
                 reason_phrases: bool):
        self.host = host
        self.control_port = control_port
        self.ports_file = ports_file
        self.idle_timeout = idle_timeout
        self.reason_phrases = reason_phrases
        self.nodes = {name: Node(self, name, port, flavor, state, path)
                      for name, port, flavor, state, path in specs}
        self.events: collections.deque = collections.deque(maxlen=MAX_EVENTS)
        self.stopping = asyncio.Event()
        self.control_server: asyncio.Server | None = None

    def add_event(self, node: Node) -> None:
        self.events.append({"t": time.time(), "node": node.name,
                            "state": node.state, "mode": node.mode})

    async def start(self) -> None:
        # Bind every port first, so that port-0 nodes have their numbers
        # even if they start STOPPED.
        for node in self.nodes.values():
            node.sock = node._bind()
        for node in self.nodes.values():
            await node.sync_listener()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.control_port))
        sock.setblocking(False)
        self.control_port = sock.getsockname()[1]
        self.control_server = await asyncio.start_server(
            self._control, sock=sock, backlog=BACKLOG, limit=LINE_LIMIT)

    def ports(self) -> dict:
        return {"control": self.control_port,
                "nodes": {n.name: n.port for n in self.nodes.values()},
                "unix": {n.name: n.path for n in self.nodes.values()
                         if n.path},
                "host": self.host, "pid": os.getpid()}

    def close(self) -> None:
        if self.control_server is not None:
            self.control_server.close()
        for node in self.nodes.values():
            node.close()

    # -- control API -------------------------------------------------------

    async def _control(self, reader, writer) -> None:
        try:
            while True:
                req = await read_request(reader, self.idle_timeout)
                if req is None:
                    break
                try:
                    if req.expect_continue and req.has_body:
                        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    body = await read_body(reader, req, keep=True,
                                           limit=CONTROL_BODY_LIMIT)
                    code, payload = await self._route(req.method, req.path, body)
                except BadRequest as exc:
                    code, payload = exc.code, {"error": str(exc)}
                    req.keep_alive = False
                shutdown = req.method == "POST" and req.path == "/shutdown" \
                    and code == 200
                keep = req.keep_alive and not shutdown
                data = json.dumps(payload).encode()
                head = (f"HTTP/1.1 {code} {REASONS.get(code, '')}\r\n"
                        f"Content-Type: application/json\r\n"
                        f"Content-Length: {len(data)}\r\n"
                        + ("" if keep else "Connection: close\r\n") + "\r\n")
                writer.write(head.encode() + data)
                await writer.drain()
                if shutdown:
                    self.stopping.set()
                if not keep:
                    break
        except BadRequest as exc:
            try:
                data = json.dumps({"error": str(exc)}).encode()
                writer.write(f"HTTP/1.1 {exc.code} {REASONS.get(exc.code, '')}\r\n"
                             f"Content-Type: application/json\r\nContent-Length: "
                             f"{len(data)}\r\nConnection: close\r\n\r\n".encode() + data)
                await writer.drain()
            except (OSError, RuntimeError):
                pass
        except (OSError, asyncio.IncompleteReadError):
            pass
        except Exception:
            log(f"control API error:\n{traceback.format_exc()}")
        finally:
            if not writer.transport.is_closing():
                writer.close()

    async def _route(self, method: str, path: str, body: bytes) -> tuple[int, object]:
        parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
        try:
            if parts == ["nodes"]:
                if method != "GET":
                    return 405, {"error": "use GET"}
                return 200, {n.name: n.record() for n in self.nodes.values()}
            if parts == ["events"]:
                if method != "GET":
                    return 405, {"error": "use GET"}
                return 200, list(self.events)
            if parts == ["shutdown"]:
                if method != "POST":
                    return 405, {"error": "use POST"}
                return 200, {"ok": True}
            if len(parts) in (2, 3) and parts[0] in ("nodes", "script"):
                node = self.nodes.get(parts[1])
                if node is None:
                    return 404, {"error": f"no node {parts[1]!r}"}
                if parts[0] == "nodes" and len(parts) == 2:
                    if method == "GET":
                        return 200, node.record()
                    if method == "POST":
                        return 200, await node.update(self._json(body))
                    return 405, {"error": "use GET or POST"}
                if parts[0] == "nodes" and parts[2] == "requests":
                    if method != "GET":
                        return 405, {"error": "use GET"}
                    return 200, list(node.requests)
                if parts[0] == "script" and len(parts) == 2:
                    if method != "POST":
                        return 405, {"error": "use POST"}
                    steps = self._steps(self._json(body))
                    node.start_script(steps)
                    return 200, {"ok": True, "node": node.name, "steps": len(steps)}
            return 404, {"error": f"no such resource {path!r}"}
        except ValueError as exc:
            return 400, {"error": str(exc)}
        except OSError as exc:
            return 500, {"error": str(exc)}

    @staticmethod
    def _json(body: bytes):
        try:
            return json.loads(body or b"{}")
        except ValueError:
            raise ValueError("body is not valid JSON") from None

    @staticmethod
    def _steps(payload) -> list:
        if not isinstance(payload, dict) or not isinstance(payload.get("steps"), list):
            raise ValueError('expected {"steps": [[STATE, seconds], ...]}')
        steps = payload["steps"]
        if not 0 < len(steps) <= MAX_SCRIPT_STEPS:
            raise ValueError(f"a script has 1..{MAX_SCRIPT_STEPS} steps")
        out = []
        for step in steps:
            if not isinstance(step, list) or len(step) != 2:
                raise ValueError("each step is [STATE or {fields}, seconds]")
            what, wait = step
            fields = {"state": what} if isinstance(what, str) else what
            validate_update(fields)
            if (isinstance(wait, bool) or not isinstance(wait, (int, float))
                    or not math.isfinite(wait) or wait < 0):
                raise ValueError("step seconds must be a number >= 0")
            out.append((fields, float(wait)))
        return out


# ---------------------------------------------------------------------------
# Process entry point
# ---------------------------------------------------------------------------

def raise_nofile_limit() -> None:
    """Raise the soft RLIMIT_NOFILE to the hard limit (many nodes and
    connections need many descriptors)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:
        try:
            with open("/proc/sys/fs/nr_open") as f:
                target = int(f.read())
        except (OSError, ValueError):
            target = 1 << 20
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log(f"cannot raise RLIMIT_NOFILE to {target}: {exc}")


def parse_node(spec: str) -> tuple[str, int, str, str]:
    """NAME=PORT[:FLAVOR[:STATE]]; the state may itself contain colons."""
    name, sep, rest = spec.partition("=")
    if not sep or not NAME_RE.fullmatch(name):
        raise argparse.ArgumentTypeError(
            f"{spec!r}: expected NAME=PORT[:FLAVOR[:STATE]], NAME of "
            "letters, digits, '_', '.', '-'")
    fields = rest.split(":", 2)
    try:
        port = int(fields[0])
        if not 0 <= port <= 65535:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"{spec!r}: bad port") from None
    flavor = (fields[1] if len(fields) > 1 else "") or "bitbucket"
    if flavor not in FLAVORS:
        raise argparse.ArgumentTypeError(
            f"{spec!r}: flavor is one of {', '.join(FLAVORS)}")
    state = (fields[2] if len(fields) > 2 else "") or "RUNNING"
    return name, port, flavor, state, None


def parse_unix_node(spec: str) -> tuple[str, int, str, str, str]:
    """NAME=PATH[:FLAVOR[:STATE]]: a node on a unix socket."""
    name, sep, rest = spec.partition("=")
    if not sep or not NAME_RE.fullmatch(name):
        raise argparse.ArgumentTypeError(
            f"{spec!r}: expected NAME=PATH[:FLAVOR[:STATE]]")
    fields = rest.split(":", 2)
    path = fields[0]
    if not os.path.isabs(path) or len(path.encode()) > 100:
        raise argparse.ArgumentTypeError(
            f"{spec!r}: PATH must be absolute and at most 100 bytes")
    flavor = (fields[1] if len(fields) > 1 else "") or "bitbucket"
    if flavor not in FLAVORS:
        raise argparse.ArgumentTypeError(
            f"{spec!r}: flavor is one of {', '.join(FLAVORS)}")
    state = (fields[2] if len(fields) > 2 else "") or "RUNNING"
    return name, 0, flavor, state, path


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Simulated Atlassian Data Center nodes with a JSON "
                    "control API.")
    p.add_argument("--control-port", type=int, default=0,
                   help="control API port (0: any free port)")
    p.add_argument("--node", type=parse_node, action="append", default=[],
                   metavar="NAME=PORT[:FLAVOR[:STATE]]",
                   help="a node; PORT 0 picks a free port (repeatable)")
    p.add_argument("--unix-node", type=parse_unix_node, action="append",
                   default=[], metavar="NAME=PATH[:FLAVOR[:STATE]]",
                   help="a node listening on a unix socket (repeatable)")
    p.add_argument("--many", type=int, default=0, metavar="N",
                   help="add N bitbucket RUNNING nodes on free ports")
    p.add_argument("--base-name", default="n",
                   help="name prefix of the --many nodes (default n: n1..nN)")
    p.add_argument("--host", default="127.0.0.1",
                   help="loopback address for every socket (127.0.0.1 or ::1)")
    p.add_argument("--ports-file",
                   help="write the chosen ports here as JSON once listening")
    p.add_argument("--idle-timeout", type=float, default=HOSTILE_LIMIT,
                   help="close idle keep-alive connections after this many "
                        "seconds (default %(default)s)")
    p.add_argument("--reason-phrases", action="store_true",
                   help="send 'HTTP/1.1 200 OK' instead of Tomcat's 'HTTP/1.1 200 '")
    args = p.parse_args(argv)

    try:
        if not ipaddress.ip_address(args.host).is_loopback:
            raise ValueError
    except ValueError:
        p.error("--host must be a loopback address such as 127.0.0.1 or ::1")
    if args.many < 0:
        p.error("--many must be >= 0")
    if args.many and not NAME_RE.fullmatch(f"{args.base_name}{args.many}"):
        p.error("--base-name: letters, digits, '_', '.', '-' only")
    specs = list(args.node) + list(args.unix_node)
    specs += [(f"{args.base_name}{i}", 0, "bitbucket", "RUNNING", None)
              for i in range(1, args.many + 1)]
    if not specs:
        p.error("no nodes: give --node or --many")
    names = [s[0] for s in specs]
    if len(set(names)) != len(names):
        p.error("node names must be unique")
    fixed = [s[1] for s in specs if s[1]] + [args.control_port] * bool(args.control_port)
    if len(set(fixed)) != len(fixed):
        p.error("the same port is given twice")
    args.specs = specs
    return args


def write_ports_file(path: str, data: dict) -> None:
    # Written under a temporary name and renamed, so a reader polling for
    # the file never sees half of it.
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f)
        f.write("\n")
    os.replace(tmp, path)


def _unlink(path: str | None) -> None:
    if path:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


async def amain(args: argparse.Namespace) -> int:
    sim = Simulator(args.host, args.control_port, args.specs, args.ports_file,
                    args.idle_timeout, args.reason_phrases)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, sim.stopping.set)
    try:
        await sim.start()
    except OSError as exc:
        log(f"cannot listen: {exc}")
        sim.close()
        return 1
    ports = sim.ports()
    if args.ports_file:
        try:
            write_ports_file(args.ports_file, ports)
        except OSError as exc:
            log(f"cannot write the ports file: {exc}")
            sim.close()
            return 1
        log(f"{len(sim.nodes)} node(s) on {args.host}, control port "
            f"{sim.control_port}")
    else:
        print(json.dumps(ports), flush=True)
    try:
        await sim.stopping.wait()
    finally:
        sim.close()
        # Without the file a poller can tell that the nodes are gone.
        _unlink(args.ports_file)
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    raise_nofile_limit()
    # A stale file from an earlier run must not be mistaken for this one's.
    _unlink(args.ports_file)
    try:
        return asyncio.run(amain(args))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())

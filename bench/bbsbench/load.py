"""The paced load generator (open loop, records every request) and the
state timelines built from the simulator's events."""

import asyncio
import re
import socket
import threading
import time

from .common import USER_PATH

# ---------------------------------------------------------------------------
# Paced load generator
# ---------------------------------------------------------------------------

class Rec:
    """One request: when it was due, sent and done, the answer, the node."""
    __slots__ = ("seq", "t_sched", "t_sent", "t_done", "status", "node",
                 "state", "err", "retried", "user", "set_route")

    def __init__(self, seq, t_sched, user=""):
        self.seq = seq
        self.t_sched = t_sched
        self.user = user          # "" cookieless, else the pinned route
        self.set_route = None     # route of a ROUTEID the answer set
        self.t_sent = self.t_done = None
        self.status = 0
        self.node = None
        self.state = None
        self.err = None
        self.retried = False

    @property
    def ok(self):
        return self.err is None and 200 <= self.status < 300

    def row(self):
        return [self.seq, round(self.t_sched, 6), round(self.t_sent, 6),
                round(self.t_done, 6), self.status, self.node, self.state,
                self.err, self.retried, self.user, self.set_route]


class _Incomplete(Exception):
    def __init__(self, got_bytes):
        super().__init__("connection closed before the answer was complete")
        self.got_bytes = got_bytes


STATE_RE = re.compile(rb"state=([A-Za-z_]+)")
ROUTE_RE = re.compile(r"ROUTEID=\.?([^;\s]*)", re.I)


class PacedLoad:
    """Open-loop HTTP/1.1 load at a fixed rate on keep-alive connections.

    Request i is due at t0 + i/rate; due requests go into a queue served by
    ``conns`` connection workers (asyncio, in a thread of its own).  Each
    request is recorded (Rec): due/sent/done times (time.time(), the clock
    simnode's events use), status, X-Node, the node's state from the body,
    and the error for connection failures.  A request that fails on a reused
    keep-alive connection before any byte of the answer arrived is sent once
    more on a new connection, as browsers and HTTP clients do (the server
    may close an idle connection just as the request goes out); it is
    marked ``retried``.  ``last_seen[node]`` is the send time of the latest
    request answered by that node, for live use.

    ``users``: a cycle of user kinds, request i is of kind
    users[i % len(users)]: "" a user without cookie (who never keeps
    one), a route "n1" a user whose every request carries
    ``Cookie: ROUTEID=.n1`` (pinned to that node, as a logged-in browser
    is).  The ROUTEID an answer sets is recorded, never sent back.
    """

    def __init__(self, port, rate, path=USER_PATH, headers=None, conns=32,
                 timeout=10.0, max_seconds=900.0, users=("",)):
        self.port = port
        self.rate = float(rate)
        self.path = path
        self.headers = dict(headers or {})
        self.conns = conns
        self.timeout = timeout
        self.max_seconds = max_seconds
        self.records = []
        self.last_seen = {}
        self.t0 = None
        self._stop = threading.Event()
        self._started = threading.Event()
        self._thread = None
        self.error = None
        self.users = tuple(users)
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}",
                 "User-Agent: bbstatus-bench/1", "Accept: */*"]
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        self._reqs = {
            u: ("\r\n".join(lines + ([f"Cookie: ROUTEID=.{u}"] if u else []))
                + "\r\n\r\n").encode("latin-1")
            for u in self.users}

    def start(self):
        self._thread = threading.Thread(target=self._run, name="load",
                                        daemon=True)
        self._thread.start()
        self._started.wait(10)
        return self

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout + 10)
        return self.records

    def _run(self):
        try:
            asyncio.run(self._main())
        except Exception as e:  # reported by the scenario
            self.error = repr(e)
            self._started.set()

    async def _main(self):
        queue = asyncio.Queue()
        workers = [asyncio.create_task(self._worker(queue))
                   for _ in range(self.conns)]
        self.t0 = t0 = time.time() + 0.05
        self._started.set()
        end = t0 + self.max_seconds
        i = 0
        while not self._stop.is_set():
            due = t0 + i / self.rate
            now = time.time()
            if now >= end:
                break
            if due > now:
                await asyncio.sleep(min(due - now, 0.05))
                continue
            queue.put_nowait(Rec(i, due, self.users[i % len(self.users)]))
            i += 1
        for _ in workers:
            queue.put_nowait(None)
        done, pending = await asyncio.wait(workers, timeout=self.timeout + 2)
        for t in pending:
            t.cancel()

    async def _worker(self, queue):
        conn = [None, None, 0]          # reader, writer, answers on it
        try:
            while True:
                rec = await queue.get()
                if rec is None:
                    return
                await self._one(conn, rec)
                self.records.append(rec)
        finally:
            self._close(conn)

    @staticmethod
    def _close(conn):
        if conn[1] is not None:
            try:
                conn[1].transport.abort()
            except Exception:
                pass
        conn[0] = conn[1] = None
        conn[2] = 0

    async def _one(self, conn, rec):
        rec.t_sent = time.time()
        for attempt in (0, 1):
            reused = conn[1] is not None and conn[2] > 0
            try:
                if conn[1] is None:
                    r, w = await asyncio.wait_for(asyncio.open_connection(
                        "127.0.0.1", self.port, limit=1 << 20), self.timeout)
                    sock = w.get_extra_info("socket")
                    if sock is not None:
                        sock.setsockopt(socket.IPPROTO_TCP,
                                        socket.TCP_NODELAY, 1)
                    conn[0], conn[1], conn[2] = r, w, 0
                conn[1].write(self._reqs[rec.user])
                status, node, close, body, route = await asyncio.wait_for(
                    self._response(conn[0]), self.timeout)
            except _Incomplete as e:
                self._close(conn)
                if reused and attempt == 0 and not e.got_bytes:
                    rec.retried = True
                    continue
                rec.err = "closed"
            except (asyncio.TimeoutError, TimeoutError):
                self._close(conn)
                rec.err = "timeout"
            except ConnectionRefusedError:
                self._close(conn)
                rec.err = "refused"
            except (ConnectionError, OSError) as e:
                self._close(conn)
                if reused and attempt == 0:
                    rec.retried = True
                    continue
                rec.err = type(e).__name__
            else:
                conn[2] += 1
                if close:
                    self._close(conn)
                rec.status = status
                rec.node = node
                rec.set_route = route
                m = STATE_RE.search(body) if node else None
                rec.state = m.group(1).decode() if m else None
                if node:
                    self.last_seen[node] = rec.t_sent
            break
        rec.t_done = time.time()

    async def _response(self, reader):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as e:
            raise _Incomplete(bool(e.partial)) from None
        except asyncio.LimitOverrunError:
            raise _Incomplete(True) from None
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise _Incomplete(True)
        status = int(parts[1])
        length = None
        chunked = close = False
        node = route = None
        for line in lines[1:]:
            k, sep, v = line.partition(":")
            if not sep:
                continue
            k = k.strip().lower()
            v = v.strip()
            if k == "content-length":
                length = int(v)
            elif k == "transfer-encoding":
                chunked = "chunked" in v.lower()
            elif k == "connection":
                close = "close" in v.lower()
            elif k == "x-node":
                node = v
            elif k == "set-cookie":
                m = ROUTE_RE.match(v)
                if m:
                    route = m.group(1)
        if parts[0] == "HTTP/1.0":
            close = True
        try:
            if chunked:
                body = b""
                for _ in range(100000):
                    size = int((await reader.readline()).split(b";")[0], 16)
                    if size == 0:
                        while (await reader.readline()).strip():
                            pass
                        break
                    body += await reader.readexactly(size + 2)
            elif length is not None:
                body = await reader.readexactly(length)
            else:
                body = await reader.read(1 << 20)
                close = True
        except (asyncio.IncompleteReadError, ValueError):
            raise _Incomplete(True) from None
        return status, node, close, body, route


# ---------------------------------------------------------------------------
# Timelines from the simulator's events
# ---------------------------------------------------------------------------

class StateTimeline:
    """Each node's state over time, from its initial state and simnode's
    /events (one entry per change, stamped with time.time())."""

    def __init__(self, initial, events, t_start):
        self.changes = {n: [(t_start, s)] for n, s in initial.items()}
        for ev in sorted(events, key=lambda e: e["t"]):
            if ev["node"] in self.changes:
                self.changes[ev["node"]].append((ev["t"], ev["state"]))

    def state(self, node, t):
        state = self.changes[node][0][1]
        for tc, s in self.changes[node]:
            if tc > t:
                break
            state = s
        return state

    def intervals(self, node, state, w0, w1):
        """[(a, b)] of the times within [w0, w1] the node was in state."""
        ch = self.changes[node]
        out = []
        for k, (t, s) in enumerate(ch):
            end = ch[k + 1][0] if k + 1 < len(ch) else w1
            a, b = max(t, w0), min(end, w1)
            if s == state and b > a:
                out.append((a, b))
        return out

    def flips(self, node, to_state):
        return [t for t, s in self.changes[node][1:] if s == to_state]


def out_of_rotation(recs, node, a, b, min_others):
    """Seconds within [a, b] in which ``node`` got no request although at
    least ``min_others`` requests in a row went to other nodes (the load
    kept flowing, the balancer did not choose the node)."""
    lost = 0.0
    prev = a
    others = 0
    for r in recs:
        if r.t_sent < a:
            continue
        if r.t_sent > b:
            break
        if r.node == node:
            if others >= min_others:
                lost += r.t_sent - prev
            prev = r.t_sent
            others = 0
        else:
            others += 1
    if others >= min_others:
        lost += b - prev
    return lost



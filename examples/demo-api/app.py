#!/usr/bin/env python3
"""Tiny demo API for vps-stack.

Standard library HTTP server plus psycopg2 and redis-py. Endpoints:

  GET /        -> 200 {"service": ..., "version": ..., "hostname": ...}
  GET|POST /slow?seconds=N -> 200 after N seconds (at most 30): a long request, to prove releases drain
  POST /echo   -> 200 {"bytes": <length of the body read>, "version": ...}
  GET /health  -> 200 {"status": "ok", "version": ..., "checks": {"postgres": {"ok": true, ...},
                                                                  "redis": {"ok": true, ...}}}
                  503 with "status": "error" and the failing check's "error" when Postgres or
                  Redis can't be reached.

Settings (environment variables):
  PORT                                8000 by default
  HOST                                0.0.0.0 by default
  VERSION                             version reported by the API ("dev" if unset)
  DATABASE_URL / DATABASE_URL_FILE    postgres://user:password@host:5432/db
  REDIS_URL / REDIS_URL_FILE          redis://:password@host:6379/0
The *_FILE variants name a file holding the URL (e.g. a Docker secret). They are read on
every health check, so rotating a secret file needs no restart.

On SIGTERM the server stops accepting connections and finishes the requests in flight before it
exits, as an app behind a draining proxy should. The version "broken" (the image tag
vps-stack-demo-api:broken) always fails its health check: the bad release of the e2e.
"""

import json
import os
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SERVICE = "vps-stack-demo-api"
CHECK_TIMEOUT_SECONDS = float(os.environ.get("CHECK_TIMEOUT_SECONDS", "3"))


def version():
    return os.environ.get("VERSION") or "dev"


def setting(name):
    """Value of NAME, or of the file named by NAME_FILE (NAME_FILE wins)."""
    path = os.environ.get(name + "_FILE")
    if path:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    value = os.environ.get(name, "").strip()
    if not value:
        raise RuntimeError(f"{name} (or {name}_FILE) is not set")
    return value


def check_postgres():
    import psycopg2  # imported lazily so "GET /" works even without the driver

    url = setting("DATABASE_URL")
    # Accept SQLAlchemy-style "postgresql+psycopg2://" URLs too.
    scheme, sep, rest = url.partition("://")
    if sep and "+" in scheme:
        url = scheme.split("+", 1)[0] + "://" + rest
    conn = psycopg2.connect(url, connect_timeout=max(1, int(CHECK_TIMEOUT_SECONDS)))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchone()
    finally:
        conn.close()


def check_redis():
    import redis

    client = redis.Redis.from_url(
        setting("REDIS_URL"),
        socket_connect_timeout=CHECK_TIMEOUT_SECONDS,
        socket_timeout=CHECK_TIMEOUT_SECONDS,
    )
    try:
        client.ping()
    finally:
        client.close()


CHECKS = {"postgres": check_postgres, "redis": check_redis}
_pool = ThreadPoolExecutor(max_workers=8)


def run_check(fn):
    started = time.monotonic()
    try:
        fn()
        result = {"ok": True}
    except Exception as exc:  # report any failure as data, never crash the server
        message = str(exc).strip().splitlines()
        result = {"ok": False, "error": " ".join(message) or type(exc).__name__}
    result["latency_ms"] = round((time.monotonic() - started) * 1000, 1)
    return result


def health():
    if version() == "broken":
        return 503, {"status": "error", "version": version(), "error": "this release is broken on purpose"}
    futures = {name: _pool.submit(run_check, fn) for name, fn in CHECKS.items()}
    checks = {name: future.result() for name, future in futures.items()}
    ok = all(check["ok"] for check in checks.values())
    body = {"status": "ok" if ok else "error", "version": version(), "checks": checks}
    return (200 if ok else 503), body


class Handler(BaseHTTPRequestHandler):
    server_version = SERVICE
    protocol_version = "HTTP/1.1"
    # Headers and body are separate writes: without this, Nagle's algorithm holds the body back for a
    # delayed ACK (~40 ms per response).
    disable_nagle_algorithm = True
    # Idle keep-alive connections close after this long: longer than the proxy's upstream keepalive
    # timeout (60 s), so the proxy never sends a request on a connection the app is closing.
    timeout = 75

    def _send(self, status, body, head_only=False):
        payload = (json.dumps(body) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if not head_only:
            self.wfile.write(payload)

    def _query(self):
        query = self.path.partition("?")[2]
        return dict(p.partition("=")[::2] for p in query.split("&") if p)

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _route(self, head_only):
        path = self.path.split("?", 1)[0]
        if path == "/slow":
            try:
                seconds = min(30.0, max(0.0, float(self._query().get("seconds", "5"))))
            except ValueError:
                seconds = 5.0
            time.sleep(seconds)
            status, body = 200, {"slept": seconds, "version": version()}
        elif path == "/health":
            status, body = health()
        elif path == "/":
            status, body = 200, {
                "service": SERVICE,
                "version": version(),
                "hostname": socket.gethostname(),
            }
        else:
            status, body = 404, {"error": "not found", "path": path}
        self._send(status, body, head_only)

    def do_GET(self):
        self._route(head_only=False)

    def do_POST(self):
        path = self.path.split("?", 1)[0]
        data = self._body()
        if path == "/echo":
            self._send(200, {"bytes": len(data), "version": version()})
        else:
            self._route(head_only=False)

    def do_HEAD(self):
        self._route(head_only=True)

    def log_message(self, fmt, *args):
        sys.stdout.write("%s %s\n" % (self.address_string(), fmt % args))


def main():
    host = os.environ.get("HOST", "0.0.0.0")
    port = int(os.environ.get("PORT", "8000"))
    # Non-daemon request threads: server_close() waits for the requests in flight (a graceful stop).
    ThreadingHTTPServer.daemon_threads = False
    ThreadingHTTPServer.block_on_close = True
    ThreadingHTTPServer.allow_reuse_address = True
    # The default backlog (5) drops connections when a proxy opens many at once.
    ThreadingHTTPServer.request_queue_size = 128
    server = ThreadingHTTPServer((host, port), Handler)

    def stop(signum, _frame):
        print(f"received signal {signum}, shutting down", flush=True)
        # shutdown() blocks until serve_forever() returns, so call it from another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"{SERVICE} {version()} listening on {host}:{port}", flush=True)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()

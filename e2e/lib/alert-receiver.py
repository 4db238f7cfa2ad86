# The e2e's alert destinations: an HTTP receiver for the webhooks (each POST body written to
# OUT/hooks/<path>/<n>.json) and, when aiosmtpd imports (Debian's python3-aiosmtpd), a real SMTP server
# without TLS or login (each message written to OUT/mail/<n>.eml), both on HOST, an address of this
# machine that the watcher's container reaches (the Docker bridge's gateway).
# usage: alert-receiver.py HOST HTTP_PORT SMTP_PORT OUT   (prints "ready http[ smtp]" once listening)
import http.server
import os
import signal
import sys
import threading

host, http_port, smtp_port, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
lock = threading.Lock()
count = 0


def save(sub, suffix, data):
    global count
    d = os.path.join(out, sub)
    os.makedirs(d, exist_ok=True)
    with lock:
        count += 1
        path = os.path.join(d, f"{count:04d}{suffix}")
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.rename(path + ".tmp", path)


class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        save(os.path.join("hooks", self.path.strip("/") or "root"), ".json", body)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, fmt, *args):
        sys.stderr.write("http: " + (fmt % args) + "\n")


server = http.server.ThreadingHTTPServer((host, http_port), Hook)
threading.Thread(target=server.serve_forever, daemon=True).start()
ready = "ready http"

controller = None
try:
    from aiosmtpd.controller import Controller

    class Sink:
        async def handle_DATA(self, server, session, envelope):
            save("mail", ".eml", f"X-Test-Rcpt: {' '.join(envelope.rcpt_tos)}\r\n".encode() + envelope.original_content)
            return "250 OK"

    controller = Controller(Sink(), hostname=host, port=smtp_port)
    controller.start()
    ready += " smtp"
except ImportError as e:
    sys.stderr.write(f"no SMTP server: {e}\n")

print(ready, flush=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
stop.wait()
if controller:
    controller.stop()
server.shutdown()

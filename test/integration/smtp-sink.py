# A real SMTP server for the alert tests: aiosmtpd (Debian's python3-aiosmtpd) with STARTTLS required and
# AUTH LOGIN/PLAIN checked against one user. Each message is written to OUT_DIR as <n>.eml, preceded by
# "X-Test-Auth: <user>" and "X-Test-TLS: yes|no" lines, so the test sees the login and the encryption used.
# usage: smtp-sink.py PORT CERT KEY OUT_DIR USER PASSWORD
import os
import signal
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

port, cert, key, out, user, password = sys.argv[1:7]
count = 0


class Sink:
    async def handle_DATA(self, server, session, envelope):
        global count
        count += 1
        login = session.auth_data.login.decode() if session.auth_data else ""
        tls = "yes" if session.ssl else "no"
        head = f"X-Test-Auth: {login}\r\nX-Test-TLS: {tls}\r\nX-Test-Rcpt: {' '.join(envelope.rcpt_tos)}\r\n"
        path = os.path.join(out, f"{count:04d}.eml")
        with open(path + ".tmp", "wb") as f:
            f.write(head.encode() + envelope.original_content)
        os.rename(path + ".tmp", path)
        return "250 OK"


def authenticate(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login.decode() == user and auth_data.password.decode() == password
    return AuthResult(success=ok, auth_data=auth_data)


context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)
controller = Controller(
    Sink(),
    hostname="127.0.0.1",
    port=int(port),
    tls_context=context,
    require_starttls=True,
    auth_required=True,
    authenticator=authenticate,
    auth_require_tls=True,
)
controller.start()
print("ready", flush=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
stop.wait()
controller.stop()

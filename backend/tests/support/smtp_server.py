"""A real SMTP server for the alert tests (aiosmtpd, Debian's python3-aiosmtpd).

Usage: smtp_server.py PORT CERT KEY USER PASSWORD

Listens on 127.0.0.1:PORT, offers STARTTLS with CERT/KEY and requires it,
requires AUTH (PLAIN/LOGIN, only over TLS) with USER/PASSWORD. Prints
"READY" once it accepts connections, then one JSON line per message
received: {"from", "to", "data", "tls", "user"}. Exits when its standard
input closes (the test that started it ended, however it ended).
"""

import json
import os
import ssl
import sys
import logging
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


def main():
    # aiosmtpd 1.4 itself still sets its deprecated Session.login_data and
    # logs a warning each time; errors still show.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    port, cert, key, user, password = sys.argv[1:6]
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login.decode() == user and auth_data.password.decode() == password
        return AuthResult(success=ok, auth_data=auth_data.login.decode() if ok else None)

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            record = {
                "from": envelope.mail_from,
                "to": envelope.rcpt_tos,
                "data": envelope.content.decode("utf-8", "replace"),
                "tls": session.ssl is not None,
                "user": session.auth_data if session.authenticated else None,
            }
            sys.stdout.write(json.dumps(record) + "\n")
            sys.stdout.flush()
            return "250 Message accepted for delivery"

    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=int(port),
        tls_context=ctx,
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=True,
    )
    controller.start()
    sys.stdout.write("READY\n")
    sys.stdout.flush()

    def watch_stdin():
        sys.stdin.read()
        controller.stop()
        os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    threading.Event().wait()


if __name__ == "__main__":
    main()

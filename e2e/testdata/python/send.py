#!/usr/bin/python3
"""Debian's python3-sentry-sdk (1.9.10) sends at a DSN (e2e/clients_test.go):

    /usr/bin/python3 send.py DSN

plain events go to the store endpoint, everything else to the envelope endpoint, all of it gzipped.
Prints "id <kind> <event id>" for every event it captured, for the test to find them upstream.
"""
import sys
import time

import sentry_sdk

sentry_sdk.init(
    dsn=sys.argv[1],
    release="relay-e2e@1.0.0",
    environment="e2e",
    server_name="e2e-host",
    traces_sample_rate=1.0,
    send_default_pii=True,
)
hub = sentry_sdk.Hub.current
print("sentry-sdk", sentry_sdk.VERSION)


def out(kind, event_id):
    print("id", kind, event_id, flush=True)


out("message", sentry_sdk.capture_message("python: a test message", level="warning"))
sentry_sdk.flush(2)


def charge():
    # A local variable the SDK ships in the frame's vars (with_locals is on by default): a
    # scrubber with Sentry's defaults must filter it. Built at run time, so that the value is not
    # in the source lines the SDK ships with the frame.
    password = "-".join(["hunter2", "e2e", "secret"])
    return len(password) / 0


try:
    charge()
except ZeroDivisionError:
    out("exception", sentry_sdk.capture_exception())
sentry_sdk.flush(2)

with sentry_sdk.push_scope() as scope:
    scope.add_attachment(bytes=b"hello from sentry-python\n", filename="hello.txt", content_type="text/plain")
    # The IP is built at run time too: the frame's source lines travel with the event.
    scope.user = {"id": "42", "email": "jane@example.com", "ip_address": ".".join(["10", "1", "2", "3"])}
    try:
        raise ValueError("python: exception with an attachment")
    except ValueError:
        out("attachment", sentry_sdk.capture_exception())
sentry_sdk.flush(2)

with sentry_sdk.start_transaction(name="python-e2e-transaction", op="task") as tx:
    with tx.start_child(op="db.query", description="SELECT 1"):
        time.sleep(0.01)
sentry_sdk.flush(2)

hub.start_session(session_mode="application")
hub.end_session()
sentry_sdk.flush(2)
print("done")

#!/usr/bin/env python3
"""A webhook receiver for Wharf's tests, written against the receivers' own libraries.

Every POST is verified with PyPI's `standardwebhooks` (the `webhook-id`, `webhook-timestamp`
and `webhook-signature` headers, HMAC-SHA256 over the body) and parsed with the CloudEvents
SDK (`cloudevents.v1.http.from_http`, structured mode) — or, for distribution's envelope, as
JSON. One JSON line per request goes to LOG: what was answered, whether the signature
verified, and what the event said.

    receiver.py LOG --secret whsec_... [--fail-for SECONDS] [--port PORT]

Prints `listening on <port>` once it listens. With `--fail-for`, it answers 500 (and logs
that) for the first SECONDS after it started.
"""

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cloudevents.v1.http import from_http
from standardwebhooks import Webhook


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("log")
    parser.add_argument("--secret", required=True)
    parser.add_argument("--fail-for", type=float, default=0.0)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    webhook = Webhook(args.secret)
    started = time.monotonic()
    lock = threading.Lock()
    out = open(args.log, "a", buffering=1, encoding="utf-8")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            record = {"webhookId": headers.get("webhook-id"), "path": self.path}
            if time.monotonic() - started < args.fail_for:
                status = 500
            else:
                status = 204
                try:
                    webhook.verify(body, headers)
                    record["verified"] = True
                except Exception as e:  # a failed verification is recorded, not answered
                    record["verified"] = False
                    record["why"] = str(e)
                if headers.get("content-type", "").startswith("application/cloudevents+json"):
                    event = from_http(headers, body)
                    record.update(
                        id=event["id"],
                        type=event["type"],
                        source=event["source"],
                        subject=event.get("subject"),
                        specversion=event["specversion"],
                        data=event.data,
                    )
                else:
                    envelope = json.loads(body)
                    record.update(id=envelope["events"][0]["id"], envelope=envelope)
            record["answered"] = status
            with lock:
                out.write(json.dumps(record) + "\n")
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

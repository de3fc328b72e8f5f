"""A test OIDC issuer on loopback, written with other people's code (PyJWT and cryptography),
not Wharf's: it publishes a discovery document and a JWKS, signs GitHub-Actions-shaped tokens
with RS256 (as GitHub does), rotates its key on demand and counts how often its keys are
fetched.

    python issuer.py [--port N]

prints `listening on PORT`, then serves:

- GET  /.well-known/openid-configuration    the discovery document (issuer: http://127.0.0.1:PORT)
- GET  /.well-known/jwks                    the current key only (counted)
- POST /mint    {"claims": {...}, "key": "current" | "retired" | "stranger", "expires_in": 300}
                a token: GitHub's claims for acme/app on refs/heads/main, overridden by `claims`
                (`sub` follows `repository` and `ref` unless given); `retired` signs with the
                key the last rotation took out of the JWKS, `stranger` with a key never published
- POST /rotate  a new current key; the old one leaves the JWKS
- GET  /stats   {"jwks_fetches": N, "discovery_fetches": N}
"""

import argparse
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm


def new_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {"kid": uuid.uuid4().hex[:16], "private": key}


class Issuer:
    def __init__(self, url):
        self.url = url
        self.lock = threading.Lock()
        self.current = new_key()
        self.retired = None
        self.stranger = new_key()
        self.jwks_fetches = 0
        self.discovery_fetches = 0

    def jwks(self):
        with self.lock:
            self.jwks_fetches += 1
            jwk = json.loads(RSAAlgorithm.to_jwk(self.current["private"].public_key()))
            jwk.update({"kid": self.current["kid"], "use": "sig", "alg": "RS256"})
            return {"keys": [jwk]}

    def rotate(self):
        with self.lock:
            self.retired = self.current
            self.current = new_key()

    def mint(self, request):
        overrides = request.get("claims", {})
        now = int(time.time())
        repository = overrides.get("repository", "acme/app")
        ref = overrides.get("ref", "refs/heads/main")
        claims = {
            "jti": str(uuid.uuid4()),
            "sub": f"repo:{repository}:ref:{ref}",
            "aud": "wharf",
            "ref": ref,
            "sha": "3b4c1f0e2d9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c",
            "repository": repository,
            "repository_owner": repository.split("/")[0],
            "repository_owner_id": "1342004",
            "repository_visibility": "private",
            "repository_id": "705632411",
            "run_id": "6254118427",
            "run_number": "7",
            "run_attempt": "1",
            "actor": "octocat",
            "actor_id": "583231",
            "workflow": "release",
            "event_name": "push",
            "ref_type": "branch",
            "ref_protected": "true",
            "workflow_ref": f"{repository}/.github/workflows/release.yml@{ref}",
            "job_workflow_ref": f"{repository}/.github/workflows/release.yml@{ref}",
            "runner_environment": "github-hosted",
            "iss": self.url,
            "nbf": now - 5,
            "iat": now - 5,
            "exp": now + int(request.get("expires_in", 300)),
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        with self.lock:
            key = {"current": self.current, "retired": self.retired, "stranger": self.stranger}[
                request.get("key", "current")
            ]
        return jwt.encode(claims, key["private"], algorithm="RS256", headers={"kid": key["kid"]})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    issuer = None

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_):
            pass

        def answer(self, status, body):
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/.well-known/openid-configuration":
                with issuer.lock:
                    issuer.discovery_fetches += 1
                self.answer(200, {
                    "issuer": issuer.url,
                    "jwks_uri": issuer.url + "/.well-known/jwks",
                    "subject_types_supported": ["public", "pairwise"],
                    "response_types_supported": ["id_token"],
                    "claims_supported": ["sub", "aud", "exp", "iat", "iss", "jti", "nbf", "ref", "repository"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "scopes_supported": ["openid"],
                })
            elif self.path == "/.well-known/jwks":
                self.answer(200, issuer.jwks())
            elif self.path == "/stats":
                with issuer.lock:
                    self.answer(200, {"jwks_fetches": issuer.jwks_fetches, "discovery_fetches": issuer.discovery_fetches})
            else:
                self.answer(404, {"error": "not found"})

        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            request = json.loads(self.rfile.read(length) or b"{}")
            if self.path == "/mint":
                self.answer(200, {"token": issuer.mint(request)})
            elif self.path == "/rotate":
                issuer.rotate()
                self.answer(200, {})
            else:
                self.answer(404, {"error": "not found"})

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    port = server.server_address[1]
    issuer = Issuer(f"http://127.0.0.1:{port}")
    print(f"listening on {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

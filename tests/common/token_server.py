"""Token server for registry tests (Docker registry token auth, ES256 JWT).

Started by tests/common/token_server.rs. It makes its own EC key and
self-signed certificate in --dir, listens on an ephemeral loopback port and
writes that port to --port-file. Users come as --user NAME:PASSWORD:ACTIONS
(ACTIONS like "pull,push"); anonymous callers get "pull" only. GET with Basic
auth or nothing (docker's token flow); POST with grant_type=refresh_token,
where the user's password doubles as its refresh token (OAuth2 flow used
for identity tokens). Every token request is appended as one JSON line to
DIR/requests.log.
"""

import argparse
import base64
import datetime
import json
import os
import secrets
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def make_signer(directory: str):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cogpack test token issuer")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    with open(os.path.join(directory, "cert.pem"), "wb") as out:
        out.write(cert.public_bytes(serialization.Encoding.PEM))
    chain = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode("ascii")]
    return key, chain


def sign_jwt(key, chain, claims) -> str:
    header = {"alg": "ES256", "typ": "JWT", "x5c": chain}
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    der = key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return signing_input + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def granted_access(scopes, allowed_actions):
    access = []
    for scope_param in scopes:
        for item in scope_param.split():
            kind, rest = item.split(":", 1)
            name, actions = rest.rsplit(":", 1)
            wanted = actions.split(",")
            access.append({"type": kind, "name": name, "actions": [a for a in wanted if a in allowed_actions]})
    return access


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--issuer", default="cogpack-test-issuer")
    parser.add_argument("--service", default="cogpack-test-registry")
    parser.add_argument("--user", action="append", default=[])
    parser.add_argument("--expires-in", type=int, default=300)
    args = parser.parse_args()

    users = {}
    for spec in args.user:
        name, password, actions = spec.split(":", 2)
        users[name] = (password, set(actions.split(",")))
    key, chain = make_signer(args.dir)
    log_path = os.path.join(args.dir, "requests.log")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            form = parse_qs(self.rfile.read(length).decode())
            refresh = form.get("refresh_token", [""])[0]
            subject = next((name for name, (password, _) in users.items() if password == refresh), None)
            if form.get("grant_type", [""])[0] != "refresh_token" or subject is None:
                self.record("", 401, "POST")
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            scopes = form.get("scope", [""])[0].split()
            self.issue(subject, users[subject][1], form.get("service", [args.service])[0], scopes, "POST")

        def do_GET(self):
            query = parse_qs(urlsplit(self.path).query)
            subject, allowed = "", {"pull"}
            header = self.headers.get("Authorization", "")
            if header.startswith("Basic "):
                name, _, password = base64.b64decode(header[6:]).decode().partition(":")
                known = users.get(name)
                if known is None or known[0] != password:
                    self.record(name, 401, "GET")
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                subject, allowed = name, known[1]
            self.issue(subject, allowed, query.get("service", [args.service])[0], query.get("scope", []), "GET")

        def issue(self, subject, allowed, service, scopes, method):
            now = int(time.time())
            claims = {
                "iss": args.issuer,
                "sub": subject,
                "aud": service,
                "exp": now + args.expires_in,
                "nbf": now - 30,
                "iat": now,
                "jti": secrets.token_hex(8),
                "access": granted_access(scopes, allowed),
            }
            token = sign_jwt(key, chain, claims)
            field = "access_token" if method == "POST" else "token"
            body = json.dumps({field: token, "expires_in": args.expires_in}).encode()
            self.record(subject, 200, method)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def record(self, subject, status, method):
            entry = {"method": method, "path": self.path, "subject": subject, "status": status}
            with open(log_path, "a") as log:
                log.write(json.dumps(entry) + "\n")

        def log_message(self, *_):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(args.port_file + ".tmp", "w") as out:
        out.write(str(server.server_address[1]))
    os.rename(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()

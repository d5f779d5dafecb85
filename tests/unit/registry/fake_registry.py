#!/usr/bin/env python3
"""A small in-memory registry (OCI distribution API subset) for strata's
registry client tests, with switches for misbehaviour that a real registry
will not show on demand: wrong blob bytes, 429/503 before success, redirects,
Basic or Bearer auth, oversized manifests, paginated listings.

Listens on 127.0.0.1 only, on a free port that it writes to --port-file.
Every request is appended to --log (one "METHOD PATH STATUS" line) so tests
can check what the client did.
"""
import argparse
import base64
import hashlib
import json
import os
import re
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

ap = argparse.ArgumentParser()
ap.add_argument("--port-file", required=True)
ap.add_argument("--log", required=True)
ap.add_argument("--auth", choices=["none", "basic", "bearer"], default="none")
ap.add_argument("--user", default="alice")
ap.add_argument("--password", default="s3cret")
ap.add_argument("--corrupt-blobs", action="store_true", help="serve blobs with one byte flipped")
ap.add_argument("--corrupt-blobs-over", type=int, default=-1,
                help="serve blobs larger than this many bytes with one byte flipped")
ap.add_argument("--extra-bytes", action="store_true", help="serve blobs with a byte appended")
ap.add_argument("--flaky", type=int, default=0,
                help="answer the first N requests for each blob/manifest GET with 429/503")
ap.add_argument("--drop-after", type=int, default=0,
                help="close the connection after sending this many bytes of each blob, once")
ap.add_argument("--redirect-blobs", action="store_true", help="blob GETs answer 307 to /storage/")
ap.add_argument("--relative-locations", action="store_true",
                help="upload Locations and the token realm relative to the request URL")
ap.add_argument("--page", type=int, default=0, help="force this page size on listings")
ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="serve HTTPS with this certificate")
args = ap.parse_args()

lock = threading.RLock()
blobs = {}       # digest -> bytes
blob_repos = {}  # digest -> set of repos
manifests = {}   # (repo, ref) -> (media_type, bytes)
uploads = {}     # uuid -> bytearray
attempts = {}    # path -> count
dropped = set()
tokens = set()


def log(line):
    with lock:
        with open(args.log, "a") as f:
            f.write(line + "\n")


def digest_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, status, body=b"", headers=None, ctype="application/json"):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if body or status not in (204, 304) and self.command != "HEAD":
            self.send_header("Content-Type", ctype)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        log(f"{self.command} {self.path} {status}")

    def error(self, status, code, message):
        self.reply(status, json.dumps({"errors": [{"code": code, "message": message}]}))

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def authorized(self, scope_repo=None):
        if args.auth == "none":
            return True
        h = self.headers.get("Authorization", "")
        if args.auth == "basic":
            want = "Basic " + base64.b64encode(f"{args.user}:{args.password}".encode()).decode()
            if h == want:
                return True
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="fake"')
        else:
            if h.startswith("Bearer ") and h[7:] in tokens:
                return True
            port = self.server.server_address[1]
            scope = f',scope="repository:{scope_repo}:pull"' if scope_repo else ""
            self.send_response(401)
            realm = "/token" if args.relative_locations else f"http://127.0.0.1:{port}/token"
            self.send_header("WWW-Authenticate", f'Bearer realm="{realm}",service="fake"{scope}')
        body = json.dumps({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}).encode()
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        log(f"{self.command} {self.path} 401")
        return False

    def flaky(self):
        if args.flaky <= 0:
            return False
        with lock:
            n = attempts.get(self.path, 0)
            attempts[self.path] = n + 1
        if n < args.flaky:
            status = 429 if n % 2 == 0 else 503
            hdr = {"Retry-After": "0"} if status == 429 else {}
            self.reply(status, json.dumps({"errors": [{"code": "TOOMANYREQUESTS", "message": "slow down"}]}), hdr)
            return True
        return False

    def token(self, q):
        h = self.headers.get("Authorization", "")
        want = "Basic " + base64.b64encode(f"{args.user}:{args.password}".encode()).decode()
        if h and h != want:
            return self.error(401, "UNAUTHORIZED", "bad credentials")
        if not h:
            # Anonymous tokens may only pull.
            for s in q.get("scope", []):
                if "push" in s:
                    return self.error(401, "UNAUTHORIZED", "anonymous push")
        t = uuid.uuid4().hex
        tokens.add(t)
        self.reply(200, json.dumps({"token": t, "expires_in": 300}))

    def route(self):
        u = urlsplit(self.path)
        q = parse_qs(u.query)
        p = u.path
        if p == "/token":
            return self.token(q)
        if p.startswith("/storage/"):
            d = p[len("/storage/"):]
            return self.send_blob(d)
        if p == "/v2/" or p == "/v2":
            if not self.authorized():
                return
            return self.reply(200, "{}")
        if p == "/v2/_catalog":
            if not self.authorized():
                return
            repos = sorted({r for (r, _) in manifests} | {r for s in blob_repos.values() for r in s})
            return self.listing(repos, q, "/v2/_catalog", "repositories", {})
        m = re.match(r"^/v2/(.+)/(manifests|blobs|tags)/(.*)$", p)
        if not m:
            return self.error(404, "NOT_FOUND", p)
        repo, kind, rest = m.groups()
        if not self.authorized(repo):
            return
        if kind == "tags":
            tags = sorted(ref for (r, ref) in manifests if r == repo and not ref.startswith("sha256:"))
            if not tags:
                return self.error(404, "NAME_UNKNOWN", "repository name not known to registry")
            return self.listing(tags, q, f"/v2/{repo}/tags/list", "tags", {"name": repo})
        if kind == "manifests":
            return self.manifest(repo, rest)
        if rest.startswith("uploads/"):
            return self.upload(repo, rest[len("uploads/"):], q)
        return self.blob(repo, rest)

    def listing(self, items, q, path, key, extra):
        n = args.page or int(q.get("n", ["0"])[0] or 0)
        last = q.get("last", [None])[0]
        if last is not None:
            items = [i for i in items if i > last]
        hdr = {}
        if n and len(items) > n:
            items = items[:n]
            hdr["Link"] = f'<{path}?n={n}&last={items[-1]}>; rel="next"'
        body = dict(extra)
        body[key] = items
        self.reply(200, json.dumps(body), hdr)

    def manifest(self, repo, ref):
        if self.command == "PUT":
            data = self.body()
            ctype = self.headers.get("Content-Type", "")
            d = digest_of(data)
            with lock:
                manifests[(repo, ref)] = (ctype, data)
                manifests[(repo, d)] = (ctype, data)
            return self.reply(201, b"", {"Docker-Content-Digest": d,
                                         "Location": f"/v2/{repo}/manifests/{d}"})
        if self.command == "GET" and self.flaky():
            return
        with lock:
            entry = manifests.get((repo, ref))
        if entry is None:
            return self.error(404, "MANIFEST_UNKNOWN", "manifest unknown")
        ctype, data = entry
        self.reply(200, data, {"Docker-Content-Digest": digest_of(data)}, ctype)

    def send_blob(self, d):
        with lock:
            data = blobs.get(d)
        if data is None:
            return self.error(404, "BLOB_UNKNOWN", "blob unknown to registry")
        if self.command == "HEAD":
            return self.reply(200, b"", {"Docker-Content-Digest": d, "Content-Length": str(len(data))},
                              "application/octet-stream")
        if (args.corrupt_blobs or 0 <= args.corrupt_blobs_over < len(data)) and data:
            data = bytes([data[0] ^ 1]) + data[1:]
        if args.extra_bytes:
            data = data + b"!"
        if args.drop_after and d not in dropped and len(data) > args.drop_after:
            dropped.add(d)
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            self.wfile.write(data[:args.drop_after])
            self.wfile.flush()
            log(f"{self.command} {self.path} dropped")
            self.close_connection = True
            import socket
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.reply(200, data, {"Docker-Content-Digest": d}, "application/octet-stream")

    def blob(self, repo, d):
        if self.command == "GET" and self.flaky():
            return
        if args.redirect_blobs and self.command == "GET":
            return self.reply(307, b"", {"Location": f"/storage/{d}"})
        with lock:
            known = d in blobs and repo in blob_repos.get(d, set())
        if not known:
            return self.error(404, "BLOB_UNKNOWN", "blob unknown to registry")
        return self.send_blob(d)

    def upload(self, repo, rest, q):
        if self.command == "POST" and rest == "":
            if "mount" in q:
                d, frm = q["mount"][0], q.get("from", [""])[0]
                with lock:
                    if d in blobs and frm in blob_repos.get(d, set()):
                        blob_repos[d].add(repo)
                        return self.reply(201, b"", {"Location": f"/v2/{repo}/blobs/{d}",
                                                     "Docker-Content-Digest": d})
            self.body()
            uid = uuid.uuid4().hex
            uploads[uid] = bytearray()
            # Relative to /v2/<repo>/blobs/uploads/ (RFC 3986 section 5.2).
            loc = f"{uid}?_state=x" if args.relative_locations else f"/v2/{repo}/blobs/uploads/{uid}?_state=x"
            return self.reply(202, b"", {"Location": loc,
                                         "Range": "0-0", "Docker-Upload-UUID": uid})
        uid = rest
        if uid not in uploads:
            self.body()
            return self.error(404, "BLOB_UPLOAD_UNKNOWN", "upload unknown")
        if self.command == "PATCH":
            data = self.body()
            cr = self.headers.get("Content-Range")
            if cr:
                start = int(cr.split("-")[0])
                if start != len(uploads[uid]):
                    return self.error(416, "BLOB_UPLOAD_INVALID", "bad range")
            uploads[uid] += data
            # Relative to /v2/<repo>/blobs/uploads/<uid>.
            loc = f"../uploads/{uid}?_state=y" if args.relative_locations else f"/v2/{repo}/blobs/uploads/{uid}?_state=y"
            return self.reply(202, b"", {"Location": loc,
                                         "Range": f"0-{len(uploads[uid]) - 1}"})
        if self.command == "PUT":
            uploads[uid] += self.body()
            d = q.get("digest", [""])[0]
            data = bytes(uploads.pop(uid))
            if digest_of(data) != d:
                return self.error(400, "DIGEST_INVALID", "provided digest did not match uploaded content")
            with lock:
                blobs[d] = data
                blob_repos.setdefault(d, set()).add(repo)
            return self.reply(201, b"", {"Location": f"/v2/{repo}/blobs/{d}", "Docker-Content-Digest": d})
        return self.error(405, "UNSUPPORTED", self.command)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = route


srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
srv.daemon_threads = True
if args.tls:
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.tls[0], args.tls[1])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
tmp = args.port_file + ".tmp"
with open(tmp, "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(tmp, args.port_file)
try:
    srv.serve_forever()
except KeyboardInterrupt:
    pass

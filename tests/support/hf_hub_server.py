"""A stand-in for the Hugging Face Hub's file-resolve service, for integration tests that must not
reach the real hub. Python 3.11 standard library only.

It mimics what `huggingface_hub.hf_hub_download` sees from https://huggingface.co:

* ``HEAD|GET /{owner}/{name}/resolve/{revision}/{path}``
    - regular (git) files: 200 with the bytes, ``ETag: "<git blob sha1>"``, ``X-Repo-Commit``;
    - LFS files (``*.onnx``, ``*.gz`` or >= 1 MiB): 302 to ``<base>/lfs/<sha256>?expires=...`` with
      ``X-Linked-Etag: "<sha256>"``, ``X-Linked-Size``, ``ETag: "<sha256>"``, ``X-Repo-Commit``;
    - errors as the hub reports them, with ``X-Error-Code`` (RepoNotFound, GatedRepo,
      RevisionNotFound, EntryNotFound) and a JSON ``{"error": ...}`` body.
* ``HEAD|GET /lfs/<sha256>``: the "CDN" behind the LFS redirect (no auth, like a signed URL), with
  ``Range: bytes=N-`` / ``bytes=N-M`` / ``bytes=-N`` support (206) and one-shot faults.
* ``GET /api/models/{owner}/{name}[/revision/{revision}]``: model info with the file list.

Usage::

    python3 tests/support/hf_hub_server.py --config CONFIG.json --port-file PORTFILE [--log LOG.jsonl]

It binds 127.0.0.1 on an ephemeral port, writes the port number to PORTFILE atomically (temp file +
rename) and serves until killed. With --log, one JSON line per request is appended:
``{"method", "path", "authorization", "token_ok", "range", "status"}``.

CONFIG.json::

    {
      "token": "hf_secret",             # the only valid token (Authorization: Bearer <token>)
      "lfs_redirect_base": null,        # optional base URL for LFS redirects (default: this server)
      "repos": {
        "owner/name": {
          "private": false,             # needs the token (else 401 RepoNotFound)
          "gated": false,               # needs the token (none: 401, wrong: 403, GatedRepo)
          "commits": [
            {"sha": "<40 hex>", "refs": ["main"],
             "files": {"model.onnx": "/abs/path", "sub/config.json": "/abs/path"}}
          ]
        }
      },
      "faults": {"cut_once": ["owner/name/model.onnx"], "corrupt_once": ["owner/name/model.onnx"]}
    }

Faults fire on the first GET that serves the file's content (the /lfs/ URL for LFS files, the
resolve URL for regular files): ``cut_once`` sends the headers and about half the body, then shuts
the socket down; ``corrupt_once`` flips one byte (xor 0xFF) in the middle of the content. If a file
is in both lists, the first GET is cut and the second one corrupted. File contents are read once,
at start-up.
"""
import argparse
import hashlib
import http.server
import json
import os
import socket
import sys
import threading
import time
import urllib.parse

LFS_MIN_SIZE = 1024 * 1024
LFS_SUFFIXES = (".onnx", ".gz")


class Blob:
    """One file's content with the hashes the hub reports for it."""

    def __init__(self, data: bytes):
        self.data = data
        self.sha256 = hashlib.sha256(data).hexdigest()
        # Git blob id: sha1 over the loose-object header plus the content.
        self.git_sha1 = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Hub:
    """The loaded configuration plus the mutable fault state."""

    def __init__(self, config: dict):
        self.token = config.get("token")
        base = config.get("lfs_redirect_base")
        self.lfs_redirect_base = base.rstrip("/") if base else None
        self.repos = {}  # repo id -> {"private", "gated", "refs": {ref: commit}, "commits": {sha: commit}}
        self.blobs_by_sha256 = {}  # sha256 -> Blob, for the CDN
        blobs_by_path = {}  # on-disk path -> Blob (shared between commits)
        fault_keys = {}  # "owner/name/path" -> sha256 of that file's content (any commit)
        for repo_id, repo in config.get("repos", {}).items():
            entry = {
                "private": bool(repo.get("private", False)),
                "gated": bool(repo.get("gated", False)),
                "refs": {},
                "commits": {},
            }
            for commit in repo.get("commits", []):
                sha = commit["sha"].lower()
                files = {}
                for rpath, disk_path in commit.get("files", {}).items():
                    if disk_path not in blobs_by_path:
                        with open(disk_path, "rb") as f:
                            blobs_by_path[disk_path] = Blob(f.read())
                    blob = blobs_by_path[disk_path]
                    files[rpath] = blob
                    self.blobs_by_sha256[blob.sha256] = blob
                    fault_keys[f"{repo_id}/{rpath}"] = blob.sha256
                c = {"sha": sha, "files": files}
                entry["commits"][sha] = c
                for ref in commit.get("refs", []):
                    entry["refs"][ref] = c
            self.repos[repo_id] = entry
        # Pending one-shot faults, keyed by content sha256.
        faults = config.get("faults", {}) or {}
        self.pending = {"cut": set(), "corrupt": set()}
        for kind, cfg_key in (("cut", "cut_once"), ("corrupt", "corrupt_once")):
            for key in faults.get(cfg_key, []) or []:
                if key not in fault_keys:
                    print(f"hf_hub_server: fault target {key!r} is not a configured file", file=sys.stderr)
                    continue
                self.pending[kind].add(fault_keys[key])
        self.lock = threading.Lock()

    def take_fault(self, sha256: str):
        """Consumes and returns the next pending fault ("cut" or "corrupt") for this content."""
        with self.lock:
            for kind in ("cut", "corrupt"):
                if sha256 in self.pending[kind]:
                    self.pending[kind].discard(sha256)
                    return kind
        return None


def is_lfs(path: str, blob: Blob) -> bool:
    return path.endswith(LFS_SUFFIXES) or len(blob.data) >= LFS_MIN_SIZE


def parse_range(header, total: int):
    """Returns (start, end_inclusive), "unsatisfiable", or None (absent/unsupported: serve it all)."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, sep, last = header[len("bytes="):].strip().partition("-")
    if not sep:
        return None
    try:
        if first == "":  # suffix range: the last N bytes
            n = int(last)
            if n <= 0:
                return "unsatisfiable"
            return (max(0, total - n), total - 1) if total else "unsatisfiable"
        start = int(first)
        end = int(last) if last else total - 1
    except ValueError:
        return None
    if start < 0 or (last and end < start):
        return None
    if start >= total:
        return "unsatisfiable"
    return start, min(end, total - 1)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hf-hub-stand-in/1.0"
    hub: Hub = None  # set by main()
    log_file = None
    log_lock = threading.Lock()

    # -- plumbing ---------------------------------------------------------------------------------

    def log_message(self, format, *args):  # no per-request chatter on stderr
        pass

    def log_error(self, format, *args):
        sys.stderr.write("hf_hub_server: %s\n" % (format % args))

    def send_response(self, code, message=None):
        self._status = code
        super().send_response(code, message)

    def _send(self, status, headers=(), body=b"", content_length=None):
        """Sends a complete response; for HEAD the body is left out but Content-Length kept."""
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body) if content_length is None else content_length))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _json(self, status, obj, error_code=None):
        headers = [("Content-Type", "application/json")]
        if error_code:
            headers.append(("X-Error-Code", error_code))
        self._send(status, headers, json.dumps(obj).encode())

    def _token_state(self):
        """(Authorization header present, token valid)."""
        auth = self.headers.get("Authorization")
        if auth is None:
            return False, False
        scheme, _, value = auth.partition(" ")
        ok = scheme.lower() == "bearer" and self.hub.token is not None and value.strip() == self.hub.token
        return True, ok

    def _write_log(self, raw_path):
        if self.log_file is None:
            return
        present, ok = self._token_state()
        line = json.dumps({
            "method": self.command,
            "path": raw_path,
            "authorization": present,
            "token_ok": ok,
            "range": self.headers.get("Range"),
            "status": getattr(self, "_status", None),
        })
        with self.log_lock:
            self.log_file.write(line + "\n")
            self.log_file.flush()

    # -- dispatch ---------------------------------------------------------------------------------

    def do_GET(self):
        self._status = None
        raw_path = urllib.parse.urlsplit(self.path).path
        try:
            self._route(raw_path)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away mid-response
        finally:
            self._write_log(raw_path)

    do_HEAD = do_GET

    def _other_method(self):
        # Drain any request body so the connection stays usable, then answer like an unknown route.
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self._status = None
        raw_path = urllib.parse.urlsplit(self.path).path
        try:
            self._json(404, {"error": "Not Found"})
        finally:
            self._write_log(raw_path)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _other_method

    def _route(self, raw_path):
        # Split before unquoting so an encoded revision such as refs%2Fpr%2F1 stays one segment.
        segs = [urllib.parse.unquote(s) for s in raw_path.split("/")[1:]]
        if len(segs) == 2 and segs[0] == "lfs" and segs[1]:
            return self._cdn(segs[1])
        if self.command == "GET" and len(segs) >= 4 and segs[:2] == ["api", "models"]:
            if len(segs) == 4:
                return self._model_info(f"{segs[2]}/{segs[3]}", "main")
            if len(segs) == 6 and segs[4] == "revision" and segs[5]:
                return self._model_info(f"{segs[2]}/{segs[3]}", segs[5])
        if len(segs) >= 5 and segs[2] == "resolve" and all(segs[:4]) and all(segs[4:]):
            return self._resolve(f"{segs[0]}/{segs[1]}", segs[3], "/".join(segs[4:]))
        self._json(404, {"error": "Not Found"})

    # -- hub logic --------------------------------------------------------------------------------

    def _lookup(self, repo_id, revision):
        """Applies the hub's auth and revision checks; returns (repo, commit) or None after erroring."""
        _, token_ok = self._token_state()
        present = self.headers.get("Authorization") is not None
        repo = self.hub.repos.get(repo_id)
        # Unknown repos and private repos without a valid token look the same: the hub does not
        # reveal whether a repository exists.
        if repo is None or (repo["private"] and not token_ok):
            url = f"http://{self.headers.get('Host') or self.server.server_address[0]}{self.path}"
            self._json(401, {"error": f"Repository Not Found for url: {url}."}, "RepoNotFound")
            return None
        if repo["gated"] and not token_ok:
            if present:
                self._json(403, {"error": f"Access to model {repo_id} is restricted and you are not in "
                                          "the authorized list. Visit https://huggingface.co/"
                                          f"{repo_id} to ask for access."}, "GatedRepo")
            else:
                self._json(401, {"error": f"Access to model {repo_id} is restricted. You must have access "
                                          "to it and be authenticated to access it. Please log in."},
                           "GatedRepo")
            return None
        commit = repo["refs"].get(revision) or repo["commits"].get(revision.lower() if len(revision) == 40 else None)
        if commit is None:
            self._json(404, {"error": f"Invalid rev id: {revision}"}, "RevisionNotFound")
            return None
        return repo, commit

    def _resolve(self, repo_id, revision, path):
        found = self._lookup(repo_id, revision)
        if found is None:
            return
        _, commit = found
        blob = commit["files"].get(path)
        if blob is None:
            self._json(404, {"error": "Entry not found"}, "EntryNotFound")
            return
        if is_lfs(path, blob):
            base = self.hub.lfs_redirect_base or f"http://127.0.0.1:{self.server.server_address[1]}"
            location = f"{base}/lfs/{blob.sha256}?expires={int(time.time()) + 3600}"
            self._send(302, [
                ("Location", location),
                ("X-Linked-Etag", f'"{blob.sha256}"'),
                ("X-Linked-Size", str(len(blob.data))),
                ("ETag", f'"{blob.sha256}"'),
                ("X-Repo-Commit", commit["sha"]),
            ])
            return
        self._serve_content(blob, f'"{blob.git_sha1}"', [("X-Repo-Commit", commit["sha"])])

    def _cdn(self, sha256):
        blob = self.hub.blobs_by_sha256.get(sha256.lower())
        if blob is None:
            self._json(404, {"error": "Not Found"})
            return
        self._serve_content(blob, f'"{blob.sha256}"')

    def _serve_content(self, blob, etag, extra_headers=()):
        """200/206/416 for a file's bytes, applying a pending one-shot fault on GET."""
        data, total = blob.data, len(blob.data)
        headers = [("Content-Type", "application/octet-stream"), ("Accept-Ranges", "bytes"), ("ETag", etag)]
        headers.extend(extra_headers)
        rng = parse_range(self.headers.get("Range"), total)
        if rng == "unsatisfiable":
            self._send(416, headers + [("Content-Range", f"bytes */{total}")])
            return
        status, start, end = (200, 0, total - 1) if rng is None else (206, rng[0], rng[1])
        if status == 206:
            headers.append(("Content-Range", f"bytes {start}-{end}/{total}"))
        fault = self.hub.take_fault(blob.sha256) if self.command == "GET" else None
        if fault == "corrupt" and total:
            mid = total // 2
            data = data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1:]
        body = data[start:end + 1]
        if fault != "cut":
            self._send(status, headers, body)
            return
        # Promise the full length, deliver about half, then drop the connection.
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _model_info(self, repo_id, revision):
        found = self._lookup(repo_id, revision)
        if found is None:
            return
        repo, commit = found
        self._json(200, {
            "id": repo_id,
            "modelId": repo_id,
            "sha": commit["sha"],
            "private": repo["private"],
            "gated": "auto" if repo["gated"] else False,
            "siblings": [{"rfilename": p} for p in sorted(commit["files"])],
        })


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="JSON file describing token, repos and faults")
    parser.add_argument("--port-file", required=True, help="where to write the bound port number")
    parser.add_argument("--log", help="append one JSON line per request here")
    args = parser.parse_args()

    try:
        with open(args.config, encoding="utf-8") as f:
            hub = Hub(json.load(f))
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"hf_hub_server: bad config {args.config}: {e!r}", file=sys.stderr)
        sys.exit(2)

    Handler.hub = hub
    if args.log:
        Handler.log_file = open(args.log, "a", encoding="utf-8")
    server = Server(("127.0.0.1", 0), Handler)

    # Temp name in the same directory, then an atomic rename: readers never see a partial file.
    tmp = f"{args.port_file}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(str(server.server_address[1]))
    os.replace(tmp, args.port_file)

    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()

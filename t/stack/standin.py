"""standin: what the local stand-ins for Supabase, Perplexity and Telegram share.

Each stand-in is a small threaded HTTP server on loopback.  It records
every request it serves (method, path, headers with credentials masked,
body) so tests can assert on them, and takes a "script" of faults from
tests through control endpoints under /_standin/:

    GET  /_standin/health     200 {"ok":true}
    GET  /_standin/requests   recorded requests, one JSON object per line
    POST /_standin/script     merge a JSON object into the script
    POST /_standin/reset      clear the script and the recording

What a script may say is each stand-in's own business; see its --help.
"""

import argparse
import http.server
import json
import os
import socketserver
import sys
import threading
import time

MASKED_HEADERS = {"authorization", "apikey", "x-api-key"}


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, handler, name):
        super().__init__(addr, handler)
        self.name = name
        self.lock = threading.Lock()
        self.script = {}
        self.requests = []
        self.started = time.time()

    def record(self, entry):
        with self.lock:
            self.requests.append(entry)

    def get_script(self):
        with self.lock:
            return dict(self.script)

    def update_script(self, fn):
        """Calls fn(script) under the lock; returns what fn returns."""
        with self.lock:
            return fn(self.script)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "dt-standin"
    sys_version = ""

    def log_message(self, fmt, *args):
        if os.environ.get("DT_STANDIN_LOG"):
            sys.stderr.write("%s: %s\n" % (self.server.name, fmt % args))

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def send(self, status, body, ctype="application/json", headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def masked_headers(self):
        out = {}
        for k, v in self.headers.items():
            out[k.lower()] = "***" if k.lower() in MASKED_HEADERS else v
        return out

    def record(self, body, **extra):
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        entry = {
            "t": round(time.time(), 6),
            "method": self.command,
            "path": self.path,
            "headers": self.masked_headers(),
            "json": parsed,
        }
        if parsed is None and body:
            entry["raw"] = body.decode("utf-8", "replace")[:4096]
        entry.update(extra)
        self.server.record(entry)

    def control(self):
        """Serves /_standin/*; returns True when it handled the request."""
        if not self.path.startswith("/_standin/"):
            return False
        what = self.path[len("/_standin/"):].split("?")[0]
        body = self.read_body()
        srv = self.server
        if what == "health":
            self.send(200, {"ok": True, "name": srv.name})
        elif what == "requests":
            with srv.lock:
                lines = "".join(json.dumps(r) + "\n" for r in srv.requests)
            self.send(200, lines, "application/x-ndjson")
        elif what == "script" and self.command == "POST":
            try:
                new = json.loads(body or b"{}")
                if not isinstance(new, dict):
                    raise ValueError("script must be a JSON object")
            except ValueError as e:
                self.send(400, {"error": str(e)})
                return True
            srv.update_script(lambda s: s.update(new))
            self.send(200, srv.get_script())
        elif what == "script":
            self.send(200, srv.get_script())
        elif what == "reset" and self.command == "POST":
            def clear(s):
                s.clear()
                srv.requests.clear()
            srv.update_script(clear)
            self.send(200, {"ok": True})
        else:
            self.send(404, {"error": "no such control endpoint"})
        return True


def take_count(server, key):
    """Decrements script[key] if it is a positive count; True if it was."""
    def f(s):
        n = s.get(key, 0)
        if isinstance(n, int) and n > 0:
            s[key] = n - 1
            return True
        return False
    return server.update_script(f)


def arg_parser(name, doc):
    p = argparse.ArgumentParser(prog=name, description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--listen", default="127.0.0.1:0",
                   help="address:port to listen on (port 0 picks a free one)")
    p.add_argument("--port-file", help="write the bound port here once listening")
    return p


def serve(name, handler, args):
    host, _, port = args.listen.rpartition(":")
    srv = Server((host or "127.0.0.1", int(port)), handler, name)
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % srv.server_address[1])
        os.rename(tmp, args.port_file)
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    return srv

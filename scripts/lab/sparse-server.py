#!/usr/bin/env python3
"""Serve a directory like `python3 -m http.server`, for one half of a Cargo sparse registry.

Usage: scripts/lab/sparse-server.py PORT DIR [--config-json FILE] [--token TOKEN]

Python's threading http.server (SimpleHTTPRequestHandler: Last-Modified on every file,
If-Modified-Since answered 304, no ETag) on 127.0.0.1:PORT with DIR as its root, plus:
  --config-json FILE  GET /config.json serves FILE (so one index tree can be served by several
                      servers, each with its own download URL; scripts/lab/start-sparse-registry.sh
                      writes it)
  --token TOKEN       every request must carry `Authorization: TOKEN` (as cargo sends a registry
                      token: the raw value, no scheme), else 401 — config.json too, which is how
                      cargo learns that it must send the token (RFC 3139)
The access log (stderr) is the Apache common format, with the response body size instead of "-":
  127.0.0.1 - - [07/Dec/2026 16:35:24] "GET /dp/-a/dp-alpha HTTP/1.1" 200 640
(count with scripts/lab/count-upstream.py; a 304 logs 0).
"""
import argparse, functools, http.server, os, sys


class Handler(http.server.SimpleHTTPRequestHandler):
    # Keep-alive, as a registry's server does (every response here has a Content-Length).
    protocol_version = "HTTP/1.1"
    config_json = None
    token = None

    def send_header(self, keyword, value):
        if keyword.lower() == "content-length":
            self._body_size = int(value)
        super().send_header(keyword, value)

    def log_request(self, code="-", size="-"):
        # Logged when the response is done (serve), with the body size http.server leaves "-".
        self._logged_code = code

    def serve(self, handle):
        self._body_size, self._logged_code = 0, None
        try:
            if self.authorised():
                handle()
        finally:
            if self._logged_code is not None:
                code = self._logged_code
                sent = 0 if self.command == "HEAD" or code == 304 else self._body_size
                super().log_request(code, sent)

    def translate_path(self, path):
        if self.config_json and path.split("?", 1)[0] == "/config.json":
            return self.config_json
        return super().translate_path(path)

    def authorised(self):
        if self.token is None or self.headers.get("Authorization") == self.token:
            return True
        body = b'{"errors":[{"detail":"this registry needs a token"}]}\n'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        # What a registry answers (RFC 3139): cargo then retries with its token.
        self.send_header("WWW-Authenticate", 'Cargo login_url="http://127.0.0.1/me"')
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        return False

    def do_GET(self):
        self.serve(super().do_GET)

    def do_HEAD(self):
        self.serve(super().do_HEAD)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("port", type=int)
    ap.add_argument("dir")
    ap.add_argument("--config-json")
    ap.add_argument("--token")
    args = ap.parse_args()
    if not os.path.isdir(args.dir):
        sys.exit(f"no directory {args.dir}")
    Handler.config_json = os.path.realpath(args.config_json) if args.config_json else None
    Handler.token = args.token
    handler = functools.partial(Handler, directory=os.path.realpath(args.dir))
    http.server.ThreadingHTTPServer.daemon_threads = True
    with http.server.ThreadingHTTPServer(("127.0.0.1", args.port), handler) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()

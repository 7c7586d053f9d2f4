"""The HTTP server the lab cases of the differential suite ask with `uri` (`{{ target_web }}`):
started on each lab host's own loopback (127.0.0.1:PORT inside the container, which the
controller cannot reach), so a case proves the request was made on the target.

Stdlib only, copied into the container and run there as `python3 targetweb.py PORT NAME`:

- `/whoami`: the host's inventory NAME; `/health`: JSON; `/created`: 201;
- `/redirect` -> 302 to /health, `/redirect307` -> 307 to /echo;
- `/echo`: JSON of the request's method, body and Content-Type;
- `/private`: 200 with basic auth `ops`/`s3cret`, else 401 with a Basic challenge;
- any other path: 404.
"""

import base64
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = 8097  # in the container's own network namespace: nothing else of the lab listens there
USER, PASSWORD = "ops", "s3cret"


def handler(name):
    class Pages(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def send(self, code, body, ctype="text/plain", extra=()):
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for key, value in extra:
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            sent = self.rfile.read(length).decode() if length else ""
            auth = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            if self.path == "/whoami":
                self.send(200, name + "\n")
            elif self.path == "/health":
                self.send(200, json.dumps({"status": "ok", "host": name}), "application/json")
            elif self.path == "/created":
                self.send(201, "made it\n")
            elif self.path == "/redirect":
                self.send(302, "moved\n", extra=[("Location", "/health")])
            elif self.path == "/redirect307":
                self.send(307, "moved\n", extra=[("Location", "/echo")])
            elif self.path == "/echo":
                self.send(200, json.dumps({"method": self.command, "body": sent,
                                           "type": self.headers.get("Content-Type")}), "application/json")
            elif self.path == "/private" and self.headers.get("Authorization") == auth:
                self.send(200, "welcome " + name + "\n")
            elif self.path == "/private":
                self.send(401, "who are you\n", extra=[("WWW-Authenticate", 'Basic realm="lab"')])
            else:
                self.send(404, "no such page\n")

        do_GET = do_POST = do_PUT = do_HEAD = answer

    return Pages


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), handler(sys.argv[2])).serve_forever()

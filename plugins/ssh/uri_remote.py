"""The program `ssh.uri` runs with the target's python3: one HTTP request made where the
host is, as Ansible's uri module makes it, answered as one JSON line on standard output.

Its source is sent on stdin to `python3 -` (nothing in argv, so a password never shows in
`ps`), followed by a line calling `main(<the request as JSON text>)`. It imports only the
standard library and runs on any Python 3.6 or later: it is not imported by opsbook itself
except by the tests, which call `main` directly.

What it reproduces of ansible-core (module_utils/urls.py, modules/uri.py, 2.19):
`follow_redirects` (all/yes, safe, none/no, urllib2), `validate_certs`, `url_username`/
`url_password` (sent on a 401 challenge, or at once with `force_basic_auth`), `use_proxy`,
`http_agent`, `timeout` (here the whole exchange, not each socket read), `creates`/
`removes`, and `dest` (written only when the content differs; an existing file sends
If-Modified-Since, so an unchanged page answers 304 as in Ansible).

The answer: {"status", "url", "msg", "headers": [[name, value], ...], "body": base64 of
the first `cap` bytes, "truncated", "elapsed", "redirected", "cookies", "changed",
"path", "skipped"}. Status -1 means no HTTP answer (msg says why), as in Ansible.
"""

import base64
import email.utils
import hashlib
import json
import os
import signal
import ssl
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from http import client as http_client
from http import cookiejar


class _Expired(BaseException):
    """The whole exchange took longer than `timeout` (raised by SIGALRM; not an Exception,
    so no handler inside urllib swallows it)."""


def _redirect_handler(follow):
    """Ansible's HTTPRedirectHandler: which redirects are followed, and how."""

    class Redirects(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req, fp, code, msg, headers, newurl):
            if follow == "urllib2":
                return urllib.request.HTTPRedirectHandler.redirect_request(
                    self, req, fp, code, msg, headers, newurl)
            if follow in ("no", "none"):
                raise urllib.error.HTTPError(newurl, code, msg, headers, fp)
            method = req.get_method()
            if follow == "safe" and method not in ("GET", "HEAD"):
                raise urllib.error.HTTPError(req.get_full_url(), code, msg, headers, fp)
            if follow not in ("all", "yes", "safe") or not 300 <= code < 400:
                raise urllib.error.HTTPError(req.get_full_url(), code, msg, headers, fp)
            data = req.data
            newurl = newurl.replace(" ", "%20")
            if code in (307, 308):
                req_headers = dict(req.headers)
            else:
                data = None
                req_headers = {k: v for k, v in req.headers.items()
                               if k.lower() not in ("content-length", "content-type", "transfer-encoding")}
                if code in (302, 303) and method != "HEAD":
                    method = "GET"
                if code == 301 and method == "POST":
                    method = "GET"
            return urllib.request.Request(newurl, data=data, headers=req_headers,
                                          origin_req_host=req.origin_req_host, unverifiable=True,
                                          method=method)

    Redirects.http_error_308 = urllib.request.HTTPRedirectHandler.http_error_302
    return Redirects()


def _opener(spec, jar):
    handlers = [_redirect_handler(spec["follow_redirects"]), urllib.request.HTTPCookieProcessor(jar)]
    if not spec["use_proxy"]:
        handlers.append(urllib.request.ProxyHandler({}))
    context = ssl.create_default_context()
    if not spec["validate_certs"]:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    handlers.append(urllib.request.HTTPSHandler(context=context))
    user, password = spec.get("username"), spec.get("password")
    if user and not spec["force_basic_auth"]:
        passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
        passwords.add_password(None, spec["url"], user, password or "")
        handlers += [urllib.request.HTTPBasicAuthHandler(passwords), urllib.request.HTTPDigestAuthHandler(passwords)]
    return urllib.request.build_opener(*handlers)


def _headers(spec):
    headers = dict(spec["headers"])
    headers.setdefault("User-Agent", spec["http_agent"])
    user = spec.get("username")
    if user and spec["force_basic_auth"]:
        token = base64.b64encode(f"{user}:{spec.get('password') or ''}".encode()).decode()
        headers["Authorization"] = "Basic " + token
    dest = spec.get("dest")
    if dest and os.path.isfile(dest):
        stamp = os.path.getmtime(dest)
        headers["If-Modified-Since"] = email.utils.formatdate(stamp, usegmt=True)
    return headers


def _read(response, cap, sink):
    """The first `cap` bytes of the answer; with `sink` (dest), all of it goes there too."""
    kept = []
    size = 0
    truncated = False
    while True:
        chunk = response.read(65536)
        if not chunk:
            break
        if sink is not None:
            sink.write(chunk)
        if size < cap:
            kept.append(chunk[:cap - size])
        if size + len(chunk) > cap:
            truncated = True
        size += len(chunk)
        if truncated and sink is None:
            break
    return b"".join(kept), truncated


def _dest_path(dest, response, url):
    if not os.path.isdir(dest):
        return dest
    name = None
    disposition = response.headers.get("content-disposition") if response is not None else None
    if disposition:
        for part in disposition.split(";"):
            key, _, value = part.strip().partition("=")
            if key.lower() == "filename" and value:
                name = os.path.basename(value.strip('"'))
    if not name:
        name = os.path.basename(urllib.parse.urlsplit(url).path.rstrip("/"))
    return os.path.join(dest, name or "index.html")


def _keep_mode(temp, path):
    """The new file gets the old one's mode, or the umask's default (mkstemp makes 0600)."""
    if os.path.exists(path):
        os.chmod(temp, os.stat(path).st_mode & 0o7777)
    else:
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(temp, 0o666 & ~mask)


def _digest(path):
    if not os.path.isfile(path):
        return None
    with open(path, "rb") as handle:
        return hashlib.sha1(handle.read()).hexdigest()


def _exchange(spec, answer):
    jar = cookiejar.CookieJar()
    body = spec.get("body")
    data = None if body is None else base64.b64decode(body)
    request = urllib.request.Request(spec["url"], data=data, headers=_headers(spec), method=spec["method"])
    response = None
    sink = None
    try:
        try:
            response = _opener(spec, jar).open(request, timeout=spec["timeout"])
            answer["status"] = response.status if hasattr(response, "status") else response.getcode()
            answer["url"] = response.geturl()
            answer["msg"] = f"OK ({response.headers.get('Content-Length', 'unknown')} bytes)"
        except urllib.error.HTTPError as exc:
            response = exc
            answer["status"] = exc.code
            answer["msg"] = str(exc)
        answer["headers"] = [[k, v] for k, v in response.headers.items()] if response.headers else []
        wanted = spec.get("dest") and answer["status"] in spec["status_code"] and answer["status"] != 304
        path = _dest_path(spec["dest"], response, answer["url"]) if spec.get("dest") else None
        if wanted:
            fd, temp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".opsbook-uri-")
            sink = (os.fdopen(fd, "wb"), temp)
        content, truncated = _read(response, spec["cap"], sink[0] if sink else None) if getattr(response, "fp", None) else (b"", False)
        answer["body"] = base64.b64encode(content).decode()
        answer["truncated"] = truncated
        if sink is not None:
            sink[0].close()
            if _digest(sink[1]) != _digest(path):
                _keep_mode(sink[1], path)
                os.replace(sink[1], path)
                answer["changed"] = True
                sink = None
        if path is not None:
            answer["path"] = path
    finally:
        if sink is not None:  # not renamed into place: an error, or dest unchanged
            sink[0].close()
            if os.path.exists(sink[1]):
                os.unlink(sink[1])
    answer["cookies"] = {c.name: c.value for c in jar}
    answer["cookies_string"] = "; ".join(f"{c.name}={c.value}" for c in jar)


def _on_alarm(signum, frame):
    raise _Expired()


def answer_for(spec):
    """Make the request `spec` describes; the answer as a dict (never raises)."""
    answer = {"status": -1, "url": spec["url"], "msg": "", "headers": [], "body": "", "truncated": False,
              "elapsed": 0.0, "redirected": False, "cookies": {}, "cookies_string": "", "changed": False}
    for key, exists in (("creates", True), ("removes", False)):
        path = spec.get(key)
        if path and os.path.exists(path) == exists:
            answer["skipped"] = f"skipped, since {path} {'exists' if exists else 'does not exist'}"
            return answer
    start = time.time()
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, max(float(spec["timeout"]), 0.001))
    try:
        _exchange(spec, answer)
    except _Expired:
        answer["status"] = -1
        answer["msg"] = f"Connection failure: no complete answer within {spec['timeout']:g}s"
    except urllib.error.URLError as exc:
        answer["status"] = -1
        answer["msg"] = f"Request failed: {exc}"
    except (OSError, http_client.HTTPException, ValueError) as exc:  # socket.timeout, ssl.SSLError are OSErrors
        answer["status"] = -1
        answer["msg"] = f"Connection failure: {exc or type(exc).__name__}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    answer["elapsed"] = time.time() - start
    answer["redirected"] = answer["url"] != spec["url"]
    return answer


def main(text):
    """Read the request (JSON text), print the answer as one JSON line; exit status 0."""
    sys.stdout.write(json.dumps(answer_for(json.loads(text))) + "\n")
    sys.stdout.flush()
    return 0

"""ssh.uri: Ansible's `uri` module, run where Ansible runs it -- on the target host.

The request is made by the host's own python3 (`uri_remote`, sent on stdin over the host's
connection: ssh, docker, ...), so `http://127.0.0.1:8080/health` on `hosts: web` asks each
web host's own port. On a host whose connection is `local` (`ansible_connection: local`,
`delegate_to: localhost`) the same program runs on the controller with the controller's
Python. The arguments are Ansible's, meaning what ansible-core's do; the ones opsbook does
not implement are refused by name when the runbook is loaded. The answer checks
(`status_code`, `body_contains`, `json_path`, ...) are local.http's (`http_checks`).
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit, urlunsplit

from opsbook.capture import OUTPUT_CAP
from opsbook.plugin import ActionContext, CommandResult, Result, Status, telling_line
from opsbook_plugins.http_checks import BodyChecks, body_problem
from opsbook_plugins.ssh._plugin import plugin
from opsbook_plugins.ssh.common import _as_result, _run
from pydantic import AliasChoices, ConfigDict, Field, field_validator, model_validator

_PROGRAM = Path(__file__).with_name("uri_remote.py")
# The body kept for `content`, `json` and the checks: base64 in one JSON line, which must
# stay within the connection's output capture (OUTPUT_CAP, kept whole below it).
BODY_CAP = OUTPUT_CAP // 2
_SAFE = ("GET", "HEAD")
_JSON_TYPES = ("json", "javascript")  # ansible-core's JSON_CANDIDATES
# Ansible's uri arguments opsbook does not implement: refused by name, never ignored.
UNSUPPORTED = {
    "src": "send a file's content with body: \"{{ lookup('file', 'x') }}\"",
    "remote_src": "", "unix_socket": "", "ca_path": "", "client_cert": "", "client_key": "",
    "ciphers": "", "unredirected_headers": "", "decompress": "", "use_netrc": "", "use_gssapi": "",
    "force": "", "url_password_file": "", "mode": "", "owner": "", "group": "", "seuser": "",
    "serole": "", "setype": "", "selevel": "", "unsafe_writes": "", "attributes": "",
}


class UriArgs(BodyChecks):
    """Make an HTTP request from the host (Ansible's uri); fail unless the answer is expected."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)

    url: str = Field(description="http:// or https:// URL, as the host sees it (127.0.0.1 is the host itself)")
    method: str = Field("GET", description="HTTP method (one word; upper-cased)")
    body: Any = Field(None, description="the request body (see body_format)")
    body_format: Literal["raw", "json", "form-urlencoded"] = Field(
        "raw", description="json: a body that is not text is sent as JSON, with Content-Type application/json; "
        "form-urlencoded: a mapping or list of pairs is form-encoded; raw: sent as written")
    headers: dict[str, Any] = Field({}, description="request headers")
    timeout: float = Field(30, gt=0, description="seconds for the whole exchange (Ansible: 30)")
    validate_certs: bool = Field(True, description="verify the server's TLS certificate")
    follow_redirects: Literal["all", "yes", "safe", "none", "no", "urllib2"] = Field(
        "safe", description="safe: only GET and HEAD follow redirects; all: every method; none: "
        "the 3xx is the answer; urllib2: Python's urllib rules")
    url_username: str | None = Field(None, validation_alias=AliasChoices("url_username", "user"),
                                     description="user for HTTP basic/digest authentication")
    url_password: str | None = Field(None, validation_alias=AliasChoices("url_password", "password"),
                                     description="its password")
    force_basic_auth: bool = Field(False, description="send basic auth at once, not only after a 401 challenge")
    use_proxy: bool = Field(True, description="use the host's http_proxy/https_proxy environment")
    http_agent: str = Field("ansible-httpget", description="the User-Agent header (Ansible's by default)")
    dest: str | None = Field(None, description="save the answer's body to this path on the host "
                             "(a folder: named after the URL); written only when it differs")
    creates: str | None = Field(None, description="skip when this path exists on the host")
    removes: str | None = Field(None, description="skip unless this path exists on the host")

    @model_validator(mode="before")
    @classmethod
    def _refuse_unimplemented(cls, raw: Any) -> Any:
        if isinstance(raw, dict):
            if raw.get("body_format") == "form-multipart":
                raise ValueError("body_format form-multipart is not implemented by opsbook "
                                 "(raw, json and form-urlencoded are)")
            named = sorted(k for k in raw if k in UNSUPPORTED)
            if named:
                hint = UNSUPPORTED[named[0]]
                listed = ", ".join(f'"{name}"' for name in named)
                raise ValueError(f"Ansible's uri argument {listed} {'is' if len(named) == 1 else 'are'} not "
                                 "implemented by opsbook" + (f" ({hint})" if hint else ""))
            if isinstance(raw.get("follow_redirects"), bool):  # YAML yes/no, as Ansible takes them
                raw = {**raw, "follow_redirects": "yes" if raw["follow_redirects"] else "no"}
        return raw

    @field_validator("method")
    @classmethod
    def _one_word(cls, value: str) -> str:
        if "{{" not in value and not value.strip().isalpha():
            raise ValueError(f"method must be one word, like GET or POST, not {value!r}")
        return value.strip().upper()

    @field_validator("headers")
    @classmethod
    def _text_values(cls, value: dict[str, Any]) -> dict[str, Any]:
        return {str(k): v if isinstance(v, str) else json.dumps(v) if isinstance(v, (dict, list)) else str(v)
                for k, v in value.items()}


def _encoded(args: UriArgs) -> tuple[bytes | None, dict[str, str]]:
    """The body as bytes and the headers, as ansible-core's uri prepares them."""
    headers = dict(args.headers)
    body = args.body
    has_type = any(name.lower() == "content-type" for name in headers)
    if args.body_format == "json":
        if body is not None and not isinstance(body, str):
            body = json.dumps(body)
        if not has_type:
            headers["Content-Type"] = "application/json"
    elif args.body_format == "form-urlencoded":
        if body is not None and not isinstance(body, str):
            body = _form(body)
        if not has_type:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
    if body is None:
        return None, headers
    return (body if isinstance(body, str) else json.dumps(body) if isinstance(body, (dict, list))
            else str(body)).encode(), headers


def _form(body: Any) -> str:
    """ansible-core's form_urlencoded: a mapping or a list of pairs; a list value repeats its key."""
    from urllib.parse import urlencode

    pairs = body.items() if isinstance(body, dict) else body
    out = []
    try:
        for key, values in pairs:
            for value in values if isinstance(values, list) else [values]:
                if value is not None:
                    out.append((str(key), str(value)))
    except (TypeError, ValueError):
        raise ValueError("body_format form-urlencoded needs a mapping or a list of pairs as body") from None
    return urlencode(out, doseq=True)


def _interpreter(ctx: ActionContext) -> str:
    """The host's python: ansible_python_interpreter when set (not Ansible's "auto"), else
    python3; on a `local` host the controller's own Python."""
    chosen = str(ctx.host.vars.get("ansible_python_interpreter") or "")
    if chosen and not chosen.startswith("auto"):
        return chosen
    return sys.executable if ctx.host.connection_kind == "local" else "python3"


def _spec(args: UriArgs, body: bytes | None, headers: dict[str, str]) -> dict[str, Any]:
    return {
        "url": args.url, "method": args.method, "headers": headers, "timeout": args.timeout,
        "body": None if body is None else base64.b64encode(body).decode(),
        "validate_certs": args.validate_certs, "follow_redirects": args.follow_redirects,
        "username": args.url_username, "password": args.url_password, "force_basic_auth": args.force_basic_auth,
        "use_proxy": args.use_proxy, "http_agent": args.http_agent, "dest": args.dest,
        "creates": args.creates, "removes": args.removes, "status_code": args.status or [200], "cap": BODY_CAP,
    }


def _no_python(ctx: ActionContext, python: str, res: CommandResult) -> Result:
    return Result.failed(
        f"{ctx.host.name}: uri runs on the host with {python}, which is not there "
        f"({telling_line(res.stderr) or f'rc={res.rc}'}); install it, add `delegate_to: localhost` "
        "to send the request from the controller, or use probe.http with from: for a vantage point")


def _masked(url: str) -> str:
    """The URL with its password hidden, as Ansible's mask_url does."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:********@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@plugin.action(check=True, idempotent=True, data=None,
               mutates=lambda args: bool(args.get("dest"))
               or str(args.get("method", "GET")).upper() not in ("GET", "HEAD", "OPTIONS"))
@_as_result
def uri(ctx: ActionContext, args: UriArgs) -> Result:
    """Make an HTTP request from the host (its own python3); fail unless the status (and
    body, when checked) is expected. Registers Ansible's keys: status, url, redirected,
    elapsed, the answer's headers (lower-case, `-` as `_`), json, and content with
    return_content."""
    if ctx.check_mode and (args.method not in _SAFE or args.dest):
        what = f"would write {args.dest} from" if args.dest else f"{args.method} is not sent in check mode:"
        return Result.unknown(f"uri {what} {args.url}")
    if args.url_password and hasattr(ctx.secrets, "add"):  # never shown, as Ansible's no_log
        ctx.secrets.add("url_password", args.url_password)
    try:
        body, headers = _encoded(args)
    except ValueError as exc:
        return Result.failed(str(exc))
    python = _interpreter(ctx)
    program = _PROGRAM.read_text() + f"\nraise SystemExit(main({json.dumps(json.dumps(_spec(args, body, headers)))}))\n"
    res = _run(ctx, [python, "-"], stdin=program.encode(), become=False, stream=False)
    if ctx.cancelled.is_set():
        return Result(status=Status.TIMED_OUT, msg=f"cancelled while asking {args.url}")
    if res.rc in (126, 127):
        return _no_python(ctx, python, res)
    try:
        answer = json.loads(res.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return Result.failed(f"{ctx.host.name}: uri's request program failed (rc={res.rc}): "
                             f"{telling_line(res.stderr or res.stdout) or 'no answer'}", stderr=res.stderr)
    return _result(ctx, args, answer)


def _result(ctx: ActionContext, args: UriArgs, answer: dict[str, Any]) -> Result:
    if answer.get("skipped"):
        return Result.ok(msg=answer["skipped"], stdout=answer["skipped"])
    data = _registered(args, answer)
    text = base64.b64decode(answer["body"]).decode(errors="replace")
    expected = args.status or [200]
    code = data["status"]
    if code not in expected:
        msg = f"Status code was {code} and not {expected}: {answer['msg']}"
        if args.return_content:
            data["content"] = text
        return Result.failed(f"{msg} (asked from {ctx.host.name})", data=data, changed=bool(answer.get("changed")))
    if args.return_content:
        data["content"] = text
    problem = body_problem(args, text)
    if problem:
        return Result.failed(f"HTTP {code} from {_masked(args.url)} (asked from {ctx.host.name}), but {problem}",
                             data=data)
    return Result.ok(msg=answer["msg"], data=data, changed=bool(answer.get("changed")))


def _registered(args: UriArgs, answer: dict[str, Any]) -> dict[str, Any]:
    """Ansible's registered keys: the answer's headers (lower-case, `-` as `_`, repeated
    ones joined with ", "), then status, url, redirected, elapsed (whole seconds), cookies,
    json for a JSON answer, path with dest."""
    from opsbook.plugin import REGISTERED_KEYS

    data: dict[str, Any] = {}
    for name, value in answer["headers"]:
        key = name.lower().replace("-", "_")
        if key not in REGISTERED_KEYS:
            data[key] = f"{data[key]}, {value}" if key in data else value
    if "location" in data:
        data["location"] = urljoin(_masked(args.url), data["location"])
    data.update(status=int(answer["status"]), url=_masked(answer["url"]), redirected=answer["redirected"],
                elapsed=int(answer["elapsed"]), cookies=answer["cookies"], cookies_string=answer["cookies_string"])
    if "path" in answer:
        data["path"] = answer["path"]
    subtype = str(data.get("content_type", "")).split(";")[0].strip().partition("/")[2].lower()
    if subtype.rpartition("+")[2] in _JSON_TYPES:
        try:
            data["json"] = json.loads(base64.b64decode(answer["body"]).decode(errors="replace"))
        except ValueError:
            pass
    if answer.get("truncated"):
        data["truncated"] = True
    return data

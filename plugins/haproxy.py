"""haproxy: a server's admin state and weight through HAProxy's runtime API socket.

`haproxy.server` is Ansible's `community.general.haproxy` (same arguments: state
enabled/disabled/drain, host, backend, weight, socket, wait, wait_retries, wait_interval,
shutdown_sessions, drain, fail_on_not_found). It runs on the host that has the socket (the
balancer: `hosts:` or `delegate_to:` it) over that host's connection: the runtime API
commands go in one round trip to a small `python3 -c` helper there (else `socat`), so the
balancer needs python3 or socat and read/write access to the socket (`become:` when the
socket is root's). State is read from `show servers state` (the admin state the operator
set: forced maintenance 0x01, forced drain 0x08) and `show stat` (status word, current
sessions); changes use `set server B/S state ready|drain|maint` and `set server B/S weight`.

Check mode reads the state and says what would change. The rollback puts back the admin
state and weight each server had (`haproxy.restore`). Unknown backends and servers are
refused with a "did you mean" from the live list (unless `fail_on_not_found: false`).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Literal

from opsbook.errors import OpsbookError
from opsbook.plugin import ActionContext, Plugin, Result, Seconds, Status, arg_in
from pydantic import BaseModel, ConfigDict, Field, field_validator

plugin = Plugin("haproxy", "Enable, disable, drain and weigh HAProxy servers through the runtime API socket.")

DEFAULT_SOCKET = "/var/run/haproxy.sock"  # Ansible's default
_END = "\x1eOPSBOOK-END"
_ERR = "\x1eOPSBOOK-ERR "
_FMAINT, _FDRAIN = 0x01, 0x08
_DRAIN_BITS = 0x08 | 0x10
_API_TIMEOUT = 10.0

# One connection per command (HAProxy's non-interactive mode answers one and closes).
_PY = r"""
import socket, sys
path = sys.argv[1]
for cmd in sys.stdin.read().splitlines():
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    try:
        s.connect(path)
    except FileNotFoundError:
        print("\x1eOPSBOOK-ERR missing"); sys.exit(3)
    except PermissionError:
        print("\x1eOPSBOOK-ERR denied"); sys.exit(4)
    except ConnectionRefusedError:
        print("\x1eOPSBOOK-ERR refused"); sys.exit(5)
    except OSError as exc:
        print("\x1eOPSBOOK-ERR " + (exc.strerror or str(exc))); sys.exit(6)
    s.sendall((cmd + "\n").encode())
    out = b""
    while True:
        data = s.recv(65536)
        if not data:
            break
        out += data
    s.close()
    sys.stdout.write(out.decode("utf-8", "replace") + "\n\x1eOPSBOOK-END\n")
"""
_SH = r"""
s=$1
if command -v python3 >/dev/null 2>&1; then exec python3 -c "$2" "$s"; fi
[ -e "$s" ] || { printf '\036OPSBOOK-ERR missing\n'; exit 3; }
[ -r "$s" ] && [ -w "$s" ] || { printf '\036OPSBOOK-ERR denied\n'; exit 4; }
command -v socat >/dev/null 2>&1 || { printf '\036OPSBOOK-ERR notool\n'; exit 7; }
while IFS= read -r c; do
  printf '%s\n' "$c" | socat -t5 stdio "unix-connect:$s" || exit 5
  printf '\n\036OPSBOOK-END\n'
done
"""
_WHY = {
    "missing": "does not exist (set socket: to the path of `stats socket` in haproxy.cfg)",
    "denied": "cannot be opened: permission denied (use become: true, or a user in the socket's group)",
    "refused": "refuses connections (is HAProxy running?)",
    "notool": "cannot be reached: the host has neither python3 nor socat",
}


class HAProxyError(Exception):
    """A runtime API failure: its message is the step's."""


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    socket: str = Field(DEFAULT_SOCKET, description="path of the runtime API socket (`stats socket` in haproxy.cfg)")


class ServerArgs(_Args):
    """Put a backend server in a state (and weight), as community.general.haproxy does."""

    state: Literal["enabled", "disabled", "drain"] = Field(description="enabled (ready), disabled (maint) or drain")
    host: str = Field(description="the server's name in the backend")
    backend: str | None = Field(None, description="the backend; default: every backend that has the server")
    weight: str | None = Field(None, description="new weight: a number (0-256) or a percentage of the initial weight")
    shutdown_sessions: bool = Field(False, description="disabled: end the server's sessions at once")
    drain: bool = Field(False, description="disabled: drain first and wait until no session is left "
                        "(at most wait_retries x wait_interval), then disable")
    wait: bool = Field(False, description="wait until the status is UP, not UP 1/2 (enabled), MAINT (disabled) "
                       "or the server is drained (drain)")
    wait_retries: int = Field(25, ge=1, description="how many times to look when waiting")
    wait_interval: Seconds = Field(5.0, gt=0, description="time between two looks (5, 0.5s, 1m)")
    fail_on_not_found: bool = Field(True, description="fail when the backend or server does not exist "
                                    "(Ansible's default is false)")

    @field_validator("weight", mode="before")
    @classmethod
    def _weight(cls, value: Any) -> Any:
        if value is None:
            return None
        text = str(value).strip()
        number = text.removesuffix("%")
        if not number.isdigit() or (not text.endswith("%") and int(number) > 256):
            raise ValueError(f"weight must be a number from 0 to 256 or a percentage like 50%, not {value!r}")
        return text


@dataclass
class Server:
    """One server as the runtime API shows it."""

    backend: str
    name: str
    admin: int  # srv_admin_state bits
    weight: int  # srv_uweight (current)
    iweight: int  # srv_iweight (initial, from the configuration)
    status: str = ""  # `show stat` status word: UP, DOWN, MAINT, DRAIN, no check, ...
    sessions: int = 0  # current sessions (scur)

    @property
    def state(self) -> str:
        """What the operator set: enabled, drain or disabled (Ansible's words)."""
        if self.admin & _FMAINT:
            return "disabled"
        return "drain" if self.admin & _FDRAIN else "enabled"

    def as_data(self) -> dict[str, Any]:
        return {"state": self.state, "weight": self.weight, "status": self.status, "sessions": self.sessions}


def _api(ctx: ActionContext, socket: str, commands: list[str]) -> list[str]:
    """Run runtime API commands on the host in one round trip; one output per command."""
    if not commands:
        return []
    res = ctx.connection().run(["sh", "-c", _SH, "sh", socket, _PY], stdin="\n".join(commands).encode() + b"\n",
                               timeout=ctx.deadline_left(_API_TIMEOUT * len(commands)),
                               cancel=ctx.cancelled, become=ctx.become)
    if _ERR in res.stdout:
        why = res.stdout.split(_ERR, 1)[1].split("\n", 1)[0].strip()
        raise HAProxyError(f"{ctx.host.name}: the HAProxy socket {socket} {_WHY.get(why, why)}")
    parts = res.stdout.split("\n" + _END + "\n")
    if res.rc != 0 or len(parts) < len(commands):
        detail = (res.stderr or res.stdout).strip().splitlines()[-1:] or [f"rc={res.rc}"]
        raise HAProxyError(f"{ctx.host.name}: the HAProxy runtime API did not answer: {detail[0][:200]}")
    return [p.strip("\n") for p in parts[: len(commands)]]


def read_servers(ctx: ActionContext, socket: str) -> list[Server]:
    """Every server of every backend: admin state and weights, status and sessions."""
    state, stat = _api(ctx, socket, ["show servers state", "show stat"])
    if state.startswith(("Unknown command", "Permission denied")):
        raise HAProxyError(f"{ctx.host.name}: the HAProxy socket {socket} refused `show servers state`: "
                           f"{state.splitlines()[0][:200]} (the socket needs `level admin`)")
    servers: dict[tuple[str, str], Server] = {}
    for line in state.splitlines():
        f = line.split()
        if len(f) > 8 and not line.startswith("#") and f[0].isdigit():
            servers[(f[1], f[3])] = Server(f[1], f[3], int(f[6]), int(f[7]), int(f[8]))
    for line in stat.splitlines():
        f = line.split(",")
        if len(f) > 18 and (f[0], f[1]) in servers:
            servers[(f[0], f[1])].status = f[17]
            servers[(f[0], f[1])].sessions = int(f[4]) if f[4].isdigit() else 0
    return list(servers.values())


def _not_found(what: str, name: str, known: list[str], where: str) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f' (did you mean "{close[0]}"?)' if close else ""
    listed = ", ".join(sorted(set(known))[:20]) or "none"
    return f'no {what} "{name}" {where}{hint}; there are: {listed}'


def select(servers: list[Server], host: str, backend: str | None, where: str) -> tuple[list[Server], str]:
    """The servers a step means, or ([], why not) with a did-you-mean from the live list."""
    if backend is not None:
        backends = sorted({s.backend for s in servers})
        if backend not in backends:
            return [], _not_found("backend", backend, backends, where)
        servers = [s for s in servers if s.backend == backend]
        where = f"in backend {backend} {where}"
    hits = [s for s in servers if s.name == host]
    if not hits:
        return [], _not_found("server", host, [s.name for s in servers], where)
    return hits, ""


def _target_weight(server: Server, weight: str | None) -> int:
    if weight is None:
        return server.weight
    if weight.endswith("%"):
        return min(256, server.iweight * int(weight[:-1]) // 100)
    return int(weight)


_SET = {"enabled": "ready", "drain": "drain", "disabled": "maint"}
# What `wait` waits for. `enabled` waits for the status word `UP` itself: a server leaving
# maintenance shows `UP 1/2` (HAProxy's "UP, going down": no check has passed yet) and goes
# DOWN at the next failed check. community.general's wait_until_status tests `"UP" in
# status` and returns there; opsbook waits for a check to confirm it (docs/language.md). A
# server without checks never says UP: `no check` is as far as it goes. A drained server
# whose checks fail says DOWN, not DRAIN: its admin state says it is drained, and it takes
# no new traffic either way.
_WAIT_FOR: dict[str, tuple[str, Any]] = {
    "enabled": ("UP", lambda s: s.status in ("UP", "no check")),
    "drain": ("DRAIN", lambda s: bool(s.admin & _DRAIN_BITS) and not s.status.startswith("UP")),
    "disabled": ("MAINT", lambda s: s.status.startswith("MAINT")),
}


@dataclass
class Change:
    """What a step does to one server."""

    server: Server
    state: str
    weight: int

    @property
    def commands(self) -> list[str]:
        ref = f"{self.server.backend}/{self.server.name}"
        out = []
        if self.state != self.server.state:
            out.append(f"set server {ref} state {_SET[self.state]}")
        if self.weight != self.server.weight:
            out.append(f"set server {ref} weight {self.weight}")
        return out

    def describe(self) -> str:
        ref = f"{self.server.backend}/{self.server.name}"
        parts = []
        if self.state != self.server.state:
            parts.append(f"{self.server.state} -> {self.state}")
        if self.weight != self.server.weight:
            parts.append(f"weight {self.server.weight} -> {self.weight}")
        return f"{ref} " + (", ".join(parts) if parts else f"already {self.state}, weight {self.weight}")


def _apply(ctx: ActionContext, socket: str, commands: list[str]) -> None:
    for cmd, out in zip(commands, _api(ctx, socket, commands), strict=True):
        if out.strip() and not cmd.startswith("shutdown sessions"):
            raise HAProxyError(f"{ctx.host.name}: HAProxy refused `{cmd}`: {out.strip().splitlines()[0][:200]}")


def _wait(ctx: ActionContext, args: ServerArgs, refs: set[tuple[str, str]], done: Any, what: str) -> list[Server]:
    """Look up to wait_retries times, wait_interval apart, until done(server) for every server."""
    for attempt in range(args.wait_retries):
        now = [s for s in read_servers(ctx, args.socket) if (s.backend, s.name) in refs]
        late = [s for s in now if not done(s)]
        if not late:
            return now
        if attempt + 1 < args.wait_retries and not ctx.sleep(args.wait_interval):
            break
    shown = ", ".join(f"{s.backend}/{s.name} is {s.status} with {s.sessions} session(s)" for s in late)
    raise HAProxyError(f"{ctx.host.name}: not {what} after {args.wait_retries} look(s) "
                       f"{args.wait_interval:g}s apart: {shown}")


def _inverse(args: Any, result: Result) -> tuple[str, dict[str, Any]] | None:
    if not result.changed:
        return None
    servers = [{"backend": s["backend"], "host": s["host"], "state": s["before"]["state"],
                "weight": s["before"]["weight"]} for s in result.data.get("servers", []) if s.get("changed")]
    return ("haproxy.restore", {"socket": args.socket, "servers": servers}) if servers else None


@plugin.action(check=True, idempotent=True, inverse=_inverse, mutates=True,
               disrupts=arg_in("state", ("disabled", "drain")), data=["servers", "backend", "state_before",
                                                                      "weight_before", "state_after", "weight_after"])
def server(ctx: ActionContext, args: ServerArgs) -> Result:
    """Enable, disable or drain a server and set its weight (community.general.haproxy)."""
    return _failures_as_results(ctx, lambda: _server(ctx, args))


def _failures_as_results(ctx: ActionContext, fn: Any) -> Result:
    try:
        result: Result = fn()
    except TimeoutError as exc:
        return Result(status=Status.TIMED_OUT, msg=f"{ctx.host.name}: {exc}")
    except (HAProxyError, OpsbookError, OSError) as exc:
        text = str(exc)
        return Result.failed(text if text.startswith(ctx.host.name) else f"{ctx.host.name}: {text}")
    return result


def _server(ctx: ActionContext, args: ServerArgs) -> Result:
    servers, why = select(read_servers(ctx, args.socket), args.host, args.backend, f"on {ctx.host.name}")
    if not servers:
        return Result.failed(why) if args.fail_on_not_found else Result.ok(msg=why, data={"servers": []})
    changes = [Change(s, args.state, _target_weight(s, args.weight)) for s in servers]
    commands = [c for ch in changes for c in ch.commands]
    if args.state == "disabled" and args.shutdown_sessions and not args.drain:
        commands += [f"shutdown sessions server {s.backend}/{s.name}" for s in servers]
    changed = any(ch.commands for ch in changes)
    said = "; ".join(ch.describe() for ch in changes)
    if ctx.check_mode:
        return Result.ok(changed=changed, msg=("would set " if changed else "") + said,
                         data=_data(changes, servers))
    refs = {(s.backend, s.name) for s in servers}
    if args.state == "disabled" and args.drain and changed:
        _apply(ctx, args.socket, [f"set server {s.backend}/{s.name} state drain" for s in servers
                                  if s.state != "disabled"])
        _wait(ctx, args, refs, lambda s: s.sessions == 0, "drained of sessions")
    _apply(ctx, args.socket, commands)
    after = read_servers(ctx, args.socket)
    if args.wait:
        word, done = _WAIT_FOR[args.state]
        after = _wait(ctx, args, refs, done, word)
    now = {(s.backend, s.name): s for s in after}
    data = _data(changes, [now.get((s.backend, s.name), s) for s in servers])
    return Result.ok(changed=changed, msg=("set " if changed else "") + said, data=data)


def _data(changes: list[Change], after: list[Server]) -> dict[str, Any]:
    rows = []
    for ch, now in zip(changes, after, strict=True):
        rows.append({"backend": ch.server.backend, "host": ch.server.name, "changed": bool(ch.commands),
                     "before": ch.server.as_data(), "after": {**now.as_data(), "state": ch.state,
                                                              "weight": ch.weight}})
    first = rows[0]
    return {"servers": rows, "backend": first["backend"], "state_before": first["before"]["state"],
            "weight_before": first["before"]["weight"], "state_after": first["after"]["state"],
            "weight_after": first["after"]["weight"]}


class Saved(BaseModel):
    """One server's admin state and weight to put back."""

    model_config = ConfigDict(extra="forbid")

    backend: str
    host: str
    state: Literal["enabled", "disabled", "drain"]
    weight: int = Field(ge=0, le=256)


class RestoreArgs(_Args):
    """Put servers back in the admin state and weight they had (haproxy.server's rollback)."""

    servers: list[Saved] = Field(description="backend, host, state, weight of each server")


@plugin.action(check=True, idempotent=True, mutates=True, data=["servers"])
def restore(ctx: ActionContext, args: RestoreArgs) -> Result:
    """Put servers back in the state and weight they had before a haproxy.server step."""
    return _failures_as_results(ctx, lambda: _restore(ctx, args))


def _restore(ctx: ActionContext, args: RestoreArgs) -> Result:
    live = read_servers(ctx, args.socket)
    changes = []
    for saved in args.servers:
        found, why = select(live, saved.host, saved.backend, f"on {ctx.host.name}")
        if not found:
            return Result.failed(why)
        changes.append(Change(found[0], saved.state, saved.weight))
    commands = [c for ch in changes for c in ch.commands]
    said = "; ".join(ch.describe() for ch in changes)
    if commands and not ctx.check_mode:
        _apply(ctx, args.socket, commands)
    verb = ("would set " if ctx.check_mode else "set ") if commands else ""
    return Result.ok(changed=bool(commands), msg=verb + said, data={"servers": [ch.describe() for ch in changes]})


plugin.ansible_module("community.general.haproxy", "server")
plugin.ansible_module("haproxy", "server")

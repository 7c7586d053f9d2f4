"""haproxy.server / haproxy.restore against the lab's balancer lb1 (its runtime API socket)."""

from __future__ import annotations

import re

import pytest
from opsbook.cancel import CancelToken
from opsbook.plugin import ActionContext, Become, Result, Status
from opsbook_lab.pytest_plugin import wait_for
from opsbook_plugins.haproxy import plugin

pytestmark = [pytest.mark.lab, pytest.mark.slow]

SOCKET = "/run/haproxy/admin.sock"


def act(lb, action: str, args: dict, *, check: bool = False, become: Become | None = None) -> Result:
    spec = plugin.actions[action]
    ctx = ActionContext(host=lb.host, step_name=f"test {action}", check_mode=check, cancelled=CancelToken(),
                        become=become, run_id="test", _connect=lambda _host: lb.conn)
    return spec.fn(ctx, spec.parse_args(args))


def admin(lb, server: str) -> tuple[int, int]:
    """(srv_admin_state, weight) of web/<server> as `show servers state` says."""
    out = lb.sh("lb-backend raw 'show servers state web'")
    fields = next(f for f in (line.split() for line in out.splitlines()) if len(f) > 8 and f[3] == server)
    return int(fields[6]), int(fields[7])


@pytest.fixture
def lb(node):
    lb1 = node("lb1")
    yield lb1
    for name in ("web1", "web2"):
        lb1.sh(f"lb-backend ready {name}; lb-backend weight {name} 1")


def test_drain_check_then_real_then_idempotent_then_rolled_back(lb):
    args = {"state": "drain", "host": "web1", "socket": SOCKET, "wait": True, "wait_interval": 0.5}
    dry = act(lb, "server", args, check=True)
    assert dry.status is Status.OK and dry.changed, dry.msg
    assert dry.msg == "would set web/web1 enabled -> drain"
    assert admin(lb, "web1")[0] & 0x08 == 0, "check mode drained the server"

    done = act(lb, "server", args)
    assert done.status is Status.OK and done.changed, done.msg
    assert admin(lb, "web1")[0] & 0x08
    row = done.data["servers"][0]
    assert (row["backend"], row["host"], row["before"]["state"], row["after"]["state"]) == \
        ("web", "web1", "enabled", "drain")
    assert done.data["state_before"] == "enabled" and done.data["weight_before"] == 1
    assert row["after"]["status"].startswith(("DRAIN", "DOWN")), row

    again = act(lb, "server", args)
    assert again.status is Status.OK and not again.changed and "already drain" in again.msg

    name, undo = plugin.actions["server"].inverse(plugin.actions["server"].parse_args(args), done)
    assert name == "haproxy.restore"
    back = act(lb, "restore", undo)
    assert back.changed and back.msg == "set web/web1 drain -> enabled"
    assert admin(lb, "web1")[0] & 0x08 == 0


def test_weight_percentage_and_its_rollback(lb):
    lb.sh("lb-backend weight web2 10")
    args = {"state": "enabled", "host": "web2", "backend": "web", "weight": "50%", "socket": SOCKET}
    done = act(lb, "server", args)
    assert done.changed and done.data["weight_before"] == 10 and done.data["weight_after"] == 0, done.data
    assert admin(lb, "web2")[1] == 0  # 50% of the configured weight 1, rounded down
    _, undo = plugin.actions["server"].inverse(plugin.actions["server"].parse_args(args), done)
    assert act(lb, "restore", undo).changed
    assert admin(lb, "web2")[1] == 10
    plain = act(lb, "server", {**args, "weight": 3})
    assert plain.changed and admin(lb, "web2")[1] == 3


def test_disable_with_wait_then_enable_with_wait(lb):
    off = act(lb, "server", {"state": "disabled", "host": "web2", "socket": SOCKET, "wait": True,
                              "wait_interval": 0.5, "shutdown_sessions": True})
    assert off.status is Status.OK and off.changed, off.msg
    assert off.data["servers"][0]["after"]["status"].startswith("MAINT")
    assert admin(lb, "web2")[0] & 0x01
    on = act(lb, "server", {"state": "enabled", "host": "web2", "socket": SOCKET, "wait": True,
                             "wait_interval": 0.5, "wait_retries": 40})
    assert on.status is Status.OK and on.changed, on.msg
    # Leaving maintenance, web2 says `UP 1/2` until its first check passes (rise 2 in the
    # lab's haproxy.cfg): the wait goes on until it says UP.
    assert on.data["servers"][0]["after"]["status"] == "UP", on.data


def test_enable_with_wait_is_not_fooled_by_up_1_of_2_on_a_dead_server(lb):
    """A server leaving maintenance says `UP 1/2` before any check ran; one that does not
    answer goes DOWN at its next check. `wait` does not take UP 1/2 for UP (community.general
    does: it tests `"UP" in status`)."""
    address = lb.sh("lb-backend raw 'show servers state web'")
    fields = next(f for f in (line.split() for line in address.splitlines()) if len(f) > 18 and f[3] == "web2")
    addr, port = fields[4], fields[18]
    lb.sh("lb-backend maint web2 && lb-backend addr web2 127.0.0.1 9")  # nothing listens on lb1:9
    try:
        on = act(lb, "server", {"state": "enabled", "host": "web2", "socket": SOCKET, "wait": True,
                                 "wait_interval": 0.5, "wait_retries": 8})
        assert on.status is Status.FAILED, (on.msg, on.data)
        assert on.msg.startswith("lb1: not UP after 8 look(s) 0.5s apart: web/web2 is DOWN"), on.msg
    finally:
        lb.sh(f"lb-backend addr web2 {addr} {port} && lb-backend ready web2")
        wait_for("web2 UP again on lb1", lambda: re.search(r"^web2 UP \d+ ", lb.sh("lb-backend list"), re.M))


def test_disable_with_drain_waits_for_no_sessions(lb):
    off = act(lb, "server", {"state": "disabled", "host": "web1", "socket": SOCKET, "drain": True,
                              "wait_interval": 0.5})
    assert off.status is Status.OK and off.changed, off.msg
    assert admin(lb, "web1")[0] & 0x01 and off.data["servers"][0]["after"]["sessions"] == 0


def test_unknown_server_and_backend_say_did_you_mean(lb):
    typo = act(lb, "server", {"state": "drain", "host": "wbe1", "socket": SOCKET})
    assert typo.status is Status.FAILED
    assert typo.msg.startswith('no server "wbe1" on lb1 (did you mean "web1"?); there are: web1, web2'), typo.msg
    backend = act(lb, "server", {"state": "drain", "host": "web1", "backend": "wbe", "socket": SOCKET})
    assert backend.status is Status.FAILED and 'no backend "wbe" on lb1 (did you mean "web"?)' in backend.msg
    quiet = act(lb, "server", {"state": "drain", "host": "web9", "socket": SOCKET, "fail_on_not_found": False})
    assert quiet.status is Status.OK and not quiet.changed and 'no server "web9"' in quiet.msg


def test_a_missing_socket_and_a_denied_one_are_named(lb, node, ops_become):
    missing = act(lb, "server", {"state": "drain", "host": "web1", "socket": "/run/haproxy/nope.sock"})
    assert missing.status is Status.FAILED
    assert missing.msg == ("lb1: the HAProxy socket /run/haproxy/nope.sock does not exist "
                           "(set socket: to the path of `stats socket` in haproxy.cfg)")
    ops = node("lb1", user="ops")
    denied = act(ops, "server", {"state": "drain", "host": "web1", "socket": SOCKET}, check=True)
    assert denied.status is Status.FAILED and "permission denied (use become: true" in denied.msg, denied.msg
    allowed = act(ops, "server", {"state": "drain", "host": "web1", "socket": SOCKET}, check=True, become=ops_become)
    assert allowed.status is Status.OK and allowed.changed, allowed.msg


def test_without_python3_the_helper_uses_socat(lb):
    lb.sh("mv /usr/bin/python3 /usr/bin/python3.hidden")
    try:
        done = act(lb, "server", {"state": "drain", "host": "web1", "socket": SOCKET})
    finally:
        lb.sh("mv /usr/bin/python3.hidden /usr/bin/python3")
    assert done.status is Status.OK and done.changed, done.msg
    assert admin(lb, "web1")[0] & 0x08

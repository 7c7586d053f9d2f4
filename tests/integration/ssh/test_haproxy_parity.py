"""haproxy.server against Ansible's community.general.haproxy on the lab's balancer lb1: from
the same starting state, both report the same `changed` and leave the same admin state and
weight (fail_on_not_found's default differs: docs/language.md, row haproxy-not-found)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import ansible_core
import pytest
from opsbook.cancel import CancelToken
from opsbook.plugin import ActionContext, Status
from opsbook_plugins.haproxy import plugin

pytestmark = [pytest.mark.lab, pytest.mark.slow]

SOCKET = "/run/haproxy/admin.sock"


@pytest.fixture
def ansible(lab_info, tmp_path):
    """ad-hoc `ansible lb1 -m community.general.haproxy -a ARGS` -> (status word, result)."""
    python = ansible_core.ansible_python()
    collections = ansible_core.community_general()
    home = tmp_path / "ansible-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_HOME=str(home), ANSIBLE_LOCAL_TEMP=str(home / "tmp"),
               ANSIBLE_HOST_KEY_CHECKING="0", ANSIBLE_NOCOLOR="1", ANSIBLE_DEPRECATION_WARNINGS="0",
               PYTHONWARNINGS="ignore", LC_ALL="C.UTF-8")

    def run(args: dict) -> tuple[str, dict]:
        argv = [str(Path(python).parent / "ansible"), "lb1", "-i", lab_info.inventory, "-o",
                "-m", "community.general.haproxy", "-a", json.dumps(args),
                "-e", "ansible_python_interpreter=/usr/bin/python3"]
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=180, check=False)
        line = next((ln for ln in done.stdout.splitlines() if ln.startswith("lb1 | ")), "")
        assert line, done.stdout + done.stderr
        word, _, rest = line[len("lb1 | "):].partition(" => ")
        return word.split()[0], json.loads(rest) if rest.strip().startswith("{") else {}

    return run


def opsbook(lb, args: dict) -> tuple[str, object]:
    spec = plugin.actions["server"]
    ctx = ActionContext(host=lb.host, step_name="parity", cancelled=CancelToken(), _connect=lambda _h: lb.conn)
    result = spec.fn(ctx, spec.parse_args(args))
    word = "FAILED!" if result.status is Status.FAILED else "CHANGED" if result.changed else "SUCCESS"
    return word, result


def server(lb, name: str = "web1") -> tuple[int, int]:
    """(admin state & (forced maint | forced drain), weight) of web/<name>."""
    out = lb.sh("lb-backend raw 'show servers state web'")
    f = next(f for f in (line.split() for line in out.splitlines()) if len(f) > 8 and f[3] == name)
    return int(f[6]) & 0x09, int(f[7])


def reset(lb, state: str = "ready", weight: int = 1) -> None:
    lb.sh(f"lb-backend {state} web1 && lb-backend weight web1 {weight}")


CASES = [  # (start state, start weight, arguments)
    ("ready", 1, {"state": "drain"}),
    ("drain", 1, {"state": "drain"}),
    ("ready", 1, {"state": "disabled"}),
    ("maint", 1, {"state": "disabled"}),
    ("maint", 1, {"state": "enabled"}),
    ("drain", 1, {"state": "enabled"}),  # `enable server` (Ansible) clears a drain too, as `state ready` does
    ("ready", 10, {"state": "enabled", "weight": "50%"}),
    ("ready", 1, {"state": "enabled", "weight": "7"}),
    ("ready", 1, {"state": "disabled", "shutdown_sessions": True}),
]


@pytest.fixture
def lb(node):
    lb1 = node("lb1")
    yield lb1
    reset(lb1)


@pytest.mark.parametrize(("start", "weight", "args"), CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_same_change_and_same_end_state_as_community_general(lb, ansible, start, weight, args):
    full = {"host": "web1", "backend": "web", "socket": SOCKET, **args}
    reset(lb, start, weight)
    theirs, data = ansible(full)
    after_ansible = server(lb)
    reset(lb, start, weight)
    ours, result = opsbook(lb, full)
    assert ours == theirs, (theirs, data, result)
    assert server(lb) == after_ansible


def test_unknown_server_fails_in_both_with_fail_on_not_found(lb, ansible):
    full = {"host": "wbe1", "backend": "web", "socket": SOCKET, "state": "drain", "fail_on_not_found": True}
    theirs, _ = ansible(full)
    ours, result = opsbook(lb, full)
    assert theirs == ours == "FAILED!", result.msg
    assert 'did you mean "web1"' in result.msg

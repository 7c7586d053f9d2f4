"""A lower memory limit is refused when the container already uses nearly that much (the
kernel would OOM-kill it), also when it is a rollback putting an old limit back (issue 28,
item 2)."""

from __future__ import annotations

import pytest
from opsbook.plugin import HostInfo, Status
from opsbook_lab.pytest_plugin import wait_for
from opsbook_plugins import docker as dockerplugin
from opsbook_plugins.docker.update import UpdateArgs

pytestmark = pytest.mark.lab


def _used_mib(sandbox, name: str) -> float:
    raw = sandbox.client.api.stats(name, stream=False, one_shot=True)
    return dockerplugin.stats_summary(raw)["memory_usage"] / 1048576


def test_lowering_the_memory_limit_below_what_is_in_use_is_refused(sandbox, run):
    box = sandbox.server(mem_limit="256m", memswap_limit="256m")
    obj = sandbox.client.containers.get(box.name)
    obj.exec_run(["python3", "-c", "b = bytearray(100 * 2**20); b[::4096] = b'x' * len(b[::4096]); "
                  "import time; time.sleep(600)"], detach=True)
    wait_for("the container to hold 100 MiB", lambda: _used_mib(sandbox, box.name) > 100, timeout=30)
    host = HostInfo("app", {"docker_host": sandbox.docker_host, "docker_container": box.name})
    refused = run("update", {"memory": "96m"}, host=host)
    assert refused.status is Status.FAILED and not refused.changed
    assert refused.msg.startswith(f"refusing to set {box.name}'s memory limit to 96 MiB: it uses ")
    assert "set force: true" in refused.msg
    assert sandbox.client.api.inspect_container(box.name)["HostConfig"]["Memory"] == 256 * 2**20
    checked = run("update", {"memory": "96m"}, host=host, check_mode=True)
    assert checked.status is Status.FAILED, "check mode says it too"
    room = run("update", {"memory": "200m"}, host=host)
    assert room.status is Status.OK and room.changed
    # its rollback (back to 256m) raises the limit: never refused
    name, back = dockerplugin.plugin.actions["update"].inverse(UpdateArgs(memory="200m"), room)
    undone = run("update", back, host=host)
    assert undone.status is Status.OK and sandbox.client.api.inspect_container(box.name)["HostConfig"]["Memory"] \
        == 256 * 2**20

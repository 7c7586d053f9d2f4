"""docker.recreate and docker.run against the lab's dockerd (issue 28, item 1): what a person
configured survives a recreate, an image rolls back exactly, a failed recreate puts the old
container back, and a run's rollback undoes both actions."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import docker.types
import pytest
from opsbook.plugin import HostInfo, Status
from opsbook_plugins.docker.recreate import PREVIOUS_IMAGE_ID
from opsbook_test_sandbox import LABEL, RUN_ID, SERVER_SCRIPT

pytestmark = pytest.mark.lab

HEALTH = {"test": ["CMD-SHELL", "test -f /srv/www/healthz"], "interval": 500_000_000, "retries": 3}


@pytest.fixture
def volume(docker_lab):
    client = docker_lab[0]
    name = f"opsbook-t-{RUN_ID}-{uuid.uuid4().hex[:6]}"
    client.volumes.create(name, labels={LABEL: RUN_ID})
    yield name
    for c in client.api.containers(all=True, filters={"volume": name}):
        client.api.remove_container(c["Id"], force=True)
    client.volumes.get(name).remove(force=True)


def _host(sandbox, name: str) -> HostInfo:
    return HostInfo("app", {"docker_host": sandbox.docker_host, "docker_container": name})


def _configured_box(sandbox, volume):
    box = sandbox.server(environment={"MODE": "a", "KEEP": "1"}, labels={"team": "web"},
                         restart_policy={"Name": "unless-stopped"}, healthcheck=HEALTH,
                         volumes={volume: {"bind": "/data", "mode": "rw"}},
                         mounts=[docker.types.Mount(target="/anon", source=None, type="volume")])
    api = sandbox.client.api
    address = box.ip.rsplit(".", 1)[0] + ".77"
    api.disconnect_container_from_network(box.id, sandbox.network)
    api.connect_container_to_network(box.id, sandbox.network, aliases=["web-alias"], ipv4_address=address)
    assert sandbox.client.containers.get(box.name).exec_run(
        ["sh", "-c", "echo kept > /data/f && echo anon > /anon/f"]).exit_code == 0
    return box, address


def _facts(sandbox, name: str) -> dict:
    attrs = sandbox.client.api.inspect_container(name)
    net = attrs["NetworkSettings"]["Networks"][sandbox.network]
    env = dict(e.split("=", 1) for e in attrs["Config"]["Env"])
    anon = [m["Name"] for m in attrs["Mounts"] if m["Destination"] == "/anon"]
    return {"id": attrs["Id"], "image": attrs["Image"], "env": env, "labels": attrs["Config"]["Labels"],
            "restart": attrs["HostConfig"]["RestartPolicy"]["Name"], "health": attrs["Config"].get("Healthcheck"),
            "ip": (net.get("IPAMConfig") or {}).get("IPv4Address"), "aliases": net["Aliases"], "anon": anon,
            "binds": attrs["HostConfig"]["Binds"], "running": attrs["State"]["Running"]}


def test_a_recreate_keeps_networks_aliases_addresses_volumes_policy_and_health(sandbox, volume, run):
    box, address = _configured_box(sandbox, volume)
    before = _facts(sandbox, box.name)
    checked = run("recreate", {"env": {"MODE": "b"}}, host=_host(sandbox, box.name), check_mode=True)
    assert checked.status is Status.OK and checked.changed and checked.msg.startswith("would recreate")
    assert _facts(sandbox, box.name)["id"] == before["id"], "check mode changed nothing"
    result = run("recreate", {"env": {"MODE": "b"}}, host=_host(sandbox, box.name))
    assert result.status is Status.OK, result.msg
    after = _facts(sandbox, box.name)
    sandbox.created.append(after["id"])
    assert after["id"] != before["id"] and after["running"]
    assert after["env"] == {**before["env"], "MODE": "b"}
    assert after["ip"] == address and "web-alias" in after["aliases"]
    assert (after["labels"]["team"], after["restart"], after["health"]) == ("web", "unless-stopped", before["health"])
    assert after["anon"] == before["anon"] and after["binds"][0].startswith(f"{volume}:/data")
    obj = sandbox.client.containers.get(box.name)
    assert obj.exec_run(["cat", "/data/f", "/anon/f"]).output == b"kept\nanon\n"
    assert sandbox.client.api.containers(all=True, filters={"name": f"{box.name}-opsbook-old"}) == []
    assert result.data["undo"] == {"env": {"MODE": "a"}}


def test_an_image_rolls_back_to_the_exact_previous_one(sandbox, run):
    box = sandbox.server()
    original = _facts(sandbox, box.name)["image"]
    tag = f"opsbook-t-{RUN_ID}:v2"
    image = sandbox.client.containers.get(box.name).commit(repository=tag.split(":")[0], tag="v2")
    try:
        moved = run("recreate", {"image": tag}, host=_host(sandbox, box.name))
        assert moved.status is Status.OK, moved.msg
        now = _facts(sandbox, box.name)
        sandbox.created.append(now["id"])
        assert now["image"] == image.id and now["labels"][PREVIOUS_IMAGE_ID] == original
        back = run("recreate", {"image": "previous"}, host=_host(sandbox, box.name))
        assert back.status is Status.OK, back.msg
        again = _facts(sandbox, box.name)
        sandbox.created.append(again["id"])
        assert again["image"] == original and "(previous)" in back.msg
        twice = run("recreate", {"image": "previous"}, host=_host(sandbox, box.name))
        assert twice.status is Status.FAILED and "no earlier image recorded" in twice.msg, twice.msg
        assert _facts(sandbox, box.name)["image"] == original, "a second rollback never toggles to the bad image"
        missing = run("recreate", {"image": "opsbook-t-nope:1"}, host=_host(sandbox, box.name))
        assert missing.status is Status.FAILED and "no image opsbook-t-nope:1" in missing.msg
        assert _facts(sandbox, box.name)["id"] == again["id"], "a missing image changes nothing"
    finally:
        for c in sandbox.client.api.containers(all=True, filters={"ancestor": image.id}):
            sandbox.client.api.remove_container(c["Id"], force=True)
        sandbox.client.images.remove(image.id, force=True)


def test_a_recreate_that_does_not_come_up_puts_the_old_container_back(sandbox, run):
    box = sandbox.server(script='if [ "$FAIL" = 1 ]; then echo broken config >&2; exit 3; fi\n' + SERVER_SCRIPT)
    before = _facts(sandbox, box.name)
    result = run("recreate", {"env": {"FAIL": "1"}, "timeout": 20}, host=_host(sandbox, box.name))
    assert result.status is Status.FAILED
    assert "did not come up" in result.msg and "the old container is back and running" in result.msg
    after = _facts(sandbox, box.name)
    assert after["id"] == before["id"] and after["running"]


def _cli(tmp_path, sandbox, runbook: str, name: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "inv.ini").write_text(f"app ansible_connection=local docker_host={sandbox.docker_host} "
                                      f"docker_container={name}\n")
    (tmp_path / "rb.yaml").write_text(runbook)
    env = {**os.environ, "OPSBOOK_JOURNAL": str(tmp_path / "j.db"), "OPSBOOK_RUNS_DIR": str(tmp_path / "runs")}
    return subprocess.run([sys.executable, "-m", "opsbook", "run", str(tmp_path / "rb.yaml"), "-i",
                           str(tmp_path / "inv.ini"), "--format", "text"], capture_output=True, text=True,
                          env=env, timeout=300, stdin=subprocess.DEVNULL)


def test_a_failed_run_undoes_a_recreate_and_a_docker_run(sandbox, run, tmp_path):
    box = sandbox.server(environment={"MODE": "a"})
    extra = f"opsbook-t-{RUN_ID}-{uuid.uuid4().hex[:6]}"
    image = sandbox.image
    done = _cli(tmp_path, sandbox, f"""opsbook: 1
name: recreate-then-fail
hosts: app
steps:
  - name: switch mode
    docker.recreate: {{env: {{MODE: b}}}}
  - name: start a helper
    docker.run: {{name: {extra}, image: "{image}", command: [sleep, "300"], labels: {{{LABEL}: "{RUN_ID}"}}}}
  - name: verify
    local.command: "false"
""", box.name)
    assert done.returncode != 0
    assert "rolled back" in done.stdout + done.stderr or "rollback" in (done.stdout + done.stderr).lower()
    after = _facts(sandbox, box.name)
    sandbox.created.append(after["id"])
    assert after["env"]["MODE"] == "a" and after["running"]
    assert sandbox.client.api.containers(all=True, filters={"name": extra}) == []


def test_docker_run_refuses_a_name_in_use_by_another_image(sandbox, run):
    box = sandbox.server()
    result = run("run", {"name": box.name, "image": "busybox:latest"}, host=_host(sandbox, box.name))
    assert result.status is Status.FAILED and f"a container named {box.name} exists" in result.msg

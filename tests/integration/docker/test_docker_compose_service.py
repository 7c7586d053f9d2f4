"""docker.service on a compose project's containers, found by their compose labels, with no
compose binary (issue 28, item 1): restart, stop/start, a rolling recreate, scale out and in,
and the inverses."""

from __future__ import annotations

import uuid

import pytest
from opsbook.plugin import HostInfo, Status
from opsbook_plugins import docker as dockerplugin
from opsbook_plugins.docker.compose import NUMBER, PROJECT, SERVICE

pytestmark = pytest.mark.lab


@pytest.fixture
def project(sandbox):
    name = f"opsbook-t-{uuid.uuid4().hex[:6]}"
    boxes = [sandbox.server(labels={PROJECT: name, SERVICE: "web", NUMBER: str(n)}) for n in (1, 2)]
    yield name, boxes
    for c in sandbox.client.api.containers(all=True, filters={"label": f"{PROJECT}={name}"}):
        sandbox.client.api.remove_container(c["Id"], force=True)


def _members(sandbox, project: str) -> dict[str, dict]:
    listed = sandbox.client.api.containers(all=True, filters={"label": f"{PROJECT}={project}"})
    return {c["Names"][0].lstrip("/"): sandbox.client.api.inspect_container(c["Id"]) for c in listed}


def _host(sandbox) -> HostInfo:
    return HostInfo("docker", {"docker_host": sandbox.docker_host})


def test_restart_stop_and_start_every_container_of_the_service(sandbox, run, project):
    name, boxes = project
    before = {n: a["State"]["StartedAt"] for n, a in _members(sandbox, name).items()}
    done = run("service", {"project": name, "service": "web", "state": "restarted"}, host=_host(sandbox))
    assert done.status is Status.OK and done.changed, done.msg
    after = {n: a["State"]["StartedAt"] for n, a in _members(sandbox, name).items()}
    assert all(after[n] != before[n] for n in before)
    stopped = run("service", {"project": name, "service": "web", "state": "stopped"}, host=_host(sandbox))
    assert stopped.changed and not any(a["State"]["Running"] for a in _members(sandbox, name).values())
    spec = dockerplugin.plugin.actions["service"]
    action, back = spec.inverse(spec.parse_args({"project": name, "service": "web", "state": "stopped"}), stopped)
    assert back["state"] == "started"
    started = run("service", back, host=_host(sandbox))
    assert started.status is Status.OK and all(a["State"]["Running"] for a in _members(sandbox, name).values())
    again = run("service", back, host=_host(sandbox))
    assert not again.changed and "already as asked" in again.msg


def test_a_rolling_recreate_and_a_scale_out_and_back(sandbox, run, project):
    name, boxes = project
    ids = {n: a["Id"] for n, a in _members(sandbox, name).items()}
    rolled = run("service", {"project": name, "service": "web", "state": "recreated"}, host=_host(sandbox))
    assert rolled.status is Status.OK, rolled.msg
    now = _members(sandbox, name)
    assert set(now) == set(ids) and all(now[n]["Id"] != ids[n] for n in ids)
    assert all(a["State"]["Running"] for a in now.values())
    checked = run("service", {"project": name, "service": "web", "scale": 3}, host=_host(sandbox), check_mode=True)
    assert checked.changed and "would scale 2 -> 3" in checked.msg and len(_members(sandbox, name)) == 2
    out = run("service", {"project": name, "service": "web", "scale": 3}, host=_host(sandbox))
    assert out.status is Status.OK, out.msg
    members = _members(sandbox, name)
    third = members[f"{name}-web-3"]
    assert third["State"]["Running"] and third["Config"]["Labels"][NUMBER] == "3"
    assert set(third["NetworkSettings"]["Networks"]) == {sandbox.network}
    spec = dockerplugin.plugin.actions["service"]
    _, back = spec.inverse(spec.parse_args({"project": name, "service": "web", "scale": 3}), out)
    assert back == {"project": name, "service": "web", "scale": 2}
    assert run("service", back, host=_host(sandbox)).status is Status.OK
    assert f"{name}-web-3" not in _members(sandbox, name) and len(_members(sandbox, name)) == 2


def test_an_unknown_service_says_where_it_looked(sandbox, run, project):
    name, _ = project
    missing = run("service", {"project": name, "service": "wbe", "state": "restarted"}, host=_host(sandbox))
    assert missing.status is Status.FAILED
    assert missing.msg.startswith(f"no container of service wbe in compose project {name} on ")

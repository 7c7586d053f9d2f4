"""Whole runbooks through the executor: the docker and probe plugins as a runbook uses them."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from opsbook.api import RunRequest, load_inventory_sources, make_plan, start_run
from opsbook.execute import RunOptions
from opsbook.journal import Journal
from opsbook.load import RunbookLoader
from opsbook.registry import Registry

pytestmark = pytest.mark.lab


@pytest.fixture
def run_book(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("OPSBOOK_RUNS_DIR", str(tmp_path / "runs"))
    registry = Registry.from_entry_points()
    journal = Journal(tmp_path / "journal.db")

    def run(runbook: str, inventory: str, **options):
        rb_path = tmp_path / "rb.yaml"
        rb_path.write_text(textwrap.dedent(runbook).lstrip())
        inv_path = tmp_path / "inventory.ini"
        inv_path.write_text(textwrap.dedent(inventory).lstrip())
        runbook_obj = RunbookLoader(registry).load_file(str(rb_path))
        plan = make_plan(runbook_obj, load_inventory_sources([str(inv_path)]), {})
        evidence = tmp_path / "evidence"
        request = RunRequest(
            inventory_sources=[str(inv_path)],
            options=RunOptions(evidence_dir=evidence, **options),
        )
        return start_run(plan, registry, journal, request), journal, evidence

    yield run
    journal.close()


def inventory_for(sandbox, app, peer) -> str:
    return f"""
        [apps]
        app ansible_connection=docker ansible_host={app.name} docker_host={sandbox.docker_host} http_port={app.http_port}
        [peers]
        peer ansible_connection=docker ansible_host={peer.name} docker_host={sandbox.docker_host}
    """


def connected(sandbox, name: str) -> bool:
    networks = sandbox.client.containers.get(name).attrs["NetworkSettings"]["Networks"]
    return sandbox.network in networks


def test_first_response_collects_evidence_isolates_and_rolls_back(sandbox, run_book):
    app, peer = sandbox.server(), sandbox.server(publish=False)
    summary, journal, evidence = run_book(
        f"""
        opsbook: 1
        name: isolate-sick-app
        hosts: app
        steps:
          - name: who
            ssh.command: hostname
            register: who
          - name: answers
            probe.http: {{url: "http://127.0.0.1:{{{{ http_port }}}}/healthz", status: 200, body_regex: "^ok"}}
          - name: logs
            docker.logs: {{lines: 20}}
          - name: resources
            docker.stats: {{}}
          - name: facts
            docker.inspect: {{}}
            register: facts
          - name: isolate
            docker.network: {{network: {sandbox.network}, state: disconnected}}
          - name: unreachable from its peer
            probe.tcp: {{host: {app.name}, port: 8080, state: closed, from: [peer], timeout: 2s}}
          - name: the fix fails
            local.fail: {{msg: "permanent fix not available"}}
        """,
        inventory_for(sandbox, app, peer),
    )
    assert summary.status == "failed", summary.message
    assert summary.rolled_back >= 1
    # the rollback ran docker.network's inverse: the node is back on its network
    assert connected(sandbox, app.name)
    nodes = journal.nodes(summary.run_id)
    by_step = {record.step_id: record for record in nodes.values()}
    statuses = {step: record.status for step, record in by_step.items()}
    for step in (
        "who",
        "answers",
        "logs",
        "resources",
        "facts",
        "isolate",
        "unreachable-from-its-peer",
    ):
        assert statuses[step] == "ok", (step, by_step[step].msg)
    assert by_step["who"].stdout.strip() == app.name[-12:]  # ssh.command over the docker connection
    assert by_step["unreachable-from-its-peer"].msg.startswith(
        f"from peer: {app.name}:8080 is closed, as expected"
    )
    assert (evidence / "app" / "docker" / f"{app.name}.log").read_text().count("\n") >= 1
    stats = json.loads((evidence / "app" / "docker" / f"{app.name}-stats.json").read_text())
    assert stats["summary"]["container"] == app.name


def test_check_mode_touches_nothing(sandbox, run_book):
    app, peer = sandbox.server(), sandbox.server(publish=False)
    summary, _, _ = run_book(
        f"""
        opsbook: 1
        name: would-restart
        hosts: app
        steps:
          - name: stop it
            docker.container: {{state: stopped}}
          - name: isolate
            docker.network: {{network: {sandbox.network}, state: disconnected}}
          - name: shrink
            docker.update: {{memory: 128m}}
          - name: still answers
            probe.http: "http://127.0.0.1:{{{{ http_port }}}}/healthz"
        """,
        inventory_for(sandbox, app, peer),
        check=True,
    )
    assert summary.status == "succeeded", summary.message
    obj = sandbox.client.containers.get(app.name)
    assert obj.status == "running" and connected(sandbox, app.name)
    assert obj.attrs["HostConfig"]["Memory"] == 0


def test_an_update_whose_verification_fails_is_rolled_back(sandbox, run_book):
    """docker.update changed the limits, then the step's own verification (`failed_when`)
    fails: changed state keeps its undo (issue 29 item 1), the limits are put back."""
    app, peer = sandbox.server(mem_limit="256m", nano_cpus=1_000_000_000), sandbox.server(publish=False)
    summary, journal, _ = run_book(
        """
        opsbook: 1
        name: more-capacity
        hosts: app
        steps:
          - name: more memory and CPU
            docker.update: {memory: 512m, cpus: 1.5}
            failed_when: result.after.cpus < 2  # the verification: the fix needs 2 CPUs
        """,
        inventory_for(sandbox, app, peer),
    )
    assert summary.status == "failed", summary.message
    (record,) = journal.nodes(summary.run_id).values()
    assert record.status == "failed" and record.changed and record.msg.startswith("failed_when: result.after.cpus < 2")
    assert [(r["action"], r["status"]) for r in journal.rollbacks(summary.run_id)] == [("docker.update", "done")]
    host_cfg = sandbox.client.containers.get(app.name).attrs["HostConfig"]
    assert host_cfg["Memory"] == 256 * 2**20 and host_cfg["NanoCpus"] == 1_000_000_000

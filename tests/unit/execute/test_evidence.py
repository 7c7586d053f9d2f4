"""Evidence bundle: collected files, manifest with SHA-256, archive, tamper detection."""

from __future__ import annotations

import hashlib
import json
import tarfile

import pytest
from opsbook import evidence
from opsbook.api import (
    RunRequest,
    load_inventory_sources,
    make_plan,
    refuse_evidence_conflicts,
    start_run,
)
from opsbook.check import check_files
from opsbook.errors import UserError, ValidationError
from opsbook.evidence import EvidenceClaims, Writer, evidence_file
from opsbook.execute import RunOptions
from opsbook.load import RunbookLoader
from opsbook.paths import safe_join
from opsbook.plugin import HostInfo
from opsbook_plugins import ssh
from opsbook_plugins.docker.facts import StatsArgs, _stats_file
from opsbook_plugins.docker.logs import LogsArgs, _logs_file
from opsbook_plugins.kubernetes import describe, events


def test_collected_output_is_in_the_manifest_and_archive(run, journal, tmp_path):
    summary = run("""
        opsbook: 1
        name: collect
        steps:
          - name: processes
            local.collect: {cmd: "echo pid-table", name: ps.txt, description: processes}
        """)
    data = evidence.manifest(journal, summary.run_id)
    (item,) = data["items"]
    path = tmp_path / "runs" / summary.run_id / "evidence" / "localhost" / "ps.txt"
    assert path.read_text() == "pid-table\n"
    assert item["path"] == "localhost/ps.txt" and item["step"] == "processes" and item["host"] == "localhost"
    assert item["sha256"] == hashlib.sha256(b"pid-table\n").hexdigest() and item["size"] == 10
    assert evidence.verify(journal, summary.run_id) == []
    archive = evidence.archive(journal, summary.run_id)
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile(f"evidence-{summary.run_id}/manifest.json"))
    assert f"evidence-{summary.run_id}/localhost/ps.txt" in names
    assert manifest["items"][0]["sha256"] == item["sha256"]
    path.write_text("edited")
    assert evidence.verify(journal, summary.run_id) == ["localhost/ps.txt: SHA-256 changed since collection"]


@pytest.mark.parametrize("bad", ["../escape", "/etc/passwd", "a/../../b", "~/x"])
def test_evidence_paths_cannot_escape_the_run_folder(tmp_path, bad):
    with pytest.raises(UserError):
        safe_join(tmp_path, bad)


def test_symlink_inside_the_folder_cannot_lead_out(tmp_path):
    (tmp_path / "link").symlink_to("/etc")
    with pytest.raises(UserError, match="leads outside the run folder"):
        safe_join(tmp_path, "link/passwd")


# -- one file, one writer: a folder dest is per host, and no node overwrites another's --------


WEB = "[web]\nweb1 ansible_connection=local\nweb2 ansible_connection=local\n"


@pytest.mark.parametrize(("dest", "folder", "expected"), [
    (None, False, "web1/var/log/app.log"),
    ("fetched/", False, "fetched/web1/var/log/app.log"),
    ("fetched", True, "fetched/web1/var/log/app.log"),  # an existing folder, as Ansible's fetch
    ("fetched/app.log", False, "fetched/app.log"),  # a file the author named
])
def test_a_folder_dest_gets_the_host_and_the_source_path(dest, folder, expected):
    assert evidence_file(dest, "web1", "/var/log/app.log", lambda _: folder) == expected


@pytest.mark.parametrize(("args", "expected"), [
    ({"src": "/etc/hostname"}, "web1/etc/hostname"),
    ({"src": "/etc/hostname", "dest": "fetched/"}, "fetched/web1/etc/hostname"),
    ({"src": "/etc/hostname", "dest": "fetched/", "flat": True}, "fetched/hostname"),
    ({"src": "/etc/hostname", "dest": "one.txt", "flat": True}, "one.txt"),
    ({"src": "/etc/hostname", "dest": "one.txt"}, "one.txt"),
])
def test_ssh_fetch_lays_files_out_like_ansible_fetch(args, expected):
    assert ssh.fetch_dest(ssh.FetchArgs(**args), "web1") == expected


def test_ssh_fetch_flat_into_an_existing_folder_needs_the_slash():
    with pytest.raises(Exception, match="existing folder; end it with /"):
        ssh.fetch_dest(ssh.FetchArgs(src="/etc/hostname", dest="fetched", flat=True), "web1", lambda _: True)


def test_docker_and_k8s_evidence_paths_are_known_before_the_run():
    host = HostInfo("app1", {"docker_container": "shop"})
    assert _logs_file(LogsArgs(), host) == ["app1/docker/shop.log"]
    assert _logs_file(LogsArgs(dest="logs/"), host) == ["logs/app1/docker/shop.log"]
    assert _stats_file(StatsArgs(dest="s.json"), host) == ["s.json"]
    assert _stats_file(StatsArgs(container="db"), host) == ["app1/docker/db-stats.json"]
    assert events._events_file(events.EventsArgs(dest="ev.txt"), host) == ["ev.txt"]
    assert events._events_file(events.EventsArgs(), host) is None  # needs the cluster
    assert describe._described_files(describe.DescribeArgs(dest="d.describe.txt"), host) == [
        "d.describe.txt", "d.yaml"]


FETCH_ONE_FILE = """
    opsbook: 1
    name: fetch-one-file
    hosts: web
    steps:
      - name: fetch
        ssh.fetch: {src: /etc/hostname, dest: DEST}
    """


@pytest.mark.parametrize(("dest", "ok"), [
    ('"fetched/hostname.txt"', False),
    ('"fetched/"', True),
    ('"{{ inventory_hostname }}.txt"', True),
    ("flat/, flat: true", False),
])
def test_check_refuses_one_evidence_file_for_two_hosts(write, registry, dest, ok):
    path = write("rb.yaml", FETCH_ONE_FILE.replace("DEST", dest))
    (report,) = check_files([path], registry, [write("inv.ini", WEB)])
    errors = [f"{d.position.line}:{d.message}" for d in report.diagnostics if d.severity == "error"]
    if ok:
        assert errors == []
    else:
        assert len(errors) == 1 and errors[0].startswith('6:step "fetch": web1 and web2 would both write the evidence file')


def test_run_refuses_before_any_node_runs(write, registry, journal, tmp_path, monkeypatch):
    monkeypatch.setenv("OPSBOOK_RUNS_DIR", str(tmp_path / "runs"))
    rb = RunbookLoader(registry).load_file(write("rb.yaml", FETCH_ONE_FILE.replace("DEST", "fetched/hostname.txt")))
    sources = [write("inv.ini", WEB)]
    plan = make_plan(rb, load_inventory_sources(sources), {})
    with pytest.raises(ValidationError, match="would both write the evidence file"):
        start_run(plan, registry, journal, RunRequest(inventory_sources=sources, options=RunOptions()))
    assert journal.list_runs() == []
    refuse_evidence_conflicts(plan, registry, hosts={"web1"})  # --limit web1: one writer, fine


def test_two_steps_writing_one_file_on_a_host(write, registry):
    path = write("rb.yaml", """
        opsbook: 1
        name: twice
        steps:
          - name: before
            local.collect: {cmd: "echo 1", name: ps.txt}
          - name: after
            local.collect: {cmd: "echo 2", name: ps.txt}
          - name: only sometimes
            when: run.check
            local.collect: {cmd: "echo 3", name: ps.txt}
        """)
    (report,) = check_files([path], registry, [])
    assert [(d.position.line, d.message) for d in report.diagnostics] == [
        (7, ('steps "before" (on localhost) and "after" (on localhost) would both write the evidence file '
             '"localhost/ps.txt"; the second would overwrite the first'))]


def test_the_run_refuses_a_second_writer_it_could_not_foresee(run, journal, tmp_path):
    for host in ("web1", "web2"):
        (tmp_path / f"{host}.txt").write_text(f"from {host}\n")
    summary = run(f"""
        opsbook: 1
        name: late-collision
        hosts: web
        steps:
          - name: pick a name
            local.command: echo shared.txt
            register: pick
          - name: fetch
            ssh.fetch: {{src: "{tmp_path}/{{{{ inventory_hostname }}}}.txt", dest: "{{{{ pick.stdout | trim }}}}"}}
        """, inventory=WEB)
    nodes = journal.nodes(summary.run_id)
    fetched = {h: nodes[f"fetch@{h}"] for h in ("web1", "web2")}
    (loser,) = [r for r in fetched.values() if r.status == "failed"]
    (winner,) = [r for r in fetched.values() if r.status == "ok"]
    assert loser.msg == (f'evidence file "shared.txt" was already written by step "fetch" on {winner.host} '
                         "in this run; refusing to overwrite it")
    kept = tmp_path / "runs" / summary.run_id / "evidence" / "shared.txt"
    assert kept.read_text() == f"from {winner.host}\n"


def test_a_resumed_run_still_knows_who_wrote_what(run, journal):
    summary = run("""
        opsbook: 1
        name: collect
        steps:
          - name: processes
            local.collect: {cmd: "echo pid-table", name: ps.txt}
        """)
    claims = EvidenceClaims.from_journal(journal, summary.run_id)
    claims.claim("localhost/ps.txt", Writer("processes@localhost", "processes", "localhost"))  # its own: fine
    claims.claim("localhost/ps.txt", Writer("processes@localhost", "processes", "localhost", "'a'"))  # so its items
    with pytest.raises(UserError, match='already written by step "processes" on localhost'):
        claims.claim("localhost/./ps.txt", Writer("other@localhost", "other", "localhost"))


def test_paths_the_folder_refuses_are_not_conflicts(write, registry):
    path = write("rb.yaml", """
        opsbook: 1
        name: refused-anyway
        steps:
          - name: collect
            local.collect: {cmd: "echo 1", name: ps.txt}
          - name: through a dot-dot
            local.collect: {cmd: "echo 2", name: "../localhost/ps.txt"}
        """)
    (report,) = check_files([path], registry, [])
    assert report.diagnostics == []  # the second is refused at run time for its "..", not as a conflict


def test_two_items_of_a_loop_do_not_overwrite_each_other(run, journal, tmp_path):
    for name in ("a", "b"):
        (tmp_path / f"{name}.log").write_text(f"log {name}\n")
    summary = run(f"""
        opsbook: 1
        name: loop-one-file
        hosts: web
        steps:
          - name: fetch
            loop: [a, b]
            ssh.fetch: {{src: "{tmp_path}/{{{{ item }}}}.log", dest: "{{{{ inventory_hostname }}}}/app.log"}}
            register: fetched
            ignore_errors: true
        """, inventory="[web]\nweb1 ansible_connection=local\n")
    results = journal.nodes(summary.run_id)["fetch@web1"].registered["results"]
    assert [r["status"] for r in results] == ["ok", "failed"]
    assert results[1]["msg"] == ('evidence file "web1/app.log" was already written by step "fetch" '
                                 "(item 'a') on web1 in this run; refusing to overwrite it")
    assert (tmp_path / "runs" / summary.run_id / "evidence" / "web1" / "app.log").read_text() == "log a\n"


def test_collect_does_not_follow_a_symlink_planted_while_its_command_runs(run, journal, tmp_path):
    """Issue 24 item 5: the path was checked before the command and written after it; a link
    planted meanwhile (at the file, or at its host folder) received the output."""
    import threading

    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "ps.txt"
    evidence = tmp_path / "evidence"
    started = tmp_path / "started"

    def plant() -> None:
        from opsbook_lab.pytest_plugin import wait_for

        wait_for("the command to start", started.exists, timeout=30, interval=0.02)
        folder = evidence / "localhost"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "ps.txt").symlink_to(victim)

    thread = threading.Thread(target=plant)
    thread.start()
    summary = run(f"""
        opsbook: 1
        name: race
        steps:
          - name: snapshot
            local.collect: {{cmd: "touch {started}; sleep 1; echo X", name: ps.txt}}
        """, evidence_dir=evidence)
    thread.join()
    assert not victim.exists(), "the output went through the planted link"
    node = journal.nodes(summary.run_id)["snapshot@localhost"]
    assert node.status == "failed" and "is a symlink; refusing to write through it" in node.msg

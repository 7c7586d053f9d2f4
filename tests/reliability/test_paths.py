"""Path safety of evidence: what ssh.fetch and local.collect write stays inside the run's
evidence folder, whatever the runbook (or a templated value) says: ../, absolute paths, ~,
symlinks planted on the remote host and symlinks planted inside the local evidence folder.

The remote host is an sshd of our own on 127.0.8.201 (the machine itself, as user opsbench).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest
from relkit import Sshd

ADDRESS = "127.0.8.201"


@pytest.fixture(scope="module")
def target(tmp_path_factory, local_sshd):
    server = Sshd(tmp_path_factory.mktemp("sshd"), ADDRESS)
    server.start("paths")
    kh = server.root / "known_hosts"
    kh.write_text(server.known_line("paths") + "\n")
    yield server, (f"target ansible_host={ADDRESS} ansible_user=opsbench "
                   f"ansible_ssh_private_key_file={server.key} opsbook_known_hosts={kh}\n")
    server.close()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder next to the runs folder: nothing may be written here."""
    path = tmp_path / "outside"
    path.mkdir()
    os.chmod(path, 0o777)
    return path


def _evidence(tmp_path: Path, run_id: str) -> Path:
    return tmp_path / "runs" / run_id / "evidence"


def _untouched(outside: Path) -> None:
    assert sorted(p.name for p in outside.iterdir()) == [], "something was written outside the run folder"


def test_fetch_destinations_that_leave_the_run_folder_are_refused(book, target, tmp_path, outside):
    _, inv = target
    bad = ["../escape.txt", f"{outside}/abs.txt", "~/home.txt", "a/../../b.txt", "target/../../../c.txt",
           "../../outside/d.txt"]
    b = book("""
        opsbook: 1
        name: fetch-escapes
        hosts: target
        params:
          dests: {type: list}
        steps:
          - name: fetch
            loop: "{{ dests }}"
            ssh.fetch: {src: /etc/hostname, dest: "{{ item }}"}
            register: fetched
            ignore_errors: true
        """, inventory="\n" + inv, params={"dests": bad})
    results = b.node("fetch", "target").registered["results"]
    assert [r["status"] for r in results] == ["failed"] * len(bad)
    for r, dest in zip(results, bad):
        assert r["msg"].startswith(f'evidence path "{dest}" '), r["msg"]
    _untouched(outside)
    assert not (Path.home() / "home.txt").exists()
    assert not (tmp_path / "runs" / "escape.txt").exists() and not (tmp_path / "c.txt").exists()


def test_a_symlink_planted_on_the_remote_host_is_fetched_as_plain_data(book, target, tmp_path):
    _, inv = target
    link = f"/tmp/opsbook-rel-link-{secrets.token_hex(4)}"
    os.symlink("/etc/hostname", link)
    try:
        b = book(f"""
            opsbook: 1
            name: remote-symlink
            hosts: target
            steps:
              - name: fetch the link
                ssh.fetch: {{src: "{link}"}}
            """, inventory="\n" + inv)
    finally:
        os.unlink(link)
    assert b.summary.status == "succeeded", b.nodes()
    local = _evidence(tmp_path, b.run_id) / "target" / link.lstrip("/")
    assert local.is_file() and not local.is_symlink()
    assert local.read_text() == Path("/etc/hostname").read_text()


@pytest.mark.parametrize("planted", ["folder", "file"])
def test_a_symlink_planted_in_the_evidence_folder_is_not_followed(book, target, tmp_path, outside, planted):
    _, inv = target
    runs = tmp_path / "runs"
    if planted == "folder":  # evidence/target/etc -> outside/
        plant = f"ln -s {outside} {runs}/{{{{ run.id }}}}/evidence/target/etc"
        why = "leads outside the run folder"
    else:  # evidence/target/etc/hostname -> outside/hostname
        plant = (f"mkdir -p {runs}/{{{{ run.id }}}}/evidence/target/etc && "
                 f"ln -s {outside}/hostname {runs}/{{{{ run.id }}}}/evidence/target/etc/hostname")
        why = "is a symlink; refusing to write through it"
    b = book(f"""
        opsbook: 1
        name: local-symlink
        hosts: target
        steps:
          - name: plant
            local.shell: "mkdir -p {runs}/{{{{ run.id }}}}/evidence/target && {plant}"
          - name: fetch through it
            ssh.fetch: /etc/hostname
          - name: collect through it
            local.collect: {{cmd: "echo data", name: "../target/etc/hostname"}}
            ignore_errors: true
        """, inventory="\n" + inv)
    node = b.node("fetch-through-it", "target")
    assert node.status == "failed" and why in node.msg, node.msg
    _untouched(outside)


def test_collect_names_that_leave_the_run_folder_are_refused(book, tmp_path, outside):
    bad = ["../x.txt", f"{outside}/abs.txt", "../../outside/y.txt", "~/z.txt"]
    b = book("""
        opsbook: 1
        name: collect-escapes
        params:
          names: {type: list}
        steps:
          - name: collect
            loop: "{{ names }}"
            local.collect: {cmd: "echo data", name: "{{ item }}"}
            register: collected
            ignore_errors: true
        """, params={"names": bad})
    results = b.node("collect", "localhost").registered["results"]
    # ".." is refused; an absolute or ~ name is taken relative to the host's folder.
    assert [r["status"] for r in results] == ["failed", "ok", "failed", "ok"], results
    evidence = _evidence(tmp_path, b.run_id).resolve()
    for r in results:
        if r["status"] == "ok":
            assert Path(r["path"]).resolve().is_relative_to(evidence / "localhost"), r["path"]
    _untouched(outside)


def test_a_symlink_planted_at_the_partial_download_name_is_not_followed(book, target, tmp_path, outside):
    _, inv = target
    runs = tmp_path / "runs"
    b = book(f"""
        opsbook: 1
        name: part-symlink
        hosts: target
        steps:
          - name: plant
            local.shell: "mkdir -p {runs}/{{{{ run.id }}}}/evidence/target/etc &&
              ln -s {outside}/victim {runs}/{{{{ run.id }}}}/evidence/target/etc/hostname.part"
          - name: fetch
            ssh.fetch: /etc/hostname
        """, inventory="\n" + inv)
    _untouched(outside)
    local = _evidence(tmp_path, b.run_id) / "target" / "etc" / "hostname"
    assert not local.is_symlink()

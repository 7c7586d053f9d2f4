"""Host keys through whole runs: an unknown key is refused by default and nothing runs; a
man-in-the-middle (another sshd, another key, the same address and port) is refused under
every policy that verifies keys, with hashed known_hosts entries too, and whether the file is
given the opsbook way (opsbook_known_hosts) or the Ansible way (ansible_ssh_common_args).

The targets are sshd processes of our own on 127.0.8.200:22 (started and stopped by PID).
The connection-level tests are in tests/integration/ssh/test_ssh_failures.py.
"""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import pytest
from relkit import Cli, Sshd

ADDRESS = "127.0.8.200"

pytestmark = pytest.mark.usefixtures("local_sshd")


@pytest.fixture
def sshd(tmp_path: Path):
    server = Sshd(tmp_path / "sshd", ADDRESS)
    yield server
    server.close()


def _inventory(sshd: Sshd, known_hosts: Path, how: str = "opsbook", policy: str | None = None) -> str:
    line = f"target ansible_host={ADDRESS} ansible_user=opsbench ansible_ssh_private_key_file={sshd.key}"
    if how == "opsbook":
        line += f" opsbook_known_hosts={known_hosts}"
    else:
        line += f" ansible_ssh_common_args='-o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes'"
    if policy:
        line += f" opsbook_host_key_policy={policy}"
    return line + "\n"


def _runbook(cli: Cli, canary: str) -> Path:
    return cli.write("rb.yaml", f"""
        opsbook: 1
        name: hostkeys
        hosts: target
        steps:
          - name: touch the canary
            ssh.shell: "touch {canary}; hostname"
        """)


def _canary() -> str:
    return f"/tmp/opsbook-rel-hostkey-{secrets.token_hex(5)}"


def test_unknown_host_key_is_refused_by_default_and_nothing_runs(cli: Cli, sshd: Sshd):
    sshd.start("a")
    kh = cli.home / "known_hosts"
    kh.write_text("")
    canary = _canary()
    inv = cli.write("inv.ini", _inventory(sshd, kh))
    res = cli("run", str(_runbook(cli, canary)), "-i", str(inv), "--format", "text")
    assert res.rc == 1, res
    assert "failed    touch the canary @ target" in res.stderr
    assert f"host key for {ADDRESS} is not in known_hosts ({kh})" in res.stderr
    assert "opsbook_host_key_policy=accept-new" in res.stderr  # the way out is named
    assert not Path(canary).exists()
    assert kh.read_text() == ""


RUNBOOK = """
opsbook: 1
name: hostkeys
hosts: target
steps:
  - name: touch the canary
    ssh.shell: "touch {canary}; hostname"
"""


@pytest.mark.parametrize(("how", "policy"), [("opsbook", None), ("ansible", None), ("opsbook", "accept-new")])
def test_man_in_the_middle_with_another_key_on_the_same_address_is_refused(book, tmp_path, sshd: Sshd, how,
                                                                           policy):
    kh = tmp_path / "known_hosts"
    kh.write_text(sshd.known_line("genuine") + "\n")
    inv = _inventory(sshd, kh, how, policy)
    sshd.start("genuine")
    canary = _canary()
    ok = book(RUNBOOK.format(canary=canary), inventory="\n" + inv)
    assert ok.summary.status == "succeeded", ok.nodes()
    Path(canary).unlink()
    recorded = kh.read_text()
    sshd.start("impostor")  # the same address and port now answer with another host key
    res = book(RUNBOOK.format(canary=canary), inventory="\n" + inv)
    node = res.node("touch-the-canary", "target")
    assert res.summary.status == "failed" and node.status == "failed"
    assert node.msg.startswith(f"target: HOST KEY FOR {ADDRESS} HAS CHANGED - possible man-in-the-middle attack!"), \
        node.msg
    assert not Path(canary).exists(), "a command ran on the impostor"
    assert kh.read_text() == recorded, "known_hosts must never be rewritten"


def test_hashed_known_hosts_entries_are_checked_too(cli: Cli, sshd: Sshd):
    kh = cli.home / "known_hosts"
    kh.write_text(sshd.known_line("genuine") + "\n")
    subprocess.run(["ssh-keygen", "-H", "-f", str(kh)], check=True, capture_output=True)
    assert ADDRESS not in kh.read_text() and kh.read_text().startswith("|1|")
    inv = cli.write("inv.ini", _inventory(sshd, kh))
    sshd.start("genuine")
    canary = _canary()
    assert cli("run", str(_runbook(cli, canary)), "-i", str(inv)).rc == 0
    Path(canary).unlink()
    sshd.start("impostor")
    res = cli("run", str(_runbook(cli, canary)), "-i", str(inv), "--format", "text")
    assert res.rc == 1 and "HAS CHANGED" in res.stderr, res
    assert not Path(canary).exists()


def test_accept_new_records_a_first_key_then_refuses_a_different_one(cli: Cli, sshd: Sshd):
    kh = cli.home / "known_hosts"
    inv = cli.write("inv.ini", _inventory(sshd, kh, policy="accept-new"))
    sshd.start("first")
    canary = _canary()
    assert cli("run", str(_runbook(cli, canary)), "-i", str(inv)).rc == 0
    Path(canary).unlink()
    assert kh.read_text().split()[:1] == [ADDRESS]
    sshd.start("second")
    res = cli("run", str(_runbook(cli, canary)), "-i", str(inv), "--format", "text")
    assert res.rc == 1 and "HAS CHANGED" in res.stderr, res
    assert not Path(canary).exists()

"""ssh.collect against the lab's sshd hosts (issue 25 item 9): a remote command's output
kept as evidence on the controller, cut at max_size with a note, nothing written on the
host, the command's failure and its stderr kept."""

from __future__ import annotations

import pytest
from opsbook.plugin import Status

pytestmark = pytest.mark.lab


def test_collect_keeps_the_output_as_evidence(node):
    web1 = node("web1")
    before = web1.sh("ls -A /tmp | sort")
    res = web1.act("collect", {"cmd": "cat /etc/hostname; echo to-stderr >&2", "name": "who.txt",
                               "description": "who I am"})
    assert res.status is Status.OK and res.rc == 0, res.msg
    (ev,) = res.evidence
    assert (ev.path, ev.source, ev.description) == ("web1/who.txt", "web1: cat /etc/hostname; echo to-stderr >&2",
                                                    "who I am")
    text = (web1.evidence_dir / "web1/who.txt").read_text()
    assert text.startswith("web1\n") and "--- stderr ---\nto-stderr" in text
    assert res.data["size"] == 5 and res.data["cut"] is False
    assert res.msg == "saved web1/who.txt (5 bytes)"
    assert web1.sh("ls -A /tmp | sort") == before  # nothing left (nor written) on the host


@pytest.mark.parametrize("cmd", ["head -c 300000 /dev/zero | tr '\\0' x", "yes"])
def test_collect_cuts_at_max_size_with_a_note(node, cmd):
    """A finite output longer than the cap, and one that never ends (stopped by the cap)."""
    web1 = node("web1")
    res = web1.act("collect", {"cmd": cmd, "name": "big.txt", "max_size": "100KiB"}, timeout=60)
    assert res.status is Status.OK, res.msg
    assert res.data == {"path": res.data["path"], "size": 102400, "cut": True}
    assert "cut at max_size" in res.msg
    text = (web1.evidence_dir / "web1/big.txt").read_text()
    body, note = text[:102400], text[102400:]
    assert len(body.encode()) == 102400
    assert note.startswith("\n--- cut: the output was longer than max_size (102400 bytes)")


def test_a_failing_command_fails_the_step_and_keeps_what_it_printed(node):
    web1 = node("web1")
    res = web1.act("collect", {"cmd": "echo partial; echo 'no such unit' >&2; exit 3", "name": "failed.txt"})
    assert res.status is Status.FAILED and res.rc == 3
    assert res.msg == "saved web1/failed.txt (8 bytes); the command exited with 3"
    assert res.stderr == "no such unit"
    text = (web1.evidence_dir / "web1/failed.txt").read_text()
    assert text.startswith("partial\n") and "no such unit" in text


def test_collect_refuses_a_path_outside_the_evidence_folder_before_running(node):
    web1 = node("web1")
    res = web1.act("collect", {"cmd": "touch /tmp/opsbook-collect-ran", "name": "../../outside.txt"})
    assert res.status is Status.FAILED and "evidence" in res.msg
    assert web1.sh("ls /tmp/opsbook-collect-ran 2>/dev/null || echo absent").strip() == "absent"


def test_collect_with_become_reads_what_only_root_can(node, ops_become):
    ops = node("web2", user="ops")
    res = ops.act("collect", {"cmd": "head -1 /etc/shadow", "name": "shadow.txt"}, become=ops_become)
    assert res.status is Status.OK, res.msg
    assert (ops.evidence_dir / "web2/shadow.txt").read_text().startswith("root:")

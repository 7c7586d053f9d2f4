"""ssh.lineinfile / ssh.blockinfile / ssh.replace and backup/validate on a lab sshd container."""

from __future__ import annotations

import pytest
from opsbook.plugin import Status
from opsbook_plugins.ssh import plugin

pytestmark = [pytest.mark.lab, pytest.mark.slow]

SSHD = "Port 22\n#PermitRootLogin yes\nUsePAM yes\n"


def test_lineinfile_check_diff_real_and_idempotent(node):
    web1 = node("web1")
    web1.conn.put(SSHD.encode(), "/tmp/opsbook-sshd.conf")
    args = {"path": "/tmp/opsbook-sshd.conf", "regexp": "^#?PermitRootLogin", "line": "PermitRootLogin no"}
    dry = web1.act("lineinfile", args, check=True, diff=True)
    assert dry.status is Status.OK and dry.changed
    assert dry.msg == "/tmp/opsbook-sshd.conf: would change: line replaced"
    assert "-#PermitRootLogin yes\n+PermitRootLogin no\n" in dry.diff
    assert web1.sh("cat /tmp/opsbook-sshd.conf") == SSHD  # check mode wrote nothing
    real = web1.act("lineinfile", args)
    assert real.changed and web1.sh("cat /tmp/opsbook-sshd.conf") == "Port 22\nPermitRootLogin no\nUsePAM yes\n"
    again = web1.act("lineinfile", args)
    assert again.status is Status.OK and not again.changed
    gone = web1.act("lineinfile", {"path": "/tmp/opsbook-sshd.conf", "regexp": "^UsePAM", "state": "absent"})
    assert gone.changed and gone.data["found"] == 1
    assert web1.sh("cat /tmp/opsbook-sshd.conf") == "Port 22\nPermitRootLogin no\n"


def test_blockinfile_and_replace_then_rollback(node):
    web1 = node("web1")
    web1.conn.put(SSHD.encode(), "/tmp/opsbook-block.conf")
    block = web1.act("blockinfile", {"path": "/tmp/opsbook-block.conf", "block": "Match User ops\n  X11Forwarding no"})
    assert block.changed
    assert web1.sh("cat /tmp/opsbook-block.conf").endswith(
        "# BEGIN ANSIBLE MANAGED BLOCK\nMatch User ops\n  X11Forwarding no\n# END ANSIBLE MANAGED BLOCK\n")
    swapped = web1.act("replace", {"path": "/tmp/opsbook-block.conf", "regexp": r"^(\w+) yes$", "replace": r"\1 no"})
    assert swapped.changed and "UsePAM no\n" in web1.sh("cat /tmp/opsbook-block.conf")
    action, undo = plugin.actions["replace"].inverse(None, swapped)
    assert action == "ssh.copy"
    assert web1.act("copy", undo).changed
    assert "UsePAM yes\n" in web1.sh("cat /tmp/opsbook-block.conf")
    missing = web1.act("replace", {"path": "/tmp/opsbook-nothing-here", "regexp": "x"})
    assert missing.status is Status.FAILED and missing.msg == "Path /tmp/opsbook-nothing-here does not exist !"


def test_validate_refuses_a_bad_config_and_backup_is_what_the_rollback_restores(node):
    web1 = node("web1")
    web1.sh("rm -f /tmp/opsbook-valid.conf* && printf 'workers 4\\n' >/tmp/opsbook-valid.conf")
    check = "grep -q ^workers %s"  # the stand-in for nginx -t -c %s: a config names its workers
    bad = web1.act("copy", {"dest": "/tmp/opsbook-valid.conf", "content": "oops\n", "validate": check, "backup": True})
    assert bad.status is Status.FAILED
    assert bad.msg.startswith("web1: /tmp/opsbook-valid.conf: validate failed (rc 1)")
    assert web1.sh("cat /tmp/opsbook-valid.conf") == "workers 4\n"  # never put in place
    assert bad.data["exit_status"] == 1 and bad.data["backup_file"].endswith("~")  # made first, as Ansible does
    assert web1.sh("ls -a /tmp | grep -c 'opsbook-valid.conf' || true") == "2\n"  # no temporary file left
    web1.sh(f"rm -f {bad.data['backup_file']}")
    good = web1.act("lineinfile", {"path": "/tmp/opsbook-valid.conf", "regexp": "^workers", "line": "workers 8",
                                   "validate": check, "backup": True})
    assert good.changed
    backup = good.data["backup"]
    assert backup.startswith("/tmp/opsbook-valid.conf.") and backup.endswith("~")
    assert web1.sh(f"cat {backup}; cat /tmp/opsbook-valid.conf") == "workers 4\nworkers 8\n"
    action, undo = plugin.actions["lineinfile"].inverse(None, good)
    assert (action, undo) == ("ssh.command", {"cmd": ["cp", "-p", "--", backup, "/tmp/opsbook-valid.conf"]})
    assert web1.act("command", undo).status is Status.OK
    assert web1.sh("cat /tmp/opsbook-valid.conf") == "workers 4\n"


def test_template_with_validate_and_backup_under_become(node, ops_become, tmp_path):
    root = node("web2")
    root.sh("rm -f /etc/opsbook-sudoers-test* && printf 'ops ALL=(ALL) NOPASSWD: ALL\\n' >/etc/opsbook-sudoers-test")
    ops = node("web2", user="ops")
    src = tmp_path / "sudoers.j2"
    src.write_text("{{ who }} ALL=(ALL) NOPASSWD: {{ what }}\n")
    args = {"src": str(src), "dest": "/etc/opsbook-sudoers-test", "validate": "/usr/sbin/visudo -cf %s",
            "backup": True, "mode": "0440", "vars": {"who": "ops", "what": "ALL ALL"}}
    bad = ops.act("template", args, become=ops_become)
    assert bad.status is Status.FAILED and "validate failed" in bad.msg
    assert root.sh("cat /etc/opsbook-sudoers-test") == "ops ALL=(ALL) NOPASSWD: ALL\n"
    args["vars"] = {"who": "ops", "what": "/usr/bin/true"}
    good = ops.act("template", args, become=ops_become)
    assert good.changed and good.data["backup_file"].startswith("/etc/opsbook-sudoers-test.")
    assert root.sh("stat -c %a /etc/opsbook-sudoers-test; cat /etc/opsbook-sudoers-test") == \
        "440\nops ALL=(ALL) NOPASSWD: /usr/bin/true\n"

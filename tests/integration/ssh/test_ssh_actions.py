"""Every ssh action against the lab's hosts: results, check mode, diffs, become, evidence."""

from __future__ import annotations

import threading
import time

import pytest
from opsbook.plugin import Status

INIT_SCRIPT = r"""#!/bin/sh
# A tiny sysv service for the tests: a sleeping daemon with a pid file.
PIDFILE=/run/opsbook-dummy.pid
running() { [ -f $PIDFILE ] && kill -0 "$(cat $PIDFILE)" 2>/dev/null; }
case "$1" in
  start)   running || start-stop-daemon --start --quiet --background --make-pidfile \
             --pidfile $PIDFILE --startas /bin/sh -- -c 'exec sleep 1000001' ;;
  stop)    start-stop-daemon --stop --quiet --oknodo --pidfile $PIDFILE --retry 5; rm -f $PIDFILE ;;
  restart) "$0" stop; "$0" start ;;
  reload)  running && date +%s.%N >/run/opsbook-dummy.reloaded ;;
  status)  if running; then echo "opsbook-dummy is running"; exit 0; fi
           echo "opsbook-dummy is not running"; exit 3 ;;
  *)       echo "usage: $0 start|stop|restart|reload|status" >&2; exit 2 ;;
esac
"""


@pytest.fixture
def dummy_service(lab):
    """web1 gets /etc/init.d/opsbook-dummy, stopped; removed afterwards."""
    rc, out = lab.exec(
        "web1",
        [
            "sh",
            "-c",
            "cat >/etc/init.d/opsbook-dummy <<'EOF'\n"
            + INIT_SCRIPT
            + "EOF\nchmod 755 /etc/init.d/opsbook-dummy; "
            "/etc/init.d/opsbook-dummy stop; rm -f /run/opsbook-dummy.reloaded",
        ],
    )
    assert rc == 0, out
    yield "opsbook-dummy"
    lab.exec("web1", "/etc/init.d/opsbook-dummy stop; rm -f /etc/init.d/opsbook-dummy")


# -- ssh.command / ssh.shell / ssh.script --------------------------------------------------


def test_command_is_argv_without_shell(node):
    web1 = node("web1")
    res = web1.act("command", "echo '$HOME' '*' ';'")
    assert res.status is Status.OK and res.changed
    assert (res.rc, res.stdout) == (0, "$HOME * ;\n")
    assert res.data["cmd"] == ["echo", "$HOME", "*", ";"]
    assert res.duration > 0
    assert web1.lines == ["$HOME * ;"]  # streamed to the step's live output


def test_command_chdir_env_and_stdin(node):
    res = node("web1").act(
        "command",
        {
            "cmd": ["sh", "-c", 'pwd; echo "$GREETING"; cat'],
            "chdir": "/var/www",
            "env": {"GREETING": "hello $USER; rm -rf /"},
            "stdin": "from stdin\n",
        },
    )
    assert res.stdout == "/var/www\nhello $USER; rm -rf /\nfrom stdin\n"


def test_command_creates_and_removes_guards(node):
    web1 = node("web1")
    skipped = web1.act("command", {"cmd": "touch /tmp/never", "creates": "/etc/hostname"})
    assert skipped.status is Status.OK and not skipped.changed
    assert skipped.msg == "skipped: /etc/hostname exists"
    skipped = web1.act("command", {"cmd": "touch /tmp/never", "removes": "/nonexistent"})
    assert skipped.msg == "skipped: /nonexistent does not exist"
    ran = web1.act("command", {"cmd": "echo ran", "removes": "/etc/hostname"})
    assert ran.stdout == "ran\n" and ran.changed


def test_command_check_mode_runs_nothing(node):
    web1 = node("web1")
    web1.sh("rm -f /tmp/opsbook-check")
    res = web1.act("command", "touch /tmp/opsbook-check", check=True)
    assert res.status is Status.UNKNOWN and res.msg == "would run: touch /tmp/opsbook-check"
    assert web1.conn.run(["test", "-e", "/tmp/opsbook-check"]).rc == 1
    guarded = web1.act("command", {"cmd": "touch /x", "creates": "/etc/hostname"}, check=True)
    assert guarded.status is Status.OK and not guarded.changed


def test_command_nonzero_rc_fails_unless_ok_rc(node):
    web1 = node("web1")
    res = web1.act("command", "ls /nonexistent")
    assert res.status is Status.FAILED and res.rc == 2
    assert res.msg.startswith("command exited with rc=2: ls: cannot access '/nonexistent'")
    assert web1.act("command", {"cmd": "ls /nonexistent", "ok_rc": [2]}).status is Status.OK


def test_command_missing_program(node):
    res = node("web1").act("command", "no-such-program --flag")
    assert res.status is Status.FAILED and res.rc == 127
    assert "no-such-program" in res.msg


def test_shell_pipes_and_executable(node):
    web1 = node("web1")
    assert web1.act("shell", "echo a b c | wc -w").stdout.strip() == "3"
    res = web1.act("shell", {"cmd": "[[ $BASH_VERSION ]] && echo bash", "executable": "/bin/bash"})
    assert res.stdout == "bash\n"
    res = web1.act("shell", {"cmd": "echo $X in $(pwd)", "env": {"X": "y"}, "chdir": "/tmp"})
    assert res.stdout == "y in /tmp\n"


def test_script_uploads_runs_with_args_and_cleans_up(node, tmp_path):
    local = tmp_path / "probe.sh"
    local.write_text('#!/bin/sh\necho "args: $*"\necho "me: $0" >&2\nexit 4\n')
    web1 = node("web1")
    res = web1.act("script", {"path": str(local), "args": ["one", "two words"], "ok_rc": [4]})
    assert res.status is Status.OK and res.rc == 4
    assert res.stdout == "args: one two words\n"
    remote = res.stderr.split("me: ")[1].strip()
    assert remote.startswith("/tmp/opsbook-script.")
    assert web1.conn.run(["test", "-e", remote]).rc == 1  # removed afterwards
    res = web1.act("script", {"path": str(local), "executable": "/bin/bash", "ok_rc": [4]})
    assert res.stdout == "args: \n"
    missing = web1.act("script", str(tmp_path / "nope.sh"))
    assert missing.status is Status.FAILED and "does not exist on the controller" in missing.msg


def test_script_with_become(node, tmp_path, ops_become):
    local = tmp_path / "whoami.sh"
    local.write_text("id -un\n")
    res = node("web2", user="ops").act(
        "script", {"path": str(local), "executable": "sh"}, become=ops_become
    )
    assert res.stdout == "root\n"


# -- ssh.copy / ssh.template ---------------------------------------------------------------


def test_copy_content_changed_then_unchanged(node):
    web1 = node("web1")
    web1.sh("rm -f /tmp/opsbook-copy.conf")
    first = web1.act("copy", {"dest": "/tmp/opsbook-copy.conf", "content": "a=1\n", "mode": "0640"})
    assert first.status is Status.OK and first.changed
    assert first.data["changes"] == ["content", "mode"]
    assert web1.sh("stat -c %a /tmp/opsbook-copy.conf; cat /tmp/opsbook-copy.conf") == "640\na=1\n"
    again = web1.act("copy", {"dest": "/tmp/opsbook-copy.conf", "content": "a=1\n", "mode": "0640"})
    assert again.status is Status.OK and not again.changed
    assert again.msg == "/tmp/opsbook-copy.conf: unchanged"
    mode_only = web1.act(
        "copy", {"dest": "/tmp/opsbook-copy.conf", "content": "a=1\n", "mode": "0600"}
    )
    assert mode_only.changed and mode_only.data["changes"] == ["mode"]
    assert web1.sh("stat -c %a /tmp/opsbook-copy.conf") == "600\n"


def test_copy_check_and_diff_modes(node):
    web1 = node("web1")
    web1.conn.put(b"listen 80\nworkers 4\n", "/tmp/opsbook-diff.conf")
    res = web1.act(
        "copy",
        {"dest": "/tmp/opsbook-diff.conf", "content": "listen 8080\nworkers 4\n"},
        check=True,
        diff=True,
    )
    assert res.status is Status.OK and res.changed
    assert res.msg == "/tmp/opsbook-diff.conf: would change (content)"
    assert res.diff == (
        "--- /tmp/opsbook-diff.conf (before)\n+++ /tmp/opsbook-diff.conf (after)\n"
        "@@ -1,2 +1,2 @@\n-listen 80\n+listen 8080\n workers 4\n"
    )
    assert web1.sh("cat /tmp/opsbook-diff.conf") == "listen 80\nworkers 4\n"  # untouched
    real = web1.act(
        "copy", {"dest": "/tmp/opsbook-diff.conf", "content": "listen 8080\nworkers 4\n"}, diff=True
    )
    assert real.changed and real.diff == res.diff
    assert web1.sh("cat /tmp/opsbook-diff.conf") == "listen 8080\nworkers 4\n"


def test_copy_new_file_diff_and_src_into_a_folder(node, tmp_path):
    web1 = node("web1")
    web1.sh("rm -rf /tmp/opsbook-dir && mkdir /tmp/opsbook-dir")
    src = tmp_path / "app.env"
    src.write_bytes(b"MODE=prod\n")
    res = web1.act("copy", {"src": str(src), "dest": "/tmp/opsbook-dir"}, diff=True)
    assert res.changed and res.data["dest"] == "/tmp/opsbook-dir/app.env"
    assert "+MODE=prod" in res.diff
    assert web1.sh("cat /tmp/opsbook-dir/app.env") == "MODE=prod\n"


def test_copy_with_become_owner_and_mode(node, ops_become):
    ops = node("web2", user="ops")
    denied = ops.act("copy", {"dest": "/etc/opsbook-test.conf", "content": "secret=1\n"})
    assert denied.status is Status.FAILED
    assert denied.msg == "web2: Permission denied: /etc/opsbook-test.conf"
    res = ops.act(
        "copy",
        {
            "dest": "/etc/opsbook-test.conf",
            "content": "secret=1\n",
            "mode": "0600",
            "owner": "ops",
            "group": "root",
        },
        become=ops_become,
    )
    assert res.status is Status.OK and res.changed, res.msg
    assert ops.sh("stat -c '%a %U %G' /etc/opsbook-test.conf") == "600 ops root\n"
    again = ops.act(
        "copy",
        {
            "dest": "/etc/opsbook-test.conf",
            "content": "secret=1\n",
            "mode": "0600",
            "owner": "ops",
            "group": "root",
        },
        become=ops_become,
    )
    assert not again.changed
    ops.conn.run(["rm", "-f", "/etc/opsbook-test.conf"], become=ops_become)


def test_template_renders_host_vars_and_vars(node, tmp_path):
    tpl = tmp_path / "site.conf.j2"
    tpl.write_text(
        "# {{ inventory_hostname }} ({{ role }})\nport={{ http_port_inside }}\n"
        "{% for b in backends %}server {{ b }}\n{% endfor %}"
    )
    web1 = node("web1")
    web1.sh("rm -f /tmp/opsbook-site.conf")
    res = web1.act(
        "template",
        {
            "src": str(tpl),
            "dest": "/tmp/opsbook-site.conf",
            "vars": {"http_port_inside": 8080, "backends": ["a", "b"]},
        },
        diff=True,
    )
    assert res.status is Status.OK and res.changed, res.msg
    assert web1.sh("cat /tmp/opsbook-site.conf") == "# web1 (web)\nport=8080\nserver a\nserver b\n"
    again = web1.act(
        "template",
        {
            "src": str(tpl),
            "dest": "/tmp/opsbook-site.conf",
            "vars": {"http_port_inside": 8080, "backends": ["a", "b"]},
        },
    )
    assert not again.changed


def test_template_undefined_variable_fails_without_writing(node, tmp_path):
    tpl = tmp_path / "bad.j2"
    tpl.write_text("value={{ not_defined_anywhere }}\n")
    res = node("web1").act("template", {"src": str(tpl), "dest": "/tmp/opsbook-bad.conf"})
    assert res.status is Status.FAILED
    assert "not_defined_anywhere" in res.msg and str(tpl) in res.msg


# -- ssh.fetch ------------------------------------------------------------------------------


def test_fetch_into_the_evidence_folder(node):
    web1 = node("web1")
    res = web1.act("fetch", {"src": "/etc/hostname", "description": "who am I"})
    assert res.status is Status.OK and not res.changed
    (ev,) = res.evidence
    assert (ev.path, ev.source, ev.description) == (
        "web1/etc/hostname",
        "web1:/etc/hostname",
        "who am I",
    )
    assert (web1.evidence_dir / "web1/etc/hostname").read_text() == "web1\n"
    assert res.data["size"] == 5
    # A dest folder gets <dest>/<host>/<src> (Ansible fetch's layout); flat: true the base name.
    folder = web1.act("fetch", {"src": "/etc/hostname", "dest": "logs/"})
    assert folder.evidence[0].path == "logs/web1/etc/hostname"
    assert (web1.evidence_dir / "logs/web1/etc/hostname").read_text() == "web1\n"
    flat = web1.act("fetch", {"src": "/etc/hostname", "dest": "flat/", "flat": True})
    assert flat.evidence[0].path == "flat/hostname"


def test_fetch_refuses_paths_escaping_the_evidence_folder(node):
    web1 = node("web1")
    for dest in ("../outside", "/etc/passwd", "a/../../b"):
        res = web1.act("fetch", {"src": "/etc/hostname", "dest": dest})
        assert res.status is Status.FAILED, dest
        assert "evidence path" in res.msg
    assert not (web1.evidence_dir.parent / "outside").exists()


def test_fetch_missing_file(node):
    web1 = node("web1")
    res = web1.act("fetch", "/var/log/nothing-here.log")
    assert res.status is Status.FAILED
    assert res.msg == "/var/log/nothing-here.log does not exist or is not readable on web1"
    assert web1.act("fetch", {"src": "/nothing", "fail_on_missing": False}).status is Status.OK


def test_fetch_root_only_file_with_become(node, ops_become):
    ops = node("web2", user="ops")
    assert ops.act("fetch", "/etc/shadow").status is Status.FAILED
    res = ops.act("fetch", "/etc/shadow", become=ops_become)
    assert res.status is Status.OK, res.msg
    assert (ops.evidence_dir / "web2/etc/shadow").read_text().startswith("root:")
    assert ops.sh("ls /tmp | grep -c opsbook-fetch || true").strip() == "0"


def test_fetch_check_mode_writes_nothing(node):
    web1 = node("web1")
    res = web1.act("fetch", "/etc/hostname", check=True)
    assert res.status is Status.OK and res.msg == "would fetch /etc/hostname to web1/etc/hostname"
    assert not (web1.evidence_dir / "web1").exists()


# -- ssh.service ----------------------------------------------------------------------------


def test_service_start_stop_restart_reload(node, dummy_service):
    web1 = node("web1")
    args = {"name": dummy_service}
    would = web1.act("service", {**args, "state": "started"}, check=True)
    assert would.changed and would.msg == "would start opsbook-dummy (running: False)"
    assert web1.conn.run(["service", dummy_service, "status"]).rc == 3  # check mode did nothing
    started = web1.act("service", {**args, "state": "started"})
    assert started.status is Status.OK and started.changed, started.msg
    assert started.data["manager"] == "service" and started.data["running"]
    assert not web1.act("service", {**args, "state": "started"}).changed
    pid = web1.sh("cat /run/opsbook-dummy.pid")
    restarted = web1.act("service", {**args, "state": "restarted"})
    assert restarted.changed and web1.sh("cat /run/opsbook-dummy.pid") != pid
    reloaded = web1.act("service", {**args, "state": "reloaded"})
    assert reloaded.changed and web1.conn.run(["test", "-e", "/run/opsbook-dummy.reloaded"]).rc == 0
    assert web1.act("service", {**args, "state": "stopped"}, check=True).msg == (
        "would stop opsbook-dummy (running: True)"
    )
    stopped = web1.act("service", {**args, "state": "stopped"})
    assert stopped.changed and not stopped.data["running"]
    assert not web1.act("service", {**args, "state": "stopped"}).changed


def test_service_unknown_name(node):
    res = node("web1").act("service", {"name": "no-such-service", "state": "started"})
    assert res.status is Status.FAILED
    assert res.msg == "service no-such-service is not installed on web1 (service)"


def test_service_needs_root(node, ops_become, dummy_service):
    ops = node("web1", user="ops")
    res = ops.act("service", {"name": dummy_service, "state": "started"})
    assert res.status is Status.FAILED and "start opsbook-dummy failed on web1" in res.msg
    res = ops.act("service", {"name": dummy_service, "state": "started"}, become=ops_become)
    assert res.status is Status.OK and res.changed


# -- ssh.wait_for ---------------------------------------------------------------------------


def test_wait_for_port_path_and_process(node, lab):
    web1 = node("web1")
    assert web1.act("wait_for", {"port": 8080, "timeout": 5}).status is Status.OK  # nginx
    assert (
        web1.act("wait_for", {"port": 8080, "host": "127.0.0.1", "timeout": 5}).status is Status.OK
    )
    assert web1.act("wait_for", {"port": 9, "state": "stopped", "timeout": 5}).status is Status.OK
    assert web1.act("wait_for", {"process": "nginx: master", "timeout": 5}).status is Status.OK
    assert (
        web1.act(
            "wait_for", {"process": "^no-such-daemon", "state": "stopped", "timeout": 5}
        ).status
        is Status.OK
    )
    web1.sh("rm -f /tmp/opsbook-appears")
    threading.Timer(1.0, lab.exec, args=("web1", "touch /tmp/opsbook-appears")).start()
    res = web1.act("wait_for", {"path": "/tmp/opsbook-appears", "timeout": 20, "sleep": 0.2})
    assert res.status is Status.OK and res.data["checks"] > 1
    assert res.msg.startswith("path /tmp/opsbook-appears is started after ")


def test_wait_for_gives_up_after_its_timeout(node):
    web1 = node("web1")
    started = time.monotonic()
    res = web1.act(
        "wait_for", {"path": "/nonexistent", "state": "present", "timeout": 1, "sleep": 0.3}
    )
    assert res.status is Status.FAILED
    assert res.msg == "timed out after 1s waiting for path /nonexistent to be present on web1"
    assert time.monotonic() - started < 5


def test_wait_for_check_mode_reports_without_waiting(node):
    web1 = node("web1")
    assert web1.act("wait_for", {"port": 8080}, check=True).status is Status.OK
    res = web1.act("wait_for", {"port": 9, "timeout": 60}, check=True)
    assert (
        res.status is Status.UNKNOWN and res.msg == "would wait up to 60s for port 9 to be started"
    )


def test_wait_for_honours_cancellation(node):
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    res = node("web1").act("wait_for", {"path": "/nonexistent", "timeout": 60}, cancelled=cancel)
    assert res.status is Status.TIMED_OUT


# -- the same actions over another Connection -----------------------------------------------


def test_actions_work_over_the_docker_connection(docker_node, dummy_service):
    web1 = docker_node("web1")
    web1.conn.run(["rm", "-f", "/tmp/opsbook-docker.txt"])
    assert web1.act("command", "echo '$HOME'").stdout == "$HOME\n"
    assert web1.act("shell", "hostname | tr a-z A-Z").stdout == "WEB1\n"
    res = web1.act("copy", {"dest": "/tmp/opsbook-docker.txt", "content": "via docker\n"})
    assert res.changed, res.msg
    assert not web1.act(
        "copy", {"dest": "/tmp/opsbook-docker.txt", "content": "via docker\n"}
    ).changed
    assert (
        web1.act("fetch", "/tmp/opsbook-docker.txt").evidence[0].path
        == "web1/tmp/opsbook-docker.txt"
    )
    assert web1.act("service", {"name": dummy_service, "state": "started"}).changed
    assert web1.act("wait_for", {"process": "sleep 1000001", "timeout": 5}).status is Status.OK


def test_copy_inverse_puts_the_old_file_back(node):
    spec_inverse = (
        __import__("opsbook_plugins.ssh", fromlist=["plugin"]).plugin.actions["copy"].inverse
    )
    web1 = node("web1")
    web1.sh(
        "printf 'old\\n' >/tmp/opsbook-undo.conf; chmod 604 /tmp/opsbook-undo.conf; "
        "rm -f /tmp/opsbook-undo-new.conf"
    )
    args = {"dest": "/tmp/opsbook-undo.conf", "content": "new\n", "mode": "0600"}
    res = web1.act("copy", args)
    assert res.changed and web1.sh("cat /tmp/opsbook-undo.conf") == "new\n"
    action, undo = spec_inverse(None, res)
    assert action == "ssh.copy"
    assert web1.act("copy", undo).changed
    assert web1.sh("stat -c %a /tmp/opsbook-undo.conf; cat /tmp/opsbook-undo.conf") == "604\nold\n"
    created = web1.act("copy", {"dest": "/tmp/opsbook-undo-new.conf", "content": "x"})
    action, undo = spec_inverse(None, created)
    assert action == "ssh.command"
    assert web1.act("command", undo).status is Status.OK
    assert web1.conn.run(["test", "-e", "/tmp/opsbook-undo-new.conf"]).rc == 1

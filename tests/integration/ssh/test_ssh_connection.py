"""The ssh connection against the lab's sshd: commands, reuse, threads, sudo, files, timeouts."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import statistics
import threading
import time

import pytest
from opsbook.capture import OUTPUT_CAP
from opsbook.plugin import Become, Connection
from opsbook_lab.pytest_plugin import skip_or_fail_in_ci, wait_for
from opsbook_plugins.ssh.errors import (
    BecomeError,
    CommandCancelled,
    CommandTimeout,
)


def _gone(node, pattern: str) -> None:
    """Wait (5 s at most) until no process on the host matches `pattern` (pgrep -f)."""
    wait_for(f"no process matching {pattern!r} left on the host",
             lambda: not node.conn.run(["pgrep", "-af", pattern]).stdout.strip(), timeout=5.0, interval=0.1)


def test_argv_runs_without_shell_expansion(node):
    web1 = node("web1")
    res = web1.conn.run(["echo", "$HOME", "a  b", "*", "; id"])
    assert (res.rc, res.stdout, res.stderr) == (0, "$HOME a  b * ; id\n", "")
    assert isinstance(web1.conn, Connection)


def test_shell_string_gives_rc_stdout_stderr_and_duration(node):
    res = node("web1").conn.run("echo $HOME; echo oops >&2; exit 3")
    assert (res.rc, res.stdout, res.stderr) == (3, "/root\n", "oops\n")
    assert 0 < res.duration < 10


def test_one_transport_for_many_commands(node):
    web1 = node("web1")
    web1.conn.run(["true"])
    transport = web1.conn.transport
    fds = len(os.listdir("/proc/self/fd"))
    for i in range(100):
        assert web1.conn.run(["echo", str(i)]).stdout == f"{i}\n"
    assert web1.conn.transport is transport
    assert web1.conn.connects == 1
    assert len(os.listdir("/proc/self/fd")) <= fds + 2  # channels give their pipes back
    sock = transport.sock
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    # authenticated encryption (no per-packet MAC compare in Python), both directions
    assert transport.local_cipher == transport.remote_cipher == "aes256-gcm@openssh.com"


def test_channels_from_many_threads_share_the_transport(node):
    web1 = node("web1")
    web1.conn.run(["true"])
    transport = web1.conn.transport
    errors: list[BaseException] = []
    outputs: dict[int, list[str]] = {}

    def worker(n: int) -> None:
        try:
            outputs[n] = [web1.conn.run(f"echo {n}-{i}; sleep 0.0{i % 3}").stdout for i in range(8)]
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert outputs == {n: [f"{n}-{i}\n" for i in range(8)] for n in range(8)}
    assert web1.conn.transport is transport and web1.conn.connects == 1


def test_output_lines_stream_to_on_output(node):
    lines: list[str] = []
    res = node("web1").conn.run(
        "for i in 1 2 3; do echo line $i; done; printf tail", on_output=lines.append
    )
    assert lines == ["line 1", "line 2", "line 3", "tail"]
    assert res.stdout == "line 1\nline 2\nline 3\ntail"


def test_output_is_capped_but_its_size_is_kept(node):
    size = 6 * 1024 * 1024
    res = node("web1").conn.run(f"head -c {size} /dev/zero | tr '\\0' a; echo end >&2")
    assert res.rc == 0
    assert res.stdout_bytes == size and res.truncated
    assert len(res.stdout) < OUTPUT_CAP + 200
    assert f"bytes omitted; {size} bytes in all" in res.stdout
    assert res.stderr == "end\n"


def test_large_stdin_goes_through_intact(node):
    data = bytes(range(256)) * 8192  # 2 MiB, binary
    res = node("web1").conn.run(["sha256sum"], stdin=data)
    assert res.stdout.split()[0] == hashlib.sha256(data).hexdigest()


def test_command_timeout_stops_the_remote_command(node):
    web1 = node("web1")
    started = time.monotonic()
    with pytest.raises(CommandTimeout, match=r"command timed out after 1s on web1") as err:
        web1.conn.run("echo started; sleep 41.5; echo never", timeout=1)
    assert time.monotonic() - started < 8
    assert err.value.partial.stdout == "started\n"
    _gone(web1, "sleep 41.5")
    assert web1.conn.run(["true"]).rc == 0  # the connection is still fine


def test_cancel_event_closes_the_channel(node):
    web1 = node("web1")
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    with pytest.raises(CommandCancelled, match="command cancelled on web1"):
        web1.conn.run(["sleep", "42.5"], cancel=cancel)
    _gone(web1, "sleep 42.5")


def test_become_with_the_sudo_password(node, lab_info):
    ops = node("web2", user="ops")
    become = Become(user="root", password=lab_info.sudo_password)
    assert ops.conn.run(["id", "-un"]).stdout == "ops\n"
    res = ops.conn.run("cat; id -un; echo to-stderr >&2", become=become, stdin=b"fed via stdin\n")
    assert (res.rc, res.stdout, res.stderr) == (0, "fed via stdin\nroot\n", "to-stderr\n")
    assert lab_info.sudo_password not in res.stdout + res.stderr
    # argv stays argv under sudo
    assert ops.conn.run(["echo", "$HOME"], become=become).stdout == "$HOME\n"
    # the rc of the command, not of sudo
    assert ops.conn.run("exit 7", become=become).rc == 7


def test_become_password_from_host_vars(node, lab_info):
    # The lab's ops inventory sets ansible_become_password.
    ops = node("web2", user="ops")
    assert ops.conn.run(["id", "-u"], become=Become()).stdout == "0\n"


def test_become_wrong_password_is_a_clear_error(node, lab_info):
    ops = node("web2", user="ops")
    with pytest.raises(
        BecomeError, match=r"sudo -u root on web2: incorrect sudo password for ops"
    ) as err:
        ops.conn.run(["id"], become=Become(password="not-the-password"))
    assert "not-the-password" not in str(err.value)


def test_become_without_a_password_is_a_clear_error(node):
    ops = node("web2", user="ops", ansible_become_password=None)
    with pytest.raises(BecomeError, match="asks for a password and none is set"):
        ops.conn.run(["id"], become=Become())


def test_become_timeout_stops_the_command_run_as_root(node, ops_become):
    ops = node("web2", user="ops")
    with pytest.raises(CommandTimeout):
        ops.conn.run("sleep 43.5; echo never", become=ops_become, timeout=1)
    _gone(ops, "sleep 43.5")


def test_put_is_atomic_and_keeps_the_mode_of_an_existing_file(node, tmp_path):
    web1 = node("web1")
    web1.sh("rm -f /tmp/opsbook-put.txt")
    web1.conn.put(b"one\n", "/tmp/opsbook-put.txt", 0o640)
    inode = web1.sh("stat -c '%i %a' /tmp/opsbook-put.txt").split()
    assert inode[1] == "640"
    web1.conn.put(b"two\n", "/tmp/opsbook-put.txt")
    after = web1.sh("stat -c '%i %a' /tmp/opsbook-put.txt").split()
    assert after[1] == "640" and after[0] != inode[0]  # renamed over, not rewritten
    assert web1.sh("cat /tmp/opsbook-put.txt") == "two\n"
    assert web1.sh("ls -a /tmp | grep -c opsbook-put || true").strip() == "1"  # no temp left
    size = web1.conn.get("/tmp/opsbook-put.txt", tmp_path / "got" / "put.txt")
    assert size == 4 and (tmp_path / "got" / "put.txt").read_bytes() == b"two\n"


def test_put_into_a_missing_folder_fails_cleanly(node):
    with pytest.raises(OSError):
        node("web1").conn.put(b"x", "/nonexistent-dir/file")


def test_warm_latency_per_command(node, record_property):
    """A measurement, not a pass/fail threshold: the machine may be busy."""
    web1 = node("web1")
    for _ in range(20):
        web1.conn.run(["true"])
    samples = []
    for _ in range(200):
        start = time.perf_counter()
        web1.conn.run(["true"])
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    median, p10, p90 = statistics.median(samples), samples[20], samples[180]
    record_property("ssh_warm_latency_ms_median", round(median, 2))
    print(f"\nssh warm per-command latency: median {median:.2f} ms, p10 {p10:.2f}, p90 {p90:.2f}")
    assert web1.conn.connects == 1


def test_proxy_jump_through_a_direct_tcpip_channel(node, lab_info):
    """lb1 (published port) is the bastion; web1 is reached at its lab address, port 22."""
    lb1, web1 = lab_info.hosts["lb1"], lab_info.hosts["web1"]
    base = node("web1").host.vars["ansible_ssh_common_args"]
    jumped = node(
        "web1",
        ansible_host=web1.lab_ip,
        ansible_port=22,
        ansible_ssh_common_args=f"{base} -o ProxyJump=root@127.0.0.1:{lb1.ssh_port}",
    )
    assert [str(j) for j in jumped.conn.settings.jumps] == [f"root@127.0.0.1:{lb1.ssh_port}"]
    res = jumped.conn.run("hostname; echo $SSH_CONNECTION")
    hostname, ssh_connection = res.stdout.splitlines()
    assert hostname == "web1"
    assert ssh_connection.split()[0] == lab_info.hosts["lb1"].lab_ip  # it came from the bastion
    assert jumped.act("command", "hostname").stdout == "web1\n"
    assert jumped.conn.connects == 1


def test_proxy_jump_to_an_unreachable_target_names_the_hop(node, lab_info):
    lb1 = lab_info.hosts["lb1"]
    base = node("web1").host.vars["ansible_ssh_common_args"]
    jumped = node(
        "web1",
        ansible_host=lab_info.hosts["web1"].lab_ip,
        ansible_port=2,
        ansible_ssh_common_args=f"{base} -J root@127.0.0.1:{lb1.ssh_port}",
    )
    with pytest.raises(Exception, match=rf"jump host root@127.0.0.1:{lb1.ssh_port} cannot reach "):
        jumped.conn.run(["true"])


def test_proxy_command(node):
    if shutil.which("socat") is None:
        skip_or_fail_in_ci(
            "socat is not installed (`apt-get install -y socat` or run tests/run)",
            "socat is missing in CI (tests/run installs it with apt-get install socat)",
        )
    web1 = node("web1")
    proxied = node(
        "web1",
        ansible_ssh_common_args=web1.host.vars["ansible_ssh_common_args"]
        + " -o 'ProxyCommand=socat - TCP:%h:%p'",
    )
    assert proxied.conn.settings.proxy_command == "socat - TCP:%h:%p"
    assert proxied.conn.run(["hostname"]).stdout == "web1\n"


def test_commands_beyond_max_sessions_wait_for_a_free_channel(node):
    web1 = node("web1", opsbook_ssh_max_sessions=2)
    results: list[str] = []
    started = time.monotonic()

    def one(i: int) -> None:
        results.append(web1.conn.run(f"sleep 0.4; echo {i}").stdout)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [f"{i}\n" for i in range(6)]
    assert time.monotonic() - started >= 1.1  # three rounds of two


def test_become_of_the_login_user_needs_no_sudo(node):
    web1 = node("web1")  # root, and nothing says sudo must be set up for root
    assert web1.conn.run(["id", "-un"], become=Become(user="root")).stdout == "root\n"


def test_ssh_config_alone_is_enough(lab_info):
    """No ansible_* variables: HostName, Port, User, IdentityFile, UserKnownHostsFile from
    the lab's ssh_config (as ~/.ssh/config would give them)."""
    from opsbook.plugin import HostInfo
    from opsbook_plugins.ssh import ssh_connection

    conn = ssh_connection(HostInfo("web1", {"opsbook_ssh_config": lab_info.ssh_config}))
    try:
        s = conn.settings
        assert (s.target.host, s.target.port, s.target.user) == (
            "127.0.0.1",
            lab_info.hosts["web1"].ssh_port,
            "root",
        )
        assert str(s.known_hosts) == lab_info.known_hosts and s.host_key_policy == "strict"
        assert conn.run(["hostname"]).stdout == "web1\n"
    finally:
        conn.close()

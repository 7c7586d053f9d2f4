"""What goes wrong for real, and what the user is told: host down, bad key, host keys, drops."""

from __future__ import annotations

import subprocess
import time

import pytest
from opsbook.plugin import Status
from opsbook_plugins.ssh.errors import (
    HostKeyChangedError,
    HostKeyUnknownError,
    SSHAuthError,
    SSHConnectError,
)


def test_host_down_container_killed(lab_healed, node):
    port = lab_healed.info.hosts["web2"].ssh_port
    web2 = node("web2")
    assert web2.conn.run(["true"]).rc == 0
    lab_healed.kill("web2")
    # A fresh connection: refused, with the address and a hint.
    fresh = node("web2")
    with pytest.raises(
        SSHConnectError,
        match=rf"cannot connect to 127\.0\.0\.1:{port}: Connection refused "
        r"\(is sshd running there\?\)",
    ):
        fresh.conn.run(["true"])
    # The pooled connection notices the drop, tries to reconnect once, and says why it failed.
    res = web2.act("command", "true")
    assert res.status is Status.FAILED
    assert f"127.0.0.1:{port}" in res.msg and "web2" in res.msg
    lab_healed.start("web2")
    # ... and works again once the host is back, without a new connection object.
    assert web2.conn.run(["hostname"]).stdout == "web2\n"


def test_wrong_key_is_an_authentication_failure(node, tmp_path):
    key = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    web1 = node("web1", ansible_ssh_private_key_file=str(key))
    port = web1.conn.settings.target.port
    with pytest.raises(SSHAuthError) as err:
        web1.conn.run(["true"])
    assert str(err.value) == (
        f"authentication failed for root@127.0.0.1:{port}: key {key}: rejected; "
        "password: not set (ansible_password)"
    )
    res = web1.act("command", "true")
    assert res.status is Status.FAILED and res.msg.startswith(
        "web1: authentication failed for root@"
    )


def test_missing_key_file_is_named(node, tmp_path):
    web1 = node("web1", ansible_ssh_private_key_file=str(tmp_path / "nope"))
    with pytest.raises(SSHAuthError, match=rf"key {tmp_path}/nope: file not found"):
        web1.conn.run(["true"])


def test_unknown_host_key_is_refused_with_a_hint(node, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    web1 = node("web1", opsbook_known_hosts=str(empty))
    port = web1.conn.settings.target.port
    with pytest.raises(HostKeyUnknownError) as err:
        web1.conn.run(["true"])
    msg = str(err.value)
    assert msg.startswith(f"host key for [127.0.0.1]:{port} is not in known_hosts ({empty});")
    assert f"ssh-keyscan -p {port} 127.0.0.1 >> {empty}" in msg
    assert "set opsbook_host_key_policy=accept-new" in msg
    assert empty.read_text() == ""


def test_accept_new_records_the_key_then_verifies_it(node, tmp_path):
    kh = tmp_path / "known_hosts"
    first = node("web1", opsbook_known_hosts=str(kh), opsbook_host_key_policy="accept-new")
    assert first.conn.run(["hostname"]).stdout == "web1\n"
    port = first.conn.settings.target.port
    assert kh.read_text().startswith(f"[127.0.0.1]:{port} ")
    strict = node("web1", opsbook_known_hosts=str(kh), opsbook_host_key_policy="strict")
    assert strict.conn.run(["hostname"]).stdout == "web1\n"


def test_changed_host_key_man_in_the_middle(node, lab_info, tmp_path, forwarder):
    """The address first leads to web1's sshd, then (the attack) to web2's: another key."""
    kh = tmp_path / "known_hosts"
    proxy = forwarder(lab_info.hosts["web1"].ssh_port)
    first = node(
        "web1",
        ansible_port=proxy.port,
        opsbook_known_hosts=str(kh),
        opsbook_host_key_policy="accept-new",
    )
    assert first.conn.run(["hostname"]).stdout == "web1\n"
    recorded = kh.read_text().split()
    proxy.target_port = lab_info.hosts["web2"].ssh_port
    victim = node(
        "web1",
        ansible_port=proxy.port,
        opsbook_known_hosts=str(kh),
        opsbook_host_key_policy="accept-new",
    )
    with pytest.raises(HostKeyChangedError) as err:
        victim.conn.run(["hostname"])
    msg = str(err.value)
    name = f"[127.0.0.1]:{proxy.port}"
    assert msg.startswith(f"HOST KEY FOR {name} HAS CHANGED - possible man-in-the-middle attack!")
    from base64 import b64decode

    import paramiko

    old = paramiko.PKey.from_type_string(recorded[1], b64decode(recorded[2]))
    assert old.fingerprint in msg
    served = [fp for fp in msg.split() if fp.startswith("SHA256:") and fp != old.fingerprint]
    assert served, msg  # the presented key's fingerprint is named too
    assert f"{kh}:1" in msg and f"ssh-keygen -R '{name}'" in msg
    assert kh.read_text().split() == recorded  # never overwritten
    res = victim.act("command", "hostname")
    assert res.status is Status.FAILED and "HAS CHANGED" in res.msg


def test_reconnect_after_the_connection_drops(node):
    web1 = node("web1")
    web1.conn.run(["true"])
    before = web1.conn.transport
    # Kill this connection's own sshd session process: the server drops us mid-command.
    with pytest.raises(SSHConnectError, match="was lost while a command ran; it may or may not"):
        web1.conn.run("kill -9 $PPID; sleep 5")
    res = web1.conn.run(["echo", "back"])
    assert res.stdout == "back\n"
    assert web1.conn.transport is not before and web1.conn.connects == 2


def test_reconnect_after_sshd_restart(lab_healed, node):
    web1 = node("web1")
    assert web1.conn.run(["true"]).rc == 0
    before = web1.conn.transport
    lab_healed.restart_sshd("web1")  # sessions survive a daemon restart...
    assert web1.conn.run(["echo", "same"]).stdout == "same\n"
    assert web1.conn.transport is before
    lab_healed.restart("web1")  # ... a host restart drops them: reconnect once
    assert web1.conn.run(["hostname"]).stdout == "web1\n"
    assert web1.conn.transport is not before and web1.conn.connects == 2


def test_command_timeout_and_nonzero_rc_as_results(node):
    web1 = node("web1")
    res = web1.act("shell", "echo partial; sleep 44.5", timeout=1)
    assert res.status is Status.TIMED_OUT
    assert res.msg == "command timed out after 1s on web1"
    assert res.stdout == "partial\n"
    res = web1.act("shell", "echo out; echo boom >&2; exit 3")
    assert res.status is Status.FAILED
    assert (res.rc, res.stdout, res.stderr) == (3, "out\n", "boom\n")
    assert res.msg == "command exited with rc=3: boom"
    assert web1.act("shell", {"cmd": "exit 3", "ok_rc": [0, 3]}).status is Status.OK


def test_hung_host_times_out(lab_healed, node):
    web2 = node("web2")
    assert web2.conn.run(["true"]).rc == 0
    lab_healed.pause("web2")
    try:
        fresh = node("web2", ansible_ssh_timeout=2)
        started = time.monotonic()
        with pytest.raises(
            SSHConnectError, match=r"no SSH banner and key exchange within 2s \(host hung"
        ):
            fresh.conn.run(["true"])
        assert time.monotonic() - started < 8
        started = time.monotonic()
        res = web2.act("command", "true", timeout=2)
        assert res.status in (Status.TIMED_OUT, Status.FAILED), res
        assert time.monotonic() - started < 30
    finally:
        lab_healed.unpause("web2")


@pytest.fixture
def password_sshd(lab):
    """A second sshd inside web1 on 127.0.0.1:2222 that takes passwords and refuses keys."""
    rc, out = lab.exec(
        "web1",
        "/usr/sbin/sshd -p 2222 -o ListenAddress=127.0.0.1 "
        "-o PasswordAuthentication=yes -o PubkeyAuthentication=no "
        "-o PidFile=/run/sshd-password.pid",
    )
    assert rc == 0, out
    yield 2222
    lab.exec("web1", "kill $(cat /run/sshd-password.pid)")


def test_password_authentication_when_keys_are_refused(node, lab_info, tmp_path, password_sshd):
    """Reached through web1 as a jump host; ops's password is the lab's sudo password."""
    web1 = lab_info.hosts["web1"]
    kh = tmp_path / "known_hosts"
    common = f"-o UserKnownHostsFile={kh} -J root@127.0.0.1:{web1.ssh_port}"
    ok = node(
        "web1",
        user="ops",
        ansible_host="127.0.0.1",
        ansible_port=password_sshd,
        ansible_ssh_common_args=common,
        opsbook_host_key_policy="accept-new",
        ansible_password=lab_info.sudo_password,
    )
    assert ok.conn.run(["id", "-un"]).stdout == "ops\n"
    wrong = node(
        "web1",
        user="ops",
        ansible_host="127.0.0.1",
        ansible_port=password_sshd,
        ansible_ssh_common_args=common,
        opsbook_host_key_policy="accept-new",
        ansible_password="not-it",
    )
    with pytest.raises(SSHAuthError) as err:
        wrong.conn.run(["true"])
    msg = str(err.value)
    assert msg.startswith(f"authentication failed for ops@127.0.0.1:{password_sshd}: key ")
    assert "publickey not allowed" in msg and "password: rejected" in msg
    assert "server accepts: password" in msg and "not-it" not in msg

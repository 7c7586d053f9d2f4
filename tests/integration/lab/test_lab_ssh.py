"""The lab's hosts are real sshd servers with real, pinned host keys."""

from __future__ import annotations

import configparser
from pathlib import Path

import paramiko
import pytest
import yaml
from opsbook_lab.lab import HOSTS

NAMES = [h.name for h in HOSTS]


def _client(info, host_keys: str | None = None) -> paramiko.SSHClient:
    cl = paramiko.SSHClient()
    if host_keys is None:
        cl.load_host_keys(info.known_hosts)
    elif host_keys:
        cl.load_host_keys(host_keys)
    cl.set_missing_host_key_policy(paramiko.RejectPolicy())
    return cl


def _run(cl: paramiko.SSHClient, cmd: str, stdin: str | None = None) -> tuple[int, str, str]:
    i, o, e = cl.exec_command(cmd, timeout=30)
    if stdin is not None:
        i.write(stdin)
        i.channel.shutdown_write()
    rc = o.channel.recv_exit_status()
    return rc, o.read().decode(), e.read().decode()


@pytest.mark.parametrize("name", NAMES)
def test_ssh_with_verified_host_key(lab_info, name):
    hi = lab_info.hosts[name]
    cl = _client(lab_info)
    cl.connect("127.0.0.1", port=hi.ssh_port, username="root", key_filename=lab_info.private_key,
               look_for_keys=False, allow_agent=False, timeout=10)
    try:
        # The key the server presented is the one recorded for [127.0.0.1]:PORT.
        served = cl.get_transport().get_remote_server_key()
        recorded = paramiko.HostKeys(lab_info.known_hosts).lookup(f"[127.0.0.1]:{hi.ssh_port}")
        assert recorded and recorded[served.get_name()] == served
        rc, out, _ = _run(cl, "hostname; id -u; cat /etc/opsbook-lab-role")
        assert rc == 0
        assert out.split() == [name, "0", hi.role]
    finally:
        cl.close()


def test_known_hosts_format(lab_info):
    lines = Path(lab_info.known_hosts).read_text().split("\n")
    for hi in lab_info.hosts.values():
        mine = [ln for ln in lines if ln.startswith(f"[127.0.0.1]:{hi.ssh_port} ")]
        assert {ln.split()[1] for ln in mine} >= {"ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa"}
        assert any(ln.startswith(f"{hi.lab_ip} ssh-ed25519 ") for ln in lines)


def test_unknown_host_key_is_refused(lab_info, tmp_path):
    hi = lab_info.hosts["web1"]
    # 1. no entry at all for the host
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    cl = _client(lab_info, str(empty))
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        cl.connect("127.0.0.1", port=hi.ssh_port, username="root", key_filename=lab_info.private_key,
                   look_for_keys=False, allow_agent=False, timeout=10)
    cl.close()
    # 2. an entry with another host's keys (web2's keys under web1's address)
    other = lab_info.hosts["web2"]
    swapped = tmp_path / "swapped_known_hosts"
    swapped.write_text("".join(
        ln.replace(f"[127.0.0.1]:{other.ssh_port} ", f"[127.0.0.1]:{hi.ssh_port} ") + "\n"
        for ln in Path(lab_info.known_hosts).read_text().splitlines()
        if ln.startswith(f"[127.0.0.1]:{other.ssh_port} ")))
    cl = _client(lab_info, str(swapped))
    with pytest.raises(paramiko.BadHostKeyException):
        cl.connect("127.0.0.1", port=hi.ssh_port, username="root", key_filename=lab_info.private_key,
                   look_for_keys=False, allow_agent=False, timeout=10)
    cl.close()


def test_password_and_foreign_key_auth_are_refused(lab_info):
    hi = lab_info.hosts["web1"]
    cl = _client(lab_info)
    with pytest.raises(paramiko.AuthenticationException):
        cl.connect("127.0.0.1", port=hi.ssh_port, username="ops", password=lab_info.sudo_password,
                   look_for_keys=False, allow_agent=False, timeout=10)
    cl.close()
    cl = _client(lab_info)
    with pytest.raises(paramiko.AuthenticationException):
        cl.connect("127.0.0.1", port=hi.ssh_port, username="root", pkey=paramiko.RSAKey.generate(2048),
                   look_for_keys=False, allow_agent=False, timeout=10)
    cl.close()


def test_ops_user_sudo_needs_the_password(lab_info):
    hi = lab_info.hosts["db1"]
    cl = _client(lab_info)
    cl.connect("127.0.0.1", port=hi.ssh_port, username=lab_info.sudo_user,
               key_filename=lab_info.private_key, look_for_keys=False, allow_agent=False, timeout=10)
    try:
        rc, out, _ = _run(cl, "id -un")
        assert (rc, out.strip()) == (0, "ops")
        rc, _, err = _run(cl, "sudo -n true")
        assert rc != 0 and "password" in err
        rc, _, _ = _run(cl, "sudo -S -p '' true", stdin="wrong-password\n")
        assert rc != 0
        rc, out, _ = _run(cl, "sudo -S -p '' id -u", stdin=lab_info.sudo_password + "\n")
        assert (rc, out.strip()) == (0, "0")
    finally:
        cl.close()


def test_inventories(lab_info):
    # INI: every group, per-host connection vars
    cp = configparser.ConfigParser(allow_no_value=True, delimiters=("\n",), interpolation=None)
    cp.optionxform = str
    cp.read(lab_info.inventory)
    for g in ("web", "lb", "db", "db_primary", "db_standby", "all:vars"):
        assert cp.has_section(g), g
    assert [k.split()[0] for k in cp["web"]] == ["web1", "web2"]
    assert [k.split()[0] for k in cp["db_standby"]] == ["db2"]
    web1 = next(k for k in cp["web"] if k.startswith("web1 "))
    hv = dict(kv.split("=", 1) for kv in web1.split()[1:])
    assert hv["ansible_host"] == "127.0.0.1"
    assert int(hv["ansible_port"]) == lab_info.hosts["web1"].ssh_port
    assert hv["ansible_user"] == "root"
    assert hv["ansible_ssh_private_key_file"] == lab_info.private_key
    assert hv["lab_ip"] == lab_info.hosts["web1"].lab_ip
    assert int(hv["http_port"]) == lab_info.hosts["web1"].http_port
    # YAML variant
    y = yaml.safe_load(Path(lab_info.inventory_yaml).read_text())
    ch = y["all"]["children"]
    assert set(ch) == {"web", "lb", "db", "db_primary", "db_standby"}
    assert ch["db"]["hosts"]["db1"]["ansible_port"] == lab_info.hosts["db1"].ssh_port
    assert list(ch["db_primary"]["hosts"]) == ["db1"]
    # docker connection variant
    d = yaml.safe_load(Path(lab_info.inventory_docker_yaml).read_text())
    assert d["all"]["children"]["lb"]["hosts"]["lb1"]["ansible_connection"] == "docker"
    assert d["all"]["children"]["lb"]["hosts"]["lb1"]["ansible_host"] == lab_info.hosts["lb1"].container
    assert "ansible_connection=docker" in Path(lab_info.inventory_docker).read_text()


def test_up_reuses_a_running_lab(lab):
    before = {n: h.container_id for n, h in lab.info.hosts.items()}
    info = lab.up()
    assert {n: h.container_id for n, h in info.hosts.items()} == before

"""How the ssh plugin decides where and how to connect: Ansible vars, ssh args, ~/.ssh/config."""

from __future__ import annotations

from pathlib import Path

import paramiko
import pytest
from opsbook.plugin import HostInfo
from opsbook_plugins.ssh import plugin, ssh_connection
from opsbook_plugins.ssh.connection import SSHConnection
from opsbook_plugins.ssh.errors import SSHError
from opsbook_plugins.ssh.settings import parse_ssh_args, settings_from_vars


def _config(text: str) -> paramiko.SSHConfig:
    return paramiko.SSHConfig.from_text(text)


EMPTY = _config("")


def test_parse_ssh_args_reads_o_options_j_p_l_i_and_skips_flags():
    opts = parse_ssh_args(
        "-q -C -o ProxyJump=bastion -o 'UserKnownHostsFile /tmp/kh' -oPort=2200 "
        "-J ignored-second -l admin -i ~/a -i ~/b -o StrictHostKeyChecking=accept-new -F /cfg"
    )
    assert opts["proxyjump"] == "bastion"  # first value wins, as in ssh(1)
    assert opts["userknownhostsfile"] == "/tmp/kh"
    assert opts["port"] == "2200"
    assert opts["user"] == "admin"
    assert opts["identityfile"] == ["~/a", "~/b"]
    assert opts["stricthostkeychecking"] == "accept-new"
    assert opts["configfile"] == "/cfg"


def test_ansible_vars_win_over_ssh_args_and_config():
    cfg = _config(
        "Host web1\n  HostName 10.0.0.1\n  Port 2222\n  User cfguser\n  IdentityFile /k/cfg\n"
    )
    s = settings_from_vars(
        "web1",
        {
            "ansible_port": 2201,
            "ansible_user": "ops",
            "ansible_ssh_private_key_file": "/k/ansible",
            "ansible_ssh_common_args": "-o User=cliuser -i /k/cli",
        },
        cfg,
    )
    assert s.target.host == "10.0.0.1"  # HostName comes from the config
    assert s.target.port == 2201
    assert s.target.user == "ops"
    assert s.target.key_files == ("/k/ansible", "/k/cli", "/k/cfg")


def test_ssh_config_applies_to_ansible_host_alias():
    cfg = _config("Host db-*\n  HostName 192.0.2.7\n  User dba\n  Port 2022\n")
    s = settings_from_vars("db1", {"ansible_host": "db-primary"}, cfg)
    assert (s.target.host, s.target.port, s.target.user) == ("192.0.2.7", 2022, "dba")


def test_defaults_are_strict_host_keys_and_home_known_hosts():
    s = settings_from_vars("h", {"ansible_user": "u"}, EMPTY)
    assert s.host_key_policy == "strict"
    assert s.known_hosts == Path("~/.ssh/known_hosts").expanduser()
    assert s.target.known_hosts_name == "h"
    assert s.connect_timeout == 10 and s.keepalive == 15


@pytest.mark.parametrize(
    "vars_, expected",
    [
        ({"opsbook_host_key_policy": "accept-new"}, "accept-new"),
        ({"opsbook_host_key_policy": "OFF"}, "off"),
        ({"ansible_host_key_checking": False}, "off"),
        ({"ansible_ssh_common_args": "-o StrictHostKeyChecking=no"}, "off"),
        ({"ansible_ssh_extra_args": "-o StrictHostKeyChecking=accept-new"}, "accept-new"),
        ({"ansible_ssh_common_args": "-o StrictHostKeyChecking=yes"}, "strict"),
        ({"opsbook_host_key_policy": "strict", "ansible_host_key_checking": False}, "strict"),
    ],
)
def test_host_key_policy_sources(vars_, expected):
    assert settings_from_vars("h", vars_, EMPTY).host_key_policy == expected


def test_unknown_host_key_policy_is_an_error_naming_the_choices():
    with pytest.raises(SSHError, match="strict, accept-new, off"):
        settings_from_vars("h", {"opsbook_host_key_policy": "yolo"}, EMPTY)


def test_known_hosts_from_opsbook_var_then_ssh_args():
    s = settings_from_vars("h", {"ansible_ssh_common_args": "-o UserKnownHostsFile=/a/kh"}, EMPTY)
    assert s.known_hosts == Path("/a/kh")
    s = settings_from_vars(
        "h",
        {"opsbook_known_hosts": "/b/kh", "ansible_ssh_common_args": "-o UserKnownHostsFile=/a/kh"},
        EMPTY,
    )
    assert s.known_hosts == Path("/b/kh")


def test_proxy_jump_chain_with_users_ports_and_config_lookup():
    cfg = _config("Host bastion\n  HostName 198.51.100.1\n  User jumper\n  IdentityFile /k/jump\n")
    s = settings_from_vars(
        "web1",
        {
            "ansible_host": "10.0.0.5",
            "ansible_user": "ops",
            "ansible_ssh_private_key_file": "/k/target",
            "ansible_ssh_common_args": "-o ProxyJump=bastion,admin@[2001:db8::1]:2222,inner",
        },
        cfg,
    )
    first, second, third = s.jumps
    assert (first.host, first.port, first.user) == ("198.51.100.1", 22, "jumper")
    assert first.key_files == ("/k/jump", "/k/target")
    assert (second.host, second.port, second.user) == ("2001:db8::1", 2222, "admin")
    assert (third.host, third.user) == ("inner", "ops")  # the target's user by default
    assert third.password is None  # passwords are never offered to jump hosts


def test_proxy_jump_from_dash_j_and_from_config():
    s = settings_from_vars("h", {"ansible_ssh_common_args": "-J gw:2200"}, EMPTY)
    assert [(j.host, j.port) for j in s.jumps] == [("gw", 2200)]
    cfg = _config("Host h\n  ProxyJump gw2\n")
    assert [j.host for j in settings_from_vars("h", {}, cfg).jumps] == ["gw2"]
    assert (
        settings_from_vars("h", {"ansible_ssh_common_args": "-o ProxyJump=none"}, cfg).jumps == ()
    )


def test_identities_only_turns_off_the_agent():
    s = settings_from_vars("h", {"ansible_ssh_common_args": "-o IdentitiesOnly=yes"}, EMPTY)
    assert s.allow_agent is False
    assert settings_from_vars("h", {}, EMPTY).allow_agent is True


def test_passwords_do_not_show_in_repr():
    s = settings_from_vars(
        "h", {"ansible_password": "hunter2", "ansible_become_password": "s3cret"}, EMPTY
    )
    assert s.target.password == "hunter2" and s.become_password == "s3cret"
    assert "hunter2" not in repr(s) and "s3cret" not in repr(s)


def test_connection_factory_is_registered_and_lazy():
    assert plugin.connections["ssh"] is ssh_connection
    # Nothing listens on port 1: building the connection must not connect yet.
    conn = ssh_connection(HostInfo("h", {"ansible_host": "127.0.0.1", "ansible_port": 1}))
    assert isinstance(conn, SSHConnection)
    assert conn.transport is None and conn.connects == 0


def test_unreachable_port_is_a_clear_connect_error():
    conn = ssh_connection(
        HostInfo(
            "h",
            {"ansible_host": "127.0.0.1", "ansible_port": 1, "opsbook_known_hosts": "/nonexistent"},
        )
    )
    with pytest.raises(
        SSHError, match=r"cannot connect to 127.0.0.1:1: Connection refused \(is sshd"
    ):
        conn.run(["true"])


def test_private_keys_plain_or_encrypted(tmp_path):
    import subprocess

    from opsbook_plugins.ssh.auth import _load_key

    plain, locked = tmp_path / "plain", tmp_path / "locked"
    for path, passphrase in ((plain, ""), (locked, "s3cret")):
        keygen = ["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-f", str(path)]
        subprocess.run(keygen, check=True)
    assert _load_key(str(plain), None)[0] is not None
    assert _load_key(str(plain), "a login password")[0] is not None  # not used as a passphrase
    assert _load_key(str(locked), "s3cret")[0] is not None
    key, why = _load_key(str(locked), None)
    assert key is None
    assert why == f"key {locked}: encrypted and no passphrase (ansible_password) given"
    key, why = _load_key(str(locked), "wrong")
    assert key is None and why.startswith(f"key {locked}: cannot load (")
    assert _load_key(str(tmp_path / "none"), None) == (None, f"key {tmp_path}/none: file not found")


def test_ssh_config_match_exec_works_although_paramiko_is_imported_without_invoke(tmp_path):
    # A fresh interpreter: opsbook imports paramiko without `invoke` (start-up time), and
    # loads it only for a config that has a `Match exec` line.
    import subprocess
    import sys

    cfg = tmp_path / "config"
    cfg.write_text('Match exec "test -d /"\n  User fromexec\nHost *\n  Port 2022\n')
    plain = tmp_path / "plain"
    plain.write_text("Host *\n  User plain\n")
    script = (
        "import sys\n"
        "from opsbook_plugins.ssh import settings as sc\n"
        "print('invoke' in sys.modules)\n"
        f"print(sc.settings_from_vars('h', {{'opsbook_ssh_config': {str(plain)!r}}}).target.user)\n"
        "print('invoke' in sys.modules)\n"
        f"s = sc.settings_from_vars('h', {{'opsbook_ssh_config': {str(cfg)!r}}})\n"
        "print(s.target.user, s.target.port)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:4] == ["False", "plain", "False", "fromexec 2022"], out.stderr

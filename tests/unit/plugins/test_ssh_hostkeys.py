"""Host key verification: known_hosts matching, unknown keys, changed keys (MITM), accept-new."""

from __future__ import annotations

from pathlib import Path

import paramiko
import pytest
from opsbook_plugins.ssh.auth import known_keys, verify_host_key
from opsbook_plugins.ssh.errors import HostKeyChangedError, HostKeyUnknownError
from opsbook_plugins.ssh.settings import Endpoint, SSHSettings


@pytest.fixture(scope="module")
def keys() -> tuple[paramiko.PKey, paramiko.PKey]:
    return paramiko.ECDSAKey.generate(), paramiko.ECDSAKey.generate()


def _line(name: str, key: paramiko.PKey) -> str:
    return f"{name} {key.get_name()} {key.get_base64()}\n"


def _settings(kh: Path, policy: str = "strict") -> SSHSettings:
    return SSHSettings(
        name="web1",
        target=Endpoint("127.0.0.1", 2201, "root"),
        known_hosts=kh,
        host_key_policy=policy,
    )


EP = Endpoint("127.0.0.1", 2201, "root")


def test_bracketed_port_entries_are_literal_not_glob_classes(tmp_path, keys):
    kh = tmp_path / "known_hosts"
    kh.write_text(_line("[127.0.0.1]:2201", keys[0]) + _line("[127.0.0.1]:2202", keys[1]))
    found = known_keys(kh, "[127.0.0.1]:2201")
    assert [k.key for k in found] == [keys[0]]
    assert found[0].line == 1


def test_hashed_wildcard_and_negated_names(tmp_path, keys):
    kh = tmp_path / "known_hosts"
    hashed = paramiko.HostKeys.hash_host("[127.0.0.1]:2201")
    kh.write_text(
        "# comment\n\n"
        + _line(hashed, keys[0])
        + _line("*.example.com,!evil.example.com", keys[1])
        + "garbage line\n"
    )
    assert [k.key for k in known_keys(kh, "[127.0.0.1]:2201")] == [keys[0]]
    assert [k.key for k in known_keys(kh, "web.example.com")] == [keys[1]]
    assert known_keys(kh, "evil.example.com") == []
    assert known_keys(tmp_path / "missing", "x") == []


def test_known_key_passes(tmp_path, keys):
    kh = tmp_path / "known_hosts"
    kh.write_text(_line("[127.0.0.1]:2201", keys[0]))
    verify_host_key(keys[0], EP, _settings(kh), known_keys(kh, EP.known_hosts_name))


def test_unknown_key_says_how_to_add_it(tmp_path, keys):
    kh = tmp_path / "known_hosts"
    with pytest.raises(HostKeyUnknownError) as err:
        verify_host_key(keys[0], EP, _settings(kh), [])
    msg = str(err.value)
    assert msg.startswith(f"host key for [127.0.0.1]:2201 is not in known_hosts ({kh})")
    assert "ssh-keyscan -p 2201 127.0.0.1" in msg
    assert "opsbook_host_key_policy=accept-new" in msg
    assert keys[0].fingerprint in msg


def test_changed_key_is_loud_and_names_both_fingerprints(tmp_path, keys):
    kh = tmp_path / "known_hosts"
    kh.write_text(_line("[127.0.0.1]:2201", keys[0]))
    with pytest.raises(HostKeyChangedError) as err:
        verify_host_key(
            keys[1], EP, _settings(kh, "accept-new"), known_keys(kh, EP.known_hosts_name)
        )
    msg = str(err.value)
    assert "HOST KEY FOR [127.0.0.1]:2201 HAS CHANGED" in msg
    assert "man-in-the-middle" in msg
    assert keys[0].fingerprint in msg and keys[1].fingerprint in msg
    assert f"{kh}:1" in msg
    assert "ssh-keygen -R '[127.0.0.1]:2201'" in msg


def test_accept_new_records_the_key_once(tmp_path, keys):
    kh = tmp_path / "sub" / "known_hosts"
    verify_host_key(keys[0], EP, _settings(kh, "accept-new"), [])
    assert kh.read_text() == _line("[127.0.0.1]:2201", keys[0])
    assert oct(kh.stat().st_mode & 0o777) == "0o600"
    verify_host_key(keys[0], EP, _settings(kh, "accept-new"), known_keys(kh, EP.known_hosts_name))


def test_policy_off_accepts_anything(tmp_path, keys):
    kh = tmp_path / "known_hosts"
    kh.write_text(_line("[127.0.0.1]:2201", keys[0]))
    verify_host_key(keys[1], EP, _settings(kh, "off"), known_keys(kh, EP.known_hosts_name))
    assert kh.read_text() == _line("[127.0.0.1]:2201", keys[0])


def test_revoked_key_is_refused_even_with_another_good_entry(tmp_path, keys):
    kh = tmp_path / "known_hosts"
    kh.write_text(
        "@revoked " + _line("[127.0.0.1]:2201", keys[0]) + _line("[127.0.0.1]:2201", keys[1])
    )
    with pytest.raises(HostKeyChangedError, match="@revoked"):
        verify_host_key(keys[0], EP, _settings(kh), known_keys(kh, EP.known_hosts_name))
    verify_host_key(keys[1], EP, _settings(kh), known_keys(kh, EP.known_hosts_name))


def test_port_22_uses_the_bare_host_name():
    assert Endpoint("10.0.0.1", 22).known_hosts_name == "10.0.0.1"
    assert Endpoint("10.0.0.1", 2222).known_hosts_name == "[10.0.0.1]:2222"


def test_a_fleet_file_is_read_once_and_again_when_it_changes(tmp_path, keys):
    kh = tmp_path / "known_hosts"
    kh.write_text("".join(_line(f"10.0.0.{i},host{i}", keys[i % 2]) for i in range(1, 201)))
    assert [k.key for k in known_keys(kh, "host7")] == [keys[1]]
    assert [(k.key, k.line) for k in known_keys(kh, "10.0.0.8")] == [(keys[0], 8)]
    assert [k.key for k in known_keys(kh, "HOST8")] == [keys[0]]  # names are case-insensitive
    assert known_keys(kh, "[127.0.0.1]:2201") == []
    # accept-new appends to the file: the next lookup must see the new line
    with kh.open("a") as handle:
        handle.write(_line("[127.0.0.1]:2201", keys[0]) + _line("host7", keys[0]))
    assert [(k.key, k.line) for k in known_keys(kh, "[127.0.0.1]:2201")] == [(keys[0], 201)]
    assert [k.line for k in known_keys(kh, "host7")] == [7, 202]  # file order kept
    kh.unlink()
    assert known_keys(kh, "host7") == []

"""Which inventory variables are secrets (issue 16, item 2): their values are redacted from
the first event of a run, and from `opsbook plan`."""

from __future__ import annotations

import pytest

from opsbook.secrets import SecretStore, is_secret_name, secret_values


@pytest.mark.parametrize("name", [
    "ansible_password", "ansible_ssh_pass", "ansible_become_pass", "ansible_become_password",
    "ansible_sudo_pass", "vault_password", "lab_sudo_password", "db_passwd", "api_token", "GITHUB_TOKEN",
    "client_secret", "AWS_SECRET_ACCESS_KEY", "api_key", "apikey", "private_key", "ssh_passphrase",
    "registry_credentials", "mysqlpassword", "slack-token",
])
def test_names_that_mark_a_secret(name):
    assert is_secret_name(name)


@pytest.mark.parametrize("name", [
    "ansible_host", "ansible_user", "ansible_ssh_private_key_file", "opsbook_host_key_policy",
    "ansible_ssh_host_key_checking", "token_file", "password_path", "bypass_cache", "passenger_port",
    "keyboard", "monkey", "secret_name", "api_key_id",
])
def test_names_that_do_not(name):
    assert not is_secret_name(name)


def test_nested_values_under_a_secret_name_and_secret_names_inside_a_mapping():
    assert secret_values("db", {"user": "app", "password": "p1", "port": 5432}) == ["p1"]
    assert secret_values("tokens", ["t1", {"x": "t2"}, True, None, ""]) == ["t1", "t2"]
    assert secret_values("vault_pin", 1234) == []  # "pin" is not a marker
    assert secret_values("vault_password", 1234) == ["1234"]


def test_add_inventory_registers_each_value_once(tmp_path):
    from opsbook.inventory import load_inventory

    inv = tmp_path / "inv.ini"
    inv.write_text("[web]\nweb[1:50] api_token=shared-tok\nspecial ansible_become_password=own-pw\n"
                   "[web:vars]\nansible_user=deploy\n")
    store = SecretStore()
    store.add_inventory(load_inventory([str(inv)]))
    assert sorted(store.values) == ["own-pw", "shared-tok"]
    assert store.redact("deploy shared-tok own-pw") == "deploy ******** ********"

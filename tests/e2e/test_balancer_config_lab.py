"""permanent-fix/balancer-config.yaml against the lab's balancer: a role (haproxy_config)
renders haproxy.cfg with template + validate + backup; a configuration haproxy refuses
is never put in place, and a good one is installed, reloaded, verified and backed up."""

from __future__ import annotations

import lab_helpers as lh
import pytest

pytestmark = [pytest.mark.lab, pytest.mark.slow]

RUNBOOK = "permanent-fix/balancer-config.yaml"
CFG = "/etc/haproxy/haproxy.cfg"


@pytest.fixture
def balancer(lab):
    """The pristine lab; lb1's haproxy.cfg put back (and reloaded) afterwards, backups removed."""
    yield from _restoring(lab)


def _restoring(lab):
    for _ in lh.pristine_lab(lab):
        original = lh.sh_ok(lab, "lb1", f"cat {CFG}")
        try:
            yield lab, original
        finally:
            lh.sh(lab, "lb1", f"rm -f {CFG}.*~")
            if lh.sh(lab, "lb1", f"cat {CFG}") != original:
                lh.sh_ok(lab, "lb1", f"cat > {CFG} <<'OPSBOOK_EOF'\n{original}OPSBOOK_EOF\nservice haproxy reload")


@pytest.fixture
def ob(lab, tmp_path, monkeypatch):
    return lh.make_opsbook(lab, tmp_path, monkeypatch)


def test_the_runbook_and_its_role_pass_check_with_the_lab_inventory(lab, ob):
    done = ob.cli("check", f"runbooks/{RUNBOOK}", "-i", lab.info.inventory)
    assert done.returncode == 0 and f"ok  runbooks/{RUNBOOK}" in done.stdout, done.stdout + done.stderr


def test_new_timeouts_are_validated_installed_backed_up_and_verified(balancer, ob):
    lab, original = balancer
    result = ob.run(RUNBOOK, timeout_server="45s", retries=3)

    assert result.rc == 0, result.summary()
    installed = lh.sh_ok(lab, "lb1", f"cat {CFG}")
    assert "timeout server  45s" in installed and "retries 3" in installed
    servers = [line for line in original.splitlines() if line.strip().startswith("server ")]
    assert servers and all(line in installed.splitlines() for line in servers)  # the pool is kept
    registered = result.node("haproxy_config : install haproxy.cfg", "lb1")
    assert registered["status"] == "ok" and registered["changed"]
    backups = lh.sh_ok(lab, "lb1", f"ls {CFG}.*~").split()
    assert len(backups) == 1 and lh.sh_ok(lab, "lb1", f"cat {backups[0]}") == original
    assert result.status_of("haproxy_config : reload haproxy", "lb1") == "ok"
    assert lh.http_get(lh.lb_url(lab, "/healthz"))[0] == 200
    assert set(lh.pool(lab).values()) == {"UP"}


def test_a_configuration_haproxy_refuses_is_never_put_in_place(balancer, ob):
    lab, original = balancer
    result = ob.run(RUNBOOK, extra="this_is_not_a_directive on")

    assert result.rc != 0, result.summary()
    message = result.msg("haproxy_config : install haproxy.cfg", "lb1")
    assert result.status_of("haproxy_config : install haproxy.cfg", "lb1") == "failed"
    assert f"{CFG}: validate failed" in message and f"{CFG} was left as it was" in message, message
    assert lh.sh_ok(lab, "lb1", f"cat {CFG}") == original
    assert "ok" not in [e["status"] for e in result.finished("haproxy_config : reload haproxy", "lb1")]
    assert lh.http_get(lh.lb_url(lab, "/healthz"))[0] == 200

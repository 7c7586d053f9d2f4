"""`type: host` is exactly one inventory host; a pattern needs `type: hosts` (issue 16, item 10).
`-e primary=all` used to run a `hosts: "{{ params.primary }}"` step on every host."""

from __future__ import annotations

import subprocess
import sys

import pytest

from opsbook.api import load_inventory_sources, make_plan
from opsbook.errors import ValidationError

INVENTORY = "[web]\nweb1 ansible_connection=local\nweb2 ansible_connection=local\n[lb]\nlb1 ansible_connection=local\n"

RUNBOOK = """
opsbook: 1
name: t
params:
  primary: {type: host, default: web1}
  targets: {type: hosts, default: "web:!web2"}
steps:
  - name: on the primary
    local.command: echo primary
    hosts: "{{ params.primary }}"
  - name: on the targets
    local.command: echo targets
    hosts: "{{ params.targets }}"
"""


@pytest.fixture
def plan_for(load, write):
    rb = load(RUNBOOK)
    inventory = load_inventory_sources([write("inv.ini", INVENTORY)])

    def _plan(**params):
        return make_plan(rb, inventory, params)

    return _plan


def _hosts(plan, step_id):
    return list(plan.leaves[step_id].hosts)


def test_a_host_param_is_one_host_and_a_hosts_param_a_pattern(plan_for):
    plan = plan_for()
    assert _hosts(plan, "on-the-primary") == ["web1"]
    assert _hosts(plan, "on-the-targets") == ["web1"]
    plan = plan_for(primary="lb1", targets="web*:lb1")
    assert _hosts(plan, "on-the-primary") == ["lb1"]
    assert _hosts(plan, "on-the-targets") == ["web1", "web2", "lb1"]


@pytest.mark.parametrize(("value", "what"), [
    ("all", 'the group "all"'),
    ("web", 'the group "web"'),
    ("web*", "a host pattern"),
    ("~.*", "a host pattern"),
    ("web1:lb1", "a host pattern"),
    ("web1,lb1", "a host pattern"),
    ("!web2", "a host pattern"),
])
def test_a_pattern_given_to_a_host_param_is_refused_at_its_line(plan_for, value, what):
    with pytest.raises(ValidationError) as err:
        plan_for(primary=value)
    (diag,) = err.value.diagnostics
    assert diag.position.line == 4  # the line of the parameter
    assert diag.message == f'parameter "primary" is one host (type: host), but "{value}" is {what}'
    assert "declare it {type: hosts}" in diag.hint and "web1" in diag.hint


def test_an_unknown_host_gets_did_you_mean(plan_for):
    with pytest.raises(ValidationError) as err:
        plan_for(primary="wbe1")
    (diag,) = err.value.diagnostics
    assert diag.message == 'parameter "primary" (type: host): "wbe1" is not a host of the inventory (did you mean "web1"?)'
    assert diag.hint == "inventory hosts: web1, web2, lb1"


def test_a_bad_hosts_pattern_is_reported_at_the_param(plan_for):
    with pytest.raises(ValidationError) as err:
        plan_for(targets="web:dbx")
    (diag,) = err.value.diagnostics
    assert diag.position.line == 5 and diag.message.startswith('parameter "targets" (hosts): ')
    assert "dbx" in diag.message


def test_the_implicit_localhost_is_a_host(load, write):
    rb = load(RUNBOOK.replace("default: web1", "default: localhost"))
    plan = make_plan(rb, load_inventory_sources([write("inv.ini", INVENTORY)]), {})
    assert _hosts(plan, "on-the-primary") == ["localhost"]


def test_without_an_inventory_check_does_not_judge_host_params(load):
    """`opsbook check rb.yaml` (no -i) must not fail on a host that only the real inventory has."""
    rb = load(RUNBOOK.replace("default: web1", "default: localhost").replace('"web:!web2"', "localhost"))
    plan = make_plan(rb, load_inventory_sources([]), {"primary": "localhost"})
    assert _hosts(plan, "on-the-primary") == ["localhost"]


def test_run_with_a_pattern_for_a_host_param_exits_2_without_touching_anything(tmp_path, write):
    rb = write("rb.yaml", RUNBOOK.replace("echo primary", f"touch {tmp_path}/touched"))
    inv = write("inv.ini", INVENTORY)
    env_home = tmp_path / "state"
    proc = subprocess.run([sys.executable, "-m", "opsbook", "run", rb, "-i", inv, "-e", "primary=all"],
                          capture_output=True, text=True, check=False,
                          env={"PATH": "/usr/bin:/bin", "XDG_STATE_HOME": str(env_home), "HOME": str(tmp_path)})
    assert proc.returncode == 2, proc
    assert f"{rb}:4:" in proc.stderr and 'but "all" is the group "all"' in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "touched").exists()

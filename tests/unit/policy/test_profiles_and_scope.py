"""Policy profiles (minimal / safety / production, chosen in .opsbook.yaml or with
--profile) and where the policy's findings are errors: in incident runbooks by default,
in every runbook once a project asks for the policy (issue 31, items 2 and 3)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from opsbook.check import check_files
from opsbook.errors import ValidationError
from opsbook.policy import PROFILES, RULE_IDS, PolicyConfig
from opsbook.policy_config import config_for, load_config

ROOT = Path(__file__).resolve().parents[3]

# an ad-hoc runbook: a change with no gate, no rollback, and a drain without keep_healthy
AD_HOC = """opsbook: 1
name: adhoc
steps:
  - name: touch
    local.command: touch /tmp/opsbook-adhoc
  - name: stop web
    approve: "Stop?"
    docker.container: {name: web, state: stopped}
"""
INCIDENT = AD_HOC.replace("name: adhoc\n", "name: adhoc\nphase: first-response\n")


def _found(tmp_path: Path, text: str, config: PolicyConfig) -> list[tuple[int, str, str]]:
    path = tmp_path / "rb.yaml"
    path.write_text(text)
    (report,) = check_files([str(path)], _registry(), [], policy=config)
    return sorted((d.position.line, d.rule, d.severity) for d in report.diagnostics if d.rule)


def _registry():
    from opsbook.registry import Registry

    return Registry.from_entry_points()


def test_each_profile_holds_the_one_before_it_and_production_is_every_rule():
    minimal, safety, production = (set(PROFILES[p]) for p in ("minimal", "safety", "production"))
    assert minimal < safety < production == set(RULE_IDS)
    assert {"mitigation-approved", "keep-healthy", "objectives", "serial-max-fail"} == minimal
    assert safety - minimal == {"mutation-gated", "critical-path-timeout"}
    assert production - safety == {"rollback"}


def test_a_profile_runs_only_its_rules(tmp_path):
    everything = [(5, "mutation-gated", "error"), (5, "rollback", "error"), (8, "keep-healthy", "error")]
    assert _found(tmp_path, AD_HOC, PolicyConfig()) == everything
    assert _found(tmp_path, AD_HOC, PolicyConfig(profile="safety")) == [(5, "mutation-gated", "error"),
                                                                       (8, "keep-healthy", "error")]
    assert _found(tmp_path, AD_HOC, PolicyConfig(profile="minimal")) == [(8, "keep-healthy", "error")]


def test_without_a_config_findings_are_errors_in_incident_runbooks_and_warnings_in_ad_hoc_ones(tmp_path,
                                                                                            monkeypatch):
    monkeypatch.chdir(tmp_path)  # no .opsbook.yaml here or above
    bare = config_for(None)
    assert bare.everywhere is False and bare.rules == set(RULE_IDS)
    assert {sev for *_, sev in _found(tmp_path, AD_HOC, bare)} == {"warning"}
    assert {sev for *_, sev in _found(tmp_path, INCIDENT, bare)} == {"error"}
    with_objectives = AD_HOC.replace("name: adhoc\n", "name: adhoc\nobjectives: {rto: 10m}\n")
    assert "error" in {sev for *_, sev in _found(tmp_path, with_objectives, bare)}


def test_a_config_file_or_a_profile_makes_findings_errors_everywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert config_for(None, profile="minimal").everywhere
    (tmp_path / ".opsbook.yaml").write_text("policy:\n  profile: safety\n  disable: [keep-healthy]\n")
    project = config_for(None)
    assert project.everywhere and project.profile == "safety"
    assert _found(tmp_path, AD_HOC, project) == [(5, "mutation-gated", "error")]
    # --profile replaces the file's choice of rules; its disable: still holds
    assert config_for(None, profile="production").rules == set(RULE_IDS) - {"keep-healthy"}


def test_a_bad_profile_is_an_error_at_its_line_with_did_you_mean(tmp_path):
    config = tmp_path / ".opsbook.yaml"
    config.write_text("policy:\n  profile: safty\n")
    with pytest.raises(ValidationError) as exc:
        load_config(config)
    assert [(d.position.line, d.message) for d in exc.value.diagnostics] == [
        (2, 'policy.profile: no profile "safty" (did you mean "safety"?)')]
    config.write_text("policy:\n  profile: safety\n  enable: [rollback]\n")
    with pytest.raises(ValidationError) as exc:
        load_config(config)
    assert [(d.position.line, d.message) for d in exc.value.diagnostics] == [
        (2, "policy: profile: and enable: both choose the rules that run")]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "opsbook", "check", *args], capture_output=True, text=True, cwd=cwd,
                          check=False)


def test_a_newcomers_first_check_of_an_ad_hoc_runbook_passes_with_warnings(tmp_path):
    (tmp_path / "adhoc.yaml").write_text(AD_HOC)
    first = _cli("adhoc.yaml", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "warning: step \"touch\" changes state (local.command) and has no rollback [rollback]" in first.stderr
    assert "only a warning here: an ad-hoc runbook (no phase: or objectives:)" in first.stderr
    assert "error:" not in first.stderr
    # the same runbook fails once CI asks for the policy: --profile, --strict, or a config file
    assert _cli("--profile", "minimal", "adhoc.yaml", cwd=tmp_path).returncode == 1  # keep-healthy
    assert _cli("--strict", "adhoc.yaml", cwd=tmp_path).returncode == 1
    (tmp_path / "incident.yaml").write_text(INCIDENT)
    assert _cli("incident.yaml", cwd=tmp_path).returncode == 1


def test_profile_on_the_command_line_is_checked_by_click(tmp_path):
    (tmp_path / "adhoc.yaml").write_text(AD_HOC)
    done = _cli("--profile", "strict", "adhoc.yaml", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "'strict' is not one of 'minimal', 'safety', 'production'" in done.stderr


def test_the_readme_demo_runbook_checks_clean_with_no_warnings():
    done = _cli("runbooks/local/restart-web.yaml", cwd=ROOT)
    assert done.returncode == 0 and done.stderr == "", done.stderr

"""The keys docker.inspect, docker.stats, docker.events, docker.diff and docker.cp_out declare
for `register` (what `opsbook check` knows) are exactly the keys they return."""

from __future__ import annotations

from opsbook_plugins import docker as dockerplugin
from opsbook_plugins.docker.evidence import event_record


def test_inspect_declares_exactly_the_facts_it_returns():
    facts = dockerplugin.container_facts({"Id": "abc", "State": {"Running": True, "Health": {"Status": "healthy"}}})
    declared = set(dockerplugin.plugin.actions["inspect"].data)
    assert set(facts) == declared - {"raw"}  # raw only with raw: true


def test_stats_declares_exactly_the_numbers_it_returns():
    summary = dockerplugin.stats_summary({"memory_stats": {"usage": 10, "limit": 100}})
    declared = set(dockerplugin.plugin.actions["stats"].data)
    assert set(summary) == declared - {"container", "path"}  # added by the action itself


def test_an_event_record_is_flat_and_reads_exit_codes():
    raw = {"Type": "container", "Action": "health_status: unhealthy", "timeNano": 1_700_000_000_123_000_000,
           "Actor": {"ID": "0123456789abcdef", "Attributes": {"name": "web", "image": "nginx", "exitCode": "137"}}}
    record = event_record(raw)
    assert record == {"time": 1_700_000_000.123, "at": "2023-11-14T22:13:20.123Z", "action": "health_status",
                      "detail": "unhealthy", "container": "web", "id": "0123456789ab", "image": "nginx",
                      "exit_code": 137, "signal": None}


def test_check_knows_the_new_actions_registered_keys(tmp_path):
    import subprocess
    import sys

    rb = tmp_path / "rb.yaml"
    rb.write_text("""opsbook: 1
name: rc
steps:
  - name: events
    docker.events: {container: web, actions: [oom, die]}
    register: ev
  - name: verdict
    local.assert: {that: "ev.oom or ev.counts.die | default(0) > 2 or ev.omm"}
""")
    done = subprocess.run([sys.executable, "-m", "opsbook", "check", str(rb)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0 and 'no key "omm" (did you mean "oom"?)' in done.stdout + done.stderr


def test_docs_docker_md_names_every_action_and_every_registered_key():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[3] / "docs" / "docker.md").read_text()
    for name, spec in dockerplugin.plugin.actions.items():
        assert f"`docker.{name}`" in text, f"docs/docker.md does not list docker.{name}"
        for key in spec.data or ():
            assert f"`{key}`" in text, f"docs/docker.md does not document docker.{name}'s registered key {key}"

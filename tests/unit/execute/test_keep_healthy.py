"""Safety pre-flight: opsbook refuses to take the last healthy members of a group out."""

from __future__ import annotations

INVENTORY = "[web]\nweb[1:3] ansible_connection=local\n"


def runbook(tmp_path, minimum) -> str:
    return f"""
        opsbook: 1
        name: isolate
        hosts: web
        steps:
          - name: isolate
            keep_healthy:
              min: {minimum}
              probe: {{local.wait: {{path: "{tmp_path}/healthy-{{{{ inventory_hostname }}}}", timeout: 0}}}}
            local.shell: "rm {tmp_path}/healthy-{{{{ inventory_hostname }}}}; echo {{{{ inventory_hostname }}}} >> {tmp_path}/out"
        """


def healthy(tmp_path, *hosts):
    for h in hosts:
        (tmp_path / f"healthy-{h}").write_text("")


def test_refuses_to_take_the_last_healthy_member_out(run, journal, tmp_path):
    healthy(tmp_path, "web1", "web2", "web3")
    summary = run(runbook(tmp_path, 1), INVENTORY, forks=3)
    nodes = journal.nodes(summary.run_id)
    out = (tmp_path / "out").read_text().split()
    assert len(out) == 2, "two of three can go; the last healthy one must stay"
    (refused,) = [n for n in nodes.values() if n.status == "failed"]
    assert refused.msg.startswith(f"refusing to take {refused.host} out: only 0 other healthy member(s) of "
                                  "the step's hosts would remain (none); keep_healthy requires 1")
    assert "taken out by this step and not yet put back: " + ", ".join(sorted(out)) in refused.msg
    assert (tmp_path / f"healthy-{refused.host}").exists()


def test_counts_unhealthy_members_as_gone(run, journal, tmp_path):
    healthy(tmp_path, "web1", "web2")  # web3 is already down
    summary = run(runbook(tmp_path, "50%"), INVENTORY, forks=1, limit=frozenset({"web1"}))
    rec = journal.nodes(summary.run_id)["isolate@web1"]
    assert rec.status == "failed"
    assert "keep_healthy requires 2" in rec.msg and "unhealthy: web3" in rec.msg
    assert not (tmp_path / "out").exists()


def test_allows_when_enough_remain(run, journal, tmp_path):
    healthy(tmp_path, "web1", "web2", "web3")
    summary = run(runbook(tmp_path, 2), INVENTORY, limit=frozenset({"web2"}))
    assert summary.status == "succeeded"
    assert (tmp_path / "out").read_text().split() == ["web2"]
    events = [e for e in journal.events(summary.run_id) if e[1] == "preflight"]
    assert events[0][3]["healthy_others"] == ["web1", "web3"]

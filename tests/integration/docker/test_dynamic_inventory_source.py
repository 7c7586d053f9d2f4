"""`-i docker://?label=...`: the docker plugin's inventory source, through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def test_containers_by_label_are_hosts_and_run_steps_over_docker_exec(lab, tmp_path):
    info = lab.info
    source = f"docker://?label=org.opsbook.lab={info.name}&label=org.opsbook.lab.host=web1&host={info.docker_host}"
    env = {**os.environ, "OPSBOOK_JOURNAL": str(tmp_path / "j.db"), "OPSBOOK_RUNS_DIR": str(tmp_path / "runs")}
    listed = subprocess.run([sys.executable, "-m", "opsbook", "inventory", "-i", source, "--list"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    (name,) = data["_meta"]["hostvars"]
    assert name.endswith("web1")
    assert data["_meta"]["hostvars"][name]["ansible_connection"] == "docker"
    rb = tmp_path / "rb.yaml"
    rb.write_text("opsbook: 1\nname: d\nhosts: all\nsteps:\n"
                  "  - {name: who, ssh.command: hostname, register: who}\n")
    run = subprocess.run([sys.executable, "-m", "opsbook", "run", str(rb), "-i", source, "--format", "json"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    finished = [json.loads(line) for line in run.stdout.splitlines() if '"node_finished"' in line]
    assert finished and finished[0]["status"] == "ok"


def test_unknown_scheme_is_a_clear_error(tmp_path):
    out = subprocess.run([sys.executable, "-m", "opsbook", "inventory", "-i", "nosuch://x", "--list"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert 'no plugin provides inventory source "nosuch://"' in out.stderr and "docker://" in out.stderr

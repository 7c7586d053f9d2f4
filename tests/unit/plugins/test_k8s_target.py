"""`opsbook plan` names the cluster (context and API server) each Kubernetes step targets,
read from the kubeconfig; nothing is contacted."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml


def _kubeconfig(path, current="prod"):
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "c-prod", "cluster": {"server": "https://10.0.0.1:6443"}},
                    {"name": "c-staging", "cluster": {"server": "https://10.0.0.2:6443"}},
                ],
                "users": [{"name": "u", "user": {"token": "x"}}],
                "contexts": [
                    {"name": "prod", "context": {"cluster": "c-prod", "user": "u"}},
                    {"name": "staging", "context": {"cluster": "c-staging", "user": "u"}},
                ],
                "current-context": current,
            }
        )
    )
    return path


def _plan(tmp_path, *extra):
    rb = tmp_path / "rb.yaml"
    rb.write_text(
        "opsbook: 1\nname: t\nhosts: clusters\nsteps:\n"
        "  - name: read\n    k8s.get: {kind: deployment, name: web}\n"
        "  - name: read staging\n    k8s.get: {kind: deployment, name: web, context: staging}\n"
    )
    inv = tmp_path / "inv.ini"
    inv.write_text(f"[clusters]\neu ansible_connection=local k8s_kubeconfig={tmp_path / 'kc.yaml'}\n")
    cmd = [sys.executable, "-m", "opsbook", "plan", str(rb), "-i", str(inv), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def test_plan_names_context_and_server_of_each_k8s_step(tmp_path):
    _kubeconfig(tmp_path / "kc.yaml")
    out = _plan(tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    at = lines.index("    eu: k8s.get {\"kind\": \"deployment\", \"name\": \"web\"}")
    assert lines[at + 1] == "      -> cluster prod (https://10.0.0.1:6443)"
    assert "      -> cluster staging (https://10.0.0.2:6443)" in lines
    data = json.loads(_plan(tmp_path, "--format", "json").stdout)
    assert [n.get("target") for n in data["nodes"]] == [
        "cluster prod (https://10.0.0.1:6443)",
        "cluster staging (https://10.0.0.2:6443)",
    ]


def test_run_header_lists_the_clusters(tmp_path):
    """The run's first line names every cluster; here nothing listens there (a closed
    local port), so the step itself fails, after the header said where it went."""
    kc = _kubeconfig(tmp_path / "kc.yaml")
    text = kc.read_text().replace("https://10.0.0.1:6443", "https://127.0.0.1:9")
    kc.write_text(text)
    rb = tmp_path / "rb.yaml"
    rb.write_text("opsbook: 1\nname: t\nsteps:\n  - name: read\n    k8s.get: {kind: deployment, name: web}\n")
    env = {"KUBECONFIG": str(kc), "OPSBOOK_RUNS_DIR": str(tmp_path / "runs"),
           "OPSBOOK_JOURNAL": str(tmp_path / "j.db"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "opsbook", "run", str(rb), "--yes"], capture_output=True,
                         text=True, check=False, env=env, timeout=120)
    both = out.stdout + out.stderr
    assert "run " in both and "\n         -> cluster prod (https://127.0.0.1:9): read" in both, both

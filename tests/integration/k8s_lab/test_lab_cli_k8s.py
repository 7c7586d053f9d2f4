"""The Kubernetes part of the lab from a user's shell (issue 25 item 10): `opsbook-lab up
--k8s` brings it up (here: finds the running control plane and reuses it), `opsbook-lab env`
exports its KUBECONFIG, `status` says it is ready, and a Kubernetes runbook of the library
runs with nothing else than what those commands gave."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.k8s, pytest.mark.lab]
REPO = Path(__file__).resolve().parents[3]


def lab_cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "opsbook_lab.cli", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, check=False)


def test_up_k8s_then_env_gives_what_a_kubernetes_runbook_needs(lab, k8s_lab, tmp_path):
    up = lab_cli("-q", "up", "--k8s")
    assert up.returncode == 0, up.stderr[-2000:]
    assert f"kubernetes     {k8s_lab.server}, namespaces shop, payments, monitoring" in up.stdout, up.stdout
    assert f"kubeconfig     {k8s_lab.kubeconfig}" in up.stdout

    exports = dict(shlex.split(line[len("export "):])[0].split("=", 1)
                   for line in lab_cli("env").stdout.splitlines() if line.startswith("export "))
    assert exports["KUBECONFIG"] == str(k8s_lab.kubeconfig)
    status = lab_cli("status")
    assert f"kubernetes {k8s_lab.server}: ready" in status.stdout, status.stdout

    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env.update(exports, OPSBOOK_JOURNAL=str(tmp_path / "journal.db"), OPSBOOK_RUNS_DIR=str(tmp_path / "runs"))
    # the Deployment is healthy, and the runbook refuses to restart a healthy one without force=true
    run = subprocess.run([sys.executable, "-m", "opsbook", "run", "runbooks/kubernetes/first-response-deployment.yaml",
                          "-e", "namespace=shop", "-e", "deployment=frontend", "-e", "force=true", "--yes"],
                         capture_output=True, text=True,
                         timeout=600, env=env, cwd=REPO, stdin=subprocess.DEVNULL, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

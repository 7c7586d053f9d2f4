"""`opsbook-lab` from a shell: `up --recreate` in a fresh process replaces every container."""

from __future__ import annotations

import subprocess
import sys


def test_up_recreate_in_a_fresh_process_replaces_the_containers(lab):
    before = {name: h.container_id for name, h in lab.info.hosts.items()}
    done = subprocess.run([sys.executable, "-m", "opsbook_lab.cli", "-q", "up", "--recreate"],
                          capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-2000:]
    after = {name: h.container_id for name, h in lab.info.hosts.items()}  # re-read from lab.json
    assert after.keys() == before.keys()
    assert all(after[name] != before[name] for name in before), (before, after)
    rc, out = lab.exec("web1", "cat /etc/opsbook-lab-role")
    assert rc == 0 and out.strip() == "web"
    status = subprocess.run([sys.executable, "-m", "opsbook_lab.cli", "status"],
                            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert status.returncode == 0, status.stdout + status.stderr

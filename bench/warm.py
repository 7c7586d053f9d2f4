"""Warm per-command latency on an open connection: opsbook's SSHConnection vs raw paramiko.

    python -m bench.warm spec.json opsbook 200
    python -m bench.warm spec.json paramiko 200

Prints one JSON line: connect_s, median_s, p90_s, cpu_per_command_s (this process, all threads), n. opsbook's command is run the way the
`ssh.command` action runs it (an argv list, a cancel event, a line callback).
"""

from __future__ import annotations

import json
import statistics
import sys
import threading
import time
from typing import Any


def opsbook_warm(spec: dict[str, Any], count: int) -> dict[str, Any]:
    from opsbook_plugins.ssh.connection import SSHConnection
    from opsbook_plugins.ssh.settings import settings_from_vars

    address, port = spec["hosts"][0]
    settings = settings_from_vars("h1", {
        "ansible_host": address, "ansible_port": port, "ansible_user": spec["user"],
        "ansible_ssh_private_key_file": spec["key"], "opsbook_known_hosts": spec["known_hosts"],
        "opsbook_ssh_allow_agent": False,
    })
    conn = SSHConnection(settings)
    cancel = threading.Event()
    lines: list[str] = []
    t0 = time.perf_counter()
    conn.run(["true"], cancel=cancel, on_output=lines.append)  # connects lazily
    connect_s = time.perf_counter() - t0
    try:
        for _ in range(5):
            conn.run(["true"], cancel=cancel, on_output=lines.append)
        lat = []
        cpu0 = time.process_time()
        for _ in range(count):
            t = time.perf_counter()
            res = conn.run(["true"], cancel=cancel, on_output=lines.append)
            lat.append(time.perf_counter() - t)
            assert res.rc == 0, res
        cpu = (time.process_time() - cpu0) / count
    finally:
        conn.close()
    return {"connect_s": connect_s, "median_s": statistics.median(lat), "cpu_per_command_s": cpu,
            "p90_s": sorted(lat)[int(0.9 * (len(lat) - 1))], "n": count}


def main(argv: list[str]) -> int:
    with open(argv[0]) as f:
        spec = json.load(f)
    tool, count = argv[1], int(argv[2])
    if tool == "opsbook":
        out = opsbook_warm(spec, count)
    else:
        from bench.floor import warm

        out = warm(spec, count)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Run many CLI invocations of one tool in one Python process, a forked child per job.

    python forkrun.py ansible-playbook WIDTH TIMEOUT < jobs.json > results.json
    python forkrun.py opsbook WIDTH TIMEOUT < jobs.json > results.json

Importing ansible-core (or opsbook) is most of a short command's cost, so this imports the
tool once and forks a child per job: each child starts from the same freshly imported
state, as a new process would, and exits. Jobs are {"argv": [...], "cwd": ..., "env": {...}};
results {"rc", "stdout", "stderr", "seconds"}, in job order; a job still running after
TIMEOUT seconds is killed with its process group (rc -9, "timed out" in its stderr). Standard library only: it runs
with ansible-core's own Python as well as with the tests' (the same idea as
tests/unit/inventory/ansible_driver.py, for ansible-playbook and opsbook run).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time


def _entry(tool):
    if tool == "ansible-playbook":
        import ansible.cli.playbook

        return lambda argv: ansible.cli.playbook.main(argv)
    if tool == "opsbook":
        import opsbook.cli
        import opsbook.registry

        opsbook.registry.Registry.from_entry_points()  # import the plugins once, before forking
        return lambda argv: opsbook.cli.main(argv[1:], prog_name="opsbook")
    raise SystemExit(f"forkrun: unknown tool {tool!r}")


def _child(main, job, out_path, err_path):
    code = 70
    try:
        os.setpgid(0, 0)  # its own process group: a hung job is killed with its workers
        os.chdir(job["cwd"])
        os.environ.update(job.get("env") or {})
        for fd, path in ((1, out_path), (2, err_path)):
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(handle, fd)
            os.close(handle)
        sys.argv = list(job["argv"])
        try:
            main(list(job["argv"]))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException as exc:  # noqa: BLE001 - reported as the job's stderr
            import traceback

            traceback.print_exc()
            code = 70 if not isinstance(exc, KeyboardInterrupt) else 130
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _read(path):
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read()


def run_all(main, jobs, scratch, width, timeout):
    """Run the jobs, `width` children at a time; results in job order."""
    results = [None] * len(jobs)
    running = {}
    todo = list(enumerate(jobs))
    while todo or running:
        while todo and len(running) < width:
            index, job = todo.pop(0)
            paths = (os.path.join(scratch, f"{index}.out"), os.path.join(scratch, f"{index}.err"))
            sys.stdout.flush()
            pid = os.fork()
            if pid == 0:
                _child(main, job, *paths)
            running[pid] = (index, paths, time.monotonic())
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            _kill_late(running, timeout)
            time.sleep(0.005)
            continue
        if pid in running:
            index, paths, began = running.pop(pid)
            results[index] = {"rc": os.waitstatus_to_exitcode(status), "stdout": _read(paths[0]),
                              "stderr": _read(paths[1]), "seconds": round(time.monotonic() - began, 3)}
            if results[index]["rc"] == -signal.SIGKILL:
                results[index]["stderr"] += f"\nforkrun: timed out after {timeout}s; killed\n"
    return results


def _kill_late(running, timeout):
    now = time.monotonic()
    for pid, (_, _, began) in running.items():
        if now - began > timeout:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def main():
    tool, width, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    jobs = json.load(sys.stdin)
    entry = _entry(tool)
    with tempfile.TemporaryDirectory(prefix="forkrun-") as scratch:
        results = run_all(entry, jobs, scratch, max(1, width), timeout)
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()

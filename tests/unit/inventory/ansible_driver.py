"""Run many ansible CLI commands in one Python process (run with ansible's own Python).

Importing ansible takes most of a command's time, so this imports it once and forks a
child per command: each child has fresh module state, exactly as a new process would
have. Reads a JSON list of {"argv": [...], "cwd": "..."} on stdin and writes a JSON list
of {"rc", "stdout", "stderr"} on stdout. Not imported by the tests: it runs in the venv.
"""

import json
import os
import sys
import tempfile

import ansible.cli.adhoc
import ansible.cli.inventory

MAINS = {"ansible-inventory": ansible.cli.inventory.main, "ansible": ansible.cli.adhoc.main}


def start(job, out_path, err_path):
    pid = os.fork()
    if pid:
        return pid
    code = 70
    try:
        os.chdir(job["cwd"])
        out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        err = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(out, 1)
        os.dup2(err, 2)
        sys.argv = list(job["argv"])
        try:
            MAINS[job["argv"][0]](list(job["argv"]))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def collect(out_path, err_path, status):
    with open(out_path, encoding="utf-8", errors="replace") as handle:
        stdout = handle.read()
    with open(err_path, encoding="utf-8", errors="replace") as handle:
        stderr = handle.read()
    return {"rc": os.waitstatus_to_exitcode(status), "stdout": stdout, "stderr": stderr}


def run_all(jobs, scratch, width):
    """Run the jobs, `width` children at a time; results in job order."""
    results = [None] * len(jobs)
    running = {}
    todo = list(enumerate(jobs))
    while todo or running:
        while todo and len(running) < width:
            index, job = todo.pop(0)
            paths = (os.path.join(scratch, f"{index}.out"), os.path.join(scratch, f"{index}.err"))
            running[start(job, *paths)] = (index, paths)
        pid, status = os.wait()
        if pid in running:
            index, paths = running.pop(pid)
            results[index] = collect(*paths, status)
    return results


def main():
    jobs = json.load(sys.stdin)
    with tempfile.TemporaryDirectory() as scratch:
        results = run_all(jobs, scratch, max(1, os.cpu_count() or 1))
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()

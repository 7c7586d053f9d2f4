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


def run(job, scratch):
    out_path = os.path.join(scratch, "out")
    err_path = os.path.join(scratch, "err")
    pid = os.fork()
    if pid == 0:
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
    _, status = os.waitpid(pid, 0)
    with open(out_path, encoding="utf-8", errors="replace") as handle:
        stdout = handle.read()
    with open(err_path, encoding="utf-8", errors="replace") as handle:
        stderr = handle.read()
    return {"rc": os.waitstatus_to_exitcode(status), "stdout": stdout, "stderr": stderr}


def main():
    jobs = json.load(sys.stdin)
    with tempfile.TemporaryDirectory() as scratch:
        results = [run(job, scratch) for job in jobs]
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()

"""pytest fixtures for the opsbook lab (loaded by tests/conftest.py).

Fixtures
  lab         session: a running :class:`opsbook_lab.lab.Lab` (``lab.info`` has hosts,
              ports, paths). Reuses a lab that is already up (e.g. started by
              ``.ci/run`` or ``opsbook-lab up``) and then leaves it running; otherwise
              brings one up and tears down at the end of the session only what it
              started (containers, network, and the dockerd if it started it).
  lab_info    ``lab.info``, current for each test (:class:`opsbook_lab.lab.LabInfo`).
  lab_healed  function: the lab, healed after the test (killed/stopped hosts started,
              disconnected ones reconnected, paused ones thawed). Use it in tests that
              inject faults.
  lab_fresh   function: the lab with all containers recreated before the test (pristine
              services: db1 primary, db2 replica, both web backends in the balancer).
              Costs a few seconds.

Every test using one of these is marked ``lab`` automatically (``-m "not lab"`` skips them).

Helpers
  skip_or_fail_in_ci(reason, in_ci)  a prerequisite is missing: skip the test, but fail
              it in CI, where tests/run installs everything and a skip would hide it.
  wait_for(what, check, timeout=60, interval=0.25)  poll check() until it is truthy and
              return that value; fail naming what and the last value after timeout s.
  opsbook(home, *args, timeout=120, env=None, cwd=None)  `opsbook ARGS` as a person runs
              it (`python -m opsbook`, no terminal), with the journal and runs folder of
              cli_env(home): home/j.db and home/runs.
  statuses(journal, run_id="last")  each node's status in a run, {node id: status}, read
              from a Journal or a journal file (home/j.db after opsbook(home, "run", ...)).

Environment
  CI / OPSBOOK_LAB_INSTALL=1   run lab/install.sh (as root) if the engine is missing
  OPSBOOK_LAB_KEEP=1           never tear the lab down at session end
  OPSBOOK_LAB_SKIP=1           skip every lab test
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any, NoReturn

import pytest

from . import paths
from .daemon import LabError
from .image import cache_file
from .lab import Lab

LAB_FIXTURES = {"lab", "lab_info", "lab_healed", "lab_fresh"}


def pytest_configure(config):
    config.addinivalue_line("markers", "lab: needs the docker/sshd lab (opsbook_lab fixtures)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if LAB_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.lab)


def _truthy(v: str | None) -> bool:
    return bool(v) and v.lower() not in ("0", "false", "no", "")


def skip_or_fail_in_ci(reason: str, in_ci: str) -> NoReturn:
    """Skip a test whose prerequisite is missing (reason); in CI, fail it with in_ci instead."""
    if _truthy(os.environ.get("CI")):
        pytest.fail(in_ci)
    pytest.skip(reason)


def on_a_terminal(argv: list[str], env: dict[str, str], cwd: Any, answers: dict[str, str],
                  timeout: float = 120) -> tuple[int, str]:
    """Run `argv` on a pseudo-terminal, typing each answer after its prompt appears; (exit
    code, everything it printed). Fails when it does not end within `timeout`."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd, start_new_session=True)
    os.close(slave)
    seen = b""
    pending = dict(answers)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        for prompt in list(pending):
            if prompt.encode() in seen:
                time.sleep(0.2)  # let getpass turn echo off first
                os.write(master, (pending.pop(prompt) + "\n").encode())
        if proc.poll() is not None and not ready:
            break
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"{' '.join(argv)} did not end on a terminal; it printed:\n"
                             + seen.decode(errors="replace")[-2000:]) from None
    finally:
        os.close(master)
    return proc.returncode, seen.decode(errors="replace")


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0, interval: float = 0.25) -> Any:
    """check()'s first truthy value, polled every `interval` s; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what} (last value {last!r})")
        time.sleep(interval)


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """This environment with a journal (home/j.db) and runs folder (home/runs) of a test's own."""
    return {**os.environ, "OPSBOOK_JOURNAL": str(home / "j.db"), "OPSBOOK_RUNS_DIR": str(home / "runs"), **extra}


def opsbook(home: Path, *args: str, timeout: float = 120, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`opsbook ARGS` in a subprocess, stdin closed, output captured as text; its journal and
    runs folder are under `home` (cli_env), unless `env` is given."""
    return subprocess.run([sys.executable, "-m", "opsbook", *args], capture_output=True, text=True, timeout=timeout,
                          env=env or cli_env(home), cwd=cwd, stdin=subprocess.DEVNULL)


def statuses(journal: Any, run_id: str = "last") -> dict[str, str]:
    """{node id: status} of a run ("last": the latest) in `journal`, a Journal or its file."""
    from opsbook.journal import Journal

    own = not isinstance(journal, Journal)
    j = Journal(journal) if own else journal
    try:
        return {node: rec.status for node, rec in j.nodes(j.latest_run_id() if run_id == "last" else run_id).items()}
    finally:
        if own:
            j.close()


def _missing_tools() -> list[str]:
    if os.environ.get("OPSBOOK_LAB_DOCKER_HOST"):
        return []
    missing = [t for t in ("dockerd",) if shutil.which(t) is None]
    if not cache_file().exists() and shutil.which("debootstrap") is None:
        missing.append("debootstrap")
    return missing


def _ensure_installed() -> None:
    missing = _missing_tools()
    if not missing:
        return
    if not (_truthy(os.environ.get("CI")) or _truthy(os.environ.get("OPSBOOK_LAB_INSTALL"))):
        pytest.skip(f"lab: {', '.join(missing)} not installed; run `sudo bash lab/install.sh` "
                    "or set OPSBOOK_LAB_INSTALL=1 to let the tests install it")
    if os.geteuid() != 0:
        pytest.skip(f"lab: {', '.join(missing)} not installed and not root to install it")
    r = subprocess.run(["bash", str(paths.install_script())], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        pytest.fail(f"lab/install.sh failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}",
                    pytrace=False)
    still = _missing_tools()
    if still:
        pytest.fail(f"lab/install.sh ran but {', '.join(still)} still missing", pytrace=False)


@pytest.fixture(scope="session")
def lab():
    if _truthy(os.environ.get("OPSBOOK_LAB_SKIP")):
        pytest.skip("lab: OPSBOOK_LAB_SKIP is set")
    _ensure_installed()
    if os.geteuid() != 0 and not os.environ.get("OPSBOOK_LAB_DOCKER_HOST"):
        pytest.skip("lab: starting the lab's own dockerd needs root "
                    "(or point OPSBOOK_LAB_DOCKER_HOST at a docker engine)")
    the_lab = Lab()
    # A lab someone else brought up (engine answering, lab.json present) is reused
    # and left running. Anything else (nothing there, or a stale lab.json whose
    # engine is gone, e.g. after the machine or session was stopped) is ours.
    preexisting = the_lab.daemon.ping() and the_lab.load_info() is not None
    try:
        the_lab.up()
    except LabError as e:
        pytest.fail(f"lab: could not bring the lab up: {e}", pytrace=False)
    yield the_lab
    keep = _truthy(os.environ.get("OPSBOOK_LAB_KEEP"))
    owned = not preexisting
    try:
        if owned and not keep:
            the_lab.down(stop_daemon=the_lab.started_daemon)
    finally:
        the_lab.close()


@pytest.fixture
def lab_info(lab):
    # Function-scoped on purpose: lab_fresh recreates the containers (new IDs).
    return lab.info


@pytest.fixture
def lab_healed(lab):
    yield lab
    lab.up()


@pytest.fixture
def lab_fresh(lab):
    lab.reset()
    yield lab
    lab.up()

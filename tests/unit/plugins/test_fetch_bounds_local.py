"""ssh.fetch over the local connection (`ansible_connection: local`) keeps the same bounds as
over SFTP (issue 24 item 8): max_size, the timeout, cancellation, no partial file, and the
checksum computed while copying. Written with the plugin test kit, opsbook.testing."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from opsbook.plugin import Result, Status
from opsbook.testing import run_action
from opsbook_plugins.local import LocalConnection
from opsbook_plugins.ssh import plugin

MiB = 1024 * 1024


def _fetch(tmp_path: Path, args: dict, timeout: float | None = None,
           cancelled: threading.Event | None = None) -> Result:
    return run_action(plugin, "fetch", args, host="ctl", host_vars={"ansible_connection": "local"}, timeout=timeout,
                      cancelled=cancelled, evidence_dir=tmp_path / "evidence", connection=LocalConnection()).result


def _files(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "evidence").rglob("*") if p.is_file())


def test_a_file_over_max_size_is_refused_and_one_under_it_hashed_while_copied(tmp_path: Path):
    source = tmp_path / "big.bin"
    source.write_bytes(b"x" * (3 * MiB))
    refused = _fetch(tmp_path, {"src": str(source), "max_size": "1MiB"})
    assert refused.status is Status.FAILED
    assert refused.msg == f"ctl:{source} is larger than max_size (1 MiB); nothing was kept (raise max_size to keep it)"
    assert _files(tmp_path) == []
    fetched = _fetch(tmp_path, {"src": str(source), "max_size": 3 * MiB})
    assert fetched.status is Status.OK
    assert fetched.data["checksum"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert _files(tmp_path) == ["big.bin"]


def test_an_endless_source_stops_at_the_timeout_or_the_limit_and_leaves_nothing(tmp_path: Path):
    timed_out = _fetch(tmp_path, {"src": "/dev/zero", "max_size": "100GiB"}, timeout=0.1)
    assert timed_out.status is Status.TIMED_OUT and "timed out after 0.1s" in timed_out.msg
    limited = _fetch(tmp_path, {"src": "/dev/zero", "max_size": "8MiB"})
    assert limited.status is Status.FAILED and "larger than max_size (8 MiB)" in limited.msg
    assert _files(tmp_path) == []


def test_a_stopped_run_stops_the_copy(tmp_path: Path):
    stop = threading.Event()
    stop.set()  # the run was stopped (SIGINT) while the step started
    res = _fetch(tmp_path, {"src": "/dev/zero", "max_size": "100GiB"}, cancelled=stop)
    assert res.status is Status.TIMED_OUT and "cancelled" in res.msg
    assert _files(tmp_path) == []


class _OldStyleConnection(LocalConnection):
    """A third-party connection written before `get` took a `transfer`."""

    def get(self, remote_path: str, local_path: Path) -> int:  # type: ignore[override]
        return super().get(remote_path, local_path)


def test_a_connection_without_the_transfer_parameter_is_still_bounded_after_the_copy(tmp_path: Path):
    source = tmp_path / "big.bin"
    source.write_bytes(b"y" * (2 * MiB))
    conn = _OldStyleConnection()
    refused = run_action(plugin, "fetch", {"src": str(source), "max_size": "1MiB"}, host="ctl",
                         evidence_dir=tmp_path / "evidence", connection=conn).result
    assert refused.status is Status.FAILED and "larger than max_size (1 MiB)" in refused.msg
    assert _files(tmp_path) == []
    ok = run_action(plugin, "fetch", {"src": str(source)}, host="ctl", evidence_dir=tmp_path / "evidence",
                    connection=conn).result
    assert ok.status is Status.OK and ok.data["checksum"] == hashlib.sha256(source.read_bytes()).hexdigest()

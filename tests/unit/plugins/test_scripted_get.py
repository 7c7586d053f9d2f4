"""opsbook.testing.ScriptedConnection.get follows the Connection protocol (docs/plugins.md,
Connections): an action that copies with a `Transfer` (as ssh.fetch does) can be tested with
the kit, and the transfer's limits apply to what the script gives back."""

from __future__ import annotations

from pathlib import Path

import pytest
from opsbook.plugin import Transfer
from opsbook.testing import ScriptedConnection
from opsbook.transfer import TransferTooLarge


def test_get_with_a_transfer_counts_and_hashes(tmp_path: Path) -> None:
    conn = ScriptedConnection()
    conn.remote_files["/var/log/redis.log"] = b"ready to accept connections\n"
    transfer = Transfer("db1:/var/log/redis.log", max_size=1024)
    size = conn.get("/var/log/redis.log", tmp_path / "redis.log", transfer=transfer)
    assert size == 28 and transfer.size == 28
    assert (tmp_path / "redis.log").read_bytes() == b"ready to accept connections\n"
    import hashlib

    assert transfer.hexdigest() == hashlib.sha256(b"ready to accept connections\n").hexdigest()


def test_get_past_max_size_keeps_nothing(tmp_path: Path) -> None:
    conn = ScriptedConnection()
    conn.remote_files["/big"] = b"x" * 100
    with pytest.raises(TransferTooLarge):
        conn.get("/big", tmp_path / "big", transfer=Transfer("db1:/big", max_size=10))
    assert not (tmp_path / "big").exists()

"""Files over SFTP, the `put` and `get` of `SSHConnection` (mixed in from `SFTPFiles`): one
SFTP client per transport, atomic writes (a temporary file beside the destination, renamed
over it, keeping the old file's mode and owner), and downloads into an exclusive temporary
file, bounded by a `Transfer` (size limit, deadline, cancellation; a stalled read is cut by
closing the channel) with a bounded number of reads in flight."""

from __future__ import annotations

import os
import posixpath
import secrets
import stat
import tempfile
import threading
from pathlib import Path
from typing import Any

from opsbook.transfer import Transfer, copy_stream
from opsbook_plugins.ssh._paramiko import paramiko
from opsbook_plugins.ssh.channel import _POLL

_PREFETCH = 64  # SFTP reads in flight while downloading (paramiko's default is all of the file)
_BATCH = 8 * 1024 * 1024  # bytes read through one remote file handle (see _get_in_batches)


class SFTPFiles:
    """The file methods of `SSHConnection` (which owns `_sftp`, `_sftp_lock` and the transport)."""

    def _sftp_client(self) -> paramiko.SFTPClient:
        def open_(transport: paramiko.Transport) -> paramiko.SFTPClient:
            if self._sftp is None or self._sftp_transport is not transport:
                self._sftp = paramiko.SFTPClient.from_transport(transport)
                self._sftp_transport = transport
            return self._sftp

        return self._with_reconnect(open_)

    def put(self, data: bytes, remote_path: str, mode: int | None = None) -> None:
        """Write a remote file atomically: a temp file beside it, then rename over it.

        An existing file keeps its permissions (and owner, where we may set it) unless
        `mode` is given.
        """
        folder, base = posixpath.split(remote_path)
        tmp = posixpath.join(folder, f".{base}.opsbook-{secrets.token_hex(4)}.tmp")
        with self._sftp_lock:
            sftp = self._sftp_client()
            try:
                old = sftp.stat(remote_path)
            except FileNotFoundError:
                old = None
            try:
                with sftp.open(tmp, "wb") as handle:
                    handle.set_pipelined(True)
                    handle.write(data)
                keep = stat.S_IMODE(old.st_mode) if old is not None and old.st_mode else None
                if mode is not None or keep is not None:
                    sftp.chmod(tmp, mode if mode is not None else keep)  # type: ignore[arg-type]
                if old is not None and old.st_uid is not None:
                    try:
                        sftp.chown(tmp, old.st_uid, old.st_gid)  # type: ignore[arg-type]
                    except OSError:
                        pass  # not ours to give away; the file stays ours
                sftp.posix_rename(tmp, remote_path)
            except BaseException as exc:
                try:
                    sftp.remove(tmp)
                except Exception:  # noqa: BLE001 - the temp file may never have been created
                    pass
                if isinstance(exc, OSError) and exc.errno is not None:  # name dest, not the temp
                    raise OSError(exc.errno, exc.strerror, remote_path) from None
                raise

    def get(self, remote_path: str, local_path: Path, transfer: Transfer | None = None) -> int:
        """Download a remote file; returns its size. With a `transfer`, the copy stops at its
        size limit, deadline or cancellation (a stalled read too: the SFTP channel is closed)
        and leaves no partial file."""
        local_path = Path(local_path)
        local_path.parent.mkdir(parents=True, exist_ok=True)
        # A fresh, exclusive temp file: never write through a symlink planted beside the target.
        fd, temp = tempfile.mkstemp(prefix=f".{local_path.name}.", suffix=".part", dir=local_path.parent)
        partial = Path(temp)
        with self._sftp_lock:
            sftp = self._sftp_client()
            try:
                with os.fdopen(fd, "wb") as handle:
                    if transfer is None:
                        size = sftp.getfo(remote_path, handle, prefetch=True,
                                          max_concurrent_prefetch_requests=_PREFETCH)
                    else:
                        size = self._get_bounded(sftp, remote_path, handle, transfer)
                os.replace(partial, local_path)
            except BaseException:
                if transfer is not None:  # answers to a cut copy may still arrive: a fresh client next
                    self._forget_sftp(sftp)
                raise
            finally:
                partial.unlink(missing_ok=True)
        return int(size)

    def _get_bounded(self, sftp: paramiko.SFTPClient, remote_path: str, handle: Any,
                     transfer: Transfer) -> int:
        info = sftp.stat(remote_path)
        regular = info.st_mode is not None and stat.S_ISREG(info.st_mode)
        transfer.check(info.st_size if regular else None)  # too large: refused before a byte moves
        done = threading.Event()
        channel = sftp.get_channel()

        def cut_when_stopped() -> None:  # a read waiting on a stalled host is cut too
            while not done.wait(_POLL):
                if (transfer.cancelled is not None and transfer.cancelled.is_set()) or transfer.time_left() == 0:
                    if channel is not None:
                        channel.close()
                    return

        watcher = threading.Thread(target=cut_when_stopped, name="opsbook-fetch-watch", daemon=True)
        watcher.start()
        try:
            if regular:
                self._get_in_batches(sftp, remote_path, info.st_size or 0, handle, transfer)
            with sftp.open(remote_path, "rb") as remote:  # a device, or what a file grew by
                remote.seek(transfer.size)
                return copy_stream(remote, handle, transfer)
        except (OSError, EOFError, paramiko.SSHException):
            transfer.check()  # the channel was closed by the watcher: say why
            raise
        finally:
            done.set()
            watcher.join()

    @staticmethod
    def _get_in_batches(sftp: paramiko.SFTPClient, remote_path: str, size: int, handle: Any,
                        transfer: Transfer) -> None:
        """Read `size` bytes with many requests in flight, one handle per batch: paramiko's
        prefetch of a whole file can race into buffering all of it (its reader falls back to
        plain reads while the prefetch thread goes on), so at most a batch is ever held."""
        step = paramiko.SFTPFile.MAX_REQUEST_SIZE
        while transfer.size < size:
            start = transfer.size
            chunks = [(o, min(step, size - o)) for o in range(start, min(size, start + _BATCH), step)]
            with sftp.open(remote_path, "rb") as remote:
                for data in remote.readv(chunks, _PREFETCH):
                    if not data:
                        return  # the file shrank
                    transfer.add(data)
                    handle.write(data)

    def _forget_sftp(self, sftp: paramiko.SFTPClient) -> None:
        with self._lock:
            if self._sftp is sftp:
                self._sftp = None
        try:
            sftp.close()
        except Exception:  # noqa: BLE001 - its channel may be closed already
            pass

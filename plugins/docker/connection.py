"""The `docker` connection (`ansible_connection: docker`): run commands and move files in a
container through the Docker API, no sshd needed; commands go through `exec_in`, files
through `put_archive`/`get_archive`.
"""

from __future__ import annotations

import io
import tarfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from opsbook.plugin import Become, CommandResult, HostInfo
from opsbook.transfer import Transfer
from opsbook_plugins.docker._plugin import plugin
from opsbook_plugins.docker.archive import _extract_bounded, _extract_single
from opsbook_plugins.docker.daemons import DEFAULT_TIMEOUT, Daemon, DockerError, clients, daemon_for
from opsbook_plugins.docker.execute import ExecRequest, _argv, exec_in
from opsbook_plugins.docker.target import Target, _api_call, container_name_for


class DockerConnection:
    """Run commands and move files in a container through the Docker API (no sshd needed)."""

    def __init__(self, daemon: Daemon, name: str, user: str = "") -> None:
        self.daemon = daemon
        self.name = name
        self.user = user
        self._target: Target | None = None

    @property
    def target(self) -> Target:
        if self._target is None:
            self._target = Target(self.daemon, clients.get(self.daemon), self.name)
        return self._target

    def run(
        self,
        command: str | Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,
        become: Become | None = None,
        cancel: threading.Event | None = None,
        on_output: Callable[[str], None] | None = None,
    ) -> CommandResult:
        """Run a shell string (sh -c) or an argv list in the container."""
        req = ExecRequest(
            argv=_argv(command),
            stdin=stdin,
            user=become.user if become else self.user,
            timeout=timeout,
            cancel=cancel,
            on_output=on_output,
        )
        return exec_in(self.target, req)

    def put(self, data: bytes, remote_path: str, mode: int | None = None) -> None:
        """Write a file atomically: upload beside it under a temp name, then mv over it."""
        directory, _, base = remote_path.rstrip("/").rpartition("/")
        directory = directory or "/"
        tmp_name = f".{base}.opsbook-{uuid.uuid4().hex[:8]}"
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            info = tarfile.TarInfo(tmp_name)
            info.size = len(data)
            info.mode = mode if mode is not None else 0o644
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
        obj = self.target.container()
        ok = _api_call(self.daemon, lambda: obj.put_archive(directory, archive.getvalue()))
        if not ok:
            raise DockerError(f"could not upload to {directory} in {self.name}")
        tmp_path = f"{directory.rstrip('/')}/{tmp_name}"
        done = self.run(["mv", "-f", tmp_path, remote_path], timeout=DEFAULT_TIMEOUT)
        if done.rc != 0:
            self.run(["rm", "-f", tmp_path], timeout=DEFAULT_TIMEOUT)
            raise DockerError(
                f"could not move the upload into {remote_path} in {self.name}: {done.stderr.strip()}"
            )

    def get(self, remote_path: str, local_path: Path, transfer: Transfer | None = None) -> int:
        """Copy a file out of the container (following symlinks); return its size. With a
        `transfer`, the archive is read as a stream within its limits."""
        import docker.errors

        obj = self.target.container()
        path = remote_path
        for _ in range(8):  # follow symlink chains, within reason
            try:
                stream, stat = _api_call(self.daemon, lambda p=path: obj.get_archive(p))
            except docker.errors.NotFound:
                raise DockerError(f"no file {remote_path} in {self.name}") from None
            if not stat.get("linkTarget"):
                if transfer is not None:
                    return _extract_bounded(stream, Path(local_path), remote_path, self.name, transfer)
                return _extract_single(stream, Path(local_path), remote_path, self.name)
            for _chunk in stream:  # drain the response of the link itself
                pass
            target = stat["linkTarget"]
            path = target if target.startswith("/") else f"{path.rpartition('/')[0]}/{target}"
        raise DockerError(f"too many symlinks at {remote_path} in {self.name}")

    def close(self) -> None:
        """Nothing to close per host: the API client is shared by everything on that daemon."""
        self._target = None


@plugin.connection("docker")
def docker_connection(host: HostInfo) -> DockerConnection:
    """Connection for `ansible_connection: docker` hosts: the container is ansible_host."""
    user = host.vars.get("ansible_docker_user") or host.vars.get("ansible_user") or ""
    return DockerConnection(daemon_for(host.vars), container_name_for(host), str(user))

"""k8s.exec: run a command in a pod's container through the API server, like `kubectl exec`.

The argv goes to the kubelet over the API server's exec subresource (a WebSocket, the
`v5/v4.channel.k8s.io` protocols); stdout, stderr and the exit code come back as ssh.command's
do (`rc`, `stdout`, `stderr`, `stdout_lines`), and a non-zero rc fails unless listed in
`ok_rc`. No shell unless the argv asks for one. Check mode does not run the command (it may
change anything): the result is `unknown` with what would run, as for ssh.command.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

from opsbook.plugin import ActionContext, Result, Seconds, Status
from opsbook_plugins.kubernetes._plugin import plugin
from opsbook_plugins.kubernetes.common import DEFAULT_WAIT, _Obj, _object, session
from opsbook_plugins.kubernetes.errors import K8sError, did_you_mean
from opsbook_plugins.kubernetes.objects import Clock, _pod_ready, _selector
from opsbook_plugins.kubernetes.rollout import _WORKLOADS
from pydantic import Field, field_validator

OUTPUT_CAP = 1 << 20  # bytes of stdout and of stderr kept each
_GO_EXIT = re.compile(r"cmd wait: .*: exit status (\d+)$", re.S)


class ExecArgs(_Obj):
    """A command in a pod's container (kind: defaults to pod; a workload: its first ready pod)."""

    cmd: str | list[str] = Field(
        description="argv list, or a string split like a shell would (no shell runs it)"
    )
    container: str | None = Field(None, description="container (default: the pod's first)")
    ok_rc: list[int] = Field(default_factory=lambda: [0], description="exit codes that are ok")
    timeout: Seconds = Field(DEFAULT_WAIT, description="give up after this long")

    @field_validator("cmd")
    @classmethod
    def _not_empty(cls, cmd: str | list[str]) -> str | list[str]:
        if not (shlex.split(cmd) if isinstance(cmd, str) else cmd):
            raise ValueError("cmd is empty")
        return cmd

    def argv(self) -> list[str]:
        return shlex.split(self.cmd) if isinstance(self.cmd, str) else [str(a) for a in self.cmd]


def _target(s: Any, args: ExecArgs) -> tuple[dict[str, Any], str]:
    """The pod (a workload's first ready one) and the container the command runs in."""
    ref = _object(s, args, "pod")
    if ref.resource.kind == "Pod":
        pod = s.get(ref)
    elif ref.resource.kind in _WORKLOADS:
        obj = s.get(ref)
        pods = [
            p
            for p in s.list(s.ref("pods", None, ref.namespace), label_selector=_selector(obj))
            if _pod_ready(p)
        ]
        if not pods:
            raise K8sError(f"{ref} has no ready pod to run the command in")
        pod = sorted(pods, key=lambda p: p["metadata"]["name"])[0]
    else:
        raise K8sError(f"exec runs in pods (or a workload's pod), not in {ref.resource.plural}")
    names = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
    container = args.container or names[0]
    if container not in names:
        raise K8sError(
            f'pod {pod["metadata"]["namespace"]}/{pod["metadata"]["name"]} has no container '
            f'"{container}"{did_you_mean(container, names)}; containers: {", ".join(names)}'
        )
    phase = (pod.get("status") or {}).get("phase")
    if phase != "Running":
        raise K8sError(
            f"pod {pod['metadata']['namespace']}/{pod['metadata']['name']} is {phase}, "
            "not Running: nothing to exec into"
        )
    return pod, container


def exit_code(status: dict[str, Any]) -> tuple[int | None, str]:
    """(rc, error) from the exec protocol's status channel: Success is 0, NonZeroExitCode
    carries the code, anything else is an error that kept the command from running."""
    if status.get("status") == "Success":
        return 0, ""
    if status.get("reason") == "NonZeroExitCode":
        for cause in (status.get("details") or {}).get("causes") or []:
            if cause.get("reason") == "ExitCode":
                return int(cause.get("message", "1")), ""
        return 1, ""
    message = str(status.get("message") or status)
    # kwok (and other simulated kubelets) report a command's exit as an error whose text
    # ends with Go's "exit status N" instead of NonZeroExitCode: the command did run
    ran = _GO_EXIT.search(message)
    if ran:
        return int(ran.group(1)), ""
    return None, message


def run_in_pod(
    s: Any, pod: dict[str, Any], container: str, argv: list[str], clock: Clock
) -> tuple[int | None, str, str, str]:
    """(rc, stdout, stderr, error); rc None with an error when it did not run or timed out."""
    from kubernetes import client
    from kubernetes.stream import stream

    if s.cluster.settings.as_user or s.cluster.settings.as_groups:
        raise K8sError(
            "k8s.exec cannot impersonate (as_user/as_groups): the client's WebSocket drops "
            "the Impersonate headers; use a kubeconfig context for that identity"
        )
    core = client.CoreV1Api(s.cluster.api)
    meta = pod["metadata"]
    try:
        ws = stream(
            core.connect_get_namespaced_pod_exec,
            meta["name"],
            meta["namespace"],
            command=argv,
            container=container,
            stdin=False,
            stdout=True,
            stderr=True,
            tty=False,
            _preload_content=False,
            _request_timeout=clock.request_timeout(),
        )
    except Exception as exc:  # ApiException(status=0) for the WebSocket handshake
        raise K8sError(
            f"cannot exec in pod {meta['namespace']}/{meta['name']} at {s.cluster.server}: "
            f"{getattr(exc, 'reason', None) or exc}"
        ) from None
    out: list[str] = []
    err: list[str] = []
    sizes = [0, 0]
    try:
        while ws.is_open():
            if clock.left() <= 0 or s.ctx.cancelled.is_set():
                return None, "".join(out), "".join(err), f"still running after {clock.elapsed():.0f}s"
            ws.update(timeout=min(1.0, max(0.1, clock.left())))
            for i, (peek, read, into) in enumerate(
                ((ws.peek_stdout, ws.read_stdout, out), (ws.peek_stderr, ws.read_stderr, err))
            ):
                if peek():
                    chunk = read()
                    if sizes[i] < OUTPUT_CAP:
                        into.append(chunk[: OUTPUT_CAP - sizes[i]])
                    sizes[i] += len(chunk)
        raw = ws.read_channel(3)
    finally:
        ws.close()
    rc, error = exit_code(json.loads(raw)) if raw else (None, "the exec stream closed without a status")
    return rc, "".join(out), "".join(err), error


@plugin.action(scalar="cmd", check=True, argv=["cmd"], data=("cmd", "pod", "container"))
def exec_(ctx: ActionContext, args: ExecArgs) -> Result:
    """Run a command (argv, no shell) in a pod's container; rc/stdout/stderr like ssh.command."""
    s = session(ctx, args)
    argv = args.argv()
    shown = shlex.join(argv)
    pod, container = _target(s, args)
    where = f"pod {pod['metadata']['namespace']}/{pod['metadata']['name']}, container {container}"
    data = {"cmd": argv, "pod": pod["metadata"]["name"], "container": container}
    if ctx.check_mode:
        return Result.unknown(f"would run in {where}: {shown}", changed=True, data=data)
    clock = Clock(ctx, args.timeout)
    rc, out, err, error = run_in_pod(s, pod, container, argv, clock)
    if rc is None:
        status = Status.TIMED_OUT if error.startswith("still running") else Status.FAILED
        return Result(
            status=status,
            changed=True,
            stdout=out,
            stderr=err,
            data=data,
            msg=f"{shown} in {where}: {error}",
        )
    ok = rc in args.ok_rc
    last = (err.strip() or out.strip()).splitlines()[-1:] if not ok else []
    return Result(
        status=Status.OK if ok else Status.FAILED,
        changed=True,
        rc=rc,
        stdout=out,
        stderr=err,
        data=data,
        msg=f"{shown} in {where}: rc={rc}" + (f": {last[0][:200]}" if last else ""),
    )

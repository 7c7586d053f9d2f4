"""ssh.collect: a remote command's output saved into the run's evidence folder on the
controller (as local.collect does for the controller's own commands), cut at `max_size`
with a note saying so. Nothing is written on the host: the output is capped there by
`head -c` as it streams (a full disk is a common reason to collect evidence), so a
command that prints gigabytes is stopped by SIGPIPE instead of filling memory.

Registered on the ssh plugin (the package `opsbook_plugins.ssh` imports this module)."""

from __future__ import annotations

import re

from opsbook.plugin import ActionContext, Evidence, HostInfo, Result, Status, evidence_file
from opsbook_plugins.ssh._plugin import plugin
from opsbook_plugins.ssh.common import _Args, _as_result, _run
from pydantic import ByteSize, Field, field_validator

STDERR_KEPT = 65536  # bytes of the command's stderr kept under the output
# stdout through `head -c` (one byte more than kept: to know that there was more), stderr
# through its own `head -c`, and the exit status as the last line of stderr.
_SCRIPT = (
    'exec 5>&2; '
    '{ { { sh -c "$1" 5>&-; echo "opsbook-collect-rc=$?" >&5; } 2>&1 1>&3 3>&- '
    '| head -c ' + str(STDERR_KEPT) + ' >&5; } 3>&1 | head -c "$2"; }'
)
_RC = re.compile(r"\n?opsbook-collect-rc=(\d+)\n")


class SshCollectArgs(_Args):
    """Run a command on the host and keep its output as evidence on the controller."""

    cmd: str = Field(description="shell command whose output is the evidence (run by sh -c on the host)")
    name: str = Field(description="file name, e.g. journal.txt; saved as <host>/<name> in the run's evidence folder")
    description: str = Field("", description="what this evidence is")
    max_size: ByteSize = Field(ByteSize(16 * 1024 * 1024), gt=0,
                               description="bytes of output kept (e.g. 1048576 or 1MiB); the rest is cut, with a note")

    @field_validator("name")
    @classmethod
    def _a_file_name(cls, name: str) -> str:
        if "{{" not in name and name.replace("\\", "/").split("/")[-1].strip() in ("", ".", ".."):
            raise ValueError(f'"{name}" is not a file name (e.g. journal.txt)')
        return name


def _collected(args: SshCollectArgs, host: HostInfo) -> list[str]:
    return [evidence_file(None, host.name, args.name)]


@plugin.action(name="collect", check=True, idempotent=True, shell=["cmd"], data=["path", "size", "cut"],
               evidence=_collected)
@_as_result
def collect(ctx: ActionContext, args: SshCollectArgs) -> Result:
    """Save a remote command's output (journalctl, ps, df, logs) into the run's evidence folder, cut at max_size."""
    relative_name = ctx.evidence_file(None, args.name)
    ctx.evidence_path(relative_name)  # refused before the command runs when it cannot be written
    limit = int(args.max_size)
    res = _run(ctx, ["sh", "-c", _SCRIPT, "sh", args.cmd, str(limit + 1)], stream=False)
    found = list(_RC.finditer(res.stderr))
    if not found:  # sh itself failed (or sudo refused): nothing was collected
        return Result.failed(f"{ctx.host.name}: collecting `{args.cmd}` failed (rc={res.rc}): "
                             f"{(res.stderr or res.stdout).strip()[-500:]}", rc=res.rc)
    rc = int(found[-1].group(1))
    stderr = _RC.sub("\n", res.stderr).strip("\n")
    data = res.stdout.encode("utf-8", "surrogateescape")
    cut = len(data) > limit
    text = data[:limit].decode("utf-8", "replace")
    if cut:
        text += (f"\n--- cut: the output was longer than max_size ({limit} bytes); "
                 "the rest was not kept ---\n")
    if stderr:
        text += f"\n--- stderr ---\n{stderr}\n"
    target = ctx.write_evidence(relative_name, text)
    relative = str(target.relative_to(ctx.evidence_dir)) if ctx.evidence_dir else args.name
    evidence = Evidence(relative, f"{ctx.host.name}: {args.cmd}", args.description)
    # Cut by the cap, the command dies of SIGPIPE (141): that is the cap working, not a failure.
    ok = rc == 0 or (cut and rc == 141)
    size = min(len(data), limit)
    return Result(status=Status.OK if ok else Status.FAILED, rc=rc, stderr=stderr,
                  msg=f"saved {relative} ({size} bytes{', cut at max_size' if cut else ''})"
                  + ("" if ok else f"; the command exited with {rc}"),
                  evidence=[evidence], data={"path": str(target), "size": size, "cut": cut})

"""Evidence: where collected files go, who may write them, and the bundle.

- Paths: one rule for every action that writes evidence (`evidence_file`): a `dest` that
  is a folder (ends with `/`, or is a folder already) gets `<dest>/<host>/<name>`, as
  Ansible's fetch lays files out with `flat: false`; no `dest` means `<host>/<name>`.
- Ownership: a file of the evidence folder belongs to the first node (step x host) that
  writes it in a run; another node writing the same path is refused (`EvidenceClaims`),
  and when the paths are known before the run, `check` and `run` refuse the runbook
  (`static_conflicts`). One host's evidence never silently replaces another's.
- The bundle: every collected file with a manifest (what, from where, which step, when,
  size, SHA-256) and a tar.gz archive.
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsbook.errors import Diagnostic, UserError
from opsbook.paths import evidence_file, runs_dir  # noqa: F401 - evidence_file: the rule, re-exported

if TYPE_CHECKING:
    from opsbook.journal import Journal
    from opsbook.registry import Registry

FOLDER_HINT = ("end dest with / to get <dest>/<host>/..., or put {{ inventory_hostname }} in it, "
               "so that every host writes its own file")

STEPS_HINT = "give each step its own file (another name or dest)"


def normalized(relative: str) -> str:
    """The form two paths are compared in: `a//b/./c` and `a/b/c` are the same file."""
    return posixpath.normpath(relative).lstrip("/")


@dataclass(frozen=True, slots=True)
class Writer:
    """The node (and loop item) that wrote an evidence file: shown when another is refused."""

    node: str
    step: str
    host: str | None
    item: str | None = None  # repr of the loop item: two items of one node are two writers

    def same(self, other: Writer) -> bool:
        """One writer: the same node and item (an unknown item, as the journal records
        earlier attempts of a resumed run, matches any item of the node)."""
        return self.node == other.node and (self.item is None or other.item is None or self.item == other.item)

    def __str__(self) -> str:
        return (f'step "{self.step}"' + (f" (item {self.item})" if self.item is not None else "")
                + (f" on {self.host}" if self.host else ""))


class EvidenceClaims:
    """Which node wrote which evidence file in this run; thread-safe (nodes run at once)."""

    def __init__(self, known: Mapping[str, Writer] | None = None) -> None:
        self._lock = threading.Lock()
        self._owners: dict[str, Writer] = {normalized(k): v for k, v in (known or {}).items()}

    def claim(self, relative: str, writer: Writer) -> None:
        """Take `relative` for `writer`; UserError if another node already wrote it."""
        key = normalized(relative)
        with self._lock:
            owner = self._owners.setdefault(key, writer)
        if not owner.same(writer):
            raise UserError(f'evidence file "{key}" was already written by {owner} in this run; '
                            "refusing to overwrite it", hint=FOLDER_HINT)

    @classmethod
    def from_journal(cls, journal: Journal, run_id: str) -> EvidenceClaims:
        """The files earlier attempts of this run wrote (for `resume`)."""
        known: dict[str, Writer] = {}
        for _, kind, node_id, data in journal.events(run_id):
            if kind == "evidence" and data.get("path") and node_id:
                known.setdefault(str(data["path"]), Writer(node_id, str(data.get("step", "")), data.get("host")))
        return cls(known)


def static_conflicts(plan: Any, registry: Registry, hosts: Iterable[str] | None = None) -> list[Diagnostic]:
    """Evidence files that two nodes of the plan would write, known before anything runs:
    the same step on two hosts, or two steps that both always run. Arguments that cannot be
    rendered yet (registered results) are left to the run, which refuses the second writer."""
    from opsbook.plugin import HostInfo

    only = None if hosts is None else set(hosts)
    groups: dict[str, list[str]] | None = None  # built for the first evidence step only
    writers: dict[str, list[tuple[Any, str]]] = {}
    for leaf in plan.leaves.values():
        step = leaf.step
        spec = registry.action(step.action.name) if step.action is not None else None
        if spec is None or spec.evidence is None or step.loop is not None or leaf.handler:
            continue
        if groups is None:
            groups = {g: [h.name for h in plan.inventory.hosts_of(g)] for g in plan.inventory.groups}
        for host in leaf.hosts:
            if only is not None and host not in only:
                continue
            target = _static_target(plan, step, host, groups)
            if target is None:
                continue
            ctx, acting = target
            try:
                args = spec.parse_args(_render_fields(step.action.args, ctx))
                paths = spec.evidence(args, HostInfo(acting, dict(plan.inventory.host(acting).vars)))
            except Exception:  # noqa: BLE001, S112 - not knowable before the run: the run checks it
                continue
            for path in paths or ():
                if _writable(path):
                    writers.setdefault(normalized(path), []).append((leaf, host))
    return _conflicts(writers)


def _conflicts(writers: Mapping[str, list[tuple[Any, str]]]) -> list[Diagnostic]:
    problems: list[Diagnostic] = []
    reported: set[str] = set()
    for path, found in writers.items():
        first_leaf, first_host = found[0]
        for leaf, host in found[1:]:
            step = leaf.step
            if step.id in reported:
                continue
            if leaf is first_leaf:
                message = (f'step "{step.name}": {first_host} and {host} would both write the evidence file '
                           f'"{path}"; the second would overwrite the first')
            elif _always_runs(first_leaf) and _always_runs(leaf):
                message = (f'steps "{first_leaf.step.name}" (on {first_host}) and "{step.name}" (on {host}) '
                           f'would both write the evidence file "{path}"; the second would overwrite the first')
            else:
                continue
            reported.add(step.id)
            pos = step.action.pos if step.action is not None else step.pos
            problems.append(Diagnostic(pos, message, FOLDER_HINT if leaf is first_leaf else STEPS_HINT))
    return problems


def _writable(path: str) -> bool:
    """A path the run would write to: not a template left unrendered, and not one that the
    evidence folder refuses (absolute, `~`, `..`), which two nodes never both write."""
    if "{{" in path or "{%" in path or not path or path.startswith(("/", "~")):
        return False
    return ".." not in path.split("/")


def _always_runs(leaf: Any) -> bool:
    """A step with no condition outside a rescue: it runs whenever its host gets there."""
    return not leaf.step.when and not any(section.part == "rescue" for section in leaf.sections)


def _static_target(plan: Any, step: Any, host: str, groups: Mapping[str, Any]) -> tuple[dict[str, Any], str] | None:
    """The variables a step's arguments see on `host` as far as they are known before the
    run, and the host the action acts on (its delegate); None when that is not known."""
    from opsbook.template import TemplateError, is_template, render

    try:
        info = plan.inventory.host(host)
    except UserError:
        return None
    ctx: dict[str, Any] = dict(info.vars)
    ctx.update(inventory_hostname=host, groups=groups, params=plan.params, run={"id": "", "check": False},
               host={"name": host, "address": str(info.vars.get("ansible_host", host)), "vars": info.vars})
    ctx.update(plan.params)
    for source in (plan.runbook.vars, step.vars):
        for key, value in source.items():
            try:
                ctx[key] = render(value, ctx)
            except TemplateError:
                ctx[key] = value
    ctx.update(plan.params)
    acting = host
    if step.delegate_to:
        try:
            acting = str(render(step.delegate_to, ctx)) if is_template(step.delegate_to) else step.delegate_to
        except TemplateError:
            return None
    return ctx, acting


def _render_fields(args: Any, ctx: Mapping[str, Any]) -> Any:
    """Render each argument on its own; one that needs what only the run knows stays a
    template (a path holding `{{` is then ignored)."""
    from opsbook.template import TemplateError, render

    if not isinstance(args, dict):
        try:
            return render(args, ctx)
        except TemplateError:
            return args
    out = {}
    for key, value in args.items():
        try:
            out[key] = render(value, ctx)
        except TemplateError:
            out[key] = value
    return {k: v for k, v in out.items() if v != "__omit__"}


def describe_file(root: Path | None, relative: str) -> dict[str, Any]:
    """Size and SHA-256 of an evidence file (empty if it is not there)."""
    if root is None:
        return {}
    path = root / relative
    if not path.is_file():
        return {"missing": True}
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return {"size": path.stat().st_size, "sha256": digest.hexdigest()}


def manifest(journal: Journal, run_id: str) -> dict[str, Any]:
    run = journal.get_run(run_id)
    items = []
    for ts, kind, node_id, data in journal.events(run.id):
        if kind != "evidence":
            continue
        items.append({"path": data.get("path"), "source": data.get("source"), "step": data.get("step"),
                      "host": data.get("host"), "node": node_id, "description": data.get("description", ""),
                      "collected": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(ts)),
                      "size": data.get("size"), "sha256": data.get("sha256")})
    folder = run.options.get("evidence_dir") or evidence_folder(run.id, journal.path)
    return {"run": run.id, "runbook": run.runbook_name, "folder": str(folder), "items": items}


def evidence_folder(run_id: str, journal: str | Path | None = None) -> Path:
    """Where a run's evidence goes when the run record does not say (older runs)."""
    return runs_dir(journal) / run_id / "evidence"


def verify(journal: Journal, run_id: str) -> list[str]:
    """Files whose content no longer matches the manifest (tampering, truncation)."""
    data = manifest(journal, run_id)
    folder = Path(data["folder"])
    problems = []
    for item in data["items"]:
        now = describe_file(folder, item["path"])
        if now.get("missing"):
            problems.append(f"{item['path']}: missing")
        elif item.get("sha256") and now["sha256"] != item["sha256"]:
            problems.append(f"{item['path']}: SHA-256 changed since collection")
    return problems


def archive(journal: Journal, run_id: str, output: Path | None = None) -> Path:
    """tar.gz of the evidence folder with manifest.json at its root."""
    import tarfile

    data = manifest(journal, run_id)
    folder = Path(data["folder"])
    output = output or folder.parent / f"evidence-{data['run']}.tar.gz"
    from opsbook.paths import writing

    with writing(output, binary=True) as handle, tarfile.open(fileobj=handle, mode="w:gz") as tar:
        blob = json.dumps(data, indent=2).encode()
        info = tarfile.TarInfo(f"evidence-{data['run']}/manifest.json")
        info.size, info.mtime = len(blob), int(time.time())
        tar.addfile(info, io.BytesIO(blob))
        inside = folder.resolve()
        for item in data["items"]:
            path = folder / item["path"]
            # never through a link: not the file's, nor a folder's planted on the way to it
            if path.is_file() and not path.is_symlink() and path.resolve().is_relative_to(inside):
                tar.add(path, arcname=f"evidence-{data['run']}/{item['path']}", recursive=False)
    return output

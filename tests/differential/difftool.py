"""Differential testing of opsbook against ansible-core: cases, translation, runs, comparison.

A *case* (tests/differential/cases/*.yaml) is one Ansible play written in the subset of
Ansible both tools speak, plus the command-line arguments both get. From it this module
writes the playbook (the play as written, `gather_facts: false`) and the runbook (the same
tasks as opsbook steps, see `to_runbook`), runs both against the same inventory of
`ansible_connection=local` aliases of the controller (web1..web4, db1, db2), and reduces
each run to an `Observation`: the exit class, per host the status of every task that
ran and its order, the registered values, the facts set, and the serial batches.

A case marked `lab: true` runs instead against the lab's sshd hosts (its ssh inventory,
web1, web2, lb1, db1, db2, reached over ssh by both tools), with `{{ target_web }}`: an
HTTP server (targetweb.py) on each lab host's own loopback, which the controller cannot
reach -- so a `uri` case there shows where the request was made.

`compare` lists every difference as a key (``web1 restart status``, ``exit``,
``web2 out registered.stdout``, ...). A difference fails the test unless the case names
a row of the table of intended differences in docs/language.md ("Differences from
Ansible") whose key patterns cover it; a named row whose patterns match no difference
fails too, so the table, the cases and opsbook's behaviour cannot drift apart.
"""

from __future__ import annotations

import contextlib
import fnmatch
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CASES_DIR = HERE / "cases"
CALLBACKS = HERE / "callback_plugins"
FORKRUN = HERE / "forkrun.py"
LANGUAGE_DOC = REPO / "docs" / "language.md"
DIFFERENCES_HEADING = "## Differences from Ansible"

# Ansible module -> opsbook action. The subset the cases may use; see docs/language.md.
ACTIONS = {
    "command": "local.command",
    "shell": "local.shell",
    "set_fact": "local.set",
    "assert": "local.assert",
    "fail": "local.fail",
    "debug": "local.debug",
    "copy": "ssh.copy",  # over the `local` connection of the host
    "setup": "ssh.setup",  # over the `local` connection of the host
    "meta": "local.meta",
}
# Facts gathered from the host (setup, gather_facts) are compared through what a case sets
# from them (set_fact, registered values), not wholesale: each tool has facts of its own.
GATHERED = ("ansible_", "module_setup", "gather_subset", "discovered_interpreter_python")
# Registered keys compared (when Ansible's value has them); the rest is each tool's own.
# (`status`, `content`, `json`: an HTTP answer, as `uri` and `local.http` register it.)
REGISTERED_KEYS = ("changed", "failed", "skipped", "rc", "stdout", "stdout_lines", "stderr",
                   "stderr_lines", "attempts", "results", "diff", "status", "content", "json")
LOOP_KEYS = ("ansible_loop_var", "ansible_index_var", "ansible_loop")
DEFAULT_INVENTORY = "[web]\nweb1\nweb2\nweb3\nweb4\n\n[db]\ndb1\ndb2\n"
WIDTH = int(os.environ.get("OPSBOOK_DIFF_JOBS", "2"))  # children per tool at a time
JOB_TIMEOUT = 120  # seconds per tool run; a hung run is killed and reported


# -- cases -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One differential case, as written in a cases/*.yaml file."""

    id: str
    file: str
    play: dict[str, Any]
    args: tuple[str, ...] = ()
    inventory: str = DEFAULT_INVENTORY
    host_vars: dict[str, Any] = field(default_factory=dict)
    group_vars: dict[str, Any] = field(default_factory=dict)
    differences: dict[str, tuple[str, ...]] = field(default_factory=dict)
    xfail: str | None = None
    source: str = ""
    runbook: dict[str, Any] | None = None  # a hand-written runbook when translation cannot do it
    actions: dict[str, str] = field(default_factory=dict)  # module -> action, over ACTIONS
    # Other files beside the playbook and the runbook (task files, roles/...), the same for
    # both tools: opsbook reads Ansible's module names in them as the actions that speak them.
    files: dict[str, Any] = field(default_factory=dict)
    lab: bool = False  # run against the lab's sshd hosts (its ssh inventory), not local aliases


CASE_KEYS = {"id", "play", "args", "inventory", "host_vars", "group_vars", "differences", "xfail",
             "source", "runbook", "actions", "files", "lab"}


def load_cases(directory: Path = CASES_DIR) -> list[Case]:
    """Every case of every cases/*.yaml file, in file order; ids must be unique."""
    cases: list[Case] = []
    seen: dict[str, str] = {}
    for path in sorted(directory.glob("*.yaml")):
        for raw in yaml.safe_load(path.read_text()) or []:
            unknown = set(raw) - CASE_KEYS
            if unknown:
                raise ValueError(f"{path.name}: case {raw.get('id')}: unknown keys {sorted(unknown)}")
            case_id = str(raw["id"])
            if case_id in seen:
                raise ValueError(f"case id {case_id} in {path.name} and {seen[case_id]}")
            seen[case_id] = path.name
            cases.append(Case(
                id=case_id, file=path.name, play=_named(raw["play"]),
                args=tuple(str(a) for a in raw.get("args", ())),
                inventory=raw.get("inventory", DEFAULT_INVENTORY),
                host_vars=raw.get("host_vars", {}), group_vars=raw.get("group_vars", {}),
                differences={k: tuple(v) for k, v in (raw.get("differences") or {}).items()},
                xfail=raw.get("xfail"), source=raw.get("source", ""), runbook=raw.get("runbook"),
                actions=raw.get("actions", {}), files=raw.get("files", {}), lab=bool(raw.get("lab", False))))
    return cases


def _named(play: dict[str, Any]) -> dict[str, Any]:
    """The play with a unique name on every task and handler (t1, t2, ... where missing)."""
    counter = iter(range(1, 10_000))
    names: set[str] = set()

    def name_all(tasks: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        out = []
        for task in tasks or []:
            task = dict(task)
            if not _is_block(task) or "name" in task:
                task.setdefault("name", f"t{next(counter)}")
                if task["name"] in names:
                    raise ValueError(f"task name {task['name']!r} is used twice")
                names.add(task["name"])
            for part in ("block", "rescue", "always"):
                if part in task:
                    task[part] = name_all(task[part])
            out.append(task)
        return out

    play = dict(play)
    play["tasks"] = name_all(play.get("tasks"))
    if "handlers" in play:
        play["handlers"] = name_all(play["handlers"])
    return play


def _is_block(task: Mapping[str, Any]) -> bool:
    return "block" in task


def _action(task: Mapping[str, Any]) -> str | None:
    for key in task:
        short = key.removeprefix("ansible.builtin.")
        if short in ACTIONS:
            return short
    return None


def leaf_tasks(tasks: Iterable[Mapping[str, Any]]) -> Iterable[Mapping[str, Any]]:
    """Every task that is not a block, depth first."""
    for task in tasks:
        if _is_block(task):
            for part in ("block", "rescue", "always"):
                yield from leaf_tasks(task.get(part) or [])
        else:
            yield task


# -- translation -----------------------------------------------------------------------------

# Play keywords that Ansible applies to every task: in the runbook they go on a block
# around the play's tasks (serial and max_fail_percentage go there too when the play is serial).
PLAY_INHERITED = ("tags", "ignore_errors", "any_errors_fatal", "become", "become_user", "no_log",
                  "check_mode", "ignore_unreachable", "run_once")
PLAY_TOP = {"hosts", "vars", "tasks", "handlers", "name", "serial", "max_fail_percentage", *PLAY_INHERITED}


def to_playbook(case: Case) -> list[dict[str, Any]]:
    """The playbook: the case's play as written, without fact gathering."""
    play = {"name": case.id, "gather_facts": False, **case.play}  # a case may gather
    return [play]


def to_runbook(case: Case) -> dict[str, Any]:
    """The runbook: the same tasks in opsbook's words (Ansible's where they are the same).

    Module names become actions (`ACTIONS`); every other task keyword is kept as written,
    so a keyword opsbook lacks is refused by opsbook (a divergence, not a translation
    problem). A play's `serial` (with its `max_fail_percentage`) and the keywords a play
    gives all its tasks become a block around the tasks; `max_fail_percentage` without
    `serial`, and play keywords opsbook has at the top, stay at the top.
    """
    if case.runbook is not None:
        return {**case.runbook, "extra_vars": "any"}
    play = case.play
    ids = iter(range(1, 10_000))
    actions = {**ACTIONS, **case.actions}
    steps = [_step(t, ids, actions) for t in play.get("tasks", [])]
    # extra_vars: any, as in Ansible: the suite passes -e scratch=... to every case
    runbook: dict[str, Any] = {"opsbook": 1, "name": case.id, "hosts": play.get("hosts", "all"),
                               "extra_vars": "any"}
    if "vars" in play:
        runbook["vars"] = play["vars"]
    wrapper = {k: play[k] for k in PLAY_INHERITED if k in play}
    if "serial" in play:
        wrapper["serial"] = play["serial"]
        if "max_fail_percentage" in play:
            wrapper["max_fail_percentage"] = play["max_fail_percentage"]
    elif "max_fail_percentage" in play:
        runbook["max_fail_percentage"] = play["max_fail_percentage"]
    for key in set(play) - PLAY_TOP:
        runbook[key] = play[key]  # an Ansible play keyword opsbook may not know
    if wrapper:
        steps = [{"name": "play", "id": "play", **wrapper, "block": steps}]
    runbook["steps"] = steps
    if play.get("handlers"):
        runbook["handlers"] = [_step(t, ids, actions) for t in play["handlers"]]
    return runbook


def _step(task: Mapping[str, Any], ids: Iterable[int], actions: Mapping[str, str]) -> dict[str, Any]:
    step: dict[str, Any] = {}
    number = next(iter(ids))
    if "name" in task:
        step["name"] = task["name"]
    step["id"] = f"s{number}"
    for key, value in task.items():
        if key == "name" or (key == "args" and _action(task) in actions):
            continue
        short = key.removeprefix("ansible.builtin.")
        if short in actions:
            step[actions[short]] = _arguments(short, value)
            if isinstance(task.get("args"), dict):  # Ansible's args: merged into the module's
                step[actions[short]] = {**({"cmd": step[actions[short]]} if isinstance(step[actions[short]], str)
                                           else step[actions[short]] or {}), **task["args"]}
        elif key in ("block", "rescue", "always"):
            step[key] = [_step(t, ids, actions) for t in value or []]
        else:
            step[key] = value
    return step


def _arguments(module: str, value: Any) -> Any:
    if module in ("command", "shell") and isinstance(value, dict) and "argv" in value:
        value = {**{k: v for k, v in value.items() if k != "argv"}, "cmd": value["argv"]}
    return value


def dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=100)


# -- materialising and running ---------------------------------------------------------------


@dataclass
class CaseDirs:
    """Where one case's files live: inventory shared, one folder per tool."""

    root: Path

    @property
    def inventory(self) -> Path:
        return self.root / "inventory" / "hosts.ini"

    def tool(self, name: str) -> Path:
        return self.root / name

    def scratch(self, name: str) -> Path:
        return self.root / name / "scratch"


def materialize(case: Case, root: Path, ansible_python: str, lab_inventory: str | None = None) -> CaseDirs:
    """Write the inventory, playbook and runbook of a case under root/<case id> (a lab
    case's inventory is the lab's, `lab_inventory`, with the hosts' own python3)."""
    dirs = CaseDirs(root / case.id)
    inventory = dirs.inventory
    inventory.parent.mkdir(parents=True, exist_ok=True)
    if case.lab:
        assert lab_inventory is not None, f"case {case.id} runs on the lab, which is not up"
        inventory.write_text(Path(lab_inventory).read_text() + f"\n[all:vars]\nansible_python_interpreter={LAB_PYTHON}\n")
    else:
        inventory.write_text(case.inventory.rstrip("\n") + "\n\n[all:vars]\nansible_connection=local\n"
                             f"ansible_python_interpreter={ansible_python}\n")
    for kind, values in (("host_vars", case.host_vars), ("group_vars", case.group_vars)):
        for name, data in values.items():
            target = inventory.parent / kind / f"{name}.yml"
            target.parent.mkdir(exist_ok=True)
            target.write_text(dump(data))
    for tool in ("ansible", "opsbook"):
        dirs.scratch(tool).mkdir(parents=True, exist_ok=True)
    for tool in ("ansible", "opsbook"):
        for relative, content in case.files.items():
            target = dirs.tool(tool) / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content if isinstance(content, str) else dump(content))
    (dirs.tool("ansible") / "playbook.yml").write_text(dump(to_playbook(case)))
    (dirs.tool("opsbook") / "runbook.yaml").write_text(dump(to_runbook(case)))
    return dirs


def _lab_vars(case: Case) -> list[str]:
    return ["-e", f"target_web={TARGET_WEB}"] if case.lab else []


def ansible_job(case: Case, dirs: CaseDirs, web: str = "") -> dict[str, Any]:
    argv = ["ansible-playbook", "-i", str(dirs.inventory), "playbook.yml", *case.args,
            "-e", f"scratch={dirs.scratch('ansible')}", *(["-e", f"web={web}"] if web else []), *_lab_vars(case)]
    return {"argv": argv, "cwd": str(dirs.tool("ansible"))}


def opsbook_job(case: Case, dirs: CaseDirs, web: str = "") -> dict[str, Any]:
    tool = dirs.tool("opsbook")
    argv = ["opsbook", "run", "-i", str(dirs.inventory), "runbook.yaml", "--format", "json", "--yes",
            *case.args, "-e", f"scratch={dirs.scratch('opsbook')}", *(["-e", f"web={web}"] if web else []),
            *_lab_vars(case)]
    env = {"OPSBOOK_JOURNAL": str(tool / "journal.db"), "OPSBOOK_RUNS_DIR": str(tool / "runs")}
    return {"argv": argv, "cwd": str(tool), "env": env}


def ansible_env(home: Path) -> dict[str, str]:
    """ansible-core with no user configuration, our callback, and quiet warnings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        ANSIBLE_CONFIG=str(home / "no-ansible.cfg"),
        ANSIBLE_HOME=str(home / ".ansible"),
        ANSIBLE_LOCAL_TEMP=str(home / "tmp"),
        ANSIBLE_REMOTE_TEMP=str(home / "remote-tmp"),
        ANSIBLE_STDOUT_CALLBACK="difflog",
        ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_DEPRECATION_WARNINGS="0",
        ANSIBLE_LOCALHOST_WARNING="0",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_HOST_KEY_CHECKING="0",
        ANSIBLE_PIPELINING="1",  # one process per module run instead of four: same results
        PYTHONWARNINGS="ignore",
        LC_ALL="C.UTF-8",
    )
    return env


def run_jobs(python: str, tool: str, jobs: list[dict[str, Any]], scratch: Path,
             env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start forkrun.py for one tool's jobs; the results land in scratch/<tool>.results.json."""
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / f"{tool}.jobs.json").write_text(json.dumps(jobs))
    stdin = open(scratch / f"{tool}.jobs.json", "rb")  # noqa: SIM115 - closed by the child's exit
    stdout = open(scratch / f"{tool}.results.json", "wb")  # noqa: SIM115
    stderr = open(scratch / f"{tool}.stderr", "wb")  # noqa: SIM115
    return subprocess.Popen([python, str(FORKRUN), tool, str(WIDTH), str(JOB_TIMEOUT)], stdin=stdin,
                            stdout=stdout, stderr=stderr, env=dict(env) if env is not None else None)


def wait_results(proc: subprocess.Popen[bytes], scratch: Path, tool: str) -> list[dict[str, Any]]:
    proc.wait()
    text = (scratch / f"{tool}.results.json").read_text()
    if proc.returncode != 0 or not text:
        raise RuntimeError(f"forkrun {tool} failed ({proc.returncode}): "
                           f"{(scratch / f'{tool}.stderr').read_text()[-3000:]}")
    results: list[dict[str, Any]] = json.loads(text)
    return results


# -- observations ----------------------------------------------------------------------------


@dataclass
class Observation:
    """What one tool did with one case, reduced to what both tools can be compared on."""

    exit: str  # ok | failed | error
    rc: int
    runs: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # host -> [(task, status)]
    ignored: set[tuple[str, str]] = field(default_factory=set)  # (host, task) failures ignored
    registered: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)
    batches: list[list[str]] | None = None
    output: str = ""  # stderr (and a little stdout) for the failure message


def _exit_class_ansible(rc: int, finished: bool) -> str:
    """ok, failed (the play ran: a host failed or was unreachable), or error (refused)."""
    if rc == 0:
        return "ok"
    return "failed" if finished else "error"


def _exit_class_opsbook(rc: int) -> str:
    return {0: "ok", 1: "failed", 3: "failed", 4: "failed"}.get(rc, "error")


def _subset(value: Any, keys: Sequence[str]) -> Any:
    """The compared part of a registered value (recursively for loop results)."""
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    loop_var = value.get("ansible_loop_var")
    index_var = value.get("ansible_index_var")
    wanted = [*keys, *LOOP_KEYS, *(k for k in (loop_var, index_var) if isinstance(k, str))]
    for key in wanted:
        if key in value:
            if key == "results" and isinstance(value[key], list):
                out[key] = [_subset(v, keys) for v in value[key]]
            elif key == "diff":
                if _has_diff(value[key]):  # whether a change was shown, not its format
                    out[key] = True
            else:
                out[key] = value[key]
    return out


def _has_diff(diff: Any) -> bool:
    """Whether a registered `diff` shows a change (Ansible: before/after dicts, or a list)."""
    if isinstance(diff, list):
        return any(_has_diff(d) for d in diff)
    if isinstance(diff, dict):
        return diff.get("before") != diff.get("after") or bool(diff.get("prepared"))
    return bool(diff)


def _unscratch(value: Any, scratch: str) -> Any:
    """The value with the tool's scratch folder written as <scratch> (it differs per tool)."""
    if isinstance(value, str):
        return value.replace(scratch, "<scratch>")
    if isinstance(value, list):
        return [_unscratch(v, scratch) for v in value]
    if isinstance(value, dict):
        return {k: _unscratch(v, scratch) for k, v in value.items()}
    return value


# What a `uri` task registers beside REGISTERED_KEYS that both tools must agree on: where
# the answer came from, whether it was redirected, and headers read from the answer.
URI_KEYS = ("url", "redirected", "location", "content_type", "path")


def _task_keys(task: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The registered keys compared for a task: also `msg` for an explicit fail message
    (not in a loop, where the message is each tool's summary of the items), and URI_KEYS
    for a `uri` task."""
    if task is not None and _action(task) == "fail" and isinstance(task.get("fail"), dict) \
            and "msg" in task["fail"] and not any(k in task for k in ("loop", "with_items")):
        return (*REGISTERED_KEYS, "msg")
    if task is not None and any(k in task for k in ("uri", "ansible.builtin.uri")):
        return (*REGISTERED_KEYS, *URI_KEYS)
    return REGISTERED_KEYS


def _tasks_by_name(case: Case) -> dict[str, Mapping[str, Any]]:
    """Every named task of the play and of its task files (a role's as "role : name")."""
    play = case.play
    tasks = {t["name"]: t for t in leaf_tasks([*play.get("tasks", []), *play.get("handlers", [])])}
    for relative, content in case.files.items():
        if isinstance(content, list):
            parts = Path(relative).parts
            prefix = f"{parts[parts.index('roles') + 1]} : " if "roles" in parts[:-2] else ""
            tasks.update({prefix + t["name"]: t for t in leaf_tasks(content) if "name" in t})
    return tasks


def observe_ansible(case: Case, result: Mapping[str, Any], dirs: CaseDirs) -> Observation:
    """Ansible's side, from the difflog callback's JSON lines."""
    obs = Observation(exit="error", rc=result["rc"], output=_tail(result["stderr"]))
    tasks = _tasks_by_name(case)
    batches: dict[int, list[str]] = {}
    batch = -1
    for line in result["stdout"].splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict) or "ev" not in event:
            continue
        if event["ev"] == "play":
            batch += 1
        if event["ev"] == "stats":
            obs.exit = _exit_class_ansible(result["rc"], finished=True)
        if event["ev"] != "result":
            continue
        host, name = event["host"], event["task"]
        data = _unscratch(event["result"], str(dirs.scratch("ansible")))
        status = event["status"]
        if status == "ok" and data.get("changed"):
            status = "changed"
        obs.runs.setdefault(host, []).append((name, status))
        if event["ignored"]:
            obs.ignored.add((host, name))
        batches.setdefault(batch, [])
        if host not in batches[batch]:
            batches[batch].append(host)
        task = tasks.get(name)
        if task is not None and task.get("register"):
            obs.registered[(host, name)] = _subset(data, _task_keys(task))
        for facts in [data.get("ansible_facts")] + [r.get("ansible_facts") for r in data.get("results", [])
                                                    if isinstance(r, dict)]:
            if isinstance(facts, dict) and status not in ("failed", "skipped"):
                obs.facts.setdefault(host, {}).update(facts)
    if obs.exit == "error" and result["rc"] == 0:
        obs.exit = "ok"
    if "serial" in case.play:
        obs.batches = [sorted(hosts) for _, hosts in sorted(batches.items()) if hosts]
    return obs


def observe_opsbook(case: Case, result: Mapping[str, Any], dirs: CaseDirs) -> Observation:
    """opsbook's side, from the run's journal (and its plan, for serial batches)."""
    from opsbook.journal import Journal

    obs = Observation(exit=_exit_class_opsbook(result["rc"]), rc=result["rc"],
                      output=_tail(result["stderr"] + _errors_from_events(result["stdout"])))
    journal_path = dirs.tool("opsbook") / "journal.db"
    if not journal_path.exists():
        return obs
    journal = Journal(journal_path)
    try:
        run_id = journal.latest_run_id()
        records = list(journal.nodes(run_id).values()) if run_id else []
    finally:
        journal.close()
    runbook = to_runbook(case)
    loaded_names, loaded_ignoring = _loaded_steps(case, dirs)
    names = {**loaded_names, **_step_names(runbook)}
    order = {sid: index for index, sid in enumerate(names)}
    tasks = _tasks_by_name(case)
    ignoring = _ignoring_steps(runbook) | loaded_ignoring
    records.sort(key=lambda r: (r.finished or r.started or 0.0, order.get(r.step_id, 0)))
    scratch = str(dirs.scratch("opsbook"))
    metas = _meta_steps(runbook)
    for rec in records:
        if rec.host is None:
            continue
        if rec.step_id in metas and not (rec.status == "skipped" and rec.msg.startswith("when:")):
            continue  # Ansible reports a meta task only when its `when` skips it
        status = _opsbook_status(rec)
        if status is None:
            continue
        # a handler run by meta: flush_handlers is `<meta step id>/<handler id>`
        step_id = rec.step_id.rpartition("/")[2]
        name = names.get(step_id) or names.get(re.sub(r"\[\d+\]", "", step_id), step_id)
        obs.runs.setdefault(rec.host, []).append((name, status))
        if status == "failed" and rec.step_id in ignoring:
            obs.ignored.add((rec.host, name))
        task = tasks.get(name)
        if task is not None and task.get("register") and rec.registered is not None:
            obs.registered[(rec.host, name)] = _subset(_unscratch(rec.registered, scratch), _task_keys(task))
        if rec.facts and status not in ("failed", "skipped"):
            obs.facts.setdefault(rec.host, {}).update(_unscratch(rec.facts, scratch))
    if "serial" in case.play:
        obs.batches = _opsbook_batches(case, dirs, obs)
    return obs


def _meta_steps(runbook: Mapping[str, Any]) -> set[str]:
    """The ids of the runbook's `meta:` steps (Ansible's callback reports no meta task)."""
    found: set[str] = set()

    def walk(steps: Iterable[Mapping[str, Any]]) -> None:
        for step in steps:
            if "local.meta" in step:
                found.add(step["id"])
            for part in ("block", "rescue", "always"):
                walk(step.get(part) or [])

    walk(runbook.get("steps") or [])
    return found


def _opsbook_status(rec: Any) -> str | None:
    """A journal record's status in the shared vocabulary; None: the node did not run."""
    if rec.status == "ok":
        return "changed" if rec.changed else "ok"
    if rec.status in ("failed", "timed_out"):
        return "failed"
    if rec.status == "skipped":
        # Only a false `when` is a skip Ansible reports; the rest (host failed, not
        # notified, tags, --limit, rescue not needed, aborted) never ran there.
        # debug's `verbosity:` above the run's -v count is a skip Ansible reports too.
        return "skipped" if rec.msg.startswith(("when:", "verbosity threshold not met")) else None
    return rec.status  # unknown, started


def _step_names(runbook: Mapping[str, Any]) -> dict[str, str]:
    """Step id -> name for every step (blocks included), in file order."""
    out: dict[str, str] = {}

    def walk(steps: Iterable[Mapping[str, Any]]) -> None:
        for step in steps:
            if "id" in step:
                out[str(step["id"])] = str(step.get("name", step["id"]))
            for part in ("block", "rescue", "always"):
                walk(step.get(part) or [])

    walk([*runbook.get("steps", []), *runbook.get("handlers", [])])
    return out


def _loaded_steps(case: Case, dirs: CaseDirs) -> tuple[dict[str, str], set[str]]:
    """(step id -> name, ids of steps whose failures are ignored) of every step the runbook
    loads and compiles to: included files and roles too, with the keywords they inherit."""
    from opsbook.api import load_inventory_sources, load_runbook, make_plan
    from opsbook.errors import OpsbookError
    from opsbook.registry import Registry

    try:
        registry = Registry.from_entry_points()
        rb = load_runbook(str(dirs.tool("opsbook") / "runbook.yaml"), registry)
        plan = make_plan(rb, load_inventory_sources([str(dirs.inventory)], registry), _extra_vars(case))
    except OpsbookError:
        return {}, set()
    names = {s.id: s.name for s in [*rb.all_steps(), *rb.handlers]}
    return names, {sid for sid, leaf in plan.leaves.items() if leaf.step.ignore_errors}


def _ignoring_steps(runbook: Mapping[str, Any]) -> set[str]:
    """Ids of the steps whose failures are ignored: their own ignore_errors, else their block's."""
    out: set[str] = set()

    def walk(steps: Iterable[Mapping[str, Any]], inherited: bool) -> None:
        for step in steps:
            ignore = bool(step.get("ignore_errors", inherited))
            if ignore and "id" in step:
                out.add(str(step["id"]))
            for part in ("block", "rescue", "always"):
                walk(step.get(part) or [], ignore)

    walk([*runbook.get("steps", []), *runbook.get("handlers", [])], False)
    return out


def _opsbook_batches(case: Case, dirs: CaseDirs, obs: Observation) -> list[list[str]] | None:
    """The plan's serial batches, keeping the hosts that ran something (as Ansible reports)."""
    from opsbook.api import load_inventory_sources, load_runbook, make_plan
    from opsbook.errors import OpsbookError
    from opsbook.registry import Registry

    try:
        registry = Registry.from_entry_points()
        rb = load_runbook(str(dirs.tool("opsbook") / "runbook.yaml"), registry)
        plan = make_plan(rb, load_inventory_sources([str(dirs.inventory)], registry), _extra_vars(case))
    except OpsbookError:
        return None
    batches = next((leaf.batches for leaf in plan.leaves.values() if leaf.batches), ())
    ran = set(obs.runs)
    kept = [sorted(h for h in batch if h in ran) for batch in batches]
    return [b for b in kept if b]


def _extra_vars(case: Case) -> dict[str, Any]:
    out: dict[str, Any] = {}
    args = list(case.args)
    for flag, value in itertools.pairwise(args):
        if flag in ("-e", "--extra-vars") and "=" in value and not value.startswith(("{", "@")):
            for pair in shlex.split(value):
                key, _, val = pair.partition("=")
                out[key] = val
    return out


def _errors_from_events(stdout: str) -> str:
    lines = []
    for line in stdout.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("status") in ("failed", "timed_out") or event.get("event") in ("run_finished", "aborted"):
            lines.append(json.dumps({k: v for k, v in event.items() if k not in ("run", "ts")}))
    return "\n".join(lines[-12:])


def _tail(text: str, limit: int = 2500) -> str:
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]


# -- comparison ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    """One thing the two tools did differently, with a key the difference table can match."""

    key: str
    ansible: Any
    opsbook: Any

    def __str__(self) -> str:
        return f"{self.key}: ansible={_short(self.ansible)} opsbook={_short(self.opsbook)}"


def _short(value: Any) -> str:
    text = json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= 300 else text[:297] + "..."


ABSENT = "<absent>"


def compare(ans: Observation, ops: Observation) -> list[Difference]:
    """Every difference between the two observations, keyed for the difference table."""
    diffs: list[Difference] = []
    if ans.exit != ops.exit:
        diffs.append(Difference("exit", ans.exit, ops.exit))
    for host in sorted(set(ans.runs) | set(ops.runs)):
        diffs.extend(_compare_host(host, ans, ops))
    for host, task in sorted(set(ans.registered) | set(ops.registered)):
        a = ans.registered.get((host, task), ABSENT)
        o = ops.registered.get((host, task), ABSENT)
        diffs.extend(_compare_value(f"{host} {task} registered", a, o, restrict=True))
    for host in sorted(set(ans.facts) | set(ops.facts)):
        a_facts, o_facts = ans.facts.get(host, {}), ops.facts.get(host, {})
        for name in sorted(n for n in set(a_facts) | set(o_facts) if not n.startswith(GATHERED)):
            a, o = a_facts.get(name, ABSENT), o_facts.get(name, ABSENT)
            if a != o:
                diffs.append(Difference(f"{host} facts.{name}", a, o))
    if ans.batches != ops.batches:
        diffs.append(Difference("batches", ans.batches, ops.batches))
    return diffs


def _compare_host(host: str, ans: Observation, ops: Observation) -> list[Difference]:
    diffs: list[Difference] = []
    a_runs, o_runs = ans.runs.get(host, []), ops.runs.get(host, [])
    a_status, o_status = _statuses(a_runs), _statuses(o_runs)
    for task in list(dict.fromkeys([t for t, _ in a_runs] + [t for t, _ in o_runs])):
        a, o = a_status.get(task, ABSENT), o_status.get(task, ABSENT)
        if a != o:
            diffs.append(Difference(f"{host} {task} status", a, o))
        elif a == "failed" and ((host, task) in ans.ignored) != ((host, task) in ops.ignored):
            diffs.append(Difference(f"{host} {task} ignored", (host, task) in ans.ignored,
                                    (host, task) in ops.ignored))
    common = [t for t, _ in a_runs if t in o_status]
    o_common = [t for t, _ in o_runs if t in a_status]
    if common != o_common:
        diffs.append(Difference(f"{host} order", common, o_common))
    return diffs


def _statuses(runs: list[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for task, status in runs:
        out[task] = f"{out[task]},{status}" if task in out else status
    return out


def _compare_value(key: str, a: Any, o: Any, restrict: bool) -> list[Difference]:
    """Compare registered values key by key, only the keys Ansible's value has."""
    if isinstance(a, dict) and isinstance(o, dict):
        diffs: list[Difference] = []
        for name in sorted(a if restrict else set(a) | set(o)):
            diffs.extend(_compare_value(f"{key}.{name}", a.get(name, ABSENT), o.get(name, ABSENT), restrict))
        return diffs
    if isinstance(a, list) and isinstance(o, list) and len(a) == len(o) and any(isinstance(x, dict) for x in a):
        return [d for i, (x, y) in enumerate(zip(a, o)) for d in _compare_value(f"{key}[{i}]", x, y, restrict)]
    return [] if a == o else [Difference(key, a, o)]


# -- the table of intended differences -------------------------------------------------------


@dataclass(frozen=True)
class IntendedDifference:
    """A row of the table in docs/language.md."""

    id: str
    topic: str
    tested: bool  # the differential suite has cases for it (else the row says why not)


def intended_differences(doc: Path = LANGUAGE_DOC) -> dict[str, IntendedDifference]:
    """The rows of the "Differences from Ansible" table, by id."""
    text = doc.read_text()
    start = text.index(DIFFERENCES_HEADING)
    end = text.find("\n## ", start + 1)
    section = text[start:end if end > 0 else None]
    rows: dict[str, IntendedDifference] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 5 or not re.fullmatch(r"`[a-z0-9-]+`", cells[0]):
            continue
        row_id = cells[0].strip("`")
        if row_id in rows:
            raise ValueError(f"difference id {row_id} appears twice in {doc}")
        rows[row_id] = IntendedDifference(row_id, cells[1], not cells[-1].lower().startswith("not "))
    return rows


def unexplained(diffs: Sequence[Difference], allowed: Mapping[str, Sequence[str]]) -> tuple[list[Difference], list[str]]:
    """(differences no named row covers, named row patterns that matched nothing).

    A pattern is an fnmatch pattern over difference keys, optionally followed by
    " => VALUE": then opsbook's side must be VALUE (e.g. "web1 probe status => unknown").
    A pattern starting with "?" may match nothing (where the difference depends on timing,
    e.g. how far other hosts got before an abort); any other must match a difference.
    """
    patterns = [(row, p.removeprefix("?"), p.startswith("?")) for row, ps in allowed.items() for p in ps]
    left = [d for d in diffs if not any(_matches(d, p) for _, p, _ in patterns)]
    stale = [f"{row}: {p}" for row, p, optional in patterns
             if not optional and not any(_matches(d, p) for d in diffs)]
    return left, stale


def _matches(diff: Difference, pattern: str) -> bool:
    key, arrow, value = pattern.partition(" => ")
    if not fnmatch.fnmatchcase(diff.key, key):
        return False
    return not arrow or (diff.opsbook if isinstance(diff.opsbook, str) else json.dumps(diff.opsbook)) == value


# -- the whole run ---------------------------------------------------------------------------


@dataclass
class Outcome:
    """Both sides of one case, and where its files are."""

    case: Case
    dirs: CaseDirs
    ansible: Observation
    opsbook: Observation
    seconds: dict[str, float]


def run_cases(cases: Sequence[Case], root: Path, ansible_python: str, lab: Any = None) -> dict[str, Outcome]:
    """Run every case with both tools (two forking drivers side by side) and observe them;
    the lab cases only with `lab` (an opsbook_lab Lab that is up), else they are left out."""
    began = time.monotonic()
    cases = [c for c in cases if lab is not None or not c.lab]
    inventory = lab.info.inventory if lab is not None else None
    dirs = {c.id: materialize(c, root, ansible_python, inventory) for c in cases}
    scratch = root / "_drivers"
    serving = target_web(lab) if lab is not None and any(c.lab for c in cases) else contextlib.nullcontext()
    with loopback_web() as web, serving:
        ans = run_jobs(ansible_python, "ansible-playbook", [ansible_job(c, dirs[c.id], web) for c in cases],
                       scratch, ansible_env(root / "_ansible"))
        ops = run_jobs(sys.executable, "opsbook", [opsbook_job(c, dirs[c.id], web) for c in cases], scratch,
                       {**os.environ, "PYTHONWARNINGS": "ignore"})
        ans_results = wait_results(ans, scratch, "ansible-playbook")
        ops_results = wait_results(ops, scratch, "opsbook")
    outcomes = {}
    for case, a, o in zip(cases, ans_results, ops_results):
        outcomes[case.id] = Outcome(case, dirs[case.id], observe_ansible(case, a, dirs[case.id]),
                                    observe_opsbook(case, o, dirs[case.id]),
                                    {"ansible": a["seconds"], "opsbook": o["seconds"]})
    (root / "timing.json").write_text(json.dumps({"cases": len(cases), "seconds": time.monotonic() - began}))
    return outcomes


WEB_PAGES = {  # path -> (status, content type, body): what `{{ web }}` serves to both tools
    "/health": (200, "application/json", '{"status": "ok", "checks": [{"name": "db", "ok": true}]}'),
    "/created": (201, "text/plain", "made it\n"),
    "/text": (200, "text/plain", "ok web1\nversion 2\n"),
}


@contextlib.contextmanager
def loopback_web() -> Iterator[str]:
    """A small HTTP server on 127.0.0.1 for the `uri` cases (`-e web=http://127.0.0.1:PORT`):
    WEB_PAGES, and 404 "no such page" for any other path."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Pages(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            code, ctype, body = WEB_PAGES.get(self.path, (404, "text/plain", "no such page\n"))
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


LAB_PYTHON = "/usr/bin/python3"  # the lab images' python3 (Debian)
TARGET_WEB = "http://127.0.0.1:8097"  # targetweb.PORT, on each lab host's loopback


@contextlib.contextmanager
def target_web(lab: Any) -> Iterator[str]:
    """targetweb.py serving on every lab host's own 127.0.0.1 (docker exec, as root), for
    the lab cases; the servers started here are stopped by their PIDs afterwards."""
    from opsbook_lab.pytest_plugin import wait_for

    source = (HERE / "targetweb.py").read_text()
    port = TARGET_WEB.rpartition(":")[2]
    started: dict[str, str] = {}
    probe = ["python3", "-c", f"import urllib.request; urllib.request.urlopen('{TARGET_WEB}/whoami', timeout=2)"]
    try:
        for name in lab.info.hosts:
            rc, out = lab.exec(name, f"cat > /tmp/opsbook-targetweb.py <<'PROGRAM'\n{source}\nPROGRAM\n"
                                     f"nohup python3 /tmp/opsbook-targetweb.py {port} {name} >/dev/null 2>&1 &\necho $!")
            if rc != 0:
                raise RuntimeError(f"could not start targetweb.py on {name}: {out}")
            started[name] = out.strip().splitlines()[-1]
        for name in started:
            wait_for(f"targetweb.py answering on {name}", lambda name=name: lab.exec(name, probe)[0] == 0, timeout=30)
        yield TARGET_WEB
    finally:
        for name, pid in started.items():
            lab.exec(name, ["kill", pid])


def describe(outcome: Outcome, diffs: Sequence[Difference]) -> str:
    """A failure message with what differs and a reproduction: both files, both commands."""
    case, dirs = outcome.case, outcome.dirs
    lines = [f"case {case.id} ({case.file}{', from ' + case.source if case.source else ''})", "differences:"]
    lines += [f"  {d}" for d in diffs]
    lines += ["", f"ansible-playbook (rc {outcome.ansible.rc}):", _indent(outcome.ansible.output or "(no stderr)"),
              f"opsbook run (rc {outcome.opsbook.rc}):", _indent(outcome.opsbook.output or "(no stderr)"),
              "", f"playbook {dirs.tool('ansible') / 'playbook.yml'}:",
              _indent((dirs.tool("ansible") / "playbook.yml").read_text()),
              f"runbook {dirs.tool('opsbook') / 'runbook.yaml'}:",
              _indent((dirs.tool("opsbook") / "runbook.yaml").read_text()),
              f"inventory {dirs.inventory}; arguments: {' '.join(case.args) or '(none)'}"]
    return "\n".join(lines)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.rstrip().splitlines())

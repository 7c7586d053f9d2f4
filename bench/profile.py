"""Where opsbook's time goes: py-spy samples of whole processes (every thread), summarised.

py-spy (its own venv under the cache, like the other tools) samples the running process
from outside, so threads (the executor's workers, paramiko's transport threads) are seen
too, which cProfile would miss. Without `--idle` a sample is taken only from threads that
are on the CPU, so the counts are CPU time; with `idle=True` they are wall time per thread.

The summary groups samples by component (imports, executor, journal, templates, ssh
plugin, paramiko, display, ...) and lists the functions (file:function) with the most
self and inclusive samples.
"""

from __future__ import annotations

import collections
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import venvs

RATE = 250  # samples per second per thread

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

# First match wins, tested against each frame from the innermost outwards.
COMPONENTS: list[tuple[str, re.Pattern[str]]] = [
    ("import (module loading)", re.compile(r"_find_and_load|_call_with_frames_removed|exec_module")),
    ("journal (SQLite)", re.compile(r"engine/journal\.py")),
    ("templates (jinja2)", re.compile(r"engine/template\.py|jinja2/")),
    ("display/events", re.compile(r"engine/display\.py|engine/events\.py|rich/")),
    ("secrets redaction", re.compile(r"engine/secrets\.py")),
    ("argument models (pydantic)", re.compile(r"pydantic|engine/plugin\.py:.*parse_args")),
    ("ssh connect (opsbook plugin: keys, known_hosts, handshake)", re.compile(
        r"plugins/ssh/(connection|auth|settings)\.py.*(_ensure|_connect|_handshake|_authenticate|known_keys|_load_key|_candidate_keys|"
        r"settings_from_vars|load_ssh_config|_tcp_socket)")),
    ("ssh command (opsbook plugin)", re.compile(r"plugins/ssh/(?!collect|edit|facts|textedit)\w+\.py")),
    ("paramiko / crypto", re.compile(r"paramiko/|cryptography/|nacl/|bcrypt/")),
    ("executor / scheduler", re.compile(r"engine/execute\.py")),
    ("compile / plan", re.compile(r"engine/compile\.py|networkx/")),
    ("load / inventory", re.compile(r"engine/load\.py|engine/yamlsrc\.py|engine/inventory/|yaml/")),
    ("cli / api", re.compile(r"engine/cli\.py|engine/api\.py|click/")),
    ("threads, queues, locks (threading, concurrent.futures)", re.compile(r"threading\.py|concurrent/futures|queue\.py")),
]


def pyspy() -> str:
    """py-spy's executable (installed into its own venv on first use)."""
    return venvs.ensure("py-spy").exe("py-spy")


def record(cmd: Sequence[str], out: Path, env: dict[str, str] | None = None, cwd: Path | None = None,
           idle: bool = False) -> Path:
    """Run `cmd` under py-spy; raw collapsed stacks go to `out`."""
    args = [pyspy(), "record", "--rate", str(RATE), "--format", "raw", "--output", str(out)]
    args.append("--idle" if idle else "--gil")
    proc = subprocess.run([*args, "--", *cmd], env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if not out.exists():
        raise RuntimeError(f"py-spy failed ({proc.returncode}): {proc.stderr[-800:]}")
    return out


def _frames(stack: str) -> list[tuple[str, str]]:
    """[(file, function)] outermost first; line numbers dropped."""
    out = []
    for raw in stack.split(";"):
        m = _FRAME.match(raw.strip())
        if m:
            path = m.group("file")
            short = re.sub(r"^.*/(site-packages|lib/python3\.\d+)/", "", path)
            out.append((short, m.group("func")))
        elif raw.strip():
            out.append(("?", raw.strip()))
    return out


def component(frames: list[tuple[str, str]]) -> str:
    text = [f"{f}:{fn}" for f, fn in frames]
    if any(_FRAME_IMPORT.search(t) for t in text):
        return COMPONENTS[0][0]
    for t in reversed(text):
        for name, pattern in COMPONENTS[1:]:
            if pattern.search(t):
                return name
    return "other (stdlib, C extensions)"


_FRAME_IMPORT = COMPONENTS[0][1]


def summarize(raw: Path | Sequence[Path], top: int = 25) -> dict[str, Any]:
    """Samples by component, and the top functions by self and inclusive samples.

    Several raw files (repeated runs of the same command) are averaged.
    """
    raws = [raw] if isinstance(raw, Path) else list(raw)
    comp: collections.Counter[str] = collections.Counter()
    self_c: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = idle = 0
    lines = [line for r in raws for line in r.read_text(errors="replace").splitlines()]
    for line in lines:
        if not line.strip():
            continue
        stack, _, count = line.rpartition(" ")
        try:
            n = int(count)
        except ValueError:
            continue
        frames = _frames(stack)
        if not frames:  # --gil: no thread held the GIL (I/O waits, C code that released it)
            idle += n
            continue
        total += n
        comp[component(frames)] += n
        names = [f"{f}:{fn}" for f, fn in frames]
        if names:
            self_c[names[-1]] += n
        for name in set(names):
            incl[name] += n
    pct = (lambda c: round(100.0 * c / total, 1)) if total else (lambda c: 0.0)
    runs = len(raws)
    for counter in (comp, self_c, incl):
        for key in counter:
            counter[key] = round(counter[key] / runs)
    total, idle = round(total / runs), round(idle / runs)
    return {
        "runs": runs, "samples": total, "rate_hz": RATE, "seconds": total / RATE, "no_gil_samples": idle,
        "no_gil_seconds": idle / RATE,
        "components": [{"name": k, "samples": v, "pct": pct(v)} for k, v in comp.most_common()],
        "self": [{"function": k, "samples": v, "pct": pct(v)} for k, v in self_c.most_common(top)],
        "inclusive": [{"function": k, "samples": v, "pct": pct(v)} for k, v in incl.most_common(top * 2)
                      if not k.startswith(("<frozen", "threading.py:Thread._bootstrap"))][:top],
    }


def as_text(title: str, summary: dict[str, Any]) -> str:
    lines = [f"## {title}", "",
             (f"{summary['samples']} samples of the thread holding the GIL at {summary['rate_hz']} Hz "
             f"(~{summary['seconds']:.2f} s of Python CPU); for another {summary['no_gil_seconds']:.2f} s no "
             "thread held the GIL (I/O waits, crypto and other C code that releases it)"), "",
             "| component | samples | share |", "|---|---|---|"]
    lines += [f"| {c['name']} | {c['samples']} | {c['pct']}% |" for c in summary["components"]]
    lines += ["", "| top self (file:function) | samples | share |", "|---|---|---|"]
    lines += [f"| `{c['function']}` | {c['samples']} | {c['pct']}% |" for c in summary["self"]]
    lines += ["", "| top inclusive (file:function) | samples | share |", "|---|---|---|"]
    lines += [f"| `{c['function']}` | {c['samples']} | {c['pct']}% |" for c in summary["inclusive"]]
    return "\n".join(lines) + "\n"


def import_times(cmd: Sequence[str], env: dict[str, str], cwd: Path | None = None, top: int = 20) -> dict[str, Any]:
    """`-X importtime` of a command (PYTHONPROFILEIMPORTTIME): the costliest imports (cumulative µs).

    Third-party packages are listed at their top level (the first line naming them), so
    `networkx` stands for everything networkx pulls in.
    """
    proc = subprocess.run(list(cmd), env={**env, "PYTHONPROFILEIMPORTTIME": "1"}, cwd=cwd, capture_output=True,
                          text=True, check=False)
    rows = []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m:
            rows.append((int(m.group(1)), int(m.group(2)), len(m.group(3)) // 2, m.group(4)))
    total = sum(r[0] for r in rows)
    seen: set[str] = set()
    tops = []
    for self_us, cum_us, depth, name in sorted(rows, key=lambda r: -r[1]):
        root = name.split(".")[0]
        if root in seen or root in ("site", "encodings"):
            continue
        seen.add(root)
        tops.append({"module": name, "cumulative_ms": cum_us / 1000, "depth": depth})
        if len(tops) >= top:
            break
    return {"total_ms": total / 1000, "top": tops}

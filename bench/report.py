"""Summaries, ratios against opsbook (same run), targets (PASS/MISS), JSON and Markdown."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from bench.harness import STEP_PAIRS, Case
from bench.measure import summarize


def _get(cases: dict[str, dict[str, Any]], group_prefix: str, tool: str,
         steps: int | None = None) -> dict[str, Any] | None:
    for c in cases.values():
        if c["group"] == group_prefix and c["tool"] == tool and c.get("rounds") and steps in (None, c["steps"]):
            return c
    return None


def summarize_cases(cases: list[Case]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for case in cases:
        s = summarize(case.samples)
        s.update(id=case.id, group=case.group, tool=case.tool, hosts=case.hosts, steps=case.steps,
                 error=case.error)
        # scenario-specific medians (reported by the measured program itself)
        keys = {k for smp in case.samples for k in smp.extra if isinstance(smp.extra[k], (int, float))}
        for key in sorted(keys):
            values = [smp.extra[key] for smp in case.samples if isinstance(smp.extra.get(key), (int, float))]
            s[f"m_{key}"] = statistics.median(values)
        out[case.id] = s
    # ratios against opsbook in the same group
    for s in out.values():
        base = _get(out, s["group"], "opsbook", s["steps"] if s["group"].startswith(STEP_PAIRS) else None)
        if base and s.get("rounds") and base is not s:
            s["wall_x_opsbook"] = s["wall_s"] / base["wall_s"]
            s["cpu_x_opsbook"] = s["cpu_s"] / base["cpu_s"] if base["cpu_s"] else None
    return out


def derive(cases: dict[str, dict[str, Any]], top: int, extra: tuple[int, int],
           pair_steps: tuple[int, int]) -> dict[str, Any]:
    d: dict[str, Any] = {"top_hosts": top}
    lo, hi = extra
    per_step: dict[str, Any] = {}
    lo_group = f"b.runbook-{lo}@{top}" if any(c["group"] == f"b.runbook-{lo}@{top}" for c in cases.values()) \
        else f"c.steps-{lo}@{top}"
    pairs = f"{STEP_PAIRS}@{top}"
    p_lo, p_hi = pair_steps
    for tool in ("opsbook", "floor", "pyinfra", "ansible"):
        short, long_ = _get(cases, pairs, tool, p_lo), _get(cases, pairs, tool, p_hi)
        if short and long_:  # the median of each round's back-to-back pair
            rounds = list(zip(short["samples"], long_["samples"]))
            per_step[tool] = {k: statistics.median((b[k] - a[k]) / (p_hi - p_lo) for a, b in rounds)
                              for k in ("cpu_s", "wall_s")}
            per_step[tool]["how"] = f"median of {len(rounds)} back-to-back pairs, {p_lo} and {p_hi} steps"
            continue
        a, b = _get(cases, lo_group, tool), _get(cases, f"c.steps-{hi}@{top}", tool)
        if a and b:
            per_step[tool] = {"cpu_s": (b["cpu_s"] - a["cpu_s"]) / (hi - lo),
                              "wall_s": (b["wall_s"] - a["wall_s"]) / (hi - lo),
                              "how": f"difference of the medians of {lo_group} and c.steps-{hi}@{top}"}
    d["per_extra_step"] = per_step
    mem = next((c for c in cases.values() if c["group"].startswith("f.engine-noop") and c["id"].endswith("memory")
                and c.get("m_run_us_per_node")), None)
    fil = next((c for c in cases.values() if c["group"].startswith("f.engine-noop") and c["id"].endswith("file")
                and c.get("m_run_us_per_node")), None)
    jf = next((c for c in cases.values() if c["group"].startswith("j.") and c["tool"] == "opsbook" and c.get("rounds")),
              None)
    if mem and fil:
        per_node = (fil["m_run_us_per_node"] - mem["m_run_us_per_node"]) * 1e-6
        d["journal_file_cost_per_node_s"] = per_node
        if jf:  # what that cost is in the local 50 x 5 run, by arithmetic rather than by noise
            d["journal_file_share_of_local_run"] = per_node * jf["hosts"] * jf["steps"] / jf["wall_s"]
    return d


def targets(cases: dict[str, dict[str, Any]], derived: dict[str, Any]) -> list[dict[str, Any]]:
    top = derived["top_hosts"]
    rows: list[dict[str, Any]] = []

    def add(name: str, value: float | None, goal: str, ok: bool | None, unit: str = "") -> None:
        rows.append({"target": name, "value": value, "goal": goal, "unit": unit,
                     "status": "n/a" if ok is None or value is None or (isinstance(value, float) and math.isnan(value))
                     else ("PASS" if ok else "MISS")})

    g = f"b.runbook-5@{top}"
    ops, ans, pyi, flo = (_get(cases, g, t) for t in ("opsbook", "ansible", "pyinfra", "floor"))
    r = ans["wall_s"] / ops["wall_s"] if ops and ans else None
    add(f"5-step runbook @{top} hosts: ansible-playbook wall / opsbook wall", r, ">= 20x", r is not None and r >= 20, "x")
    r = pyi["wall_s"] / ops["wall_s"] if ops and pyi else None
    add(f"5-step runbook @{top} hosts: pyinfra wall / opsbook wall", r, "> 1x (opsbook faster)", r is not None and r > 1, "x")
    r = ops["wall_s"] / flo["wall_s"] if ops and flo else None
    add(f"5-step runbook @{top} hosts: opsbook wall / paramiko floor wall", r, "<= 1.2x", r is not None and r <= 1.2, "x")
    step = derived.get("per_extra_step", {}).get("opsbook")
    v = step["cpu_s"] if step else None
    add(f"per extra step @{top} hosts: opsbook controller CPU", v, "<= 0.05 s", v is not None and v <= 0.05, "s")
    warm = _get(cases, "d.warm-command", "opsbook")
    v = warm.get("m_median_s") if warm else None
    add("warm command latency (opsbook SSHConnection.run)", v, "<= 5 ms", v is not None and v <= 0.005, "s")
    ver = _get(cases, "e.startup", "opsbook")
    v = ver["wall_s"] if ver else None
    add("opsbook --version wall", v, "<= 150 ms", v is not None and v <= 0.150, "s")
    noop = next((c for c in cases.values() if c["group"].startswith("f.engine-noop") and c["id"].endswith("memory")
                 and c.get("rounds")), None)
    v = noop.get("m_run_us_per_node") if noop else None
    add(f"engine overhead per node ({noop['group'][2:] if noop else 'noop'}, journal :memory:)", v, "<= 30 us",
        v is not None and v <= 30, "us")
    noopf = next((c for c in cases.values() if c["group"].startswith("f.engine-noop") and c["id"].endswith("file")
                  and c.get("rounds")), None)
    v = noopf.get("m_run_us_per_node") if noopf else None
    add("engine overhead per node (same, durable SQLite journal file)", v, "<= 30 us", v is not None and v <= 30, "us")
    jf = next((c for c in cases.values() if c["group"].startswith("j.") and c["tool"] == "opsbook" and c.get("rounds")), None)
    jm = next((c for c in cases.values() if c["group"].startswith("j.") and c["tool"] == "opsbook:memory"
               and c.get("rounds")), None)
    v = jf["wall_s"] / jm["wall_s"] - 1 if jf and jm else None
    add(f"durable journal vs :memory: ({jf['group'][2:] if jf else 'local run'}), wall", v, "< +10%",
        v is not None and v < 0.10, "%")
    return rows


def _fmt(v: Any, unit: str = "") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if unit == "x":
        return f"{v:.2f}x"
    if unit == "%":
        return f"{v * 100:+.1f}%"
    if unit == "us":
        return f"{v:.1f} µs"
    if unit == "s":
        if abs(v) < 1:
            return f"{v * 1000:.1f} ms"
        return f"{v:.2f} s"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _source_line(meta: dict[str, Any]) -> str:
    a, b = meta.get("source_start") or {}, meta.get("source_end") or {}
    if not a:
        return "- opsbook source: ?"
    line = f"- opsbook source: commit {a['commit'][:10]}"
    if a.get("uncommitted"):
        line += f" plus uncommitted changes in {', '.join(a['uncommitted'])}"
    line += f" (engine+plugins digest {a['digest']}"
    if b and b.get("digest") != a.get("digest"):
        line += f", **changed during the run** to {b['digest']} at commit {b['commit'][:10]}"
    return line + ")"


def _load(values: Any) -> str:
    return "/".join(f"{v:.1f}" for v in values) if values else "?"


def markdown(result: dict[str, Any]) -> str:
    meta = result["meta"]
    m = meta["machine"]
    out = [f"# opsbook benchmark — {meta['date']}", ""]
    out += [(f"- mode: {meta['mode']} ({meta['rounds']} interleaved rounds, medians; start-up "
            f"{meta['startup_rounds']} rounds); hosts {', '.join(map(str, meta['hosts']))}; "
            f"fleet: {meta['fleet']}"),
            (f"- machine: {m['nproc']} CPUs ({m['cpu']}), {m['ram_gib']:.1f} GiB RAM, kernel {m['kernel']}, "
            f"{m['os']}"),
            _source_line(meta),
            "- versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
            (f"- controller CPU = user+sys of the tool's whole process tree ({meta['cpu_source']}); "
            "ratios are tool / opsbook from the same run (>1: opsbook is faster or cheaper)"),
            (f"- wall time of the whole run: {meta.get('elapsed_s', 0):.0f} s; load average (1/5/15 min) at start "
            f"{_load(meta.get('loadavg_start'))}, at end {_load(meta.get('loadavg_end'))} (other work on the machine "
            "shows here; ratios are side by side, absolute times are not comparable across runs)"), ""]
    out += ["## Targets", "", "| target | value | goal | status |", "|---|---|---|---|"]
    for t in result["targets"]:
        out.append(f"| {t['target']} | {_fmt(t['value'], t['unit'])} | {t['goal']} | **{t['status']}** |")
    der = result["derived"]
    if "journal_file_cost_per_node_s" in der:
        out += ["", f"Journal cost measured in process (engine noop, file − memory): "
                f"{der['journal_file_cost_per_node_s'] * 1e6:.1f} µs per node"
                + (f", i.e. {der['journal_file_share_of_local_run'] * 100:.2f}% of the local 50×5 run's wall time "
                   "(the CLI wall ratio above also carries the noise of 250 process spawns)"
                   if "journal_file_share_of_local_run" in der else "") + "."]
    out += ["", "## All cases", "",
            "| group | case | hosts | steps | wall (median) | CPU (median) | wall ×opsbook | CPU ×opsbook | min–max wall | rounds |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for c in result["cases"].values():
        if c.get("error") and not c.get("rounds"):
            out.append(f"| {c['group']} | {c['id'].split('/', 1)[1]} | {c['hosts'] or ''} | {c['steps'] or ''} | "
                       f"FAILED: {c['error'][:120].replace('|', '/')} | | | | | 0 |")
            continue
        out.append(
            f"| {c['group']} | {c['id'].split('/', 1)[1]} | {c['hosts'] or ''} | {c['steps'] or ''} | "
            f"{_fmt(c['wall_s'], 's')} | {_fmt(c['cpu_s'], 's')} | {_fmt(c.get('wall_x_opsbook'), 'x')} | "
            f"{_fmt(c.get('cpu_x_opsbook'), 'x')} | {_fmt(c['wall_min_s'], 's')}–{_fmt(c['wall_max_s'], 's')} | "
            f"{c['rounds']} |")
    step = result["derived"].get("per_extra_step") or {}
    if step:
        out += ["", f"## Cost per extra step at {result['derived']['top_hosts']} hosts ((long − short runbook) / extra steps)",
                "", "| tool | controller CPU | wall | how |", "|---|---|---|---|"]
        for tool, v in step.items():
            out.append(f"| {tool} | {_fmt(v['cpu_s'], 's')} | {_fmt(v['wall_s'], 's')} | {v.get('how', '')} |")
    extra_rows = []
    for c in result["cases"].values():
        ms = {k[2:]: v for k, v in c.items() if k.startswith("m_")}
        if ms:
            extra_rows.append(f"| {c['id']} | " + ", ".join(
                f"{k} {_fmt(v, 'us' if k.endswith('us_per_node') else 's' if k.endswith('_s') else '')}"
                for k, v in ms.items()) + " |")
    if extra_rows:
        out += ["", "## Measured inside the process (medians over rounds)", "", "| case | values |", "|---|---|",
                *extra_rows]
    mem = [c for c in result["cases"].values() if c["group"].startswith("g.") and c.get("rounds")]
    if mem:
        out += ["", "## Peak RSS", "", "| case | peak RSS |", "|---|---|"]
        for c in mem:
            out.append(f"| {c['id']} | {c['maxrss_mb']:.0f} MB |")
    profiles = {k: v for k, v in (result.get("profiles") or {}).items() if v.get("samples")}
    deltas = [d for k, d in (result.get("profiles") or {}).items() if k.endswith("per_extra_step")]
    if profiles:
        out += ["", "## Where opsbook's time goes (py-spy, thread holding the GIL)", "",
                ("Full tables: `bench/results/profiles/`. Shares are of Python CPU (samples where a thread held the GIL). "
                "Read them as shares, not seconds: py-spy pauses the process for each sample, and with dozens of "
                "threads contending for the GIL its attribution drifts (a profiled run can report more 'Python "
                "CPU' than the cgroup measures for the unprofiled run); the CPU numbers above are the measurements."),
                ""]
        for p in profiles.values():
            comps = ", ".join(f"{c['name']} {c['pct']}%" for c in p["components"][:6])
            tops = ", ".join(f"`{c['function']}` {c['pct']}%" for c in p["self"][:6])
            out.append(f"- **{p['title']}** (~{p['seconds']:.2f} s Python CPU, {p['no_gil_seconds']:.2f} s without "
                       f"the GIL): {comps}. Top self: {tops}")
        imp = (result.get("profiles") or {}).get("imports")
        if imp:
            tops = ", ".join(f"`{r['module']}` {r['cumulative_ms']:.0f} ms" for r in imp["top"][:10])
            out.append(f"- **{imp['title']}** (`-X importtime`): {imp['total_ms']:.0f} ms in all; costliest: {tops}")
        for delta in deltas:
            comps = ", ".join(f"{c['name']} {c['s_per_step'] * 1000:.1f} ms" for c in delta["components"][:6])
            out.append(f"- **{delta['title']}**: {delta['total_s_per_step'] * 1000:.1f} ms Python CPU: {comps}")
    if result.get("notes"):
        out += ["", "## Notes", ""] + [f"- {n}" for n in result["notes"]]
    return "\n".join(out) + "\n"


def write(result: dict[str, Any], folder: Path, stem: str = "latest") -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    js, md = folder / f"{stem}.json", folder / f"{stem}.md"
    js.write_text(json.dumps(result, indent=1, default=str) + "\n")
    md.write_text(markdown(result))
    return js, md

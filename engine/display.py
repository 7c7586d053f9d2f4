"""Terminal listeners: live progress (rich) on a TTY, plain lines otherwise, JSON lines for
log shippers. Only the CLI installs them; the engine just emits events."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any, TextIO

from opsbook.counts import ordered
from opsbook.events import Event
from opsbook.visible import visible

def write_lines(stream: TextIO, text: str) -> bool:
    """Write and flush; False when the reader has gone (`opsbook run | head -1`).

    The stream's file descriptor is then pointed at /dev/null, so that nothing written to
    it later (another listener, the run's last line, Python's flush at exit) fails: the run
    goes on, its journal complete, whoever stopped reading."""
    import os

    try:
        stream.write(text)
        stream.flush()
        return True
    except (BrokenPipeError, ConnectionResetError):
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass  # not a real file (tests): the listener stops writing to it anyway
        return False


STATUS_STYLE = {"ok": "green", "failed": "red", "timed_out": "red", "skipped": "dim", "unknown": "yellow"}


class JsonLines:
    """One JSON object per event per line (Fluentd, Vector, jq)."""

    def __init__(self, stream: TextIO = sys.stdout) -> None:
        self.stream = stream
        self.lock = threading.Lock()
        self.closed = False

    def __call__(self, event: Event) -> None:
        if self.closed:
            return
        line = json.dumps(event.to_json(), default=str)
        with self.lock:
            if not write_lines(self.stream, line + "\n"):  # `opsbook run --format json | head`
                self.closed = True


class PlainLines:
    """Readable lines without colours or cursor tricks (CI logs, pipes)."""

    def __init__(self, stream: TextIO = sys.stderr, verbose: int = 0) -> None:
        self.stream = stream
        self.verbose = verbose
        self.lock = threading.Lock()
        # A listener without this attribute gets every event; with it False, the engine
        # does not even produce `node_output` events (one per output line) for it.
        self.wants_output = verbose > 1
        self.closed = False

    def __call__(self, event: Event) -> None:
        if self.closed:
            return
        text = _visible_line(event, self.verbose)
        if text:
            with self.lock:
                if not write_lines(self.stream, text + "\n"):  # `opsbook run 2>&1 | head -1`
                    self.closed = True


def _visible_line(event: Event, verbose: int) -> str | None:
    """_describe's line with every control character of the data in it made visible."""
    from opsbook.visible import visible

    text = _describe(event, verbose)
    return None if text is None else visible(text)


def _describe(event: Event, verbose: int) -> str | None:
    if event.kind == "node_started" and not verbose:
        return None  # the common case, and the cheapest
    d = event.data
    stamp = time.strftime("%H:%M:%S", time.localtime(event.ts))
    if event.kind == "run_started":
        where = "".join(f"\n         -> {t}" for t in d.get("targets") or ())
        dry = ", a dry run: --check changes nothing" if d.get("check") else ""
        return f"{stamp} run {event.run_id}: {d.get('runbook')} ({d.get('nodes')} nodes{dry}){where}"
    if event.kind == "node_started" and verbose:
        return f"{stamp} start  {event.step} @ {event.host}"
    if event.kind == "node_finished" and d.get("restored"):
        if not verbose:
            return None  # done before the resume: `opsbook show` has it with its own time
        when = time.strftime("%H:%M:%S", time.localtime(d["recorded_at"])) if d.get("recorded_at") else "earlier"
        return f"{stamp} {d.get('status'):<9} {event.step} @ {event.host} (recorded at {when}, before the resume)"
    if event.kind == "node_finished":
        status = d.get("status")
        if status == "skipped" and not verbose:
            return None
        msg = f" - {d.get('msg')}" if d.get("msg") and (status != "ok" or verbose or d.get("show")) else ""
        took = f" {d.get('duration', 0):.2f}s" if d.get("duration") else ""
        changed = " (changed)" if d.get("changed") else ""
        changed += " (ignored)" if d.get("ignored") else ""
        return f"{stamp} {status:<9} {event.step} @ {event.host}{changed}{took}{msg}"
    if event.kind == "node_rescued":  # a failure above, answered by its block's rescue
        if d.get("restored") and not verbose:
            return None
        return (f"{stamp} {'rescued':<9} {event.step} @ {event.host} "
                f"({d.get('status')}, then the block's rescue succeeded)")
    if event.kind == "node_diff":
        body = "\n".join("    " + line for line in str(d.get("diff", "")).rstrip("\n").splitlines())
        return f"{stamp} diff      {event.step} @ {event.host}\n{body}"
    if event.kind == "node_output" and verbose > 1:
        return f"{stamp}   {event.host} | {d.get('line')}"
    if event.kind == "aborted":
        running = d.get("still_running") or 0
        waiting = f" (nothing new starts; {running} running node(s) will finish)" if running else ""
        return f"{stamp} ABORTED: {d.get('message')}{waiting}"
    if event.kind == "warning":
        return f"{stamp} WARNING: {d.get('message')}"
    if event.kind == "approval_requested":
        from opsbook.gates import describe_gate

        lines = describe_gate(d.get("gate") or event.step or "", event.host, d.get("prompt", ""), d.get("action", ""),
                              d.get("args"), d.get("started_by", ""), event.run_id,
                              event.step if d.get("gate") and d.get("gate") != event.step else None,
                              runs_on=d.get("runs_on"), steps=d.get("steps") or ())
        return f"{stamp} " + "\n".join(lines)
    if event.kind == "approval_decided":
        if d.get("cancelled"):
            return f"{stamp} approval gate {d.get('gate') or event.step} @ {event.host} CANCELLED ({d.get('who')}): nothing of it runs"
        return (f"{stamp} approval {'granted' if d.get('approved') else 'DENIED'} by {d.get('who')} "
                f"for {d.get('gate') or event.step} @ {event.host}")
    if event.kind == "rollback_started":
        return f"{stamp} rolling back {d.get('count')} completed action(s)"
    if event.kind == "rollback_finished":
        where = f" (ran on {d['target']})" if d.get("target") and d.get("target") != d.get("host") else ""
        return (f"{stamp} rollback {d.get('status')}: undo of \"{d.get('step') or d.get('origin')}\" "
                f"for {d.get('host') or 'localhost'}{where} with {d.get('action')} {d.get('msg') or ''}").rstrip()
    if event.kind == "run_finished":
        counts = ", ".join(f"{k}={v}" for k, v in ordered(d.get("counts") or {}).items())
        extra = f" - {d.get('message')}" if d.get("message") else ""
        return f"{stamp} run {event.run_id} {d.get('status')}: {counts}{extra}"
    return None


class LiveProgress:
    """rich live table: per step hosts done/failed/running and the latest output line."""

    def __init__(self, console: Any, verbose: int = 0) -> None:
        from rich.live import Live

        self.console = console
        self.verbose = verbose
        self.steps: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.live = Live(console=console, refresh_per_second=8, transient=False,
                         get_renderable=self._render)
        self.plain = PlainLines(stream=console.file, verbose=verbose)
        self.started = False

    def __call__(self, event: Event) -> None:
        # Rows change under our lock; rich is called outside it. Live.stop() renders a last
        # time (our _render takes the lock) and its refresh thread holds rich's own lock while
        # rendering: calling rich with our lock held deadlocked every run on a terminal.
        start = stop = False
        line = None
        with self.lock:
            if event.kind == "run_started" and not self.started:
                self.started = start = True
            if event.step:
                row = self.steps.setdefault(event.step, {"running": 0, "ok": 0, "failed": 0, "rescued": 0,
                                                         "ignored": 0, "skipped": 0, "unknown": 0, "changed": 0,
                                                         "last": ""})
                if event.kind == "node_started":
                    row["running"] += 1
                elif event.kind == "node_finished":
                    status = event.data.get("status", "ok")
                    if status != "skipped" and row["running"] > 0 and not event.data.get("restored"):
                        row["running"] -= 1
                    key = "ignored" if event.data.get("ignored") else "failed" if status == "timed_out" else status
                    row[key] = row.get(key, 0) + 1
                    row["changed"] += bool(event.data.get("changed"))
                    if status in ("failed", "timed_out") or event.data.get("show"):
                        row["last"] = visible(f"{event.host}: {event.data.get('msg', '')}", lines=False)
                elif event.kind == "node_rescued":  # counted failed when it ended; now rescued
                    row["failed"] = max(0, row["failed"] - 1)
                    row["rescued"] += 1
                elif event.kind == "node_output":
                    row["last"] = visible(f"{event.host}: {event.data.get('line', '')}"[:120], lines=False)
            if event.kind in ("aborted", "warning", "approval_decided", "rollback_started", "rollback_finished", "node_diff",
                              "run_finished"):
                line = _visible_line(event, self.verbose)
            if event.kind == "run_finished":
                stop = self.started
        if start:
            self.live.start()
        if stop:
            self.live.stop()
        if line:
            self.console.print(line, markup=False, highlight=False, emoji=False)

    def pause(self) -> None:
        if self.started:
            self.live.stop()

    def resume(self) -> None:
        if self.started:
            self.live.start()

    def _render(self) -> Any:
        from rich.table import Table
        from rich.text import Text

        table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
        for col in ("step", "run", "ok", "chg", "fail", "resc", "ign", "skip", "latest"):
            table.add_column(col, overflow="ellipsis", no_wrap=True, max_width=60 if col == "latest" else None)
        with self.lock:
            for name, row in self.steps.items():
                # plain Text, never markup: a target's output must not style (or hide) anything
                # (counts are styled Text too: a markup string is printed as written wherever
                # the table is rendered without markup)
                table.add_row(Text(visible(name[:40], lines=False)), Text(str(row["running"] or "")),
                              Text(str(row["ok"] or ""), style="green"), Text(str(row["changed"] or "")),
                              Text(str(row["failed"] or ""), style="red"), Text(str(row["rescued"] or "")),
                              Text(str(row["ignored"] or "")),
                              Text(str(row["skipped"] or ""), style="dim"), Text(row["last"]))
        return table

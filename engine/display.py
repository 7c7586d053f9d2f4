"""Terminal listeners: live progress (rich) on a TTY, plain lines otherwise, JSON lines for
log shippers. Only the CLI installs them; the engine just emits events."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any, TextIO

from opsbook.events import Event

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
            try:
                self.stream.write(line + "\n")
                self.stream.flush()
            except BrokenPipeError:  # `opsbook run --format json | head`: the run goes on
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

    def __call__(self, event: Event) -> None:
        text = _describe(event, self.verbose)
        if text:
            with self.lock:
                self.stream.write(text + "\n")
                self.stream.flush()


def _describe(event: Event, verbose: int) -> str | None:
    if event.kind == "node_started" and not verbose:
        return None  # the common case, and the cheapest
    d = event.data
    stamp = time.strftime("%H:%M:%S", time.localtime(event.ts))
    if event.kind == "run_started":
        return f"{stamp} run {event.run_id}: {d.get('runbook')} ({d.get('nodes')} nodes)"
    if event.kind == "node_started" and verbose:
        return f"{stamp} start  {event.step} @ {event.host}"
    if event.kind == "node_finished":
        status = d.get("status")
        if status == "skipped" and not verbose:
            return None
        msg = f" - {d.get('msg')}" if d.get("msg") and status != "ok" or verbose and d.get("msg") else ""
        took = f" {d.get('duration', 0):.2f}s" if d.get("duration") else ""
        changed = " (changed)" if d.get("changed") else ""
        changed += " (ignored)" if d.get("ignored") else ""
        return f"{stamp} {status:<9} {event.step} @ {event.host}{changed}{took}{msg}"
    if event.kind == "node_output" and verbose > 1:
        return f"{stamp}   {event.host} | {d.get('line')}"
    if event.kind == "aborted":
        running = d.get("still_running") or 0
        waiting = f" (nothing new starts; {running} running node(s) will finish)" if running else ""
        return f"{stamp} ABORTED: {d.get('message')}{waiting}"
    if event.kind == "warning":
        return f"{stamp} WARNING: {d.get('message')}"
    if event.kind == "approval_decided":
        return f"{stamp} approval {'granted' if d.get('approved') else 'DENIED'} by {d.get('who')} for {event.step} @ {event.host}"
    if event.kind == "rollback_started":
        return f"{stamp} rolling back {d.get('count')} completed action(s)"
    if event.kind == "rollback_finished":
        return f"{stamp} rollback {d.get('status')}: {d.get('action')} @ {d.get('host')} {d.get('msg') or ''}".rstrip()
    if event.kind == "run_finished":
        counts = ", ".join(f"{k}={v}" for k, v in sorted(d.get("counts", {}).items()))
        extra = f" - {d.get('message')}" if d.get("message") else ""
        ignored = d.get("ignored") or 0
        if ignored:
            counts += f" ({ignored} failure{'s' if ignored > 1 else ''} ignored: ignore_errors)"
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
                row = self.steps.setdefault(event.step, {"running": 0, "ok": 0, "failed": 0, "skipped": 0,
                                                         "unknown": 0, "changed": 0, "last": ""})
                if event.kind == "node_started":
                    row["running"] += 1
                elif event.kind == "node_finished":
                    status = event.data.get("status", "ok")
                    if status != "skipped" and row["running"] > 0 and not event.data.get("restored"):
                        row["running"] -= 1
                    key = "failed" if status == "timed_out" else status
                    row[key] = row.get(key, 0) + 1
                    row["changed"] += bool(event.data.get("changed"))
                    if status in ("failed", "timed_out"):
                        row["last"] = f"{event.host}: {event.data.get('msg', '')}"
                elif event.kind == "node_output":
                    row["last"] = f"{event.host}: {event.data.get('line', '')}"[:120]
            if event.kind in ("aborted", "warning", "approval_decided", "rollback_started", "rollback_finished",
                              "run_finished"):
                line = _describe(event, self.verbose)
            if event.kind == "run_finished":
                stop = self.started
        if start:
            self.live.start()
        if stop:
            self.live.stop()
        if line:
            self.console.print(line)

    def pause(self) -> None:
        if self.started:
            self.live.stop()

    def resume(self) -> None:
        if self.started:
            self.live.start()

    def _render(self) -> Any:
        from rich.table import Table

        table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
        for col in ("step", "run", "ok", "chg", "fail", "skip", "latest"):
            table.add_column(col, overflow="ellipsis", no_wrap=True, max_width=60 if col == "latest" else None)
        with self.lock:
            for name, row in self.steps.items():
                table.add_row(name[:40], str(row["running"] or ""), f"[green]{row['ok']}[/]" if row["ok"] else "",
                              str(row["changed"] or ""), f"[red]{row['failed']}[/]" if row["failed"] else "",
                              f"[dim]{row['skipped']}[/]" if row["skipped"] else "", row["last"])
        return table

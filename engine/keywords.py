"""The language's keywords: every runbook and step keyword with its JSON-schema type and
help text, the one description of the language. The loader (opsbook.load) checks runbooks
against these tables (unknown keys, did-you-mean) and `opsbook schema` (opsbook.schema)
generates the JSON Schema from them; docs/language.md has a heading for each step keyword.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from opsbook.model import PHASES

EXTRA_VARS = ("used", "any")
APPROVED_BY = ("anyone", "another")
ACTION_KEY = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Keyword:
    """One keyword of the language: its JSON-schema type and help text."""

    schema: dict[str, Any]
    help: str


def _t(kind: str, help_: str, **extra: Any) -> Keyword:
    return Keyword({"type": kind, **extra}, help_)


_STR_OR_LIST = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
_DURATION = {"anyOf": [{"type": "number", "minimum": 0}, {"type": "string", "pattern": r"^(\d+(\.\d+)?(ms|s|m|h|d)?)+$"}]}
_COND = {"anyOf": [{"type": "string"}, {"type": "boolean"}, {"type": "array"}]}
_ACTION_MAP = {"type": "object", "minProperties": 1, "maxProperties": 1,
               "patternProperties": {ACTION_KEY.pattern: {}}}

STEP_KEYWORDS: dict[str, Keyword] = {
    "name": _t("string", "What the step does, in words; shown in plans, logs and reports."),
    "id": _t("string", "Stable identifier for `needs:`; default: the name in kebab-case."),
    "hosts": _t("string", "Ansible host pattern: groups, a:b, a:&b, a:!b, wildcards, ~regex."),
    "needs": Keyword(_STR_OR_LIST, "Steps (ids or names) this step waits for; default: the previous step."),
    "when": Keyword(_COND, "Run only when this Jinja expression (or all in the list) is true."),
    "loop": Keyword({"anyOf": [{"type": "array"}, {"type": "string"}]}, "Run once per item (`item`)."),
    "loop_control": Keyword({"type": "object", "properties": {"loop_var": {"type": "string"}, "label": {"type": "string"}}, "additionalProperties": False}, "loop_var and label, as in Ansible."),
    "register": _t("string", "Store the result under this name for later steps."),
    "retries": _t("integer", "Attempts after the first one (with `until`: until it holds).", minimum=0),
    "delay": Keyword(_DURATION, "Pause between attempts (default 1s)."),
    "backoff": _t("number", "Multiply the delay by this after each attempt (exponential backoff).", minimum=1),
    "until": _t("string", "Retry until this expression holds (the result is `result`/the register name)."),
    "timeout": Keyword(_DURATION, "Cancel the step on a host after this long; it is reported as timed out."),
    "ignore_errors": _t("boolean", "A failure does not stop the host."),
    "failed_when": Keyword(_COND, "Override failure: fail when this expression holds."),
    "changed_when": Keyword(_COND, "Override change reporting."),
    "serial": Keyword({"anyOf": [{"type": "integer"}, {"type": "string"}, {"type": "array"}]}, "Batches: a number, a percentage or a list of sizes."),
    "max_fail_percentage": _t("number", "Stop scheduling when more than this % of the step's hosts failed.", minimum=0, maximum=100),
    "max_errors": _t("integer", "Stop scheduling after this many failed nodes in the step.", minimum=0),
    "run_once": _t("boolean", "Run on the first matching host only."),
    "delegate_to": _t("string", "Run on this host instead, with the original host's variables."),
    "become": _t("boolean", "Run as another user (sudo)."),
    "become_user": _t("string", "User to become (default root)."),
    "tags": Keyword(_STR_OR_LIST, "Select with --tags / --skip-tags."),
    "approve": Keyword({"anyOf": [{"type": "boolean"}, {"type": "string"}]}, "Ask a human before running (message)."),
    "rollback": Keyword(_ACTION_MAP, "Action that undoes this step; run in reverse order when the run fails."),
    "notify": Keyword(_STR_OR_LIST, "Handlers to run at the end when this step changed something."),
    "listen": Keyword(_STR_OR_LIST, "Handlers only: other names this handler answers to."),
    "vars": _t("object", "Variables for this step only."),
    "no_log": _t("boolean", "Hide this step's output and arguments everywhere."),
    "gather_facts": _t("boolean", "Gather the host's facts (Ansible's setup) before this step, once per host and run."),
    "check_mode": _t("boolean", "true: always run this step read-only (dry run), even in a real run; false: run it for real even under --check."),
    "keep_healthy": Keyword({"anyOf": [{"type": "integer"}, {"type": "string"}, {"type": "object"}]}, "Pre-flight: minimum healthy members that must remain (e.g. 2 or '50%')."),
    "undoes": Keyword(_STR_OR_LIST, "Steps (names or ids) this step undoes on its host when it succeeds (a rescue that restores): their recorded rollback is then done, not run again."),
    "restores": Keyword(_STR_OR_LIST, "keep_healthy steps (names or ids) whose members this step puts back into service when it succeeds."),
    "marks": Keyword({"type": "array", "items": {"enum": ["mitigation", "verification"]}}, "RTO accounting: this step mitigates / verifies recovery."),
    "block": _t("array", "Steps run in order per host; see rescue/always."),
    "args": _t("object", "Ansible's `args:`: more arguments for the step's module, written by its Ansible name."),
    "import_tasks": Keyword(_STR_OR_FILE := {"anyOf": [{"type": "string"}, {"type": "object"}]},
                            "Steps of another file, read when the runbook loads; keywords apply to each (static)."),
    "include_tasks": Keyword(_STR_OR_FILE, "Steps of another file behind a step of their own: when/tags/loop are the include's (dynamic)."),
    "import_role": _t("object", "A role's tasks here ({name, tasks_from, ...}); keywords apply to each (static)."),
    "include_role": _t("object", "A role's tasks behind a step of their own: when/tags/loop are the include's (dynamic)."),
    "rescue": _t("array", "Steps run on a host when a step of its block failed."),
    "always": _t("array", "Steps run on a host after the block, whatever happened."),
}

# An Ansible play's keys that opsbook names otherwise: refused with the name to use.
ANSIBLE_PLAY_KEYS = {"tasks": "steps"}

RUNBOOK_KEYWORDS: dict[str, Keyword] = {
    "opsbook": Keyword({"const": 1}, "Format version; must be 1."),
    "name": _t("string", "Runbook name."),
    "description": _t("string", "What it is for and when to use it."),
    "phase": Keyword({"enum": list(PHASES)}, "Incident phase."),
    "objectives": Keyword({"type": "object", "properties": {"rto": _DURATION, "rpo": _DURATION}, "additionalProperties": False}, "Recovery objectives, compared with what each run measures."),
    "params": _t("object", "Typed parameters given with -e name=value."),
    "vars": _t("object", "Variables."),
    "hosts": _t("string", "Default host pattern for steps (default: localhost)."),
    "steps": _t("array", "The steps."),
    "handlers": _t("array", "Steps run at the end when notified."),
    "roles": _t("array", "Roles (Ansible's layout, from roles/ or OPSBOOK_ROLES_PATH) run before the steps."),
    "lock": _t("string", "Named lock: two runs holding the same lock never run at once."),
    "timeout": Keyword(_DURATION, "Whole-run timeout."),
    "max_fail_percentage": _t("number", "Default for every step."),
    "max_errors": _t("integer", "Stop scheduling new nodes after this many failures in the run."),
    "gather_facts": _t("boolean", "Gather every host's facts first (a `Gathering Facts` step, as Ansible's play); default false."),
    "force_handlers": _t("boolean", "Notified handlers run on hosts that failed too (default true; false: Ansible's default)."),
    "approved_by": Keyword({"enum": list(APPROVED_BY)}, "Who may approve the runbook's gates: `anyone` (the default, the user who started the run included) or `another` (four eyes: a user other than the one who started the run)."),
    "extra_vars": Keyword({"enum": list(EXTRA_VARS)}, "-e names besides params: `used` (the default: only names the runbook reads; others are typos) or `any` (Ansible's free-form extra vars)."),
}

# Variables the engine provides to every template; a parameter may not hide them.
RESERVED_NAMES = frozenset({"host", "hostvars", "groups", "inventory_hostname", "params", "run", "result",
                            "item", "omit", "runbook_dir"})

PARAM_KEYWORDS = {"type", "default", "required", "description", "secret", "choices"}
LOOP_CONTROL_KEYS = ("loop_var", "label")

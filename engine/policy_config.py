"""The project's config file for `opsbook check`: `.opsbook.yaml`, found from the current
directory upwards (like ansible-lint's `.ansible-lint`), or given with `--config`.

    policy:
      profile: safety                     # minimal | safety | production (the default)
      enable: [mutation-gated, rollback]  # only these rules run (instead of a profile)
      disable: [critical-path-timeout]    # rules that do not run
      warn: [rollback]                    # rules that report warnings instead of errors

Unknown keys, profiles and rule ids are errors at their file:line, with a "did you mean".

Where the policy's findings are errors: with a config file (or `--profile`), on every
runbook; without one, on incident runbooks only (a phase or objectives), and warnings on
ad-hoc ones, so a first `opsbook check` of a two-line runbook is not a wall of policy
errors (`opsbook.policy.is_incident_runbook`).
"""

from __future__ import annotations

from pathlib import Path

from opsbook.errors import Diagnostic, Position, ValidationError, did_you_mean
from opsbook.policy import DEFAULT_PROFILE, PROFILES, RULE_IDS, PolicyConfig

CONFIG_NAME = ".opsbook.yaml"
_KEYS = ("profile", "enable", "disable", "warn")


def find_config(start: Path | None = None) -> Path | None:
    """The nearest `.opsbook.yaml` in `start` (default: the current directory) or above."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_NAME
        if candidate.is_file():
            return candidate
    return None


def load_config(path: str | Path | None) -> PolicyConfig:
    """The policy a config file asks for; the default policy (every rule, as errors) without one."""
    from opsbook.yamlsrc import key_position, load_yaml_file, position_of

    if path is None:
        return PolicyConfig()
    name = str(path)
    data = load_yaml_file(name) or {}
    top = Position(name, 1)
    problems: list[Diagnostic] = []
    if not isinstance(data, dict):
        raise ValidationError([Diagnostic(top, "the config file must be a mapping with a policy: key")])
    for key in data:
        if key != "policy":
            problems.append(Diagnostic(key_position(data, key) or top, f'unknown key "{key}"{did_you_mean(key, ["policy"])}',
                                       "the config file has one key: policy"))
    policy = data.get("policy") or {}
    lists: dict[str, frozenset[str]] = {k: frozenset() for k in _KEYS}
    if not isinstance(policy, dict):
        problems.append(Diagnostic(position_of(data, ["policy"], top),
                                   "policy: expected a mapping with enable:/disable:/warn:"))
        policy = {}
    profile = DEFAULT_PROFILE
    for key, value in policy.items():
        where = key_position(policy, key) or top
        if key not in _KEYS:
            problems.append(Diagnostic(where, f'policy: unknown key "{key}"{did_you_mean(key, _KEYS)}',
                                       "expected profile: (a name) or enable:, disable:, warn: (lists of rule ids)"))
            continue
        if key == "profile":
            where = position_of(policy, ["profile"], where)
            if value not in PROFILES:
                problems.append(Diagnostic(where, f'policy.profile: no profile "{value}"{did_you_mean(str(value), PROFILES)}',
                                           "profiles: " + ", ".join(PROFILES)))
            elif "enable" in policy:
                problems.append(Diagnostic(where, "policy: profile: and enable: both choose the rules that run",
                                           "keep one: a profile, or the list of rules under enable:"))
            else:
                profile = str(value)
            continue
        items = value if isinstance(value, list) else [value]
        lists[key] = frozenset(str(i) for i in items)
        for index, rule in enumerate(items):
            if rule not in RULE_IDS:
                problems.append(Diagnostic(position_of(policy, [key, index], where) if isinstance(value, list) else where,
                                           f'policy.{key}: no rule "{rule}"{did_you_mean(str(rule), RULE_IDS)}',
                                           "rules: " + ", ".join(RULE_IDS)))
    if problems:
        raise ValidationError(problems)
    enabled = lists["enable"] if "enable" in policy else None
    return PolicyConfig(disabled=lists["disable"], warn=lists["warn"], source=name, profile=profile, enabled=enabled)


def config_for(explicit: str | None, use_project: bool = True, profile: str | None = None) -> PolicyConfig:
    """The policy `check` applies: the file given, else the project's; `profile` (from
    `--profile`) replaces the file's choice of rules. Without a file or a profile: every
    rule, errors on incident runbooks and warnings on ad-hoc ones."""
    import dataclasses

    path = explicit if explicit is not None else (find_config() if use_project else None)
    config = load_config(path)
    if profile is not None:
        if profile not in PROFILES:
            raise ValidationError([Diagnostic(None, f'--profile: no profile "{profile}"{did_you_mean(profile, PROFILES)}',
                                              "profiles: " + ", ".join(PROFILES))])
        config = dataclasses.replace(config, profile=profile, enabled=None)  # the file's disable:/warn: still hold
    return dataclasses.replace(config, everywhere=path is not None or profile is not None)


__all__ = ["CONFIG_NAME", "config_for", "find_config", "load_config"]

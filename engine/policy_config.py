"""The project's config file for `opsbook check`: `.opsbook.yaml`, found from the current
directory upwards (like ansible-lint's `.ansible-lint`), or given with `--config`.

    policy:
      enable: [mutation-gated, rollback]  # only these rules run (default: every rule)
      disable: [critical-path-timeout]    # rules that do not run
      warn: [rollback]                    # rules that report warnings instead of errors

Unknown keys and rule ids are errors at their file:line, with a "did you mean".
"""

from __future__ import annotations

from pathlib import Path

from opsbook.errors import Diagnostic, Position, ValidationError, did_you_mean
from opsbook.policy import RULE_IDS, PolicyConfig

CONFIG_NAME = ".opsbook.yaml"
_KEYS = ("enable", "disable", "warn")


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
    for key, value in policy.items():
        where = key_position(policy, key) or top
        if key not in _KEYS:
            problems.append(Diagnostic(where, f'policy: unknown key "{key}"{did_you_mean(key, _KEYS)}',
                                       "expected enable:, disable: or warn:, each a list of rule ids"))
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
    disabled = lists["disable"]
    if "enable" in policy:
        disabled |= frozenset(RULE_IDS) - lists["enable"]
    return PolicyConfig(disabled=disabled, warn=lists["warn"], source=name)


def config_for(explicit: str | None, use_project: bool = True) -> PolicyConfig:
    """The policy `check` applies: the file given, else the project's, else the default."""
    if explicit is not None:
        return load_config(explicit)
    return load_config(find_config() if use_project else None)


__all__ = ["CONFIG_NAME", "config_for", "find_config", "load_config"]

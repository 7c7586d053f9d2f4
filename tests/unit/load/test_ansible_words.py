"""An Ansible user's words that opsbook says otherwise are named, with the word to use, at
their line (outside review, item 8): a play's `tasks:`, a playbook's list of plays, and
Ansible's Slack and Mattermost modules, whose arguments local.slack / local.mattermost read
otherwise (a whole webhook URL where Ansible takes token/domain or url/api_key)."""

from __future__ import annotations

import pytest
from opsbook_lab.pytest_plugin import opsbook


def _check(tmp_path, text: str):
    rb = tmp_path / "rb.yaml"
    rb.write_text(text)
    done = opsbook(tmp_path, "check", str(rb), "--no-policy")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    return rb, [line for line in done.stderr.splitlines() if ": error: " in line], done.stderr


def test_tasks_at_the_top_is_named_as_steps_once_at_its_line(tmp_path):
    rb, errors, said = _check(tmp_path, 'opsbook: 1\nname: play\nhosts: localhost\ntasks:\n'
                                        '  - name: a\n    command: "true"\n')
    assert errors == [f"{rb}:4:1: error: unknown runbook key \"tasks\" (did you mean \"steps\"?): "
                      "opsbook calls Ansible's `tasks:` `steps:`"], said  # no second "expected steps:"
    assert "hint: rename `tasks:` to `steps:`" in said


def test_a_playbook_of_plays_says_a_runbook_is_one_play(tmp_path):
    _, errors, said = _check(tmp_path, '- name: play\n  hosts: localhost\n  tasks:\n    - command: "true"\n')
    assert len(errors) == 1 and "found a list" in errors[0]
    assert "an Ansible playbook is a list of plays" in said and "steps: (Ansible's tasks:)" in said


@pytest.mark.parametrize("module, action, args", [
    ("community.general.slack", "local.slack", "{token: T000/B000/XXXX, msg: hello, channel: '#ops'}"),
    ("slack", "local.slack", "{token: T000/B000/XXXX, msg: hello}"),
    ("community.general.mattermost", "local.mattermost",
     "{url: 'https://chat.example.net', api_key: abc, text: hello}"),
    ("mattermost", "local.mattermost", "{url: 'https://chat.example.net', api_key: abc, text: hello}"),
])
def test_ansibles_chat_modules_name_the_action_to_use_and_how_its_arguments_differ(tmp_path, module, action, args):
    rb, errors, said = _check(tmp_path, f"opsbook: 1\nname: tell\nsteps:\n  - name: tell\n    {module}: {args}\n")
    assert len(errors) == 1, said  # not also "has no action"
    assert errors[0].startswith(f"{rb}:5:5: error: opsbook does what Ansible's \"{module}\" does with {action}, "
                                "whose arguments differ: url is the whole incoming-webhook URL"), said
    assert f"hint: write {action}: {{...}}; its arguments: opsbook plugins local" in said


def test_the_opsbook_actions_themselves_still_pass(tmp_path):
    rb = tmp_path / "ok.yaml"
    rb.write_text("opsbook: 1\nname: tell\nsteps:\n  - name: tell\n"
                  "    local.slack: {url: 'https://hooks.slack.com/services/T/B/X', text: hello}\n"
                  "  - name: and\n    local.mattermost: {url: 'https://chat.example.net/hooks/abc', text: hello}\n")
    done = opsbook(tmp_path, "check", str(rb), "--no-policy")
    assert done.returncode == 0, done.stderr

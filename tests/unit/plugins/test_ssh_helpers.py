"""Pieces of the ssh plugin that need no server: output capping, lines, sudo, argument models."""

from __future__ import annotations

import shlex

import pytest
from opsbook.plugin import Become, Result
from opsbook_plugins.ssh import (
    CommandArgs,
    CopyArgs,
    ServiceArgs,
    ShellArgs,
    WaitForArgs,
    plugin,
    render_template,
)
from opsbook_plugins.ssh.become import _Sudo
from opsbook_plugins.ssh.channel import _Capture, _Lines
from opsbook_plugins.ssh.commands import _prefix
from opsbook_plugins.ssh.connection import _expand_proxy_command
from opsbook_plugins.ssh.filewrite import _parse_mode
from opsbook_plugins.ssh.service import _service_inverse
from opsbook_plugins.ssh.settings import Endpoint
from pydantic import ValidationError


def test_capture_keeps_head_and_tail_and_counts_everything():
    cap = _Capture(cap=10)
    for chunk in (b"abc", b"defgh", b"ijklmnop", b"qrstuvwxyz"):
        cap.add(chunk)
    assert cap.total == 26
    text = cap.text()
    assert text.startswith("abcde\n[... 16 bytes omitted; 26 bytes in all ...]\n")
    assert text.endswith("vwxyz")


def test_capture_below_the_cap_is_verbatim():
    cap = _Capture(cap=100)
    cap.add("héllo\n".encode())
    assert cap.text() == "héllo\n" and cap.total == 7


def test_lines_are_split_across_chunks_and_flushed():
    got: list[str] = []
    lines = _Lines(got.append)
    for chunk in (b"one\ntw", b"o\r\nthr", b"ee"):
        lines.add(chunk)
    assert got == ["one", "two"]
    lines.flush()
    assert got == ["one", "two", "three"]


def test_a_broken_output_listener_does_not_break_the_command():
    def boom(line: str) -> None:
        raise RuntimeError("display crashed")

    _Lines(boom).add(b"x\n")  # no exception


def test_sudo_wrapper_quotes_and_strips_its_markers():
    sudo = _Sudo(Become(user="post gres"), "pw")
    wire = sudo.wrap("exec " + shlex.join(["echo", "a b"]))
    argv = shlex.split(wire)
    assert argv[:3] == ["sudo", "-H", "-S"]
    assert argv[argv.index("-u") + 1] == "post gres"
    assert argv[-3:-1] == ["/bin/sh", "-c"]
    assert argv[-1] == f"echo {sudo.marker}\nexec echo 'a b'"
    assert "pw" not in wire
    assert not sudo.feed(b"", sudo.prompt.encode())
    assert sudo.prompts() == 1
    assert sudo.feed(sudo.marker.encode() + b"\nout", b"\nwarning\n")
    assert sudo.leftovers() == (b"out", b"warning\n")


def test_proxy_command_tokens():
    ep = Endpoint("10.1.1.1", 2200, "ops")
    assert (
        _expand_proxy_command("nc -X 5 %h %p # %r 100%%", ep) == "nc -X 5 10.1.1.1 2200 # ops 100%"
    )


@pytest.mark.parametrize(
    "value, expected",
    [
        ("0644", "644"),
        ("644", "644"),
        ("0755", "755"),
        (0o600, "600"),
        ("4755", "4755"),
        (None, None),
    ],
)
def test_mode_accepts_octal_strings_and_yaml_octal_ints(value, expected):
    assert _parse_mode(value) == expected


@pytest.mark.parametrize("value", ["rw-r--r--", "0999", 99999, "u+x"])
def test_mode_rejects_the_rest(value):
    with pytest.raises(ValueError):
        _parse_mode(value)


def test_prefix_quotes_chdir_and_env_values():
    text = _prefix("/srv/my app", {"A": "x y", "B": "$(rm -rf /)"})
    assert text == ("cd -- '/srv/my app' || { echo 'opsbook: cannot enter the chdir folder' >&2; exit 97; }\n"
                    "export A='x y'\nexport B='$(rm -rf /)'\n")


def test_command_args_split_strings_with_shlex_and_keep_lists():
    assert CommandArgs(cmd="echo 'a b' c").argv() == ["echo", "a b", "c"]
    assert CommandArgs(cmd=["ls", "-l"]).argv() == ["ls", "-l"]
    with pytest.raises(ValidationError, match="invalid environment variable"):
        CommandArgs(cmd="x", env={"BAD-NAME": "1"})
    with pytest.raises(ValidationError):
        CommandArgs(cmd="x", bogus=1)


def test_copy_needs_exactly_one_source():
    with pytest.raises(ValidationError, match="exactly one of content or src"):
        CopyArgs(dest="/x")
    with pytest.raises(ValidationError, match="exactly one of content or src"):
        CopyArgs(dest="/x", content="a", src="b")
    assert CopyArgs(dest="/x", content="", mode="0640").mode == "640"


def test_wait_for_needs_exactly_one_target():
    with pytest.raises(ValidationError, match="exactly one of port, path or process"):
        WaitForArgs()
    with pytest.raises(ValidationError, match="exactly one"):
        WaitForArgs(port=80, path="/x")
    with pytest.raises(ValidationError, match="host needs port"):
        WaitForArgs(path="/x", host="10.0.0.1")
    assert WaitForArgs(process="nginx: master").describe() == "process /nginx: master/"


def test_service_name_must_be_plain():
    with pytest.raises(ValidationError, match="invalid service name"):
        ServiceArgs(name="nginx; rm -rf /", state="started")
    with pytest.raises(ValidationError):
        ServiceArgs(name="nginx", state="exploded")


def test_service_inverse_only_when_the_step_changed_something():
    started = ServiceArgs(name="nginx", state="started")
    assert _service_inverse(started, Result(changed=True)) == (
        "ssh.service",
        {"name": "nginx", "state": "stopped"},
    )
    assert _service_inverse(started, Result(changed=False)) is None
    stopped = ServiceArgs(name="nginx", state="stopped")
    assert _service_inverse(stopped, Result(changed=True))[1]["state"] == "started"
    assert (
        _service_inverse(ServiceArgs(name="nginx", state="restarted"), Result(changed=True)) is None
    )


def test_action_specs_declare_check_mode_shell_fields_and_scalars():
    actions = plugin.actions
    assert set(actions) == {
        "collect",
        "command",
        "shell",
        "script",
        "copy",
        "template",
        "fetch",
        "service",
        "wait_for",
        "lineinfile",
        "blockinfile",
        "replace",
        "setup",
        "uri",
    }
    assert not actions["setup"].mutates and actions["setup"].idempotent  # facts only read
    assert actions["shell"].shell_fields == frozenset({"cmd"})
    assert actions["collect"].shell_fields == frozenset({"cmd"}) and not actions["collect"].mutates
    assert actions["command"].shell_fields == frozenset()
    assert actions["command"].scalar_arg == "cmd"
    assert all(spec.supports_check for spec in actions.values())
    assert actions["service"].mutates and actions["service"].inverse is _service_inverse
    assert actions["copy"].idempotent and not actions["command"].idempotent
    assert actions["command"].parse_args("uptime").cmd == "uptime"
    assert actions["shell"].args_model is ShellArgs
    assert all(spec.doc for spec in actions.values())


def test_template_renders_in_a_sandbox_with_strict_undefined():
    assert render_template("port {{ port }}\n", {"port": 8080}) == "port 8080\n"
    with pytest.raises(Exception, match="missing"):
        render_template("{{ missing }}", {})
    with pytest.raises(Exception, match="__class__|unsafe|not allowed"):
        render_template("{{ ''.__class__.__mro__ }}", {})


def test_file_inverse_restores_old_text_or_removes_a_new_file():
    from opsbook_plugins.ssh.transfer import _file_inverse

    args = CopyArgs(dest="/etc/app.conf", content="new\n")
    restored = Result(
        changed=True,
        data={"dest": "/etc/app.conf", "previous": {"content": "old\n", "mode": "640"}},
    )
    assert _file_inverse(args, restored) == (
        "ssh.copy",
        {"dest": "/etc/app.conf", "content": "old\n", "mode": "640"},
    )
    created = Result(changed=True, data={"dest": "/etc/app.conf", "previous": {"absent": True}})
    assert _file_inverse(args, created) == (
        "ssh.command",
        {"cmd": ["rm", "-f", "--", "/etc/app.conf"]},
    )
    binary = Result(changed=True, data={"dest": "/x", "previous": None})
    assert _file_inverse(args, binary) is None
    assert _file_inverse(args, Result(changed=False, data=restored.data)) is None

"""opsbook.plugin.command_result: the one way a command's outcome becomes an action's Result,
as the local, ssh and docker command actions word it."""

from __future__ import annotations

from opsbook.plugin import CommandResult, Status, command_result


def test_an_allowed_exit_status_is_ok_and_changed_with_the_output():
    done = CommandResult(3, "out\n", "warn\n", duration=1.5)
    result = command_result(done, [0, 3])
    assert (result.status, result.changed, result.rc, result.stdout, result.stderr, result.msg) == (
        Status.OK, True, 3, "out\n", "warn\n", "")
    assert result.data == {}
    assert result.duration == 0.0  # the node's duration is the executor's unless asked for
    assert command_result(done, duration=done.duration).duration == 1.5
    assert command_result(CommandResult(0, "", "")).status is Status.OK  # ok_rc defaults to (0,)


def test_another_exit_status_fails_with_the_line_that_says_why():
    done = CommandResult(2, "", "usage: tool [-h]\ntool: error: no such file: x\nTry 'tool --help'\n")
    result = command_result(done)
    assert result.status is Status.FAILED and result.changed
    assert result.msg == "command exited with rc=2: tool: error: no such file: x"
    assert command_result(CommandResult(1, "", "")).msg == "command exited with rc=1"  # nothing telling: no colon


def test_the_words_and_data_are_the_callers():
    done = CommandResult(-1, "partial", "boom: cannot go on")
    ssh = command_result(done, exited="was killed by a signal (no exit status)", data={"cmd": ["x"]})
    assert ssh.msg == "command was killed by a signal (no exit status): boom: cannot go on"
    assert ssh.registered()["cmd"] == ["x"]
    docker = command_result(CommandResult(5, "", ""), [0], what="command in web", exited="exited with 5",
                            data={"container": "web"})
    assert (docker.msg, docker.data) == ("command in web exited with 5", {"container": "web"})

"""docker.exec, docker.logs, docker.inspect and docker.stats against the lab's dockerd."""

from __future__ import annotations

import json
import threading
import time

import pytest
from opsbook.plugin import HostInfo, Status
from opsbook_test_sandbox import http_status

pytestmark = pytest.mark.lab


def processes(sandbox, name: str) -> str:
    out = sandbox.client.containers.get(name).exec_run(
        ["sh", "-c", "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done"]
    )
    return out.output.decode(errors="replace")


# --------------------------------------------------------------------------- exec


def test_exec_returns_rc_stdout_and_stderr_separately(sandbox, run):
    box = sandbox.server()
    result = run("exec", {"container": box.name, "command": "echo out; echo err >&2; exit 3"})
    assert result.status is Status.FAILED
    assert (result.rc, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert result.msg == f"command in {box.name} exited with 3: err"
    allowed = run("exec", {"container": box.name, "command": "exit 3", "ok_rc": [0, 3]})
    assert allowed.status is Status.OK and allowed.rc == 3


def test_exec_argv_runs_without_a_shell(sandbox, run):
    box = sandbox.server()
    result = run(
        "exec", {"container": box.name, "command": ["printf", "%s|", "a b", "$HOME", ";x"]}
    )
    assert result.status is Status.OK and result.changed
    assert result.stdout == "a b|$HOME|;x|"


def test_exec_scalar_form_is_a_shell_command(sandbox, run):
    box = sandbox.server()
    host = HostInfo("app", {"docker_host": sandbox.docker_host, "docker_container": box.name})
    result = run("exec", "echo $((6*7))", host=host)
    assert result.stdout == "42\n" and result.rc == 0


def test_exec_feeds_stdin_and_sets_env_workdir_user(sandbox, run):
    box = sandbox.server()
    result = run(
        "exec",
        {
            "container": box.name,
            "command": 'cat; echo "$GREETING"; pwd; id -un',
            "stdin": "from stdin\n",
            "env": {"GREETING": "hello"},
            "workdir": "/srv/www",
            "user": "nobody",
        },
    )
    assert result.stdout == "from stdin\nhello\n/srv/www\nnobody\n", result.stderr


def test_exec_timeout_kills_the_command_inside_the_container(sandbox, run):
    box = sandbox.server()
    started = time.monotonic()
    result = run(
        "exec",
        {"container": box.name, "command": "echo begun; sleep 123; echo never", "timeout": "1s"},
    )
    assert time.monotonic() - started < 5
    assert result.status is Status.FAILED
    assert result.msg == f"command in {box.name} timed out after 1 s; it was killed"
    assert result.stdout == "begun\n"
    assert "sleep 123" not in processes(sandbox, box.name)


def test_exec_honours_the_step_timeout_and_cancellation(sandbox, run):
    box = sandbox.server()
    result = run("exec", {"container": box.name, "command": "sleep 124"}, timeout=1.0)
    assert result.status is Status.FAILED and "timed out after 1 s" in result.msg

    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    started = time.monotonic()
    result = run("exec", {"container": box.name, "command": "sleep 125"}, cancelled=cancel)
    assert time.monotonic() - started < 5
    assert result.msg == f"command in {box.name} cancelled; it was killed"
    assert "sleep 12" not in processes(sandbox, box.name)


def test_exec_streams_output_lines_live(sandbox, run):
    box = sandbox.server()
    lines: list[str] = []
    result = run(
        "exec",
        {"container": box.name, "command": "for i in 1 2 3; do echo line$i; done"},
        _output=lines.append,
    )
    assert result.rc == 0 and lines == ["line1", "line2", "line3"]


def test_exec_in_a_stopped_container_says_so(sandbox, run):
    box = sandbox.server()
    sandbox.client.containers.get(box.name).stop(timeout=1)
    result = run("exec", {"container": box.name, "command": "true"})
    assert result.status is Status.FAILED
    assert result.msg == (
        f"cannot run a command in {box.name} on {sandbox.docker_host}: it is exited, not running"
    )


def test_exec_large_output_arrives_whole(sandbox, run):
    box = sandbox.server()
    result = run("exec", {"container": box.name, "command": ["seq", "1", "200000"]})
    lines = result.stdout.splitlines()
    assert len(lines) == 200000 and lines[-1] == "200000"


# --------------------------------------------------------------------------- logs


def test_logs_go_to_the_evidence_folder_with_a_record(sandbox, run, tmp_path):
    box = sandbox.server()
    for _ in range(3):
        http_status(box.http_port, "/healthz")
    host = HostInfo("app1", {"docker_host": sandbox.docker_host, "docker_container": box.name})
    result = run("logs", {"lines": 2, "timestamps": False}, host=host)
    assert result.status is Status.OK and not result.changed
    relative = f"app1/docker/{box.name}.log"
    assert result.data["path"] == relative and result.data["lines"] == 2
    text = (tmp_path / "evidence" / relative).read_text()
    assert text.count("GET /healthz") == 2 and text == result.stdout
    [evidence] = result.evidence
    assert evidence.path == relative
    assert evidence.source == f"docker logs {box.name} ({sandbox.docker_host})"
    assert evidence.description == "container logs, 2 lines, last 2"


def test_logs_since_a_time_leaves_older_lines_out(sandbox, run):
    box = sandbox.server()
    time.sleep(1.2)
    marker = time.time()
    time.sleep(0.1)
    http_status(box.http_port, "/after")
    result = run("logs", {"container": box.name, "since": f"{marker:.3f}", "lines": None})
    assert "GET /after" in result.stdout
    assert "sandbox" not in result.stdout  # the start-up line is older
    everything = run("logs", {"container": box.name, "since": "10m", "lines": None})
    assert "up" in everything.stdout and "GET /after" in everything.stdout


def test_logs_with_a_bad_since_explains_the_formats(sandbox, run):
    box = sandbox.server()
    result = run("logs", {"container": box.name, "since": "yesterday-ish"})
    assert result.status is Status.FAILED
    assert result.msg == (
        '"yesterday-ish" is neither a duration ago (15m, 2h) nor a timestamp (2024-05-01T10:00:00Z)'
    )


def test_logs_without_an_evidence_folder_still_return_the_text(sandbox, run):
    box = sandbox.server()
    result = run("logs", {"container": box.name}, evidence_dir=None)
    assert result.status is Status.OK and "up" in result.stdout and not result.evidence


def test_logs_refuse_a_destination_outside_the_evidence_folder(sandbox, run):
    box = sandbox.server()
    with pytest.raises(Exception, match="must not contain"):
        run("logs", {"container": box.name, "dest": "../escape.log"})


# --------------------------------------------------------------------------- inspect


def test_inspect_returns_facts_for_register(sandbox, run):
    box = sandbox.server(labels={"team": "sre"}, mem_limit="256m", nano_cpus=500_000_000)
    result = run("inspect", {"container": box.name})
    facts = result.data
    assert result.status is Status.OK and result.msg == f"{box.name} is running"
    assert facts["status"] == "running" and facts["running"] and not facts["paused"]
    assert facts["health"] is None and facts["restart_count"] == 0
    assert facts["resources"]["memory"] == 256 * 1024 * 1024 and facts["resources"]["cpus"] == 0.5
    assert facts["networks"][sandbox.network]["ip"] == box.ip
    assert facts["ports"]["8080/tcp"] == [f"127.0.0.1:{box.http_port}"]
    assert facts["labels"]["team"] == "sre"
    assert "raw" not in facts
    assert run("inspect", {"container": box.name, "raw": True}).data["raw"]["Id"] == box.id


def test_inspect_missing_ok_registers_exists_false(sandbox, run):
    result = run("inspect", {"container": "opsbook-no-such-container", "missing_ok": True})
    assert result.status is Status.OK and result.data["exists"] is False
    failed = run("inspect", {"container": "opsbook-no-such-container"})
    assert failed.status is Status.FAILED and failed.msg.startswith(
        "no container named opsbook-no-such-container"
    )


def test_inspect_of_a_lab_host_by_its_inventory_var(lab_info, run):
    web1 = lab_info.hosts["web1"]
    host = HostInfo("web1", {"docker_host": lab_info.docker_host, "container": web1.container})
    result = run("inspect", {}, host=host)
    assert result.status is Status.OK
    assert result.data["name"] == web1.container
    assert result.data["labels"]["org.opsbook.lab.host"] == "web1"


# --------------------------------------------------------------------------- stats


def test_stats_saves_a_json_snapshot_as_evidence(sandbox, run, tmp_path):
    box = sandbox.server(mem_limit="128m")
    result = run("stats", {"container": box.name})
    assert result.status is Status.OK, result.msg
    summary = result.data
    assert summary["memory_limit"] == 128 * 1024 * 1024
    assert 0 < summary["memory_usage"] < summary["memory_limit"]
    assert summary["pids"] >= 2 and summary["cpu_percent"] >= 0
    relative = f"controller-side/docker/{box.name}-stats.json"
    document = json.loads((tmp_path / "evidence" / relative).read_text())
    assert document["summary"]["memory_limit"] == summary["memory_limit"]
    assert "memory_stats" in document["raw"]
    assert result.evidence[0].path == relative
    assert result.msg.startswith(f"{box.name}: CPU ") and "of 128 MiB" in result.msg


def test_stats_of_a_stopped_container_fails_clearly(sandbox, run):
    box = sandbox.server()
    sandbox.client.containers.get(box.name).stop(timeout=1)
    result = run("stats", {"container": box.name})
    assert result.status is Status.FAILED
    assert (
        result.msg == f"no resource numbers for {box.name} on {sandbox.docker_host}: it is exited"
    )


def test_exec_without_sh_in_the_image_runs_the_command_directly(sandbox, run):
    # An image without sh looks, to the daemon, like an exec whose PATH finds no sh.
    box = sandbox.server()
    result = run(
        "exec",
        {
            "container": box.name,
            "command": ["/bin/echo", "direct"],
            "env": {"PATH": "/nonexistent"},
        },
    )
    assert result.status is Status.OK, (result.msg, result.stderr)
    assert result.stdout == "direct\n"
    missing = run("exec", {"container": box.name, "command": ["no-such-tool"]})
    assert missing.rc == 127 and "no-such-tool" in missing.stderr


def test_logs_are_streamed_and_refused_over_max_size(sandbox, run, tmp_path):
    """docker.logs reads the daemon's answer as a stream within max_size (issue 24 sweep of
    item 8): over it, nothing is kept."""
    box = sandbox.server()
    done = sandbox.client.containers.get(box.name).exec_run(
        ["sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' x >/proc/1/fd/1"])
    assert done.exit_code == 0, done.output
    host = HostInfo("app1", {"docker_host": sandbox.docker_host, "docker_container": box.name})
    refused = run("logs", {"lines": None, "max_size": "1MiB"}, host=host)
    assert refused.status is Status.FAILED
    assert refused.msg == f"the log of {box.name} is larger than max_size (1 MiB); nothing was kept (raise max_size to keep it)"
    assert not (tmp_path / "evidence" / "app1").exists()
    kept = run("logs", {"lines": None, "timestamps": False}, host=host)
    assert kept.status is Status.OK and kept.data["bytes"] > 2 * 1024 * 1024  # the daemon splits long lines
    assert (tmp_path / "evidence" / kept.data["path"]).stat().st_size == kept.data["bytes"]
    assert len(kept.stdout) <= 64 * 1024


def test_exec_output_is_kept_bounded_with_a_note(sandbox, run):
    """A line of 6 MB without a newline: its first and last 2 MiB, and a note (issue 24 item 13)."""
    from opsbook.capture import OUTPUT_CAP

    box = sandbox.server()
    result = run("exec", {"container": box.name, "command": "head -c 6000000 /dev/zero | tr '\\0' z"})
    assert result.status is Status.OK, result.msg
    assert "bytes omitted; 6000000 bytes in all" in result.stdout
    assert len(result.stdout) < OUTPUT_CAP + 200 and result.stdout.startswith("z") and result.stdout.endswith("z")

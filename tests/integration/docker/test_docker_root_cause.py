"""docker.events, docker.diff and docker.cp_out against the lab's dockerd: the root-cause
evidence an SRE otherwise scripts with the docker CLI (issue 28, item 1)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest
from opsbook.plugin import HostInfo, Status
from opsbook_lab.pytest_plugin import wait_for

pytestmark = pytest.mark.lab


def _host(sandbox, box) -> HostInfo:
    return HostInfo("app", {"docker_host": sandbox.docker_host, "docker_container": box.name})


def test_an_oom_kill_of_a_child_is_an_event_though_the_container_survives(sandbox, run, tmp_path):
    box = sandbox.server(mem_limit="48m", memswap_limit="48m")
    hog = sandbox.client.containers.get(box.name).exec_run(
        ["python3", "-c", "b = bytearray(256 * 1024 * 1024)"])
    assert hog.exit_code == 137, hog  # the child was killed ...
    attrs = sandbox.client.api.inspect_container(box.name)
    assert attrs["State"]["Running"] and not attrs["State"]["OOMKilled"]  # ... the container was not

    def oom_seen():
        result = run("events", {"since": "5m", "actions": ["oom"]}, host=_host(sandbox, box))
        return result if result.data["oom"] else None

    result = wait_for("the daemon's oom event", oom_seen, timeout=30)
    assert result.status is Status.OK and result.data["counts"]["oom"] >= 1
    [first, *_] = result.data["events"]
    assert first["action"] == "oom" and first["container"] == box.name
    saved = tmp_path / "evidence" / result.data["path"]
    assert json.loads(saved.read_text().splitlines()[0])["action"] == "oom"
    assert [e.path for e in result.evidence] == [result.data["path"]]


def test_events_of_a_stop_and_start_with_exit_codes_in_order(sandbox, run):
    box = sandbox.server()
    obj = sandbox.client.containers.get(box.name)
    obj.stop(timeout=5)
    obj.start()
    result = wait_for("die and start events", lambda: (r := run("events", {"since": "2m"}, host=_host(sandbox, box)))
                      and r.data["counts"].get("die") and r.data["counts"].get("start", 0) >= 2 and r, timeout=30)
    actions = [e["action"] for e in result.data["events"]]
    assert actions.index("die") < len(actions) - 1 - actions[::-1].index("start")
    [died] = [e for e in result.data["events"] if e["action"] == "die"]
    assert died["exit_code"] is not None
    only = run("events", {"since": "2m", "actions": ["die"]}, host=_host(sandbox, box))
    assert {e["action"] for e in only.data["events"]} == {"die"}
    wrong = run("events", {"since": "2m", "actions": ["oomkill"]}, host=_host(sandbox, box))
    assert wrong.status is Status.FAILED and "unknown event action 'oomkill'" in wrong.msg


def test_diff_lists_added_changed_and_deleted_files(sandbox, run, tmp_path):
    box = sandbox.server()
    done = sandbox.client.containers.get(box.name).exec_run(
        ["sh", "-c", "echo x > /tmp/planted && echo y >> /etc/issue && rm /etc/motd"])
    assert done.exit_code == 0, done
    result = run("diff", {}, host=_host(sandbox, box))
    assert result.status is Status.OK
    kinds = {c["path"]: c["kind"] for c in result.data["changes"]}
    assert kinds["/tmp/planted"] == "added" and kinds["/etc/issue"] == "changed" and kinds["/etc/motd"] == "deleted"
    # the count of changed files is `modified`: `changed` stays register's flag
    assert result.data["added"] >= 1 and result.data["modified"] >= 1 and result.data["deleted"] >= 1
    assert "changed" not in result.data
    text = (tmp_path / "evidence" / result.data["path"]).read_text()
    assert "A /tmp/planted\n" in text and "D /etc/motd\n" in text


def test_cp_out_copies_a_file_hashed_and_a_folder_as_an_archive(sandbox, run, tmp_path):
    box = sandbox.server()
    host = _host(sandbox, box)
    one = run("cp_out", {"src": "/srv/www/healthz"}, host=host)
    assert one.status is Status.OK, one.msg
    copied = tmp_path / "evidence" / one.data["path"]
    assert copied.read_bytes() == b"ok\n" and one.data["sha256"] == hashlib.sha256(b"ok\n").hexdigest()
    assert oct(copied.stat().st_mode & 0o777) == "0o600"
    folder = run("cp_out", {"src": "/srv/www"}, host=host)
    assert folder.status is Status.OK and folder.data["folder"] and folder.data["path"].endswith("www.tar")
    with tarfile.open(fileobj=io.BytesIO((tmp_path / "evidence" / folder.data["path"]).read_bytes())) as tar:
        assert "www/healthz" in tar.getnames()


def test_cp_out_is_bounded_follows_links_and_says_what_is_missing(sandbox, run, tmp_path):
    box = sandbox.server()
    host = _host(sandbox, box)
    obj = sandbox.client.containers.get(box.name)
    assert obj.exec_run(["sh", "-c", "head -c 3000000 /dev/urandom > /tmp/big && ln -s /srv/www/healthz /tmp/link"]
                        ).exit_code == 0
    big = run("cp_out", {"src": "/tmp/big", "max_size": "1m"}, host=host)
    assert big.status is Status.FAILED and "larger than max_size (1048576 bytes)" in big.msg
    assert not list((tmp_path / "evidence").rglob("big*")), "nothing of a refused copy is kept"
    link = run("cp_out", {"src": "/tmp/link"}, host=host)
    assert link.status is Status.OK and (tmp_path / "evidence" / link.data["path"]).read_bytes() == b"ok\n"
    missing = run("cp_out", {"src": "/var/log/nope.log"}, host=host)
    assert missing.status is Status.FAILED and missing.msg == f"no file or folder /var/log/nope.log in {box.name}"
    relative = run("cp_out", {"src": "etc/passwd"}, host=host)
    assert relative.status is Status.FAILED and "absolute path" in relative.msg


def test_cp_out_stops_at_the_step_timeout_and_keeps_nothing(sandbox, run, tmp_path):
    box = sandbox.server()
    obj = sandbox.client.containers.get(box.name)
    assert obj.exec_run(["sh", "-c", "head -c 60000000 /dev/urandom > /tmp/big"]).exit_code == 0
    result = run("cp_out", {"src": "/tmp/big"}, host=_host(sandbox, box), timeout=0.0)
    assert result.status is Status.FAILED and "timed out copying /tmp/big" in result.msg
    assert not list((tmp_path / "evidence").rglob("*big*"))


def test_a_window_older_than_the_daemons_buffer_is_said_incomplete(sandbox, run):
    box = sandbox.server()
    obj = sandbox.client.containers.get(box.name)
    for _ in range(100):  # 3 events each (exec_create, exec_start, exec_die): the buffer of 256 overflows
        obj.exec_run(["true"])
    result = run("events", {"since": "30m", "actions": ["die", "oom"]},
                 host=HostInfo("app", {"docker_host": sandbox.docker_host, "docker_container": box.name}))
    assert result.status is Status.OK
    assert result.data["complete"] is False and result.data["covers_since"] > result.data["since"]
    assert "INCOMPLETE: the daemon keeps only its last 256 events" in result.msg

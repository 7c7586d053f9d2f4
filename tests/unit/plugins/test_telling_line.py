"""The line of a failed command's output that says what went wrong (issue 15 item 8, issue 25 item 1)."""

from __future__ import annotations

import pytest

from opsbook.plugin import telling_line


@pytest.mark.parametrize("stderr, expected", [
    ('nginx: [emerg] unknown directive "bogus" in /etc/nginx/conf.d/zz.conf:1\n'
     "nginx: configuration file /etc/nginx/nginx.conf test failed\n",
     'nginx: [emerg] unknown directive "bogus" in /etc/nginx/conf.d/zz.conf:1'),
    ("ls: unrecognized option '--bogus'\nTry 'ls --help' for more information.\n",
     "ls: unrecognized option '--bogus'"),
    ("cp: cannot stat '/nope': No such file or directory\n", "cp: cannot stat '/nope': No such file or directory"),
    ('Traceback (most recent call last):\n  File "x.py", line 1, in <module>\nValueError: bad value\n',
     "ValueError: bad value"),
    ("warming up\nstill going\n", "still going"),
    ("", ""),
])
def test_the_telling_line_is_picked(stderr, expected):
    assert telling_line(stderr) == expected


def test_a_failed_local_command_names_the_telling_line(run, journal):
    summary = run("""
        opsbook: 1
        name: t
        steps:
          - name: list
            local.command: "ls --bogus-option"
        """)
    msg = journal.nodes(summary.run_id)["list@localhost"].msg
    assert msg.startswith("command exited with rc=2: ls: unrecognized option") and "--help" not in msg

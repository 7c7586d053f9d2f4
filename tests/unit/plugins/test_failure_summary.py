"""opsbook.plugin.failure_summary: the part of a failed command's output its message quotes."""

from __future__ import annotations

from opsbook.plugin import failure_summary


def test_help_and_usage_hints_give_way_to_the_error_line():
    argparse = "usage: tool [-h] [--fast]\ntool: error: unrecognized arguments: --slow\n"
    assert failure_summary(argparse) == "tool: error: unrecognized arguments: --slow"
    gnu = "cp: missing destination file operand after 'a'\nTry 'cp --help' for more information.\n"
    assert failure_summary(gnu) == "cp: missing destination file operand after 'a'"
    assert failure_summary("See 'docker run --help'.\n") == ""


def test_the_last_two_lines_are_kept_and_long_text_keeps_its_end():
    traceback = 'Traceback (most recent call last):\n  File "x.py", line 1\n    boom()\nNameError: boom\n'
    assert failure_summary(traceback) == "boom() / NameError: boom"
    long = "x" * 500 + " the end"
    assert failure_summary(long, width=50) == "..." + long[-47:]
    assert failure_summary("\n\n") == ""

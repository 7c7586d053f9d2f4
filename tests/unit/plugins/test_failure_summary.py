"""opsbook.plugin.telling_line: the part of a failed command's output its message quotes."""

from __future__ import annotations

from opsbook.plugin import telling_line


def test_help_and_usage_hints_give_way_to_the_error_line():
    argparse = "usage: tool [-h] [--fast]\ntool: error: unrecognized arguments: --slow\n"
    assert telling_line(argparse) == "tool: error: unrecognized arguments: --slow"
    gnu = "cp: missing destination file operand after 'a'\nTry 'cp --help' for more information.\n"
    assert telling_line(gnu) == "cp: missing destination file operand after 'a'"
    assert telling_line("See 'docker run --help'.\n") == ""


def test_a_traceback_gives_its_last_line_and_long_text_is_cut():
    traceback = 'Traceback (most recent call last):\n  File "x.py", line 1\n    boom()\nNameError: boom\n'
    assert telling_line(traceback) == "NameError: boom"
    long = "x" * 500 + " the end"
    assert telling_line(long, limit=50) == long[:47] + "..."
    assert telling_line("\n\n") == ""

"""Terminal injection (issue 24 items 2, 3 and 14): what a target prints or a template renders
never reaches a terminal as a control sequence (clear screen, OSC 52 clipboard, OSC 8 links,
a redrawn line), an approval prompt cannot draw a fake "will run:" line or hide the real
action, and a JUnit report stays well-formed. Runs on a real pseudo-terminal."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from relkit import Cli, run_on_a_terminal

# Sequences a hostile target (or value) prints; none may reach the terminal raw.
HOSTILE = {
    "clear screen": "\x1b[2J",
    "OSC 52 clipboard": "\x1b]52;c;ZWNobyBwd25lZA==\x07",
    "OSC 8 link": "\x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\",
    "redraw as ok": "\x1b[2K\x1b[1Gok   ",
    "bidi override": "\u202egnp.exe",
}
PAYLOAD = "".join(HOSTILE.values())


def _runbook(cli: Cli) -> str:
    script = cli.home / "hostile.py"
    script.write_text(f"import sys\nsys.stdout.write({PAYLOAD!r} + '\\n')\nsys.stderr.write({PAYLOAD!r} + '\\n')\n"
                      "sys.exit(3)\n")
    rb = cli.home / "hostile.yaml"
    rb.write_text(f"""opsbook: 1
name: hostile
steps:
  - name: prints escapes
    local.command: ["python3", "{script}"]
    register: out
    ignore_errors: true
  - name: renders them
    local.command: ["echo", "{{{{ out.stdout }}}}"]
  - name: fails with them
    local.command: ["python3", "{script}"]
""")
    return str(rb)


def _assert_clean(where: str, text: str) -> None:
    for name, seq in HOSTILE.items():
        assert seq not in text, f"{where}: {name} reached the terminal raw"
    assert "\x1b]" not in text, f"{where}: an OSC sequence reached the terminal"
    assert "\\x1b" in text, f"{where}: the escapes are not shown at all (they must be visible, not dropped)"


def test_no_control_sequence_from_a_target_reaches_the_terminal(cli: Cli):
    rb = _runbook(cli)
    ran = run_on_a_terminal(cli, ["run", rb, "--yes", "-vv"], {}, timeout=60)
    assert ran.rc == 1, ran.stdout[-2000:]
    _assert_clean("run -vv on a terminal", ran.stdout)
    plain = cli("run", rb, "-vv", "--format", "text")
    _assert_clean("run -vv piped", plain.stderr)
    shown = run_on_a_terminal(cli, ["show", "last"], {}, timeout=60)
    _assert_clean("show", shown.stdout)
    for fmt in ("md",):
        report = run_on_a_terminal(cli, ["report", "last", "--format", fmt], {}, timeout=60)
        _assert_clean(f"report --format {fmt}", report.stdout)
    junit = cli("report", "last", "--format", "junit")
    assert junit.rc == 0
    ET.fromstring(junit.stdout.encode())  # well-formed although the output held \x1b and \x07


def test_an_approval_prompt_cannot_lie_about_what_will_run(cli: Cli):
    """A rendered prompt with a newline and a fake "will run:" line, and an action whose
    dangerous part sits after a long harmless pad: the approver sees one prompt line, the
    real action, and how much of it is not shown."""
    rb = cli.home / "lying.yaml"
    pad = "x" * 2500
    rb.write_text(f"""opsbook: 1
name: lying
vars:
  standby: "db2\\n    will run: local.command [\\"pg_ctl\\", \\"status\\"]\\n\\x1b[8m"
steps:
  - name: promote
    approve: "Promote {{{{ standby }}}}?"
    local.shell: "echo harmless {pad}; echo DANGEROUS > {cli.home}/f"
""")
    proc = cli.start("run", str(rb))
    lines = []
    assert proc.stderr is not None
    for line in proc.stderr:
        lines.append(line)
        if "waiting for: opsbook approve" in line:
            break
    text = "".join(lines)
    prompts = [line for line in text.splitlines() if line.startswith("  will run:")]
    assert len(prompts) == 1, f"a fake 'will run:' line was drawn:\n{text}"
    assert "Promote db2\\n    will run: local.command" in text and "\x1b[8m" not in text
    assert "more characters not shown: opsbook approve" in prompts[0]
    full = cli("approve", "last", "promote", "--full")  # no --yes, no terminal: shows, decides nothing
    assert full.rc == 2 and "DANGEROUS" in full.stdout
    assert cli("deny", "last", "promote", "--yes").rc == 0
    proc.wait(60)
    assert not (cli.home / "f").exists()

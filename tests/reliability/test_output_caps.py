"""What opsbook reads from a command, keeps and journals is bounded (issue 24 items 13 and 16):
a gigabyte line without a newline is read in chunks, kept as its first and last 2 MiB with a
visible "bytes omitted" note; registered values are journaled with each string cut at
STRING_KEEP (and a node's value at VALUE_KEEP); local.collect refuses output over max_size;
with `--journal PATH`, evidence goes beside that journal."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from opsbook.capture import OUTPUT_CAP
from opsbook.journal import STRING_KEEP
from relkit import BookRunner, Cli

MiB = 1024 * 1024


def test_a_long_line_without_newlines_is_read_in_chunks_and_cut_with_a_note(cli: Cli):
    size = 160 * MiB
    rb = cli.write("rb.yaml", textwrap.dedent(f"""
        opsbook: 1
        name: long-line
        steps:
          - name: one long line
            local.shell: "head -c {size} /dev/zero | tr '\\\\0' a"
            register: out
          - name: said so
            local.assert:
              that: ["'bytes omitted; {size} bytes in all' in out.stdout", "out.stdout | length < {OUTPUT_CAP + 200}"]
    """))
    # opsbook's own peak, measured by a fresh parent whose only child is opsbook (this test
    # process's RUSAGE_CHILDREN also holds the peaks of every earlier test's children, a
    # kube-apiserver or a browser among them): readline() held the whole line, then copies
    peak_of = ("import json, resource, subprocess, sys; p = subprocess.run(sys.argv[1:], capture_output=True, "
               "text=True, stdin=subprocess.DEVNULL); print(json.dumps({'rc': p.returncode, 'out': p.stdout, "
               "'peak': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}))")
    done = subprocess.run([sys.executable, "-c", peak_of, *cli.argv("run", str(rb), "--format", "json")],
                          capture_output=True, text=True, env=cli.env(), cwd=cli.home, timeout=300, check=True)
    measured = json.loads(done.stdout)
    assert measured["rc"] == 0, measured["out"][-3000:]
    peak = measured["peak"]
    assert peak < size, f"opsbook's peak RSS was {peak // MiB} MiB for a {size // MiB} MiB line"
    events = [json.loads(line) for line in measured["out"].splitlines() if line.startswith("{")]
    said = [e for e in events if e["event"] == "node_finished" and e["step"] == "said so"]
    assert said and said[0]["status"] == "ok", measured["out"][-3000:]  # the note was in the registered value


def test_registered_values_are_journaled_bounded(book: BookRunner, tmp_path: Path):
    """20 items of 6 MiB each: each item's output is capped with a note, so is their joined
    output (the loop's own stdout), and each string is cut to STRING_KEEP in the journal."""
    run = book("""
        opsbook: 1
        name: big-loop
        steps:
          - name: big
            loop: "{{ range(20) | list }}"
            local.shell: "head -c 6291456 /dev/zero | tr '\\\\0' b"
            register: big
          - name: joined output is capped too
            local.assert:
              that: ["big.stdout | length < OUTPUT_CAP + 200", "'characters omitted' in big.stdout",
                     "big.results | length == 20", "'bytes omitted; 6291456 bytes in all' in big.results[0].stdout"]
          - name: small
            loop: [1, 2]
            local.shell: "head -c 400000 /dev/zero | tr '\\\\0' c"
            register: small
    """.replace("OUTPUT_CAP", str(OUTPUT_CAP)))
    assert run.summary.status == "succeeded", [e.data.get("msg") for e in run.finished()]
    journal = sum(p.stat().st_size for p in tmp_path.glob("journal.db*"))
    assert journal < 32 * MiB, f"the journal grew to {journal // MiB} MiB"
    small = run.node("small", "localhost").registered
    assert small is not None
    first = small["results"][0]["stdout"]
    assert len(first) < STRING_KEEP + 200 and "characters not journaled; 400000 in all" in first


def test_local_collect_refuses_output_over_max_size_and_keeps_big_evidence_whole(book: BookRunner, tmp_path: Path):
    run = book("""
        opsbook: 1
        name: collect-big
        steps:
          - name: too big
            local.collect: {cmd: "head -c 3145728 /dev/zero", name: big.bin, max_size: 1MiB}
            ignore_errors: true
          - name: endless
            local.collect: {cmd: "cat /dev/zero", name: endless.bin, max_size: 2MiB}
            ignore_errors: true
          - name: fits
            local.collect: {cmd: "head -c 6291456 /dev/zero", name: fits.bin}
    """)
    msgs = {e.step: e.data.get("msg") for e in run.finished()}
    assert msgs["too big"] == ("""the output of 'head -c 3145728 /dev/zero' is larger than max_size (1 MiB); nothing was"""
                               " kept (raise max_size to keep it); the command was stopped")
    assert "larger than max_size (2 MiB)" in msgs["endless"]
    evidence = tmp_path / "runs" / run.run_id / "evidence" / "localhost"
    assert sorted(p.name for p in evidence.iterdir()) == ["fits.bin"]
    assert (evidence / "fits.bin").stat().st_size == 6291456  # more than the 4 MiB output cap: whole


def test_with_journal_path_evidence_goes_beside_that_journal(cli: Cli, tmp_path: Path):
    """docs/language.md: evidence goes to runs/<run id>/evidence/ beside the journal."""
    rb = cli.write("rb.yaml", textwrap.dedent("""
        opsbook: 1
        name: beside
        steps:
          - name: keep
            local.collect: {cmd: "echo kept", name: kept.txt}
    """))
    elsewhere = tmp_path / "elsewhere" / "j.db"
    env = {"OPSBOOK_RUNS_DIR": "", "OPSBOOK_JOURNAL": str(tmp_path / "default" / "journal.db")}
    res = cli("run", str(rb), "--journal", str(elsewhere), "--format", "json", env=env)
    assert res.rc == 0, res
    kept = elsewhere.parent / "runs" / res.run_id / "evidence" / "localhost" / "kept.txt"
    assert kept.read_text() == "kept\n"
    assert not (tmp_path / "default" / "runs").exists()
    listing = cli("evidence", res.run_id, "--journal", str(elsewhere), env=env)
    assert listing.rc == 0 and str(kept.parent.parent) in listing.stdout, listing

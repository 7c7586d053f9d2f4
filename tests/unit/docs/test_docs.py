"""The documentation is tested: every keyword is documented, every example runbook passes
`opsbook check`, the example plugin loads and runs, and docs/cli.md matches the CLI."""

from __future__ import annotations

import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from opsbook.check import check_files
from opsbook.load import RUNBOOK_KEYWORDS, STEP_KEYWORDS
from opsbook.registry import Registry
from opsbook.template import FILTERS, TESTS

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```(\w*)\s*$")
EXPECT_ERROR = re.compile(r"^#\s*expect-error:\s*(.+?)\s*$", re.M)


@dataclass(frozen=True)
class Block:
    """One fenced code block of a Markdown file."""

    path: Path
    line: int  # line of the opening fence, 1-based
    lang: str
    text: str
    inventory: str | None  # the last ```ini block before it under the same heading

    @property
    def id(self) -> str:
        return f"{self.path.name}:{self.line}"


def blocks(path: Path) -> list[Block]:
    out: list[Block] = []
    lines = path.read_text().splitlines()
    inventory: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            inventory = None  # an inventory block belongs to its section
        match = FENCE.match(line)
        if not match:
            i += 1
            continue
        start, lang = i, match.group(1)
        i += 1
        body: list[str] = []
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        text = "\n".join(body) + "\n"
        out.append(Block(path, start + 1, lang, text, inventory))
        if lang == "ini":
            inventory = text
        i += 1
    return out


def doc_files() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def runbook_blocks() -> list[Block]:
    return [b for p in doc_files() for b in blocks(p)
            if b.lang == "yaml" and re.search(r"^opsbook:\s*1\s*$", b.text, re.M)]


def _documented(text: str, keyword: str) -> bool:
    heading = re.compile(rf"^#+ .*`{re.escape(keyword)}`", re.M)
    row = re.compile(rf"^\|\s*`{re.escape(keyword)}`\s*\|", re.M)
    return bool(heading.search(text) or row.search(text))


# -- (a) every keyword of the language is documented -------------------------------------


@pytest.mark.parametrize("keyword", sorted(STEP_KEYWORDS))
def test_every_step_keyword_has_a_heading_or_row(keyword: str) -> None:
    assert _documented((DOCS / "language.md").read_text(), keyword), (
        f"step keyword `{keyword}` is not documented in docs/language.md "
        "(add a `### \\`{keyword}\\`` heading)")


@pytest.mark.parametrize("keyword", sorted(RUNBOOK_KEYWORDS))
def test_every_runbook_keyword_has_a_heading_or_row(keyword: str) -> None:
    assert _documented((DOCS / "language.md").read_text(), keyword), (
        f"runbook key `{keyword}` is not documented in docs/language.md (add a table row)")


def test_every_filter_and_test_is_listed() -> None:
    text = (DOCS / "language.md").read_text()
    missing = [name for name in list(FILTERS) + list(TESTS) if f"`{name}`" not in text]
    assert not missing, f"filters/tests missing from docs/language.md: {missing}"


# -- (b) every example runbook passes `opsbook check` ------------------------------------


@pytest.mark.parametrize("block", runbook_blocks(), ids=lambda b: b.id)
def test_example_runbook_passes_check(block: Block, registry: Registry, tmp_path: Path) -> None:
    path = tmp_path / "example.yaml"
    path.write_text(block.text)
    inventories = []
    if block.inventory is not None:
        inv = tmp_path / "inventory.ini"
        inv.write_text(block.inventory)
        inventories.append(str(inv))
    (report,) = check_files([str(path)], registry, inventories)
    errors = [d for d in report.diagnostics if d.severity == "error"]
    expected = EXPECT_ERROR.findall(block.text)
    if expected:
        messages = [d.message for d in errors]
        for text in expected:
            assert any(text in m for m in messages), f"{block.id}: expected error {text!r}, got {messages}"
        return
    assert not report.diagnostics, f"{block.id}: " + "; ".join(
        f"{d.position}: {d.severity}: {d.message}" for d in report.diagnostics)


def test_examples_exist() -> None:
    found = runbook_blocks()
    assert len(found) >= 20
    assert any(EXPECT_ERROR.search(b.text) for b in found)
    assert any(b.inventory for b in found)


# -- (d) docs/cli.md is generated from the CLI --------------------------------------------


def _load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_cli_md_is_up_to_date() -> None:
    gen = _load_module(DOCS / "gen_cli.py", "opsbook_docs_gen_cli")
    assert (DOCS / "cli.md").read_text() == gen.render(), (
        "docs/cli.md is out of date: run `python docs/gen_cli.py`")


def test_cli_md_documents_every_command_and_exit_code() -> None:
    import opsbook.cli as cli

    text = (DOCS / "cli.md").read_text()
    for name in cli.main.commands:
        assert f"## opsbook {name}" in text
    for const in (n for n in dir(cli) if n.startswith("EXIT_")):
        assert f"| {getattr(cli, const)} |" in text, f"exit code {const} missing from docs/cli.md"

"""The documentation is tested: every keyword is documented, every example runbook passes
`opsbook check`, the example plugin loads and runs, docs/cli.md matches the CLI, and the
Python docs/plugins.md quotes from the repository (and the `opsbook plugins` output it shows)
is what the repository holds."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from opsbook.check import check_files
from opsbook.keywords import RUNBOOK_KEYWORDS, STEP_KEYWORDS
from opsbook.registry import Registry
from opsbook.template import FILTERS, TESTS

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```(\w*)\s*$")
FILE_LINE = re.compile(r"^#\s*file:\s*(\S+)\s*\n")
EXPECT_ERROR = re.compile(r"^#\s*expect-error:\s*(.+?)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Block:
    """One fenced code block of a Markdown file."""

    path: Path
    line: int  # line of the opening fence, 1-based
    lang: str
    text: str
    inventory: str | None  # the last ```ini block before it under the same heading
    # Blocks before it under the same heading whose first line is `# file: PATH`: files the
    # example includes (a task file, a role's main.yml), written beside it when it is checked.
    files: tuple[tuple[str, str], ...] = ()

    @property
    def id(self) -> str:
        return f"{self.path.name}:{self.line}"


def blocks(path: Path) -> list[Block]:
    out: list[Block] = []
    lines = path.read_text().splitlines()
    inventory: str | None = None
    files: list[tuple[str, str]] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            inventory = None  # an inventory block belongs to its section
            files = []
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
        out.append(Block(path, start + 1, lang, text, inventory, tuple(files)))
        if lang == "ini":
            inventory = text
        named = FILE_LINE.match(text)
        if named:
            files.append((named.group(1), text))
        i += 1
    return out


def doc_files() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def runbook_blocks() -> list[Block]:
    return [b for p in doc_files() for b in blocks(p)
            if b.lang == "yaml" and re.search(r"^opsbook:\s*1\s*$", b.text, re.MULTILINE)]


def _documented(text: str, keyword: str) -> bool:
    heading = re.compile(rf"^#+ .*`{re.escape(keyword)}`", re.MULTILINE)
    row = re.compile(rf"^\|\s*`{re.escape(keyword)}`\s*\|", re.MULTILINE)
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
    for relative, text in block.files:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
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
    from opsbook import cli

    text = (DOCS / "cli.md").read_text()
    for name in cli.main.commands:
        assert f"## opsbook {name}" in text
    for const in (n for n in dir(cli) if n.startswith("EXIT_")):
        assert f"| {getattr(cli, const)} |" in text, f"exit code {const} missing from docs/cli.md"


# -- (c) the example plugin of docs/plugins.md loads and runs -----------------------------


def python_file(name: str) -> str:
    """The ```python block of docs/plugins.md whose first line is `# <name>`."""
    for block in blocks(DOCS / "plugins.md"):
        if block.lang == "python" and block.text.startswith(f"# {name}\n"):
            return block.text
    raise AssertionError(f"docs/plugins.md has no python block starting with '# {name}'")


@pytest.fixture
def example_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Write the plugin files of docs/plugins.md to a folder on sys.path."""
    folder = tmp_path / "example"
    folder.mkdir()
    for name in ("opsbook_maint.py", "opsbook_chroot.py", "opsbook_cmdb.py", "test_opsbook_maint.py"):
        (folder / name).write_text(python_file(name))
    monkeypatch.syspath_prepend(str(folder))
    for name in ("opsbook_maint", "opsbook_chroot", "opsbook_cmdb", "test_opsbook_maint"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return folder


def test_example_plugin_registers_its_actions(example_modules: Path) -> None:
    import opsbook_maint

    registry = Registry.from_entry_points()
    registry.add(opsbook_maint.plugin)
    on = registry.action("maint.on")
    assert on is not None and on.supports_check and on.idempotent and on.mutates
    assert on.inverse is not None and on.scalar_arg == "path"
    assert registry.action("maint.off") is not None
    assert "maint.on" in registry.action_names()


def test_example_plugin_runs_through_the_api(example_modules: Path, tmp_path: Path) -> None:
    """Run a tiny runbook that uses maint.on on localhost, in check mode and for real."""
    import opsbook_maint
    from opsbook.api import RunRequest, load_inventory_sources, make_plan, start_run
    from opsbook.execute import RunOptions
    from opsbook.journal import Journal
    from opsbook.load import RunbookLoader

    registry = Registry.from_entry_points()
    registry.add(opsbook_maint.plugin)
    flag = tmp_path / "maintenance"
    runbook = RunbookLoader(registry).load_text(
        f"opsbook: 1\nname: t\nsteps:\n  - name: drain\n    maint.on: {{path: '{flag}'}}\n    register: r\n",
        "t.yaml")
    journal = Journal(tmp_path / "journal.db")
    try:
        for check in (True, False):
            plan = make_plan(runbook, load_inventory_sources([]), {})
            request = RunRequest(options=RunOptions(check=check, evidence_dir=tmp_path / "evidence"))
            summary = start_run(plan, registry, journal, request)
            assert summary.status == "succeeded", summary
            assert flag.exists() is (not check)
        assert flag.read_text() == "maintenance"
    finally:
        journal.close()


def test_example_plugin_tests_pass(example_modules: Path, tmp_path: Path) -> None:
    """The test file shown in docs/plugins.md passes."""
    import inspect

    import test_opsbook_maint

    tests = [f for n, f in vars(test_opsbook_maint).items() if n.startswith("test_") and callable(f)]
    assert len(tests) >= 4
    for index, test in enumerate(tests):
        kwargs = {}
        if "tmp_path" in inspect.signature(test).parameters:
            kwargs["tmp_path"] = tmp_path / f"t{index}"
            kwargs["tmp_path"].mkdir()
        test(**kwargs)


def test_example_inventory_source_serves_hosts_behind_its_scheme(example_modules: Path, tmp_path: Path) -> None:
    """The inventory hook of docs/plugins.md (`-i cmdb://...`), as `-i docker://` uses it."""
    import opsbook_cmdb
    from opsbook.api import load_inventory_sources
    from opsbook.errors import UserError

    registry = Registry.from_entry_points()
    registry.add(opsbook_cmdb.plugin)
    export = tmp_path / "cmdb.csv"
    export.write_text("name,address,role\nweb1,10.0.0.1,web\nweb2,10.0.0.2,web\ndb1,10.0.0.9,db\n")
    inventory = load_inventory_sources([f"cmdb://?file={export}&role=web"], registry)
    assert [h.name for h in inventory.match("web")] == ["web1", "web2"]
    assert inventory.hosts["web1"].vars["ansible_host"] == "10.0.0.1"
    assert "db1" not in inventory.hosts
    with pytest.raises(UserError, match=r"cmdb:// needs \?file=PATH"):
        load_inventory_sources(["cmdb://?role=web"], registry)


def test_example_connection_follows_the_protocol(example_modules: Path, tmp_path: Path) -> None:
    import opsbook_chroot
    from opsbook.plugin import Connection, HostInfo

    registry = Registry.from_entry_points()
    registry.add(opsbook_chroot.plugin)
    factory = registry.connection_factory("chroot")
    assert factory is not None
    conn = factory(HostInfo("build1", {"chroot_root": str(tmp_path)}))
    assert isinstance(conn, Connection)
    conn.put(b"hello", "/greeting.txt", mode=0o600)
    assert (tmp_path / "greeting.txt").read_bytes() == b"hello"
    assert conn.get("/greeting.txt", tmp_path / "copy.txt") == 5
    conn.close()


@pytest.mark.parametrize("value", __import__("opsbook.flow", fromlist=["META_VALUES"]).META_VALUES)
def test_every_meta_value_has_a_heading(value: str) -> None:
    assert re.search(rf"^### `meta: {value}`", (DOCS / "language.md").read_text(), re.MULTILINE), (
        f"meta value `{value}` has no `### \\`meta: {value}\\`` heading in docs/language.md")


# -- (e) what docs/plugins.md quotes from the repository is there ------------------------

# A fenced block, at any indentation (a block in a list item is indented like the item).
ANY_FENCE = re.compile(r"^( *)```(\w*)\n((?:.*\n)*?)\1```$", re.MULTILINE)
QUOTED_PATH = re.compile(r"# ((?:plugins|engine|lab|tests)/\S+\.py)\n")
ELIDED = re.compile(r"^\s*# \.\.\.\s*$", re.MULTILINE)


def fenced(path: Path, lang: str) -> list[str]:
    """The `lang` blocks of a Markdown file, indented ones too, dedented."""
    return [textwrap.dedent(m.group(3)) for m in ANY_FENCE.finditer(path.read_text()) if m.group(2) == lang]


def quotes() -> list[tuple[str, str]]:
    """(path, chunk): each run of a ```python block of docs/plugins.md that starts with
    `# plugins/...py` (or engine/, lab/, tests/), between lines `# ...` that mark a cut."""
    out = []
    for text in fenced(DOCS / "plugins.md", "python"):
        named = QUOTED_PATH.match(text)
        if named:
            body = text[named.end():]
            out += [(named.group(1), chunk.strip("\n")) for chunk in ELIDED.split(body) if chunk.strip()]
    return out


@pytest.mark.parametrize("path, chunk", quotes(), ids=lambda v: v if "\n" not in v else v.splitlines()[0][:40])
def test_python_quoted_in_plugins_md_is_in_the_file_it_names(path: str, chunk: str) -> None:
    source = ROOT / path
    assert source.is_file(), f"docs/plugins.md quotes {path}, which does not exist"
    assert chunk in source.read_text(), f"docs/plugins.md quotes {path}, but the file has no\n{chunk}"


def test_plugins_md_quotes_real_modules_as_the_package_model() -> None:
    assert {path for path, _ in quotes()} >= {"plugins/probe/_plugin.py", "plugins/probe/__init__.py",
                                              "plugins/probe/tcp.py"}


def test_opsbook_plugins_output_shown_in_plugins_md_is_the_real_output() -> None:
    shown = [t for t in fenced(DOCS / "plugins.md", "text") if t.startswith("$ opsbook plugins ")]
    assert shown
    for text in shown:
        command, *lines = text.splitlines()
        real = subprocess.run([sys.executable, "-m", "opsbook", *command.split()[2:]],
                              capture_output=True, text=True, check=True).stdout.splitlines()
        missing = [line for line in lines if line != "..." and line not in real]
        assert missing == [], f"{command} does not print: {missing}"

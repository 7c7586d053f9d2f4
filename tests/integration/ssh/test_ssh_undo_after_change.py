"""ssh.copy / ssh.template through the executor on a lab sshd host (issue 29 item 1): a file a
`validate:` refuses is never put in place and leaves nothing to undo; a file put in place whose
handler then fails is restored by the run's rollback."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml
from opsbook.api import RunRequest, load_inventory_sources, make_plan, start_run
from opsbook.execute import RunOptions
from opsbook.journal import Journal
from opsbook.load import RunbookLoader
from opsbook.registry import Registry
from opsbook_lab.inventory import inventory_dict

pytestmark = pytest.mark.lab

CONF = "/tmp/opsbook-undo-after-change.conf"


@pytest.fixture
def run_book(lab_info, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("OPSBOOK_RUNS_DIR", str(tmp_path / "runs"))
    registry = Registry.from_entry_points()
    journal = Journal(tmp_path / "journal.db")
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(yaml.safe_dump(inventory_dict(lab_info, user="root")))

    def run(text: str):
        path = tmp_path / "rb.yaml"
        path.write_text(textwrap.dedent(text).lstrip())
        plan = make_plan(RunbookLoader(registry).load_file(str(path)), load_inventory_sources([str(inventory)]), {})
        request = RunRequest(inventory_sources=[str(inventory)],
                             options=RunOptions(evidence_dir=tmp_path / "evidence"))
        return start_run(plan, registry, journal, request), journal

    yield run
    journal.close()


@pytest.fixture
def web1(node):
    web1 = node("web1")
    web1.sh(f"printf 'mode = normal\\n' > {CONF}; rm -f {CONF}.*~")
    yield web1
    web1.sh(f"rm -f {CONF} {CONF}.*~")


def test_a_file_validate_refuses_is_never_put_in_place_and_leaves_nothing_to_undo(web1, run_book, tmp_path):
    template = tmp_path / "app.conf.j2"
    template.write_text("mode = {{ mode }}\n")
    summary, journal = run_book(f"""
        opsbook: 1
        name: bad-config
        hosts: web1
        steps:
          - name: copy a config validate refuses
            ssh.copy: {{dest: {CONF}, content: "mode = broken\\n", validate: "grep -q '^mode = normal' %s", backup: true}}
            ignore_errors: true
          - name: template a config validate refuses
            ssh.template: {{src: "{template}", dest: {CONF}, vars: {{mode: broken}}, validate: "grep -q '^mode = normal' %s"}}
        """)
    assert summary.status == "failed"
    records = {r.step_id: r for r in journal.nodes(summary.run_id).values()}
    for step in ("copy-a-config-validate-refuses", "template-a-config-validate-refuses"):
        assert records[step].status == "failed" and not records[step].changed, records[step].msg
        assert "validate failed (rc 1)" in records[step].msg
    assert journal.rollbacks(summary.run_id) == []  # nothing was put in place: nothing to undo
    assert web1.sh(f"cat {CONF}") == "mode = normal\n"


def test_a_config_whose_handler_fails_is_restored_by_the_rollback(web1, run_book):
    summary, journal = run_book(f"""
        opsbook: 1
        name: new-config
        hosts: web1
        steps:
          - name: new config
            ssh.copy: {{dest: {CONF}, content: "mode = degraded\\n", validate: "grep -q '^mode = ' %s"}}
            notify: reload the app
        handlers:
          - name: reload the app
            ssh.command: "false"
        """)
    assert summary.status == "failed"
    assert [(r["action"], r["status"]) for r in journal.rollbacks(summary.run_id)] == [("ssh.copy", "done")]
    assert web1.sh(f"cat {CONF}") == "mode = normal\n"

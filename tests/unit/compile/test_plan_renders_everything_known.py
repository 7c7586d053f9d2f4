"""`opsbook plan` renders everything known when the plan is made (issue 25 item 7): an
action's arguments argument by argument (one that reads a result does not leave its
neighbours raw), rollbacks, approval texts, and each item of a loop the plan knows; only
templates that read what the run will know stay as written, and the plan names what they
wait for."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from opsbook.api import load_inventory_sources, make_plan
from opsbook.errors import UserError
from opsbook.planrender import PlanContext, known_names
from opsbook.planview import plan_json, plan_text
from opsbook.template import holds_template, referenced_names, render

REPO = Path(__file__).resolve().parents[3]
INVENTORY = "[web]\nweb1 ansible_host=10.0.0.1 site=alpha\nweb2 ansible_host=10.0.0.2 site=beta\n"


def test_known_parts_are_rendered_and_run_time_parts_marked(load, write):
    plan = make_plan(load("""
        opsbook: 1
        name: mixed
        hosts: web
        params:
          webhook: {type: string, default: "http://127.0.0.1:9/hook"}
          state: {type: string, default: /run/demo}
        steps:
          - name: read
            ssh.command: "cat /etc/hostname"
            register: out
          - name: write config
            approve: "Write the config of {{ inventory_hostname }} ({{ site }})?"
            ssh.copy:
              dest: /etc/demo.conf
              content: "site={{ site }}\\naddress={{ ansible_host }}\\n"
            rollback:
              ssh.shell: "kill $(cat {{ params.state }}/server.pid)"
          - name: drain
            delegate_to: "{{ groups.web | first }}"
            ssh.command: "echo drain {{ inventory_hostname }}"
          - name: tell
            local.notify:
              url: "{{ params.webhook }}"
              message: "{{ inventory_hostname }} is {{ out.stdout | trim }} (was {{ site }})"
              fields: {host: "{{ inventory_hostname }}", name: "{{ out.stdout }}"}
        """), load_inventory_sources([write("inv.ini", INVENTORY)]), {})
    text = plan_text(plan)
    assert 'web1: ssh.copy {"dest": "/etc/demo.conf", "content": "site=alpha\\naddress=10.0.0.1\\n"}' in text
    assert 'approve on web2: "Write the config of web2 (beta)?"' in text
    assert "    rollback: ssh.shell \"kill $(cat /run/demo/server.pid)\"" in text
    assert 'web2: (runs on web1) ssh.command ["echo", "drain", "web2"]' in text
    assert ('web2: local.notify {"url": "http://127.0.0.1:9/hook", "message": "web2 is {{ out.stdout | trim }} (was beta)", '
            '"fields": {"host": "web2", "name": "{{ out.stdout }}"}}   (templates left for the run: out)') in text
    nodes = {n["id"]: n for n in plan_json(plan)["nodes"]}
    tell = nodes["tell@web1"]
    assert tell["args"]["url"] == "http://127.0.0.1:9/hook" and tell["templates_left_for_the_run"] == ["out"]
    assert nodes["write-config@web1"]["rollback"] == {"ssh.shell": "kill $(cat /run/demo/server.pid)"}
    assert nodes["write-config@web1"]["approve"] == "Write the config of web1 (alpha)?"
    assert "templates_left_for_the_run" not in nodes["write-config@web1"]


def test_shell_values_left_and_rendered_keep_their_quoting(load, write):
    plan = make_plan(load("""
        opsbook: 1
        name: quoting
        hosts: web
        params: {path: {type: string, default: "a b; rm -rf /"}}
        steps:
          - {name: read, ssh.command: "true", register: r}
          - name: use
            ssh.shell: "ls {{ params.path }} {{ r.stdout }}"
        """), load_inventory_sources([write("inv.ini", INVENTORY)]), {})
    assert """web1: ssh.shell "ls 'a b; rm -rf /' {{ r.stdout }}"   (templates left for the run: r)""" in plan_text(plan)


def test_a_loop_the_plan_knows_is_shown_item_by_item(load, write):
    plan = make_plan(load("""
        opsbook: 1
        name: loop
        hosts: web
        params: {services: {type: list, default: [nginx, redis]}}
        steps:
          - {name: read, ssh.command: "true", register: r}
          - name: restart
            loop: "{{ params.services }}"
            ssh.shell: "systemctl restart {{ item }} # {{ inventory_hostname }}"
            rollback: {ssh.shell: "systemctl stop {{ item }}"}
          - name: over results
            loop: "{{ r.stdout_lines }}"
            ssh.shell: "echo {{ item }} on {{ inventory_hostname }}"
        """), load_inventory_sources([write("inv.ini", INVENTORY)]), {})
    text = plan_text(plan)
    assert 'web1 [item=nginx]: ssh.shell "systemctl restart nginx # web1"' in text
    assert 'web2 [item=redis]: ssh.shell "systemctl restart redis # web2"' in text
    assert 'rollback on web1 [item=redis]: ssh.shell "systemctl stop redis"' in text
    assert 'web2: ssh.shell "echo {{ item }} on web2"   (templates left for the run: item)' in text
    node = {n["id"]: n for n in plan_json(plan)["nodes"]}["restart@web1"]
    assert node["loop_items"] == [
        {"item": "nginx", "args": "systemctl restart nginx # web1", "rollback": {"ssh.shell": "systemctl stop nginx"}},
        {"item": "redis", "args": "systemctl restart redis # web1", "rollback": {"ssh.shell": "systemctl stop redis"}}]


def _templates(value):
    if isinstance(value, str):
        return [value] if holds_template(value) else []
    if isinstance(value, dict):
        return [t for v in value.values() for t in _templates(v)]
    if isinstance(value, list):
        return [t for v in value for t in _templates(v)]
    return []


LIBRARY = sorted(p.relative_to(REPO / "runbooks").as_posix() for p in (REPO / "runbooks").rglob("*.yaml"))
REQUIRED = {"manifest": "fix.yaml", "namespace": "shop", "node": "node-1", "deployment": "web", "replicas": 3}


@pytest.mark.parametrize("runbook", LIBRARY)
def test_what_a_library_plan_leaves_unrendered_reads_only_what_the_run_will_know(runbook, registry):
    """The whole class: for every node of every library runbook, a template left in the plan
    reads at least one name the plan cannot know, and the plan names it."""
    from opsbook.api import load_runbook

    rb = load_runbook(str(REPO / "runbooks" / runbook), registry)
    params = {p.name: REQUIRED[p.name] for p in rb.params if p.required}
    plan = make_plan(rb, load_inventory_sources([str(REPO / "inventories" / "lab.example.ini")], registry), params)
    context = PlanContext(plan, registry)
    for entry in plan_json(plan, registry)["nodes"]:
        if entry["kind"] == "barrier":
            continue
        left = _templates([entry.get("args") if "loop_items" not in entry else entry["loop_items"],
                           entry.get("rollback"), entry.get("approve"), entry.get("delegate_to")])
        waits = set(entry.get("templates_left_for_the_run", ()))
        known = known_names(plan, plan.nodes[entry["id"]], context)
        assert bool(left) == bool(waits), f"{entry['id']}: left {left}, marked {waits}"
        for template in left:
            whole = "{%" in template or "{#" in template  # a statement keeps its text whole
            for source in [template] if whole else re.findall(r"\{\{.*?\}\}", template, re.DOTALL):
                with pytest.raises(UserError):  # the plan cannot render it: it reads the run
                    render(source, known)
                assert set(referenced_names(source)) & waits, f"{entry['id']}: {source!r} left but not marked"

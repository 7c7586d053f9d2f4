"""Shell injection: values with ; $(…) backticks quotes newlines pipes reach every command line an
action builds as literal data, never as shell syntax.

Every hostile value tries to `touch` a canary file; after the runs the canary must exist nowhere
(controller, ssh hosts, containers). Where the action shows what the command received
(printf %s), it must be the value, byte for byte. The values come in twice: as a parameter
(-e) and as a fact registered from a command's output.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

import pytest


def hostile(canary: str) -> list[str]:
    return [
        f"; touch {canary}",
        f"$(touch {canary})",
        f"`touch {canary}`",
        f"' ; touch {canary} ; '",
        f'" ; touch {canary} ; "',
        f"x\ntouch {canary}\n",
        f"| touch {canary}",
        f"&& touch {canary} #",
        f"$(touch${{IFS}}{canary})",
        f"\\'; touch {canary}; echo \\'",
    ]


@pytest.fixture
def canary(tmp_path: Path) -> str:
    return f"/tmp/opsbook-rel-canary-{secrets.token_hex(6)}"


def _facts_step(evils: list[str]) -> str:
    """A step whose registered stdout is the hostile list (a fact from a command's output)."""
    code = f"import json; print(json.dumps({json.dumps(evils)}))"
    return f"""
          - name: hostile facts
            local.command: {{cmd: [{json.dumps(sys.executable)}, -c, {json.dumps(code)}]}}
            register: found
"""


# --------------------------------------------------------------------------- controller


def test_local_actions_pass_hostile_values_as_data(book, canary, tmp_path):
    evils = hostile(canary)
    script = tmp_path / "echo-args.sh"
    script.write_text('printf "%s" "$1"\n')
    b = book(f"""
        opsbook: 1
        name: local-injection
        params:
          evils: {{type: list}}
        steps:
          {_facts_step(evils).strip()}
          - name: shell
            loop: "{{{{ evils + (found.stdout | from_json) }}}}"
            register: out
            local.shell: "printf %s {{{{ item }}}}"
          - name: command argv
            loop: "{{{{ evils }}}}"
            register: out
            local.command: {{cmd: [printf, "%s", "{{{{ item }}}}"]}}
          - name: command string
            loop: "{{{{ evils }}}}"
            register: out
            local.command: "printf %s {{{{ item }}}}"
          - name: script
            loop: "{{{{ evils }}}}"
            register: out
            local.script: {{path: "{script}", args: ["{{{{ item }}}}"]}}
          - name: collect
            loop: "{{{{ evils }}}}"
            register: out
            local.collect: {{cmd: "printf %s {{{{ item }}}}", name: "out-{{{{ loop_index | default(0) }}}}.txt"}}
            ignore_errors: true
          - name: wait for a path
            loop: "{{{{ evils }}}}"
            register: out
            local.wait: {{path: "{{{{ item }}}}", timeout: 0}}
            ignore_errors: true
          - name: rollback with a hostile value
            local.shell: "true"
            rollback: {{local.shell: "printf %s {{{{ evils[0] }}}} {{{{ evils[1] }}}}"}}
          - name: fail to trigger the rollback
            local.fail: stop here
        """, params={"evils": evils})
    assert not os.path.exists(canary), "a hostile value was executed on the controller"
    shell = b.node("shell", "localhost").registered["results"]
    as_registered = [e.rstrip("\r\n") for e in evils]  # register strips trailing newlines, as Ansible does
    assert [r["stdout"] for r in shell] == as_registered + as_registered
    argv = b.node("command-argv", "localhost").registered["results"]
    assert [r["stdout"] for r in argv] == as_registered
    # The string form: the line is split around each value, so printf gets it as one word.
    line = b.node("command-string", "localhost").registered["results"]
    assert [r["stdout"] for r in line] == as_registered
    script_out = b.node("script", "localhost").registered["results"]
    assert [r["stdout"] for r in script_out] == as_registered
    assert [r["status"] for r in b.rollbacks()] == ["done"]


# --------------------------------------------------------------------------- lab hosts


@pytest.fixture
def lab_inventory(lab_info, tmp_path: Path) -> Path:
    """The lab's ssh inventory plus web2's container as an `ansible_connection=docker` host."""
    web2 = lab_info.hosts["web2"]
    inv = tmp_path / "inventory.ini"
    inv.write_text(Path(lab_info.inventory).read_text() + f"""
[box]
box2 ansible_connection=docker ansible_host={web2.container} docker_host={lab_info.docker_host}
""")
    return inv


def _nowhere(lab: Any, canary: str) -> None:
    assert not os.path.exists(canary), "a hostile value was executed on the controller"
    for host in ("web1", "web2", "lb1"):
        rc, _ = lab.exec(host, ["test", "-e", canary])
        assert rc == 1, f"a hostile value was executed on {host}"


@pytest.mark.lab
def test_ssh_and_docker_actions_pass_hostile_values_as_data(lab, lab_info, lab_inventory, book, canary, tmp_path):
    evils = hostile(canary)
    script = tmp_path / "echo-args.sh"
    script.write_text('printf "%s" "$1"\n')
    web1_ip = lab_info.hosts["web1"].lab_ip
    b = book(f"""
        opsbook: 1
        name: remote-injection
        params:
          evils: {{type: list}}
        steps:
          {_facts_step(evils).strip()}
          - name: ssh shell
            hosts: web1
            loop: "{{{{ evils + (hostvars['localhost'].found.stdout | from_json) }}}}"
            register: out
            ssh.shell: "printf %s {{{{ item }}}}"
          - name: ssh shell env and chdir
            hosts: web1
            loop: "{{{{ evils }}}}"
            register: out
            ssh.shell:
              cmd: 'printf %s "$EVIL"'
              env: {{EVIL: "{{{{ item }}}}"}}
          - name: ssh shell chdir
            hosts: web1
            loop: "{{{{ evils }}}}"
            register: out
            ssh.shell: {{cmd: "pwd", chdir: "{{{{ item }}}}"}}
            ignore_errors: true
          - name: ssh command argv
            hosts: web1
            loop: "{{{{ evils }}}}"
            register: out
            ssh.command: {{cmd: [printf, "%s", "{{{{ item }}}}"]}}
          - name: ssh command string
            hosts: web1
            loop: "{{{{ evils }}}}"
            register: out
            ssh.command: "printf %s {{{{ item }}}}"
          - name: ssh script
            hosts: web1
            loop: "{{{{ evils }}}}"
            register: out
            ssh.script: {{path: "{script}", args: ["{{{{ item }}}}"]}}
          - name: ssh service
            hosts: web1
            loop: "{{{{ evils }}}}"
            register: out
            ssh.service: {{name: "{{{{ item }}}}", state: started}}
            ignore_errors: true
          - name: ssh wait_for path
            hosts: web1
            loop: "{{{{ evils }}}}"
            register: out
            ssh.wait_for: {{path: "{{{{ item }}}}", state: absent, timeout: 0}}
            ignore_errors: true
          - name: ssh wait_for process
            hosts: web1
            loop: "{{{{ evils }}}}"
            register: out
            ssh.wait_for: {{process: "{{{{ item }}}}", state: stopped, timeout: 0}}
            ignore_errors: true
          - name: ssh wait_for host
            hosts: web1
            loop: "{{{{ evils }}}}"
            register: out
            ssh.wait_for: {{port: 9, host: "{{{{ item }}}}", timeout: 0}}
            ignore_errors: true
          - name: ssh copy to a hostile name
            hosts: web1
            loop: "{{{{ evils }}}}"
            register: out
            ssh.copy: {{dest: "/tmp/opsbook-rel-copy-{{{{ item }}}}", content: "{{{{ item }}}}"}}
            ignore_errors: true
          - name: ssh fetch a hostile path
            hosts: web1
            loop: "{{{{ evils }}}}"
            register: out
            ssh.fetch: {{src: "{{{{ item }}}}", fail_on_missing: false}}
            ignore_errors: true
          - name: docker exec
            hosts: web1
            loop: "{{{{ evils }}}}"
            register: out
            docker.exec: "printf %s {{{{ item }}}}"
          - name: docker exec argv
            hosts: web1
            loop: "{{{{ evils }}}}"
            register: out
            docker.exec: {{command: [printf, "%s", "{{{{ item }}}}"], env: {{EVIL: "{{{{ item }}}}"}}}}
          - name: ssh shell over the docker connection
            hosts: box2
            loop: "{{{{ evils }}}}"
            register: out
            ssh.shell: "printf %s {{{{ item }}}}"
          - name: probe http from a vantage point
            hosts: web1
            loop: "{{{{ evils }}}}"
            register: out
            probe.http:
              url: "http://{web1_ip}:8080/{{{{ item | urlencode }}}}"
              headers: {{X-Evil: "{{{{ item | replace('\\n', ' ') }}}}"}}
              status: [200, 404]
              from: [web2]
              timeout: 2s
            ignore_errors: true
          - name: probe http hostile host from a vantage point
            hosts: web1
            loop: "{{{{ evils }}}}"
            register: out
            probe.http: {{host: "{{{{ item }}}}", port: 8080, from: [web2], timeout: 1s}}
            ignore_errors: true
          - name: probe tcp from a vantage point
            hosts: web1
            loop: "{{{{ evils }}}}"
            register: out
            probe.tcp: {{host: "{{{{ item }}}}", port: 8080, from: [web2], timeout: 1s}}
            ignore_errors: true
          - name: probe icmp from a vantage point
            hosts: web1
            loop: "{{{{ evils }}}}"
            register: out
            probe.icmp: {{host: "{{{{ item }}}}", from: [web2], timeout: 1s}}
            ignore_errors: true
          - name: rollback with a hostile value
            hosts: web1
            ssh.shell: "true"
            rollback: {{ssh.shell: "printf %s {{{{ evils[0] }}}} {{{{ evils[2] }}}}"}}
          - name: fail to trigger the rollback
            hosts: web1
            local.fail: stop here
        """, inventory=lab_inventory, params={"evils": evils})
    _nowhere(lab, canary)
    for step, host in (("ssh-shell", "web1"), ("ssh-shell-env-and-chdir", "web1"), ("ssh-command-argv", "web1"),
                       ("ssh-command-string", "web1"),
                       ("ssh-script", "web1"), ("docker-exec", "web1"), ("docker-exec-argv", "web1"),
                       ("ssh-shell-over-the-docker-connection", "box2")):
        results = b.node(step, host).registered["results"]
        as_registered = [e.rstrip("\r\n") for e in evils]  # register strips trailing newlines (Ansible)
        want = as_registered + as_registered if step == "ssh-shell" else as_registered
        assert [r["stdout"] for r in results] == want, step
    services = b.node("ssh-service", "web1").registered["results"]
    assert all("invalid service name" in r["msg"] for r in services), services
    assert [r["status"] for r in b.rollbacks()] == ["done"]
    _rc, _out = lab.exec("web1", "ls /tmp | grep -c opsbook-rel-copy- || true")
    lab.exec("web1", "rm -f /tmp/opsbook-rel-copy-*")


# --------------------------------------------------------------------------- kubernetes


@pytest.mark.k8s
def test_k8s_names_cannot_address_another_object(k8s_lab, book):
    """A templated name must not walk the API path: x/../../namespaces/<other> once deleted
    that namespace (fixed in kubernetes/discovery.py: Resource.path)."""
    kubernetes = pytest.importorskip("kubernetes")
    client, config = kubernetes.client, kubernetes.config

    api = config.new_client_from_config(config_file=str(k8s_lab.kubeconfig))
    core = client.CoreV1Api(api)
    victim = f"opsbook-rel-victim-{secrets.token_hex(3)}"
    core.create_namespace({"metadata": {"name": victim}})
    try:
        b = book("""
            opsbook: 1
            name: k8s-injection
            hosts: cluster
            params:
              pod: {type: string}
            steps:
              - name: delete the pod of the alert
                k8s.delete: {kind: pod, name: "{{ pod }}", namespace: default, wait: false}
              - name: read it
                k8s.get: {kind: pod, name: "{{ pod }}", namespace: default}
            """, inventory=f"""
            [cluster]
            lab ansible_connection=local k8s_kubeconfig={k8s_lab.kubeconfig}
            """, params={"pod": f"x/../../../../../../api/v1/namespaces/{victim}"})
        node = b.node("delete-the-pod-of-the-alert", "lab")
        assert node.status == "failed"
        assert node.msg.startswith('invalid name "x/../'), node.msg
        assert core.read_namespace(victim).metadata.deletion_timestamp is None
    finally:
        core.delete_namespace(victim)
        api.close()

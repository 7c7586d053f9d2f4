"""The same work written for every tool: inventories, playbooks, deploys, runbooks, floor specs.

Step k of every workload is the command line `echo stepK`, run as the fleet's user with no
privilege escalation, no fact gathering and host keys checked strictly against the
fleet's known_hosts file. The floor hands it to the login shell (`exec_command`), pyinfra's
`server.shell` and opsbook's `ssh.shell` do the same; `ssh.command` would exec /bin/echo
instead of the shell's builtin, one more program start per command on the target.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.fleet import Fleet


def commands(steps: int) -> list[str]:
    return [f"echo step{k}" for k in range(1, steps + 1)]


class Workloads:
    """Writes (once) and names the files each tool is run with, under `root`."""

    def __init__(self, fleet: Fleet | None, root: Path) -> None:
        self.fleet = fleet
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _write(self, name: str, text: str) -> Path:
        path = self.root / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        return path

    # -- inventories ----------------------------------------------------------------------
    @property
    def f(self) -> Fleet:
        if self.fleet is None:
            raise RuntimeError("this workload needs the sshd fleet")
        return self.fleet

    def ini_inventory(self, hosts: int) -> Path:
        """Ansible INI, read by ansible and opsbook alike."""
        f = self.f
        lines = ["[bench]"]
        for t in f.targets[:hosts]:
            port = "" if t.port == 22 else f" ansible_port={t.port}"
            lines.append(f"{t.name} ansible_host={t.address}{port}")
        lines += [
            "", "[bench:vars]", f"ansible_user={f.user}",
            f"ansible_ssh_private_key_file={f.key}",
            f"opsbook_known_hosts={f.known_hosts}",
            "ansible_ssh_common_args='-o UserKnownHostsFile=" + str(f.known_hosts)
            + " -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes'",
            "ansible_python_interpreter=/usr/bin/python3",
        ]
        return self._write(f"inventory-{hosts}.ini", "\n".join(lines) + "\n")

    def pyinfra_inventory(self, hosts: int) -> Path:
        f = self.f
        common = {"ssh_user": f.user, "ssh_key": str(f.key), "ssh_known_hosts_file": str(f.known_hosts),
                  "ssh_strict_host_key_checking": "yes", "ssh_allow_agent": False,
                  "ssh_look_for_keys": False}
        entries = [(t.name, {**common, "ssh_hostname": t.address, "ssh_port": t.port})
                   for t in f.targets[:hosts]]
        return self._write(f"pyinfra_inventory_{hosts}.py", f"bench = {entries!r}\n")

    def floor_spec(self, hosts: int, steps: int) -> Path:
        f = self.f
        spec = {"user": f.user, "key": str(f.key), "known_hosts": str(f.known_hosts),
                "hosts": [[t.address, t.port] for t in f.targets[:hosts]], "commands": commands(steps)}
        return self._write(f"floor-{hosts}-{steps}.json", json.dumps(spec, indent=1))

    # -- the work -------------------------------------------------------------------------
    def runbook(self, steps: int) -> Path:
        lines = ["opsbook: 1", f"name: bench-{steps}-steps",
                 "description: The benchmark's workload (echo stepK on every host).",
                 "hosts: all", "steps:"]
        for k, cmd in enumerate(commands(steps), 1):
            lines += [f"  - name: step {k}", f"    ssh.shell: {cmd}"]
        return self._write(f"runbook-{steps}.yaml", "\n".join(lines) + "\n")

    def playbook(self, steps: int) -> Path:
        lines = ["- name: bench", "  hosts: all", "  gather_facts: false", "  tasks:"]
        for k, cmd in enumerate(commands(steps), 1):
            lines += [f"    - name: step {k}", f"      ansible.builtin.command: {cmd}"]
        return self._write(f"playbook-{steps}.yml", "\n".join(lines) + "\n")

    def pyinfra_deploy(self, steps: int) -> Path:
        lines = ["from pyinfra.operations import server", ""]
        for k, cmd in enumerate(commands(steps), 1):
            lines.append(f"server.shell(name={f'step {k}'!r}, commands=[{cmd!r}])")
        return self._write(f"pyinfra_deploy_{steps}.py", "\n".join(lines) + "\n")

    def ansible_cfg(self, forks: int) -> Path:
        text = f"""\
[defaults]
host_key_checking = True
forks = {forks}
gathering = explicit
retry_files_enabled = False
interpreter_python = /usr/bin/python3
deprecation_warnings = False
local_tmp = {self.root}/ansible-local

[ssh_connection]
pipelining = True
ssh_args = -o ControlMaster=auto -o ControlPersist=60s
"""
        return self._write(f"ansible-{forks}.cfg", text)

    def local_runbook(self, steps: int) -> Path:
        """For the journal on/off comparison: `local.command: true`, no SSH."""
        lines = ["opsbook: 1", f"name: bench-local-{steps}", "hosts: all", "steps:"]
        for k in range(1, steps + 1):
            lines += [f"  - name: step {k}", "    local.command: 'true'"]
        return self._write(f"local-{steps}.yaml", "\n".join(lines) + "\n")

    def plan_inventory(self, hosts: int) -> Path:
        """Many SSH hosts that are only planned, never contacted (loopback addresses)."""
        lines = ["[bench]"] + [f"p{i} ansible_host=127.1.{i // 250}.{i % 250 + 1}" for i in range(hosts)]
        return self._write(f"inventory-plan-{hosts}.ini", "\n".join(lines) + "\n")

    def local_inventory(self, hosts: int) -> Path:
        lines = ["[bench]"] + [f"n{i} ansible_connection=local" for i in range(1, hosts + 1)]
        return self._write(f"local-{hosts}.ini", "\n".join(lines) + "\n")

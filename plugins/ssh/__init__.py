"""ssh: run commands, copy files, manage services on hosts over SSH (paramiko).

Provides the `ssh` connection (`ansible_connection: ssh`, the default) and actions that
work over any Connection: the same `ssh.copy` copies into a container when the host says
`ansible_connection: docker`. This package only declares the plugin: importing each action
module below registers its actions on the one `plugin` of `_plugin.py`.

The actions (no paramiko imported):

- `common`: the `ssh` connection factory, the arguments' base, `_as_result`, `_run`/`_check`;
- `commands`: ssh.command, ssh.shell, ssh.script;
- `transfer`: ssh.copy, ssh.template, ssh.fetch (file transfer);
- `service`: ssh.service;  `wait`: ssh.wait_for;
- `collect`: ssh.collect (a command's output kept as evidence);
- `edit`: ssh.lineinfile, ssh.blockinfile, ssh.replace, with `textedit` for Ansible's
  editing rules as pure functions;
- `filewrite`: the one write that puts a file in place for ssh.copy/template and the edits
  (`backup:`, `validate:`, under become), and `_WriteArgs`, the base of their arguments;
- `facts`: ssh.setup (Ansible's facts);
- `uri`: ssh.uri (Ansible's uri: the request made by the host's python3, with
  `uri_remote` as the program it runs).

The connection (imported on first use: paramiko takes a tenth of a second to import):

- `connection`: `SSHConnection`, one transport per host (connect, jump hosts, reconnect,
  session slots), mixing in `sftp.SFTPFiles` (put/get over SFTP);
- `settings`: how a host is reached, from its variables and ~/.ssh/config;
- `auth`: known_hosts verification and its messages, keys, agent and password;
- `become`: sudo;  `channel`: one command on an exec channel (stdin, output, timeout, kill);
- `errors`: the connection's errors and `SSHCommandResult`;  `_paramiko`: paramiko's import.

The names other code reasonably uses (the plugin, the connection factory, the actions'
argument models, `render_template`, `fetch_dest`) are re-exported here.
"""

from __future__ import annotations

from opsbook_plugins.ssh import (  # noqa: F401, I001  importing them registers the actions, in this order
    common,
    commands,
    transfer,
    service,
    wait,
    collect,
    edit,
    facts,
    uri,
)
from opsbook_plugins.ssh._plugin import plugin
from opsbook_plugins.ssh.commands import CommandArgs, ScriptArgs, ShellArgs
from opsbook_plugins.ssh.common import ssh_connection
from opsbook_plugins.ssh.service import ServiceArgs
from opsbook_plugins.ssh.transfer import CopyArgs, FetchArgs, TemplateArgs, fetch_dest, render_template
from opsbook_plugins.ssh.uri import UriArgs
from opsbook_plugins.ssh.wait import WaitForArgs

__all__ = [
    "CommandArgs",
    "CopyArgs",
    "FetchArgs",
    "ScriptArgs",
    "ServiceArgs",
    "ShellArgs",
    "TemplateArgs",
    "UriArgs",
    "WaitForArgs",
    "fetch_dest",
    "plugin",
    "render_template",
    "ssh_connection",
]

# Ansible's modules these actions implement: an Ansible-style task (`template:`, `shell:`)
# in a runbook, an included file or a role runs through them unchanged.
for _module in ("command", "shell", "script", "copy", "template", "fetch", "service", "wait_for",
                "lineinfile", "blockinfile", "replace", "setup", "uri"):
    plugin.ansible_module(_module, _module)
plugin.ansible_module("gather_facts", "setup")

"""How a host is reached, decided once from its Ansible variables and ``~/.ssh/config``:
`Endpoint` (the target or a jump host), `SSHSettings`, `settings_from_vars`, the parsing of
`ansible_ssh_common_args`/`-o` options and of ProxyJump chains, and `_parsed_once` (a file
such as a key, a known_hosts or an ssh config parsed once per version).

Host variables the connection reads (Ansible's names, then opsbook's own):

    ansible_host, ansible_port, ansible_user      where and as whom (else ~/.ssh/config)
    ansible_ssh_private_key_file                  key file (then -i / IdentityFile, agent,
                                                  ~/.ssh/id_*), ansible_password last
    ansible_ssh_common_args, ansible_ssh_extra_args
                                                  -o ProxyJump=/-J, ProxyCommand, Port, User,
                                                  IdentityFile, UserKnownHostsFile,
                                                  StrictHostKeyChecking, ConnectTimeout,
                                                  ServerAliveInterval, IdentitiesOnly, -F
    ansible_become_password                       sudo password (never logged)
    ansible_ssh_timeout                           connect/auth timeout (default 10s)
    opsbook_host_key_policy                       strict (default) | accept-new | off
    opsbook_known_hosts                           known_hosts file (~/.ssh/known_hosts)
    opsbook_ssh_config                            ssh config file (~/.ssh/config)
    opsbook_ssh_max_sessions                      concurrent commands per host (8)
"""

from __future__ import annotations

import functools
import getpass
import os
import re
import shlex
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsbook_plugins.ssh._paramiko import paramiko
from opsbook_plugins.ssh.errors import SSHError

POLICIES = ("strict", "accept-new", "off")


# -- settings ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """One SSH server to authenticate to: the target or a jump host."""

    host: str
    port: int = 22
    user: str = ""
    key_files: tuple[str, ...] = ()
    password: str | None = field(default=None, repr=False)

    @property
    def known_hosts_name(self) -> str:
        """The name OpenSSH records the host key under (`[host]:port` unless port 22)."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    def __str__(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


@dataclass(frozen=True)
class SSHSettings:
    """Everything needed to reach one inventory host; built once from its variables."""

    name: str
    target: Endpoint
    jumps: tuple[Endpoint, ...] = ()
    proxy_command: str | None = None
    known_hosts: Path = Path("~/.ssh/known_hosts")
    host_key_policy: str = "strict"
    connect_timeout: float = 10.0
    keepalive: int = 15
    become_password: str | None = field(default=None, repr=False)
    look_for_keys: bool = True
    allow_agent: bool = True
    max_sessions: int = 8  # concurrent commands; OpenSSH's MaxSessions defaults to 10


# Short options of ssh(1) that take an argument we do not use (skipped with it).
_SSH_OPTS_WITH_ARG = set("bcDEeIiLlmOpQRSWwJFo")


def parse_ssh_args(text: str) -> dict[str, Any]:
    """Options from an ssh command line (`-o K=V`, `-J`, `-p`, `-l`, `-i`, `-F`), lowercase keys.

    `identityfile` is a list (ssh accepts several); every other value is the first one
    given, since ssh(1) keeps the first value it obtains.
    """
    return {k: list(v) if isinstance(v, list) else v for k, v in _parse_ssh_args(text).items()}


@functools.lru_cache(maxsize=256)  # a fleet shares its group's ssh args
def _parse_ssh_args(text: str) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    tokens = shlex.split(text or "")
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        i += 1
        if not tok.startswith("-") or len(tok) < 2:
            continue
        flag, inline = tok[1], tok[2:]
        if flag not in _SSH_OPTS_WITH_ARG:
            continue  # a plain flag such as -q, -C, -T, -A
        value = inline
        if not value and i < len(tokens):
            value = tokens[i]
            i += 1
        if flag == "o":
            key, sep, val = value.partition("=")
            if not sep:
                key, _, val = value.partition(" ")
                if not val and i < len(tokens) and not tokens[i].startswith("-"):
                    val = tokens[i]
                    i += 1
            _set_opt(opts, key.strip().lower(), val.strip())
        else:
            name = {
                "J": "proxyjump",
                "p": "port",
                "l": "user",
                "i": "identityfile",
                "F": "configfile",
            }.get(flag)
            if name:
                _set_opt(opts, name, value)
    return opts


def _set_opt(opts: dict[str, Any], key: str, value: str) -> None:
    if key == "identityfile":
        opts.setdefault(key, []).append(value)
    else:
        opts.setdefault(key, value)


_PARSED: dict[tuple[str, str, Any], tuple[tuple[int, int, int], Any]] = {}
_PARSED_LOCK = threading.Lock()


def _parsed_once(kind: str, path: str | Path, parse: Callable[[], Any], extra: Any = None) -> Any:
    """`parse()` of a file, done again only when the file changes on disk (inode, mtime,
    size): a fleet shares its key, known_hosts and ssh config files. Raises OSError when the
    file cannot be looked at. Parsing happens under one lock, so a fleet's first connections
    parse each file once, not once per thread."""
    st = os.stat(path)
    stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
    key = (kind, str(path), extra)
    with _PARSED_LOCK:
        cached = _PARSED.get(key)
        if cached is None or cached[0] != stamp:
            cached = (stamp, parse())
            _PARSED[key] = cached
        return cached[1]


_NO_SSH_CONFIG = paramiko.SSHConfig()  # shared: lookups do not change a config


def load_ssh_config(path: str | Path | None) -> paramiko.SSHConfig:
    """~/.ssh/config (or `path`), or an empty config when there is none; parsed once per
    version of the file (every host of a fleet looks itself up in the same one)."""
    found = _expanded(str(path or "~/.ssh/config"))
    try:
        return _parsed_once("ssh_config", found, lambda: _parse_ssh_config(found))
    except OSError:  # none (or a folder, or unreadable): as ssh(1), go on without
        return _NO_SSH_CONFIG


def _expanded(path: str) -> Path:
    """`~` expanded (key files, known_hosts and configs are the same for most hosts)."""
    return _expand_for(path, os.environ.get("HOME"))


@functools.lru_cache(maxsize=1024)
def _expand_for(path: str, home: str | None) -> Path:
    return Path(path).expanduser()


@functools.lru_cache(maxsize=1)
def _local_user() -> str:
    return getpass.getuser()


_MATCH_EXEC = re.compile(r"^\s*match\b.*\bexec\b", re.IGNORECASE | re.MULTILINE)


def _parse_ssh_config(path: Path) -> paramiko.SSHConfig:
    text = path.read_text()
    if _MATCH_EXEC.search(text) and paramiko.config.invoke is None:
        import invoke  # `Match exec` runs its command through invoke (see the paramiko import)

        paramiko.config.invoke = invoke
    return paramiko.SSHConfig.from_text(text)


def _first(*values: Any) -> Any:
    for value in values:
        if value not in (None, ""):
            return value
    return None


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "yes", "true", "on", "y")


def _policy(vars_: Mapping[str, Any], cli: Mapping[str, Any], cfg: Mapping[str, Any]) -> str:
    explicit = vars_.get("opsbook_host_key_policy")
    if explicit is not None:
        value = str(explicit).strip().lower()
        if value not in POLICIES:
            raise SSHError(
                f"opsbook_host_key_policy must be one of {', '.join(POLICIES)}, not {explicit!r}"
            )
        return value
    if "ansible_host_key_checking" in vars_ and not _bool(vars_["ansible_host_key_checking"]):
        return "off"
    openssh = str(_first(cli.get("stricthostkeychecking"), cfg.get("stricthostkeychecking")) or "")
    return {"no": "off", "off": "off", "accept-new": "accept-new"}.get(openssh.lower(), "strict")


def settings_from_vars(
    name: str, vars_: Mapping[str, Any], ssh_config: paramiko.SSHConfig | None = None
) -> SSHSettings:
    """Resolve how to reach a host: Ansible variables win over ssh args, then ~/.ssh/config."""
    cli = parse_ssh_args(
        " ".join(
            str(vars_.get(k) or "") for k in ("ansible_ssh_common_args", "ansible_ssh_extra_args")
        )
    )
    if ssh_config is None:
        ssh_config = load_ssh_config(_first(vars_.get("opsbook_ssh_config"), cli.get("configfile")))
    alias = str(_first(vars_.get("ansible_host"), vars_.get("ansible_ssh_host"), name))
    cfg = ssh_config.lookup(alias) if ssh_config is not _NO_SSH_CONFIG else {}
    user = str(
        _first(
            vars_.get("ansible_user"),
            vars_.get("ansible_ssh_user"),
            cli.get("user"),
            cfg.get("user"),
        )
        or _local_user()
    )
    target = Endpoint(
        host=str(_first(cli.get("hostname"), cfg.get("hostname"), alias)),
        port=int(
            _first(
                vars_.get("ansible_port"),
                vars_.get("ansible_ssh_port"),
                cli.get("port"),
                cfg.get("port"),
                22,
            )
        ),
        user=user,
        key_files=_key_files(vars_, cli, cfg),
        password=_first(
            vars_.get("ansible_password"),
            vars_.get("ansible_ssh_pass"),
            vars_.get("ansible_ssh_password"),
        ),
    )
    jump_spec = _first(cli.get("proxyjump"), cfg.get("proxyjump"))
    proxy_command = _first(cli.get("proxycommand"), cfg.get("proxycommand"))
    identities_only = _bool(_first(cli.get("identitiesonly"), cfg.get("identitiesonly"), "no"))
    known_hosts = _first(
        vars_.get("opsbook_known_hosts"),
        cli.get("userknownhostsfile"),
        (cfg.get("userknownhostsfile") or "").split(" ")[0],
        "~/.ssh/known_hosts",
    )
    return SSHSettings(
        name=name,
        target=target,
        jumps=parse_jumps(jump_spec, ssh_config, target) if jump_spec else (),
        proxy_command=None if str(proxy_command).lower() in ("none", "") else proxy_command,
        known_hosts=_expanded(str(known_hosts)),
        host_key_policy=_policy(vars_, cli, cfg),
        connect_timeout=float(
            _first(
                vars_.get("ansible_ssh_timeout"),
                vars_.get("ansible_timeout"),
                cli.get("connecttimeout"),
                cfg.get("connecttimeout"),
                10,
            )
        ),
        keepalive=int(_first(cli.get("serveraliveinterval"), cfg.get("serveraliveinterval"), 15)),
        become_password=_first(
            vars_.get("ansible_become_password"),
            vars_.get("ansible_become_pass"),
            vars_.get("ansible_sudo_pass"),
        ),
        # ~/.ssh/id_* are tried only when no key file is configured, as ssh(1) does;
        # IdentitiesOnly=yes keeps the agent's keys out too.
        look_for_keys=_bool(vars_.get("opsbook_ssh_look_for_keys", True)),
        allow_agent=_bool(vars_.get("opsbook_ssh_allow_agent", not identities_only)),
        max_sessions=max(1, int(vars_.get("opsbook_ssh_max_sessions", 8))),
    )


def _key_files(
    vars_: Mapping[str, Any], cli: Mapping[str, Any], cfg: Mapping[str, Any]
) -> tuple[str, ...]:
    files: list[str] = []
    explicit = _first(
        vars_.get("ansible_ssh_private_key_file"), vars_.get("ansible_private_key_file")
    )
    if explicit:
        files.append(str(explicit))
    files += [str(f) for f in cli.get("identityfile", [])]
    files += [str(f) for f in cfg.get("identityfile", [])]
    seen: list[str] = []
    for f in files:
        path = str(_expanded(f))
        if path not in seen:
            seen.append(path)
    return tuple(seen)


def parse_jumps(
    spec: str, ssh_config: paramiko.SSHConfig, target: Endpoint
) -> tuple[Endpoint, ...]:
    """ProxyJump `[user@]host[:port][,...]`, each hop resolved through ~/.ssh/config.

    A hop without a user in the spec or the config logs in as the target's user, and
    may use the target's key files (keys never leave the controller; passwords do, so
    the target's password is not offered to jump hosts).
    """
    if spec.strip().lower() == "none":
        return ()
    hops = []
    for raw in spec.split(","):
        raw = raw.strip().removeprefix("ssh://")
        user, _, hostport = raw.rpartition("@")
        host, port = _split_host_port(hostport)
        cfg = ssh_config.lookup(host)
        hops.append(
            Endpoint(
                host=str(cfg.get("hostname", host)),
                port=int(_first(port, cfg.get("port"), 22)),
                user=str(_first(user, cfg.get("user"), target.user)),
                key_files=tuple(str(Path(f).expanduser()) for f in cfg.get("identityfile", []))
                + target.key_files,
            )
        )
    return tuple(hops)


def _split_host_port(text: str) -> tuple[str, int | None]:
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, int(port)
    return text, None

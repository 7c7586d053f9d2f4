"""ssh.setup: Ansible's facts of a host, gathered in one round trip and parsed on the controller.

One POSIX shell script runs on the host's connection (ssh, local, or a container's exec:
whatever `ansible_connection` says) and prints, in marked sections, what Ansible's setup
module reads: `hostname`, the FQDN, /etc/os-release and /etc/debian_version, /proc/meminfo,
/proc/cpuinfo, /proc/uptime, /proc/1/comm, `ip` (route to the default gateway, addresses),
/proc/mounts with `stat -f` of each mount, and `date`. The facts are computed here in
Python, with Ansible's names and shapes (`ansible_facts.mounts[*].size_total`, ...), so
that nothing but a shell, coreutils and iproute2 is needed on the host (no Python there).

Facts are returned as host variables twice, as Ansible injects them: `ansible_facts`
(names without the prefix) and each `ansible_<name>`. `filter` keeps the facts whose
`ansible_` name (or bare name) matches one of its fnmatch patterns; `cache: true` reuses
the facts this run gathered on the host already (what `gather_facts:` uses).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import fnmatch
import ipaddress
from collections.abc import Mapping
from typing import Any

from opsbook.plugin import ActionContext, Result, Seconds
from opsbook_plugins.ssh._plugin import plugin
from opsbook_plugins.ssh.common import _Args, _run
from pydantic import field_validator

FACTS_SCRIPT = r"""
s() { printf '\n@@%s\n' "$1"; }
s hostname; hostname 2>/dev/null || cat /proc/sys/kernel/hostname
s fqdn; { python3 -c 'import socket; print(socket.getfqdn())' || hostname -f || hostname; } 2>/dev/null
s os_release; cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null
s debian_version; cat /etc/debian_version 2>/dev/null
s meminfo; cat /proc/meminfo 2>/dev/null
s vcpus; grep -c '^processor' /proc/cpuinfo 2>/dev/null
s uptime; cat /proc/uptime 2>/dev/null
s comm; cat /proc/1/comm 2>/dev/null
s init; for f in /run/systemd/system /sbin/openrc /etc/init.d; do [ -e "$f" ] && echo "$f"; done
s uname; uname -s -r -m 2>/dev/null
s route; ip -4 route get 8.8.8.8 2>/dev/null
s addr; ip -4 -o addr show 2>/dev/null
s links; for d in /sys/class/net/*; do
  printf '%s %s %s %s\n' "${d##*/}" "$(cat "$d/address" 2>/dev/null)" "$(cat "$d/mtu" 2>/dev/null)" "$(cat "$d/type" 2>/dev/null)"
done
s mounts; while read -r dev mnt fs opts rest; do
  case "$dev" in /*|*:/*) ;; *) continue ;; esac
  m=$(printf '%b' "$(printf '%s' "$mnt" | sed 's/\\\([0-7]\{3\}\)/\\0\1/g')")
  st=$(stat -f -c '%S %b %a %c %d %f' -- "$m" 2>/dev/null) || continue
  printf '%s\t%s\t%s\t%s\t%s\n' "$dev" "$m" "$fs" "$opts" "$st"
done < /proc/mounts
s date; date '+%s %z %Z'
"""

_FAMILY = {"debian": "Debian", "ubuntu": "Debian", "linuxmint": "Debian", "raspbian": "Debian",
           "rhel": "RedHat", "centos": "RedHat", "fedora": "RedHat", "rocky": "RedHat", "almalinux": "RedHat",
           "ol": "RedHat", "amzn": "RedHat", "sles": "Suse", "opensuse-leap": "Suse", "opensuse-tumbleweed": "Suse",
           "arch": "Archlinux", "alpine": "Alpine", "gentoo": "Gentoo"}
_NAME = {"rhel": "RedHat", "amzn": "Amazon", "ol": "OracleLinux", "opensuse-leap": "openSUSE Leap",
         "opensuse-tumbleweed": "openSUSE Tumbleweed", "sles": "SLES", "almalinux": "AlmaLinux",
         "arch": "Archlinux", "centos": "CentOS"}


class SetupArgs(_Args):
    """Gather the host's facts (Ansible's setup): one round trip, parsed on the controller."""

    filter: list[str] = []  # fnmatch patterns of fact names (ansible_mounts, ansible_distribution*)
    cache: bool = False  # reuse the facts this run already gathered on the host
    timeout: Seconds = 30.0  # the one round trip may take this long (a hung NFS mount stalls df)

    @field_validator("filter", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


@plugin.action(check=True, idempotent=True, scalar="filter", data=["ansible_facts"], reads_vars=True)
def setup(ctx: ActionContext, args: SetupArgs) -> Result:
    """Gather Ansible's facts of the host (hostname, fqdn, default_ipv4, mounts, memory, vcpus,
    distribution, date_time, uptime, service_mgr) into ansible_facts and ansible_* variables;
    read-only, so it also runs in check mode."""
    known = ctx.variables.get("ansible_facts") if ctx.variables else None
    known = dict(known) if isinstance(known, Mapping) else {}
    if args.cache and known.get("module_setup"):
        facts = known
    else:
        bound = args.timeout if ctx.timeout is None else min(ctx.timeout, args.timeout)
        res = _run(dataclasses.replace(ctx, timeout=bound), FACTS_SCRIPT, stream=False)
        sections = split_sections(res.stdout)
        if "hostname" not in sections:
            return Result.failed(f"gathering facts on {ctx.host.name} failed (rc={res.rc}): "
                                 f"{(res.stderr or res.stdout).strip()[:300] or 'no output'}")
        facts = parse_facts(sections)
    wanted = {k: v for k, v in facts.items() if matches(k, args.filter)} if args.filter else facts
    merged = {**known, **wanted}
    injected = {f"ansible_{k}": v for k, v in wanted.items() if k != "module_setup"}
    return Result.ok(msg=f"{len(injected)} facts", facts={"ansible_facts": merged, **injected},
                     data={"ansible_facts": injected})


def matches(name: str, patterns: list[str]) -> bool:
    """Ansible's filter: a pattern matches the fact's `ansible_` name or its bare name."""
    return any(fnmatch.fnmatchcase(f"ansible_{name}", p) or fnmatch.fnmatchcase(name, p) for p in patterns)


def split_sections(text: str) -> dict[str, str]:
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("@@"):
            current = out.setdefault(line[2:].strip(), [])
        elif current is not None:
            current.append(line)
    return {k: "\n".join(v).strip() for k, v in out.items()}


def parse_facts(sections: Mapping[str, str]) -> dict[str, Any]:
    """The facts (names without `ansible_`) from the script's sections."""
    node = sections.get("hostname", "").splitlines()[0] if sections.get("hostname") else ""
    fqdn = sections.get("fqdn", "").splitlines()[0] if sections.get("fqdn") else node
    facts: dict[str, Any] = {"hostname": node.split(".")[0], "nodename": node, "fqdn": fqdn,
                             "domain": fqdn.partition(".")[2] if "." in fqdn else ""}
    facts.update(_distribution(sections.get("os_release", ""), sections.get("debian_version", "")))
    facts.update(_memory(sections.get("meminfo", "")))
    vcpus = sections.get("vcpus", "")
    facts["processor_vcpus"] = int(vcpus) if vcpus.isdigit() else None
    uptime = sections.get("uptime", "").split()
    facts["uptime_seconds"] = int(float(uptime[0])) if uptime else None
    facts["service_mgr"] = _service_mgr(sections.get("comm", ""), sections.get("init", "").split())
    uname = sections.get("uname", "").split()
    if len(uname) == 3:
        facts.update(system=uname[0], kernel=uname[1], architecture=uname[2], machine=uname[2])
    facts.update(_network(sections.get("route", ""), sections.get("addr", ""), sections.get("links", "")))
    facts["mounts"] = _mounts(sections.get("mounts", ""))
    facts["date_time"] = _date_time(sections.get("date", ""))
    facts["module_setup"] = True
    return facts


def _distribution(os_release: str, debian_version: str) -> dict[str, Any]:
    fields: dict[str, str] = {}
    for line in os_release.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip().strip("\"'")
    ident = fields.get("ID", "").lower()
    name = _NAME.get(ident, ident.capitalize() if ident else "NA")
    version = fields.get("VERSION_ID", "NA")
    if ident == "debian" and debian_version and debian_version[0].isdigit():
        version = debian_version.splitlines()[0].strip()  # Ansible reads the point release there
    return {"distribution": name, "distribution_version": version,
            "distribution_major_version": version.split(".")[0],
            "distribution_release": fields.get("VERSION_CODENAME", "NA") or "NA",
            "os_family": _FAMILY.get(ident) or _FAMILY.get(fields.get("ID_LIKE", "").split(" ")[0], name)}


def _memory(meminfo: str) -> dict[str, Any]:
    kb: dict[str, int] = {}
    for line in meminfo.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            kb[key] = int(parts[0])
    return {"memtotal_mb": kb.get("MemTotal", 0) // 1024, "memfree_mb": kb.get("MemFree", 0) // 1024,
            "swaptotal_mb": kb.get("SwapTotal", 0) // 1024, "swapfree_mb": kb.get("SwapFree", 0) // 1024}


def _service_mgr(comm: str, present: list[str]) -> str:
    """Ansible's rule: PID 1's name, unless it is `init` or a shell; then what is installed."""
    comm = comm.strip()
    if comm and comm != "init" and not comm.endswith("sh"):
        return comm
    if "/run/systemd/system" in present:
        return "systemd"
    if "/sbin/openrc" in present:
        return "openrc"
    if "/etc/init.d" in present:
        return "sysvinit"
    return "service"


def _network(route: str, addr: str, links: str) -> dict[str, Any]:
    link = {}
    for line in links.splitlines():
        parts = line.split()
        if len(parts) == 4:
            kind = {"1": "ether", "772": "loopback"}.get(parts[3], "unknown")
            link[parts[0]] = {"macaddress": parts[1], "mtu": int(parts[2]) if parts[2].isdigit() else None, "type": kind}
    addresses: list[tuple[str, ipaddress.IPv4Interface, str]] = []  # (device, interface, broadcast)
    for line in addr.splitlines():
        parts = line.split()
        if "inet" in parts:
            dev = parts[1]
            iface = ipaddress.IPv4Interface(parts[parts.index("inet") + 1])
            brd = parts[parts.index("brd") + 1] if "brd" in parts else ""
            addresses.append((dev, iface, brd))
    default: dict[str, Any] = {}
    words = route.split()
    if "dev" in words and "src" in words:
        dev, src = words[words.index("dev") + 1], words[words.index("src") + 1]
        default = {"address": src, "interface": dev, "alias": dev,
                   "gateway": words[words.index("via") + 1] if "via" in words else ""}
        for adev, iface, brd in addresses:
            if adev == dev and str(iface.ip) == src:
                default.update(netmask=str(iface.netmask), network=str(iface.network.network_address),
                               prefix=str(iface.network.prefixlen), broadcast=brd)
        default.update(link.get(dev, {}))
    return {"default_ipv4": default, "interfaces": sorted(link),
            "all_ipv4_addresses": [str(i.ip) for _, i, _ in addresses if not str(i.ip).startswith("127.")]}


def _mounts(text: str) -> list[dict[str, Any]]:
    """Ansible's mount facts (`block_used` is Ansible's: total - available, so blocks
    reserved for root count as used), plus `block_free`/`size_free` (statvfs f_bfree), with
    which `df`'s use is computed: (total - free) / (total - free + available)."""
    out = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) != 5 or len(parts[4].split()) not in (5, 6):
            continue
        dev, mnt, fstype, opts, st = parts
        bsize, blocks, avail, inodes, ifree, *free = (int(x) for x in st.split())
        mount = {"mount": mnt, "device": dev, "fstype": fstype, "options": opts,
                 "size_total": bsize * blocks, "size_available": bsize * avail,
                 "block_size": bsize, "block_total": blocks, "block_available": avail,
                 "block_used": blocks - avail, "inode_total": inodes, "inode_available": ifree,
                 "inode_used": inodes - ifree}
        if free:
            mount.update(block_free=free[0], size_free=bsize * free[0])
        out.append(mount)
    return out


def _date_time(text: str) -> dict[str, str]:
    parts = text.split()
    if len(parts) < 2 or not parts[0].isdigit():
        return {}
    offset = parts[1]
    sign = -1 if offset.startswith("-") else 1
    delta = _dt.timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])) * sign
    epoch = int(parts[0])
    now = _dt.datetime.fromtimestamp(epoch, _dt.timezone(delta))
    utc = now.astimezone(_dt.timezone.utc)
    return {"year": now.strftime("%Y"), "month": now.strftime("%m"), "weekday": now.strftime("%A"),
            "weekday_number": now.strftime("%w"), "weeknumber": now.strftime("%W"), "day": now.strftime("%d"),
            "hour": now.strftime("%H"), "minute": now.strftime("%M"), "second": now.strftime("%S"),
            "epoch": str(epoch), "epoch_int": str(epoch), "date": now.strftime("%Y-%m-%d"),
            "time": now.strftime("%H:%M:%S"), "iso8601": utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "iso8601_micro": utc.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
            "iso8601_basic": now.strftime("%Y%m%dT%H%M%S000000"), "iso8601_basic_short": now.strftime("%Y%m%dT%H%M%S"),
            "tz": parts[2] if len(parts) > 2 else "", "tz_dst": parts[2] if len(parts) > 2 else "", "tz_offset": offset}

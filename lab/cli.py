"""`opsbook-lab up|down|status|env|...` — the lab's command line."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from .daemon import LabError
from .lab import Lab


def _cmd_up(lab: Lab, a) -> int:
    t0 = time.monotonic()
    info = lab.up(recreate=a.recreate)
    cluster = _k8s_up(lab.quiet) if a.k8s else None
    if a.json:
        print(json.dumps({**info.to_json(), **({"k8s": _k8s_json(cluster)} if cluster else {})}, indent=2))
        return 0
    print(f"lab {info.name} is up ({time.monotonic() - t0:.1f}s)")
    _print_hosts(info)
    print(f"\n  inventory      {info.inventory}")
    print(f"  inventory yaml {info.inventory_yaml}")
    print(f"  docker inv.    {info.inventory_docker}")
    print(f"  ssh            ssh -F {info.ssh_config} web1")
    print(f"  sudo           user {info.sudo_user}, password in {info.lab_json}")
    if cluster is not None:
        print(f"  kubernetes     {cluster.server}, namespaces {', '.join(cluster.namespaces)}")
        print(f"  kubeconfig     {cluster.kubeconfig}")
    print("  environment    eval \"$(opsbook-lab env)\"")
    return 0


def _k8s_up(quiet: bool):
    """The lab's Kubernetes control plane (etcd, kube-apiserver, controllers, kwok nodes), seeded
    with the workload the Kubernetes runbooks act on; its binaries are built from pinned Go
    modules the first time (minutes on 2 cores)."""
    from . import k8s

    try:
        if not k8s.binaries_present():
            if not quiet:
                print("opsbook-lab: building the Kubernetes binaries once (lab/k8s/build.sh; 7-13 min on 2 cores)",
                      file=sys.stderr)
            k8s.build()
        return k8s.up()
    except k8s.K8sLabError as exc:
        raise LabError(f"kubernetes: {exc}") from None


def _k8s_json(cluster) -> dict:
    return {"server": cluster.server, "kubeconfig": str(cluster.kubeconfig), "namespaces": list(cluster.namespaces)}


def _k8s_running():
    """The running control plane's K8sInfo, or None."""
    from . import k8s

    try:
        state = k8s.status()
        return k8s.info() if state.running and state.ready else None
    except (k8s.K8sLabError, OSError):
        return None


def _print_hosts(info) -> None:
    print(f"  {'host':6} {'role':11} {'lab ip':14} {'ssh':>6}  service")
    for h in info.hosts.values():
        svc = ""
        if h.http_port:
            svc = f"http://127.0.0.1:{h.http_port}/"
        elif h.redis_port:
            svc = f"redis 127.0.0.1:{h.redis_port}"
        print(f"  {h.name:6} {h.role:11} {h.lab_ip:14} {h.ssh_port:>6}  {svc}")


def _cmd_down(lab: Lab, a) -> int:
    stop = None
    if a.keep_daemon:
        stop = False
    lab.down(stop_daemon=stop)
    if a.k8s:
        from . import k8s

        k8s.down()
    return 0


def _cmd_status(lab: Lab, a) -> int:
    st = lab.status()
    if a.json:
        print(json.dumps(st, indent=2))
    else:
        print(f"engine  {st['docker_host']}: {'answers' if st['engine'] else 'not running'}"
              + (f" (dockerd pid {st['dockerd_pid']})" if st.get("dockerd_pid") else ""))
        for name, h in (st.get("hosts") or {}).items():
            print(f"  {name:6} {h['state']:8} {'net' if h['connected'] else 'NO-NET'} "
                  f"ssh:{h['ssh_port']} {'ok' if h['ssh'] else 'DOWN'}  {h['container']} {h['id']}")
        for p in st.get("problems") or []:
            print(f"  problem: {p}")
        cluster = _k8s_running()
        print(f"kubernetes {cluster.server}: ready (opsbook-lab up --k8s)" if cluster else
              "kubernetes not running (opsbook-lab up --k8s starts it)")
        print("lab is " + ("up" if st["up"] else "NOT up"))
    return 0 if st["up"] else 1


def _cmd_env(lab: Lab, a) -> int:
    try:
        env = lab.env()
    except LabError:
        env = {"DOCKER_HOST": lab.daemon.docker_host}
    cluster = _k8s_running()
    if cluster is not None:  # what the Kubernetes runbooks and kubectl read
        env["KUBECONFIG"] = str(cluster.kubeconfig)
    for k, v in env.items():
        print(f"export {k}={shlex.quote(v)}")
    return 0


def _cmd_inventory(lab: Lab, a) -> int:
    info = lab.info
    path = {"ini": info.inventory, "yaml": info.inventory_yaml, "docker": info.inventory_docker,
            "ops": info.inventory_ops}[a.format]
    if a.path:
        print(path)
    else:
        sys.stdout.write(Path(path).read_text())
    return 0


def _cmd_fault(lab: Lab, a) -> int:
    getattr(lab, a.cmd.replace("-", "_"))(a.host)
    return 0


def _cmd_exec(lab: Lab, a) -> int:
    cmd = a.command[0] if len(a.command) == 1 else a.command   # one string: via /bin/sh -c
    rc, out = lab.exec(a.host, cmd)
    sys.stdout.write(out)
    return rc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="opsbook-lab", description=(
        "The opsbook lab: sshd containers (lb1, web1, web2, db1, db2) with HAProxy, nginx and "
        "Redis on the lab's own dockerd."))
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="no progress messages")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    sub = p.add_subparsers(dest="cmd", required=True)
    _add = sub.add_parser
    sub.add_parser = lambda *a, **k: _add(*a, parents=[common], **k)  # -q after the command too
    s = sub.add_parser("up", help="bring the lab up (reuses a healthy running lab)")
    s.add_argument("--recreate", action="store_true", help="recreate the containers")
    s.add_argument("--json", action="store_true", help="print lab.json")
    s.add_argument("--k8s", action="store_true",
                   help="also start the Kubernetes control plane (and build its binaries the first time)")
    s.set_defaults(func=_cmd_up)
    s = sub.add_parser("down", help="remove containers and network, stop the lab's dockerd")
    s.add_argument("--keep-daemon", action="store_true", help="leave the lab's dockerd running")
    s.add_argument("--k8s", action="store_true", help="also stop the Kubernetes control plane (by PID)")
    s.set_defaults(func=_cmd_down)
    s = sub.add_parser("status", help="what runs; exit 1 unless the lab is up and healthy")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_status)
    s = sub.add_parser("env", help="print export lines (DOCKER_HOST, OPSBOOK_LAB_INVENTORY, ...)")
    s.set_defaults(func=_cmd_env)
    s = sub.add_parser("inventory", help="print the generated inventory (or its path)")
    s.add_argument("format", nargs="?", default="ini", choices=["ini", "yaml", "docker", "ops"])
    s.add_argument("--path", action="store_true")
    s.set_defaults(func=_cmd_inventory)
    for f, h in [("kill", "SIGKILL a host's container"), ("start", "start it again and wait"),
                 ("stop", "docker stop a host"), ("disconnect", "take a host off the lab network"),
                 ("connect", "put it back"), ("pause", "freeze a host"), ("unpause", "thaw it"),
                 ("restart-sshd", "service ssh restart in a host")]:
        s = sub.add_parser(f, help=h)
        s.add_argument("host")
        s.set_defaults(func=_cmd_fault)
    s = sub.add_parser("exec", help="run a command in a host (docker exec)")
    s.add_argument("host")
    s.add_argument("command", nargs=argparse.REMAINDER)
    s.set_defaults(func=_cmd_exec)
    a = p.parse_args(argv)
    lab = Lab(quiet=a.quiet)
    try:
        return a.func(lab, a)
    except LabError as e:
        print(f"opsbook-lab: error: {e}", file=sys.stderr)
        return 2
    finally:
        lab.close()


if __name__ == "__main__":
    sys.exit(main())

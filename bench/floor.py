"""The paramiko floor: the least a Python SSH tool can do for the same work.

A thread pool with one thread per host; each thread opens TCP (TCP_NODELAY), does the
SSH handshake (AES-GCM preferred: the cheapest cipher for paramiko, as opsbook does),
checks the host key strictly against the same known_hosts file, logs in with the same
key, then runs the commands one after the other on that one transport
(a channel per command, output read to EOF, exit status checked). No engine, no
templating, no journal: what is left is connecting, crypto and Python.

    python -m bench.floor hosts.json            # {"known_hosts", "key", "user",
                                                #  "hosts": [[addr, port]...], "commands": [...]}
    python -m bench.floor hosts.json --warm 200 # per-command latency on an open transport
"""

from __future__ import annotations

import json
import socket
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import paramiko

AEAD = ("aes256-gcm@openssh.com", "aes128-gcm@openssh.com")


def connect(address: str, port: int, user: str, key: paramiko.PKey,
            known: paramiko.HostKeys) -> paramiko.Transport:
    sock = socket.create_connection((address, port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    transport = paramiko.Transport(sock)
    options = transport.get_security_options()
    # the cheapest cipher paramiko has (AEAD in OpenSSL, no Python MAC check), as opsbook uses
    options.ciphers = list(AEAD) + [c for c in options.ciphers if c not in AEAD]
    name = address if port == 22 else f"[{address}]:{port}"
    recorded = known.lookup(name) or {}
    if recorded:  # ask for the key type we can check, as ssh(1) does
        options = transport.get_security_options()
        options.key_types = [t for t in recorded if t in options.key_types] + [
            t for t in options.key_types if t not in recorded]
    transport.start_client(timeout=10)
    server_key = transport.get_remote_server_key()
    if recorded.get(server_key.get_name()) != server_key:
        transport.close()
        raise RuntimeError(f"host key for {name} does not match known_hosts")
    transport.auth_publickey(user, key)
    return transport


def run(transport: paramiko.Transport, command: str) -> tuple[int, bytes]:
    chan = transport.open_session(timeout=10)
    try:
        chan.exec_command(command)
        chan.shutdown_write()
        out = b""
        while True:
            data = chan.recv(65536)
            if not data:
                break
            out += data
        return chan.recv_exit_status(), out
    finally:
        chan.close()


def host_job(spec: dict[str, Any], key: paramiko.PKey, known: paramiko.HostKeys,
             address: str, port: int) -> int:
    transport = connect(address, port, spec["user"], key, known)
    try:
        for command in spec["commands"]:
            rc, _ = run(transport, command)
            if rc != 0:
                raise RuntimeError(f"{address}:{port}: {command!r} exited {rc}")
        return len(spec["commands"])
    finally:
        transport.close()


def fleet_run(spec: dict[str, Any]) -> int:
    key = paramiko.Ed25519Key.from_private_key_file(spec["key"])
    known = paramiko.HostKeys(spec["known_hosts"])
    hosts = spec["hosts"]
    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        done = list(pool.map(lambda h: host_job(spec, key, known, h[0], int(h[1])), hosts))
    return sum(done)


def warm(spec: dict[str, Any], count: int) -> dict[str, Any]:
    """Per-command latency of `true` on one already open transport."""
    key = paramiko.Ed25519Key.from_private_key_file(spec["key"])
    known = paramiko.HostKeys(spec["known_hosts"])
    address, port = spec["hosts"][0]
    t0 = time.perf_counter()
    transport = connect(address, int(port), spec["user"], key, known)
    connect_s = time.perf_counter() - t0
    try:
        for _ in range(5):  # let both sides settle
            run(transport, "true")
        lat = []
        cpu0 = time.process_time()
        for _ in range(count):
            t = time.perf_counter()
            rc, _ = run(transport, "true")
            lat.append(time.perf_counter() - t)
            assert rc == 0
        cpu = (time.process_time() - cpu0) / count
    finally:
        transport.close()
    return {"connect_s": connect_s, "median_s": statistics.median(lat), "cpu_per_command_s": cpu,
            "p90_s": sorted(lat)[int(0.9 * (len(lat) - 1))], "n": count}


def main(argv: list[str]) -> int:
    with open(argv[0]) as f:
        spec = json.load(f)
    if len(argv) >= 3 and argv[1] == "--warm":
        print(json.dumps(warm(spec, int(argv[2]))))
        return 0
    n = fleet_run(spec)
    print(f"floor: {n} commands on {len(spec['hosts'])} hosts ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

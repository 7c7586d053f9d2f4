#!/usr/bin/env bash
# Install what the opsbook lab needs on a bare Debian bookworm machine (as root).
#
# Idempotent and non-interactive: safe to run on every CI run. It only installs
# packages; the lab's own dockerd (separate data root, exec root and socket, so
# that no other docker engine on the machine is disturbed) is started by
# `opsbook-lab up`, which also builds the base image with debootstrap the first
# time and caches it.
#
#   bash lab/install.sh            # install the packages
#   bash lab/install.sh --up       # ... and bring the lab up (opsbook-lab up)
set -euo pipefail

# openssh-server: sshd processes on loopback (127.0.x.y:22) are the targets of the benchmark
# fleet and of the fleet/host-key reliability tests; its own service is never started here.
# graphviz: `opsbook graph --format svg|png` and the report's plan graph call its `dot`
# (the README's tour draws a graph).
PKGS=(docker.io containerd runc tini debootstrap debian-archive-keyring gpgv wget iptables iproute2
      openssh-client openssh-server ca-certificates iputils-ping graphviz)

need=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    need+=("$p")
  fi
done

if [ "$(id -u)" != 0 ] && [ "${#need[@]}" -gt 0 ]; then
  echo "opsbook-lab install: must run as root to install: ${need[*]}" >&2
  exit 1
fi

if [ "${#need[@]}" -gt 0 ]; then
  echo "opsbook-lab install: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
  # The docker.io package tries to start its systemd/sysv service; there is no
  # init system here and we never want the default daemon: deny service starts
  # during the install only (restoring whatever policy was there before).
  policy=/usr/sbin/policy-rc.d
  saved=""
  if [ -e "$policy" ]; then saved=$(mktemp); cp -p "$policy" "$saved"; fi
  printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"
  restore() { if [ -n "$saved" ]; then mv -f "$saved" "$policy"; else rm -f "$policy"; fi; }
  trap restore EXIT
  apt-get update -q || apt-get update -q
  apt-get install -y -q --no-install-recommends "${need[@]}"
  restore; trap - EXIT
else
  echo "opsbook-lab install: packages already installed"
fi

command -v dockerd >/dev/null
command -v debootstrap >/dev/null

if [ "${1:-}" = "--up" ]; then
  exec python3 -m opsbook_lab.cli up
fi

#!/usr/bin/env bash
# Stop the opsbook k8s lab control plane by PID (--purge also deletes its state).
#   lab/k8s/down.sh [--purge]
# The work is done by lab/k8s.py (python -m opsbook_lab.k8s down); this is a shortcut.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "${PYTHON:-python3}" -c 'import sys, importlib.util as u
spec = u.spec_from_file_location("opsbook_lab_k8s", sys.argv[1]); m = u.module_from_spec(spec)
sys.modules["opsbook_lab_k8s"] = m; spec.loader.exec_module(m); sys.exit(m.main(sys.argv[2:]))' \
  "$HERE/../k8s.py" down "$@"

#!/usr/bin/env bash
# Build the opsbook k8s lab binaries from pinned upstream Go modules.
#
#   kube-apiserver, kube-controller-manager, kube-scheduler  (k8s.io/kubernetes)
#   etcd                                                      (go.etcd.io/etcd/server/v3)
#   kwok                                                      (sigs.k8s.io/kwok/cmd/kwok)
#
# Versions live in ONE place: lab/k8s/versions.env. Binaries are cached under
#   ${XDG_CACHE_HOME:-~/.cache}/opsbook/k8s/<versions-hash>/bin/
# with GOMODCACHE/GOCACHE shared under ${XDG_CACHE_HOME:-~/.cache}/opsbook/k8s/go/
# so rebuilding (or building a new version set) is incremental.
#
# Usage: build.sh [--print-bindir] [--force] [--sync-mod]
#   --print-bindir  print the bin dir for the current versions and exit (no build)
#   --force         rebuild even if the cache is complete
#   --sync-mod      (re)write build/go.mod + go.sum from versions.env (needs network)
# Works non-interactively (CI=true, no stdin). Needs only Go >= 1.24 and the Go module proxy.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MOD="$HERE/build"
# shellcheck disable=SC1091
source "$HERE/versions.env"

GO="${GO:-}"
if [[ -z "$GO" ]]; then
  if command -v go >/dev/null 2>&1; then GO="$(command -v go)";
  elif [[ -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go;
  else echo "build.sh: no Go toolchain found (need go >= 1.24)" >&2; exit 2; fi
fi

CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/opsbook/k8s"
# The hash covers the pinned versions and the Go toolchain (not comments).
HASH="$( { grep -E '^[A-Z_]+=' "$HERE/versions.env"; "$GO" env GOVERSION; echo "flags:trimpath,s,w,cgo0"; } \
          | sha256sum | cut -c1-16)"
OUT="$CACHE_ROOT/$HASH"
BIN="$OUT/bin"
BINS=(kube-apiserver kube-controller-manager kube-scheduler etcd kwok)

print_only=0; force=0; sync_mod=0
for a in "$@"; do
  case "$a" in
    --print-bindir) print_only=1 ;;
    --force) force=1 ;;
    --sync-mod) sync_mod=1 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done
if (( print_only )); then echo "$BIN"; exit 0; fi

complete() { [[ -f "$OUT/.complete" ]] && for b in "${BINS[@]}"; do [[ -x "$BIN/$b" ]] || return 1; done; }

export GOMODCACHE="$CACHE_ROOT/go/mod"
export GOCACHE="$CACHE_ROOT/go/cache"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
export CGO_ENABLED=0
export GOFLAGS="-buildvcs=false"
mkdir -p "$GOMODCACHE" "$GOCACHE" "$OUT"

exec 9>"$CACHE_ROOT/build.lock"
flock 9   # serialize concurrent builders (parallel test sessions)

if (( ! force && ! sync_mod )) && complete; then
  echo "k8s lab binaries cached: $BIN"; exit 0
fi

t0=$(date +%s)
log() { printf '[build.sh +%4ss] %s\n' "$(( $(date +%s) - t0 ))" "$*"; }

# --- keep build/go.mod in sync with versions.env ---------------------------------
mod_matches() {
  local j; j="$(cd "$MOD" && "$GO" mod edit -json)"
  grep -q "\"Path\": \"k8s.io/kubernetes\",[[:space:]]*\"Version\": \"$KUBERNETES_VERSION\"" <<<"$(tr -d '\n' <<<"$j" | sed 's/}, *{/}\n{/g')" \
    && grep -q "\"Path\": \"go.etcd.io/etcd/server/v3\",[[:space:]]*\"Version\": \"$ETCD_VERSION\"" <<<"$(tr -d '\n' <<<"$j" | sed 's/}, *{/}\n{/g')" \
    && grep -q "\"Version\": \"$KUBERNETES_STAGING_VERSION\"" <<<"$j"
}
if (( sync_mod )) || ! mod_matches; then
  log "syncing $MOD/go.mod to versions.env (k8s $KUBERNETES_VERSION, staging $KUBERNETES_STAGING_VERSION, etcd $ETCD_VERSION)"
  ( cd "$MOD"
    "$GO" mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" >/dev/null
    kmod="$GOMODCACHE/cache/download/k8s.io/kubernetes/@v/$KUBERNETES_VERSION.mod"
    # every staging module k8s.io/kubernetes replaces with ./staging/... -> published version
    mapfile -t staging < <(awk '/=> \.\/staging/ {print $1}' "$kmod")
    args=()
    for m in "${staging[@]}"; do args+=("-replace=$m=$m@$KUBERNETES_STAGING_VERSION"); done
    "$GO" mod edit "${args[@]}" -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    # `tool` directives keep k8s.io/kubernetes (a module of main packages) in go.mod
    "$GO" get -tool \
      "k8s.io/kubernetes/cmd/kube-apiserver@$KUBERNETES_VERSION" \
      "k8s.io/kubernetes/cmd/kube-controller-manager@$KUBERNETES_VERSION" \
      "k8s.io/kubernetes/cmd/kube-scheduler@$KUBERNETES_VERSION"
    "$GO" mod tidy
  )
fi

# --- build ------------------------------------------------------------------------
TMPBIN="$OUT/bin.tmp.$$"
rm -rf "$TMPBIN"; mkdir -p "$TMPBIN"
trap 'rm -rf "$TMPBIN"' EXIT

minor="${KUBERNETES_VERSION#v1.}"; minor="${minor%%.*}"
vld=""
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  vld+=" -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
  vld+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done

log "go: $("$GO" version); GOMODCACHE=$GOMODCACHE GOCACHE=$GOCACHE"
log "building kube-apiserver kube-controller-manager kube-scheduler etcd -> $BIN"
( cd "$MOD" && "$GO" build -trimpath -ldflags="-s -w$vld" -o "$TMPBIN/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler \
    ./cmd/etcd )
log "building kwok $KWOK_VERSION"
# kwok is its own module with its own dependency graph: go install pkg@version
( cd / && GOBIN="$TMPBIN" "$GO" install -trimpath \
    -ldflags="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" )

for b in "${BINS[@]}"; do [[ -x "$TMPBIN/$b" ]] || { echo "build.sh: $b missing after build" >&2; exit 1; }; done
rm -rf "$BIN"; mv "$TMPBIN" "$BIN"
{ grep -E '^[A-Z_]+=' "$HERE/versions.env"; echo "GO_VERSION=$("$GO" env GOVERSION)"; } > "$OUT/versions.env"
date -u +%FT%TZ > "$OUT/.complete"
log "done: $(du -sh "$BIN" | cut -f1) in $BIN"

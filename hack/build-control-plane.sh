#!/usr/bin/env bash
# Builds kube-apiserver, kubectl and etcd from their published Go modules, once, into a cache
# outside the repository. Prints the folder holding the binaries (the KUBEBUILDER_ASSETS layout).
#
# Why a wrapper module: k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them
# with ./staging paths that the published module does not contain, so we pin each one to the
# matching published v0.X.Y, read from the tagged go.mod itself (never a hand-kept list).
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-3.6.16}"
CACHE_ROOT="${WHATSAPP_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/whatsapp-operator}"
OUT="$CACHE_ROOT/k8s-v$K8S_VERSION-etcd-v$ETCD_VERSION"
BIN="$OUT/bin"

log() { echo "build-control-plane: $*" >&2; }

if [[ -x "$BIN/kube-apiserver" && -x "$BIN/etcd" && -x "$BIN/kubectl" ]]; then
  echo "$BIN"
  exit 0
fi

command -v go >/dev/null || { log "Go toolchain not found; install Go >= 1.25"; exit 1; }
export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:--buildvcs=false}"
mkdir -p "$BIN" "$OUT/src"
started=$(date +%s)

build_kubernetes() {
  local dir="$OUT/src/kubernetes" minor staging_ver gomod
  minor=$(cut -d. -f2 <<<"$K8S_VERSION")
  staging_ver="v0.${K8S_VERSION#*.}"
  mkdir -p "$dir"
  log "reading k8s.io/kubernetes@v$K8S_VERSION go.mod from the module proxy"
  gomod=$(cd "$dir" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  {
    echo "module local/whatsapp-operator/kubernetes-build"
    echo
    echo "go 1.25"
    echo
    echo "require k8s.io/kubernetes v$K8S_VERSION"
    echo
    echo "replace ("
    # every `k8s.io/x => ./staging/src/k8s.io/x` becomes `k8s.io/x => k8s.io/x v0.X.Y`
    sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\) => \./staging/.*#\t\1 => \1 '"$staging_ver"'#p' "$gomod"
    echo ")"
    echo
    echo "exclude ("
    for v in v1.4.0 v1.5.0 v1.5.1 v1.5.2 v2.0.0-alpha.0.0.20180910083459-2cefa64ff137+incompatible \
      v12.0.0+incompatible v11.0.0+incompatible v10.0.0+incompatible v9.0.0+incompatible; do
      echo "	k8s.io/client-go $v"
    done
    echo ")"
  } >"$dir/go.mod"
  cat >"$dir/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  log "resolving modules (first run downloads a few hundred MB)"
  (cd "$dir" && go mod tidy)
  local ld="" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ld="$ld -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  for cmd in kube-apiserver kubectl; do
    log "building $cmd v$K8S_VERSION"
    (cd "$dir" && go build -trimpath -tags selinux,notest -ldflags "-s -w $ld" -o "$BIN/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd")
    mv "$BIN/$cmd.tmp" "$BIN/$cmd"
  done
}

build_etcd() {
  local dir="$OUT/src/etcd"
  mkdir -p "$dir"
  cat >"$dir/go.mod" <<GOMOD
module local/whatsapp-operator/etcd-build

go 1.25

require go.etcd.io/etcd/server/v3 v$ETCD_VERSION
GOMOD
  cat >"$dir/tools.go" <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
  (cd "$dir" && go mod tidy)
  log "building etcd v$ETCD_VERSION"
  (cd "$dir" && go build -trimpath -ldflags "-s -w" -o "$BIN/etcd.tmp" go.etcd.io/etcd/server/v3)
  mv "$BIN/etcd.tmp" "$BIN/etcd"
}

[[ -x "$BIN/etcd" ]] || build_etcd
[[ -x "$BIN/kube-apiserver" && -x "$BIN/kubectl" ]] || build_kubernetes
log "built in $(($(date +%s) - started)) s into $BIN"
echo "$BIN"

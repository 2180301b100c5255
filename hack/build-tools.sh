#!/usr/bin/env bash
# Builds the chart tools, helm and kubeconform, from their published Go modules, once, into a
# cache outside the repository (like build-control-plane.sh). Prints the folder holding them.
#
#   HELM_VERSION         default 3.22.0 (helm.sh/helm/v3/cmd/helm)
#   KUBECONFORM_VERSION  default 0.8.0  (github.com/yannh/kubeconform/cmd/kubeconform; the
#                        newest the Go module proxy served when this was written:
#                        GOFLAGS=-mod=mod go list -m -versions github.com/yannh/kubeconform)
#
# Each tool lives in a folder named after its version, so bumping a version rebuilds only that
# tool, and a half-finished build never counts as done (binaries are moved in place last).
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-3.22.0}"
KUBECONFORM_VERSION="${KUBECONFORM_VERSION:-0.8.0}"
CACHE_ROOT="${WHATSAPP_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/whatsapp-operator}"
OUT="$CACHE_ROOT/tools"
BIN="$OUT/bin"

log() { echo "build-tools: $*" >&2; }

# build NAME VERSION PACKAGE LDFLAGS: `go install PACKAGE@vVERSION` into a versioned folder, then
# link it as $BIN/NAME.
build() {
  local name="$1" version="$2" pkg="$3" ldflags="$4"
  local dir="$OUT/$name-v$version"
  if [[ ! -x "$dir/$name" ]]; then
    command -v go >/dev/null || { log "Go toolchain not found; install Go >= 1.25"; exit 1; }
    log "building $name v$version from $pkg (first run downloads its modules)"
    local started tmp
    started=$(date +%s)
    tmp="$dir.tmp"
    rm -rf "$tmp" && mkdir -p "$tmp"
    # GOFLAGS=-mod=mod: `go install pkg@version` ignores any go.mod around us anyway; the flag
    # only keeps a caller's -mod=vendor from breaking the build.
    GOBIN="$tmp" CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" \
      go install -trimpath -ldflags "-s -w $ldflags" "$pkg@v$version"
    rm -rf "$dir" && mv "$tmp" "$dir"
    log "built $name v$version in $(($(date +%s) - started)) s"
  fi
  mkdir -p "$BIN"
  ln -sfn "../$name-v$version/$name" "$BIN/$name"
}

# helm reads its version from ldflags (-X helm.sh/helm/v3/internal/version.version=...); without
# them `helm version` says v3.x-dev-like defaults and `helm lint` checks kubeVersion against it.
build helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm \
  "-X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
build kubeconform "$KUBECONFORM_VERSION" github.com/yannh/kubeconform/cmd/kubeconform ""

echo "$BIN"

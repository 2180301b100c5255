#!/usr/bin/env bash
# Builds the chart tools, helm and kubeconform, and promtool (the alerts' tests), from their
# published Go modules, once, into a cache outside the repository (like build-control-plane.sh).
# Prints the folder holding them.
#
#   HELM_VERSION         default 3.22.0 (helm.sh/helm/v3/cmd/helm)
#   KUBECONFORM_VERSION  default 0.8.0  (github.com/yannh/kubeconform/cmd/kubeconform; the
#                        newest the Go module proxy served when this was written:
#                        GOFLAGS=-mod=mod go list -m -versions github.com/yannh/kubeconform)
#   PROMETHEUS_VERSION   default 3.16.0 (promtool: github.com/prometheus/prometheus/cmd/promtool at
#                        module version v0.316.0: Prometheus 3.X.Y is published as v0.3XX.Y;
#                        its go.mod needs Go >= 1.26.7)
#
# Each tool lives in a folder named after its version, so bumping a version rebuilds only that
# tool, and a half-finished build never counts as done (binaries are moved in place last).
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-3.22.0}"
KUBECONFORM_VERSION="${KUBECONFORM_VERSION:-0.8.0}"
PROMETHEUS_VERSION="${PROMETHEUS_VERSION:-3.16.0}"
CACHE_ROOT="${WHATSAPP_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/whatsapp-operator}"
OUT="$CACHE_ROOT/tools"
BIN="$OUT/bin"

log() { echo "build-tools: $*" >&2; }

# build NAME VERSION PACKAGE LDFLAGS [TAGS [MODULE_VERSION]]: `go install
# PACKAGE@vMODULE_VERSION` (default: VERSION) into a versioned folder, then link it as $BIN/NAME.
build() {
  local name="$1" version="$2" pkg="$3" ldflags="$4" tags="${5:-}" modversion="${6:-$2}"
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
      go install -trimpath -tags "$tags" -ldflags "-s -w $ldflags" "$pkg@v$modversion"
    rm -rf "$dir" && mv "$tmp" "$dir"
    log "built $name v$version in $(($(date +%s) - started)) s"
  fi
  mkdir -p "$BIN"
  ln -sfn "../$name-v$version/$name" "$BIN/$name"
}

# helm's own release build stamps its version and the Kubernetes version it assumes when no
# cluster is asked (`helm template`, `helm lint`: .Capabilities.KubeVersion, checked against a
# chart's kubeVersion) through ldflags; without them helm says v3.22 and Kubernetes v1.20.
# Like helm's Makefile, the Kubernetes version follows its k8s.io/client-go (v0.X.Y -> v1.X).
helm_ldflags() {
  local gomod client_go minor pkg
  gomod=$(GOFLAGS=-mod=mod go mod download -json "helm.sh/helm/v3@v$HELM_VERSION" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  client_go=$(sed -n 's#^[[:space:]]*k8s\.io/client-go \(v0\.[0-9]*\)\..*#\1#p' "$gomod" | head -1)
  minor="${client_go#v0.}"
  [[ "$minor" =~ ^[0-9]+$ ]] || { log "cannot read k8s.io/client-go from helm's go.mod"; exit 1; }
  echo -n "-X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION"
  echo -n " -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    echo -n " -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$minor"
  done
}
helm_flags=""
if [[ ! -x "$OUT/helm-v$HELM_VERSION/helm" ]]; then
  command -v go >/dev/null || { log "Go toolchain not found; install Go >= 1.25"; exit 1; }
  helm_flags=$(helm_ldflags)  # an assignment, so that a failure stops the script (set -e)
fi
build helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm "$helm_flags"
build kubeconform "$KUBECONFORM_VERSION" github.com/yannh/kubeconform/cmd/kubeconform \
  "-X main.version=v$KUBECONFORM_VERSION"
# promtool: `check rules` and `test rules` need no service discovery; remove_all_sd (Prometheus's
# own build tag) leaves out the cloud SD plugins, a large part of the build.
# Prometheus X.Y.Z is the Go module version v0.(100X+Y).Z (3.16.0: v0.316.0).
IFS=. read -r prom_major prom_minor prom_patch <<<"$PROMETHEUS_VERSION"
prom_module="0.$((prom_major * 100 + prom_minor)).$prom_patch"
build promtool "$PROMETHEUS_VERSION" github.com/prometheus/prometheus/cmd/promtool \
  "-X github.com/prometheus/common/version.Version=$PROMETHEUS_VERSION" remove_all_sd "$prom_module"

echo "$BIN"

#!/usr/bin/env bash
# The system packages `make demo`, `make test` and .ci/run need: openssl, make, PostgreSQL's
# server (tests and the demo start their own instance as the postgres user) and RabbitMQ's
# server with Erlang's epmd (their own private node, as the rabbitmq user; the system service
# the package may start on install uses other ports and node name, and is not used).
#
# Installs the missing ones with apt-get when run as root on a machine that has it; otherwise
# prints ONE line saying what is missing and the command to run, and exits 1. Prints nothing
# when everything is there. Go (>= 1.25, for the control plane) is checked, not installed.
set -euo pipefail

missing() {
  local need=()
  command -v openssl >/dev/null || need+=(openssl)
  command -v make >/dev/null || need+=(make)
  if [[ -z "${PG_BIN:-}" ]] && ! compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null \
    && ! command -v initdb >/dev/null; then
    need+=(postgresql)
  fi
  if { [[ -z "${RABBITMQ_SCRIPTS_DIR:-}" ]] && [[ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] \
    && ! command -v rabbitmq-server >/dev/null; } || ! command -v epmd >/dev/null; then
    need+=(rabbitmq-server)  # brings erlang-base, whose epmd the harness starts itself
  fi
  echo "${need[@]}"
}

read -r -a need <<<"$(missing)"
if ((${#need[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "installing system packages: ${need[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
    read -r -a need <<<"$(missing)"
  fi
fi
if ((${#need[@]})); then
  echo "missing system packages (${need[*]}): run \`sudo hack/install-system-deps.sh\`" \
    "(Debian/Ubuntu), or install ${need[*]} with your package manager" >&2
  exit 1
fi
if ! command -v go >/dev/null; then
  echo "Go >= 1.25 is required to build the control plane: install it" >&2
  exit 1
fi

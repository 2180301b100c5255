# whatsapp-operator: every command a developer or CI runs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | sha256sum | cut -c1-12)
# CI (CI=true) fails `make check` when the audit could not check a pin (hack/audit.py)
AUDIT_REQUIRED ?= $(if $(filter true 1,$(CI)),1,0)
UV_VERSION := 0.13.8
LOCK_PYTHON := 3.11
PYTEST_ARGS ?=

.PHONY: help venv system-deps control-plane tools demo demo-down test test-unit test-integration reliability check audit fmt bench lock chart-lint chart-crds kind-up kind-deploy kind-down clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python hack/lockfile.py constraints > $(VENV)/constraints.txt
	$(BIN)/python -m pip install -q -c $(VENV)/constraints.txt -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP) ## create .venv with the project and its dev tools (the lock's pins as constraints)

system-deps: ## PostgreSQL, RabbitMQ (Erlang), openssl, make: installed as root with apt-get, else one line saying how
	@bash hack/install-system-deps.sh

control-plane: ## build kube-apiserver, etcd and kubectl once (cached outside the repo)
	@hack/build-control-plane.sh >/dev/null

demo: system-deps venv control-plane ## run everything locally: control plane, simulator, operator, a tenant going Ready
	PYTHONPATH=testkit $(BIN)/python -m whatsapp_testkit.demo up

demo-down: ## stop what `make demo` started
	PYTHONPATH=testkit $(BIN)/python -m whatsapp_testkit.demo down

test: system-deps venv control-plane tools ## all tests: unit, then integration against real servers (+ .run/reliability.md)
	$(BIN)/pytest --reliability-report=.run/reliability.md $(PYTEST_ARGS)

test-unit: venv tools ## unit tests only (no servers; helm renders the chart)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

test-integration: system-deps venv control-plane tools ## integration tests only
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

reliability: system-deps venv control-plane tools ## the fault scenarios under load; writes docs/reliability.md
	$(BIN)/pytest -m reliability --reliability-report=docs/reliability.md $(PYTEST_ARGS)

check: venv ## formatting, lint, types (hack/ too), import layering, size limits, Dockerfile, audit
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/mypy hack/audit.py hack/limits.py hack/lockfile.py
	$(BIN)/python hack/limits.py
	$(BIN)/lint-imports
	$(BIN)/hadolint Dockerfile
	@dupes=$$(find tests -name 'test_*.py' -printf '%f\n' | sort | uniq -d); \
	  if [ -n "$$dupes" ]; then echo "test files need unique basenames: $$dupes"; exit 1; fi
	AUDIT_REQUIRED=$(AUDIT_REQUIRED) $(BIN)/python hack/audit.py
	@echo "check: all passed"

audit: venv ## known vulnerabilities in requirements.lock (pip-audit, or PyPI's advisory data)
	$(BIN)/python hack/audit.py

fmt: venv ## format and auto-fix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: venv control-plane ## benchmarks (figures against a floor measured in the same run)
	PYTHONPATH=testkit:. $(BIN)/python -m benchmarks

tools: ## build helm, kubeconform and promtool once (cached outside the repo)
	@hack/build-tools.sh >/dev/null

chart-lint: tools ## helm lint --strict with the chart's ci/ and the kind values; the bare defaults must not render
	@bin=$$(hack/build-tools.sh) && for v in charts/whatsapp-operator/ci/*.yaml hack/kind/values.yaml; do $$bin/helm lint --strict charts/whatsapp-operator -f $$v || exit 1; done && \
	if $$bin/helm template charts/whatsapp-operator >/dev/null 2>&1; then echo "chart-lint: the default values rendered; they must require watchNamespaces or allNamespaces" >&2; exit 1; fi

chart-crds: ## copy crds/ into the chart (a unit test fails while they differ)
	cp crds/*.yaml charts/whatsapp-operator/crds/

KIND ?= kind
KIND_CLUSTER ?= whatsapp
TOOLS_BIN = $(shell hack/build-tools.sh 2>/dev/null)

kind-up: ## (Docker) create the kind cluster hack/kind/cluster.yaml
	@command -v docker >/dev/null || { echo "kind-up needs Docker"; exit 1; }
	@command -v $(KIND) >/dev/null || { echo "install kind: go install sigs.k8s.io/kind@v0.33.0"; exit 1; }
	$(KIND) get clusters | grep -qx $(KIND_CLUSTER) || $(KIND) create cluster --name $(KIND_CLUSTER) --config hack/kind/cluster.yaml

kind-deploy: tools ## (Docker) build and load the image, dev services, the chart, the example tenant
	docker build -t whatsapp-operator:dev .
	$(KIND) load docker-image whatsapp-operator:dev --name $(KIND_CLUSTER)
	kubectl --context kind-$(KIND_CLUSTER) apply --server-side -f crds/
	kubectl --context kind-$(KIND_CLUSTER) create namespace whatsapp-system --dry-run=client -o yaml | kubectl --context kind-$(KIND_CLUSTER) apply -f -
	kubectl --context kind-$(KIND_CLUSTER) -n whatsapp-system create configmap simulator-seed --from-file=examples/simulator-seed.yaml --dry-run=client -o yaml | kubectl --context kind-$(KIND_CLUSTER) apply -f -
	kubectl --context kind-$(KIND_CLUSTER) apply -f hack/kind/dev-services.yaml
	kubectl --context kind-$(KIND_CLUSTER) -n whatsapp-system create secret generic whatsapp-database --from-literal=url=postgresql://whatsapp:dev-only-password@postgres:5432/whatsapp --dry-run=client -o yaml | kubectl --context kind-$(KIND_CLUSTER) apply -f -
	kubectl --context kind-$(KIND_CLUSTER) -n whatsapp-system create secret generic whatsapp-amqp --from-literal=url=amqp://whatsapp:dev-only-password@rabbitmq:5672/%2F --dry-run=client -o yaml | kubectl --context kind-$(KIND_CLUSTER) apply -f -
	kubectl --context kind-$(KIND_CLUSTER) -n whatsapp-system get secret whatsapp-token-keys >/dev/null 2>&1 || kubectl --context kind-$(KIND_CLUSTER) -n whatsapp-system create secret generic whatsapp-token-keys --from-file=dev-key-1=<(head -c 32 /dev/urandom)
	kubectl --context kind-$(KIND_CLUSTER) -n whatsapp-system get secret whatsapp-audit-key >/dev/null 2>&1 || kubectl --context kind-$(KIND_CLUSTER) -n whatsapp-system create secret generic whatsapp-audit-key --from-literal=key="$$(head -c 48 /dev/urandom | base64 -w0)"
	$(TOOLS_BIN)/helm --kube-context kind-$(KIND_CLUSTER) upgrade --install whatsapp charts/whatsapp-operator -n whatsapp-system -f hack/kind/values.yaml --wait --timeout 5m
	kubectl --context kind-$(KIND_CLUSTER) create namespace shop --dry-run=client -o yaml | kubectl --context kind-$(KIND_CLUSTER) apply -f -
	kubectl --context kind-$(KIND_CLUSTER) apply -f examples/tenant-policy.yaml
	kubectl --context kind-$(KIND_CLUSTER) -n whatsapp-system apply -f examples/app.yaml
	kubectl --context kind-$(KIND_CLUSTER) label namespace shop whatsapp.operator.dev/app=demo-app --overwrite
	kubectl --context kind-$(KIND_CLUSTER) -n shop apply -f examples/tenant.yaml
	kubectl --context kind-$(KIND_CLUSTER) -n shop patch wat demo-tenant --type merge -p '{"spec":{"appRef":{"name":"demo-app"}}}'
	kubectl --context kind-$(KIND_CLUSTER) -n shop wait --for=condition=Ready --timeout=120s wat/demo-tenant
	kubectl --context kind-$(KIND_CLUSTER) -n whatsapp-system rollout status deploy/whatsapp-whatsapp-operator-webhook --timeout=120s
	kubectl --context kind-$(KIND_CLUSTER) -n whatsapp-system exec deploy/graph-sim -- python -c 'import json, urllib.request as u; body = {"callback_url": "http://whatsapp-whatsapp-operator-webhook/webhooks/1111111111", "verify_token": "demo-verify-token", "verify": False}; print(u.urlopen(u.Request("http://127.0.0.1:8080/_sim/apps/1111111111/webhook", json.dumps(body).encode(), {"Content-Type": "application/json"})).read().decode())'
	kubectl --context kind-$(KIND_CLUSTER) -n shop get wat -o wide

kind-down: ## (Docker) delete the kind cluster
	$(KIND) delete cluster --name $(KIND_CLUSTER)

# The image's Python (Dockerfile) on Linux x86_64 and aarch64: both must resolve alike, and every
# pin must have a wheel with a locked hash for both (pip download --require-hashes proves it).
LOCK_PLATFORMS := manylinux_2_36 manylinux_2_28 manylinux_2_17 manylinux2014 manylinux_2_5 manylinux1
lock: ## re-pin the image's runtime dependencies to their newest releases, with hashes (requirements.lock)
	rm -rf .run/lock && $(PYTHON) -m venv .run/lock
	.run/lock/bin/python -m pip install -q --upgrade pip uv==$(UV_VERSION)
	for arch in x86_64 aarch64; do \
	  .run/lock/bin/uv pip compile pyproject.toml --quiet --upgrade --generate-hashes --no-header \
	    --no-annotate --python-version $(LOCK_PYTHON) --python-platform $$arch-manylinux_2_28 \
	    -o .run/lock/$$arch.txt || exit 1; \
	done
	cmp .run/lock/x86_64.txt .run/lock/aarch64.txt
	for arch in x86_64 aarch64; do \
	  .run/lock/bin/python -m pip download -q --no-deps --only-binary=:all: --require-hashes \
	    --python-version $(LOCK_PYTHON) $(foreach p,$(LOCK_PLATFORMS),--platform $(p)_$$arch) \
	    -d .run/lock/wheels-$$arch -r .run/lock/x86_64.txt || exit 1; \
	done
	{ head -4 requirements.lock; cat .run/lock/x86_64.txt; } > requirements.lock.new
	mv requirements.lock.new requirements.lock && rm -rf .run/lock

clean: ## remove the venv and local run state (the control-plane build cache stays)
	-hack/control-plane down
	rm -rf $(VENV) .run .mypy_cache .ruff_cache .pytest_cache

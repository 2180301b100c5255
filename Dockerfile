# One image for both entry points: `whatsapp-operator` (the default) and `whatsapp-worker`
# (the Helm chart sets the command per Deployment).
#
#   docker build -t whatsapp-operator:dev .
#
# Stage 1 builds the project's wheel (nothing else). Stage 2 installs the pinned runtime
# dependencies straight from requirements.lock with `--require-hashes` and binary wheels only
# (every pin has its hashes and wheels for linux x86_64 and aarch64: `make lock` checks both),
# then the project's wheel with `--no-deps`, into a virtualenv with no compiler, no pip cache
# and no build tools, and runs as a non-root numeric user (the chart's restricted security
# context relies on it).
#
# The base image is pinned by digest: python:3.11-slim-bookworm (CPython 3.11.16, Debian 12),
# the multi-platform index digest Docker Hub published for that tag in September/October 2026
# (hub.docker.com/v2/repositories/library/python/tags/3.11-slim-bookworm; the builders of this
# project reach no registry, so it was taken from public records of that tag, not pulled).
# Refresh it deliberately, with the lock (its Python must stay the image's: LOCK_PYTHON in the
# Makefile):
#   docker buildx imagetools inspect python:3.11-slim-bookworm   # the "Digest:" line
# and put it on both FROM lines (kept literal, no ARG, so Dependabot can propose it:
# .github/dependabot.yml, ecosystem docker).

FROM python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b AS build
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md LICENSE ./
COPY operator ./operator
COPY worker ./worker
COPY graph ./graph
COPY contract ./contract
COPY simulator ./simulator
COPY webhook ./webhook
RUN python -m pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH
COPY --from=build /wheels /wheels
COPY requirements.lock /tmp/requirements.lock
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --require-hashes --only-binary=:all: \
        --requirement /tmp/requirements.lock \
    && /opt/venv/bin/pip install --no-index --no-deps /wheels/whatsapp_operator-*.whl \
    && /opt/venv/bin/pip uninstall --yes pip \
    && rm -rf /wheels /tmp/requirements.lock
USER 10001:10001
EXPOSE 8080 9090
ENTRYPOINT ["whatsapp-operator"]

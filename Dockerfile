# One image for both entry points: `whatsapp-operator` (the default) and `whatsapp-worker`
# (the Helm chart sets the command per Deployment).
#
#   docker build -t whatsapp-operator:dev .
#
# Stage 1 builds the project's wheel and the wheels of its pinned dependencies
# (requirements.lock: the runtime dependencies only, exact versions, refreshed with
# `make lock`). Stage 2 installs them into a virtualenv with no compiler, no pip cache and no
# build tools, and runs as a non-root numeric user (the chart's restricted security context
# relies on it).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY requirements.lock ./
RUN python -m pip wheel --wheel-dir /wheels --requirement requirements.lock
COPY pyproject.toml README.md LICENSE ./
COPY operator ./operator
COPY worker ./worker
COPY graph ./graph
COPY contract ./contract
COPY simulator ./simulator
COPY webhook ./webhook
RUN python -m pip wheel --no-deps --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH
COPY --from=build /wheels /wheels
COPY requirements.lock /tmp/requirements.lock
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-index --find-links /wheels \
        --requirement /tmp/requirements.lock \
    && /opt/venv/bin/pip install --no-index --no-deps --find-links /wheels whatsapp-operator \
    && /opt/venv/bin/pip uninstall --yes pip \
    && rm -rf /wheels /tmp/requirements.lock
USER 10001:10001
EXPOSE 8080 9090
ENTRYPOINT ["whatsapp-operator"]

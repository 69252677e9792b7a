# syntax=docker/dockerfile:1
# NICPortal node agent image: the standalone nodeagent package (standard library only).
# Build from the repository root:  docker build -f deploy/agent.Dockerfile -t nicportal-agent:0.1.0 .
#
# It runs as nobody (65534) in the host network namespace (DaemonSet, hostNetwork: true):
# netlink dumps and sysfs are readable without privileges, so no capability is needed.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements-agent.txt constraints.txt /build/
RUN /opt/venv/bin/pip install --only-binary=:all: -r /build/requirements-agent.txt \
    -c /build/constraints.txt

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY nodeagent/ nodeagent/
RUN python -m compileall -q /app/nodeagent
USER 65534:65534
EXPOSE 9550
ENTRYPOINT ["python", "-m", "nodeagent"]

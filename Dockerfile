# syntax=docker/dockerfile:1
# spotpack: one image for the webhook, the extender, the provisioner and the
# certificate Job (`spotpack webhook | extender | provisioner | certs`).
# Slim, non-root, pinned base.
#
# The base is pinned to a patch release by tag. Pin it by digest as well where
# you build: this file was written without registry access, so it records no
# digest, and a tag can be re-pushed.
#   docker build --build-arg PYTHON_IMAGE=python:3.11.11-slim-bookworm@sha256:<digest> .
# `make image` tags the result ghcr.io/spotpack/spotpack:<version in pyproject.toml>,
# the image deploy/ names (tests/unit/test_deploy_install.py keeps them equal).
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY spotpack ./spotpack
COPY webhook ./webhook
COPY extender ./extender
COPY provisioner ./provisioner
# The catalog (spotpack/data/*.json) is package data: fail the build, not the
# first start, if it did not make it into the installed package.
RUN python -m venv /opt/spotpack \
 && /opt/spotpack/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/spotpack/bin/pip install --no-cache-dir . \
 && /opt/spotpack/bin/python -c "from importlib.resources import files; import sys; data = files('spotpack') / 'data'; sys.exit(0 if any(p.name.endswith('.json') for p in data.iterdir()) else 'no package data in spotpack/data')"

FROM ${PYTHON_IMAGE}
# 65532 is the conventional "nonroot" uid; the manifests run as it with a read-only root FS.
RUN groupadd --gid 65532 spotpack && useradd --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin spotpack
COPY --from=build /opt/spotpack /opt/spotpack
ENV PATH=/opt/spotpack/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
# webhook (HTTPS), extender (loopback in the scheduler pod), provisioner (HTTP).
EXPOSE 8443 8444 8080
ENTRYPOINT ["spotpack"]
CMD ["--help"]

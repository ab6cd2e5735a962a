# spotpack: one image for the webhook, the extender and the provisioner
# (`spotpack webhook | extender | provisioner`). Slim, non-root, pinned base.
# syntax=docker/dockerfile:1

FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY spotpack ./spotpack
COPY webhook ./webhook
COPY extender ./extender
COPY provisioner ./provisioner
RUN python -m venv /opt/spotpack \
 && /opt/spotpack/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/spotpack/bin/pip install --no-cache-dir .

FROM python:3.11.11-slim-bookworm
# 65532 is the conventional "nonroot" uid; the manifests run as it with a read-only root FS.
RUN groupadd --gid 65532 spotpack && useradd --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin spotpack
COPY --from=build /opt/spotpack /opt/spotpack
ENV PATH=/opt/spotpack/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
EXPOSE 8443 8444
ENTRYPOINT ["spotpack"]
CMD ["--help"]

# Every service image on Debian bookworm, one build per service (all but vggface2, which has its
# own docker/vggface2.Dockerfile). What differs between them lives in the service's folder:
#   services/<service>/requirements.txt   the pinned Python packages (the same file the local
#                                         .venvs/<service> uses); a torch pin comes from PyTorch's
#                                         CPU index or the local .whl/ wheelhouse (below)
#   services/<service>/image.conf         optional: APT_PACKAGES, extra Debian packages (pinned),
#                                         and DEFAULT_COMMAND, what a bare `docker run IMAGE`
#                                         runs (docker/entrypoint.sh)
# Build from the project root (`make images` or `invoke images.build --only dlib`):
#   docker build -f docker/service.Dockerfile --build-arg SERVICE=dlib -t faces/dlib .
# Run:  docker run --rm --network none IMAGE embed --model model5_dlib ...  (README)
ARG BASE_IMAGE=debian:bookworm-slim

# Local wheels: .whl/ in the project root. The dlib image needs the OpenBLAS dlib wheel that
# services/dlib/build-wheel.sh puts there (`make images` builds it first); a host whose pip keeps
# the CPU torch wheel locally puts that there too. Without the folder, this stage is empty.
FROM scratch AS wheelhouse
COPY .whl* /

FROM ${BASE_IMAGE}

# The same first layers in every bookworm image, so the engine builds and stores them once.
# Debian packages pinned to bookworm's versions (libgomp1: OpenMP, which the wheels load).
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      python3=3.11.2-1+b1 python3-venv=3.11.2-1+b1 libgomp1=12.2.0-14+deb12u1 \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/venv \
 && useradd --uid 1000 --user-group --no-create-home --home-dir /tmp faces

# The service's own Debian packages (image.conf's APT_PACKAGES), when it names any. SERVICE is
# required (without it, `services//requirements.txt` is not found).
ARG SERVICE
COPY services/${SERVICE}/image.con[f] /tmp/faces-image/
RUN APT_PACKAGES= \
 && if [ -f /tmp/faces-image/image.conf ]; then . /tmp/faces-image/image.conf; fi \
 && if [ -n "$APT_PACKAGES" ]; then \
      apt-get update \
      && apt-get install -y --no-install-recommends $APT_PACKAGES \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
 && rm -rf /tmp/faces-image

# Pinned Python packages. torch first, alone, where the service pins it: PyPI's Linux torch
# wheels are CUDA builds (GBs), so it comes from PyTorch's CPU index, or from the local
# wheelhouse (then pass --build-arg TORCH_INDEX= where that index is unreachable). A CA bundle
# passed as the optional build secret `ca` is trusted by pip (hosts behind a TLS-inspecting
# proxy); without it pip uses its own certificates.
COPY services/${SERVICE}/requirements.txt /app/services/${SERVICE}/requirements.txt
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN --mount=type=bind,from=wheelhouse,target=/wheels \
    --mount=type=secret,id=ca --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
 && requirements=/app/services/${SERVICE}/requirements.txt \
 && torch=$(grep -o '^torch==[^ ]*' "$requirements" || true) \
 && if [ -n "$torch" ]; then \
      /opt/venv/bin/pip install --disable-pip-version-check --no-deps --find-links /wheels \
        ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"} "$torch"; \
    fi \
 && /opt/venv/bin/pip install --disable-pip-version-check --find-links /wheels --only-binary dlib \
      -r "$requirements"

# The code last: editing it rebuilds only these small layers. Weights are mounted at run time.
COPY docker/entrypoint.sh /usr/local/bin/faces-run
COPY shared /app/shared
COPY services/${SERVICE} /app/services/${SERVICE}
ENV PATH=/opt/venv/bin:$PATH HOME=/tmp PYTHONDONTWRITEBYTECODE=1 FACES_SERVICE=${SERVICE}
USER faces
WORKDIR /tmp
ENTRYPOINT ["faces-run"]
# No arguments: the entrypoint runs the service's DEFAULT_COMMAND (image.conf).
CMD []

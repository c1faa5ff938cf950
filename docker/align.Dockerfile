# The align image: face detection and 5-point alignment to the ArcFace template
# (services/align/align.py): face-alignment's S3FD + 2DFAN4 on torch (CPU), with InsightFace's
# MTCNN (MXNet) and dlib as fallbacks. Detector weights are mounted at run time, like all weights.
# Build from the project root (`make images` or `invoke images.build --only align`):
#   docker build -f docker/align.Dockerfile -t faces/align .
# Run:  docker run --rm --network none IMAGE align --images ... --list ... --out ...  (README)
ARG BASE_IMAGE=debian:bookworm-slim

# Optional local wheels: .whl/ in the project root, when present (a host whose pip keeps the CPU
# torch wheel locally puts it there); without it, this stage is empty.
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

# MXNet's own library links libquadmath; opencv-python (face-alignment requires the GUI build,
# not -headless) links libGL and GLib.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libquadmath0=12.2.0-14+deb12u1 \
      libgl1=1.6.0-1 libglib2.0-0=2.74.6-2+deb12u9 \
 && rm -rf /var/lib/apt/lists/*

# Pinned Python packages (the same file the local .venvs/align uses). torch first, alone: PyPI's
# Linux torch wheels are CUDA builds (GBs), so it comes from PyTorch's CPU index, or from the
# local wheelhouse (then pass --build-arg TORCH_INDEX= where that index is unreachable). A CA
# bundle passed as the optional build secret `ca` is trusted by pip.
COPY services/align/requirements.txt /app/services/align/requirements.txt
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN --mount=type=bind,from=wheelhouse,target=/wheels \
    --mount=type=secret,id=ca --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
 && torch=$(grep -o '^torch==[^ ]*' /app/services/align/requirements.txt) \
 && /opt/venv/bin/pip install --disable-pip-version-check --no-deps --find-links /wheels \
      ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"} "$torch" \
 && /opt/venv/bin/pip install --disable-pip-version-check -r /app/services/align/requirements.txt

# The code last: editing it rebuilds only these small layers. Weights are mounted at run time.
COPY docker/entrypoint.sh /usr/local/bin/faces-run
COPY shared /app/shared
COPY services/align /app/services/align
ENV PATH=/opt/venv/bin:$PATH HOME=/tmp PYTHONDONTWRITEBYTECODE=1 FACES_SERVICE=align
USER faces
WORKDIR /tmp
ENTRYPOINT ["faces-run"]
CMD ["align", "--help"]

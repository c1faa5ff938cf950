# The head image: the Keras heads, pseudo-labels, ensembles and submissions on TensorFlow/Keras
# (services/head/train.py and steps.py).
# Build from the project root (`make images` or `invoke images.build --only head`):
#   docker build -f docker/head.Dockerfile -t faces/head .
# Run:  docker run --rm --network none IMAGE train --model ... / steps ...  (README)
ARG BASE_IMAGE=debian:bookworm-slim
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

# Pinned Python packages (the same file the local .venvs/head uses). A CA bundle passed
# as the optional build secret `ca` is trusted by pip (hosts behind a TLS-inspecting proxy);
# without it pip uses its own certificates.
COPY services/head/requirements.txt /app/services/head/requirements.txt
RUN --mount=type=secret,id=ca --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
 && /opt/venv/bin/pip install --disable-pip-version-check -r /app/services/head/requirements.txt

# The code last: editing it rebuilds only these small layers. Weights are mounted at run time.
COPY docker/entrypoint.sh /usr/local/bin/faces-run
COPY shared /app/shared
COPY services/head /app/services/head
ENV PATH=/opt/venv/bin:$PATH HOME=/tmp PYTHONDONTWRITEBYTECODE=1 FACES_SERVICE=head
USER faces
WORKDIR /tmp
ENTRYPOINT ["faces-run"]
CMD ["train", "--help"]

# The vggface2 image: Caffe backbones (the VGGFace2 models, the Caffe MobileFaceNet) run by
# Caffe 1.0 itself through pycaffe (services/vggface2/embed.py with FACES_CAFFE_BACKEND=caffe).
# Debian bullseye is the last release that packages Caffe (python3-caffe, Python 3.9); it also
# has Python 2.7, the original solution's Caffe interpreter, under which the entrypoint's code
# must still compile (tests/test_docker.py checks it in this image).
# `--engine openvino` is local only for this service: OpenVINO 2026 has no Python 3.9 wheel, so
# here the engine is refused as a usage error (tests/test_engine.py); the local venv has it.
# Build from the project root (`make images` or `invoke images.build --only vggface2`):
#   docker build -f docker/vggface2.Dockerfile -t faces/vggface2 .
# Run:  docker run --rm --network none IMAGE embed --model caffe_mobilefacenet ...  (README)
ARG BASE_IMAGE=debian:bullseye-slim
FROM ${BASE_IMAGE}

# Everything from Debian, pinned to bullseye's versions: pycaffe and what it imports (numpy,
# scipy, scikit-image, protobuf come with it), PyYAML, Pillow, tqdm for the shared code.
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      python3-caffe=1.0.0+git20180821.99bd997-8+b2 python3=3.9.2-3 \
      python3-yaml=5.3.1-5 python3-pil=8.1.2+dfsg-0.3+deb11u2 python3-tqdm=4.57.0-2 \
      python2.7-minimal=2.7.18-8+deb11u1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 1000 --user-group --no-create-home --home-dir /tmp faces

# The code last: editing it rebuilds only these small layers. Weights are mounted at run time.
COPY docker/entrypoint.sh /usr/local/bin/faces-run
COPY shared /app/shared
COPY services/vggface2 /app/services/vggface2
ENV HOME=/tmp PYTHONDONTWRITEBYTECODE=1 FACES_SERVICE=vggface2 FACES_PYTHON=python3 \
    FACES_CAFFE_BACKEND=caffe GLOG_minloglevel=2 MPLCONFIGDIR=/tmp
USER faces
WORKDIR /tmp
ENTRYPOINT ["faces-run"]
CMD ["embed", "--help"]

#!/usr/bin/env bash
# Make sure a Docker engine answers: install Debian's docker.io if dockerd is missing, start
# dockerd in the background if nothing answers, wait for it. Exits non-zero, saying why, when
# no engine can be had (CI must not silently skip the image tests). Needs root to install or
# start the engine; a running engine (e.g. Docker Desktop) is simply used.
set -euo pipefail
DOCKER=${DOCKER:-/usr/bin/docker}   # Debian's client: BuildKit works; /usr/local/bin/docker 28.x lacks buildx
LOG=${DOCKERD_LOG:-/tmp/dockerd.log}
WAIT_S=${DOCKERD_WAIT_S:-60}

answers() { [ -x "$DOCKER" ] && "$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

if answers; then
  echo "docker engine: already running ($("$DOCKER" version --format '{{.Server.Version}}'))"
  exit 0
fi
if ! command -v dockerd >/dev/null 2>&1 || [ ! -x "$DOCKER" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "docker engine: no dockerd here and not root: install docker.io (or Docker Engine)" >&2
    exit 1
  fi
  echo "docker engine: installing Debian's docker.io"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io >/dev/null
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "docker engine: dockerd is installed but not running, and only root can start it" >&2
  exit 1
fi
echo "docker engine: starting dockerd (log: $LOG)"
nohup dockerd >"$LOG" 2>&1 &
echo $! > /tmp/dockerd.started-pid
for _ in $(seq "$WAIT_S"); do
  if answers; then
    echo "docker engine: running ($("$DOCKER" version --format '{{.Server.Version}}'), pid $(cat /tmp/dockerd.started-pid))"
    exit 0
  fi
  sleep 1
done
echo "docker engine: dockerd did not answer within ${WAIT_S} s; last lines of $LOG:" >&2
tail -20 "$LOG" >&2
exit 1

#!/bin/sh
# Every image's entrypoint: `docker run IMAGE NAME [ARGS...]` runs services/$FACES_SERVICE/NAME.py
# with the image's Python, the way the local runner runs it in .venvs/<service>/; e.g.
#   docker run --rm IMAGE embed --model model4_insightface --images ... --out ...
set -eu
service_dir="/app/services/${FACES_SERVICE:?the image sets FACES_SERVICE}"
# The service's scripts: its top-level modules that run as programs.
available=$(cd "$service_dir" && grep -l "^if __name__ == .__main__.:" [!_]*.py 2>/dev/null | sed 's/\.py$//' | tr '\n' ' ')
if [ $# -eq 0 ]; then
  # No arguments: the service's DEFAULT_COMMAND (services/<service>/image.conf), else embed's help.
  DEFAULT_COMMAND="embed --help"
  if [ -f "$service_dir/image.conf" ]; then . "$service_dir/image.conf"; fi
  set -- $DEFAULT_COMMAND
fi
requested=$1
shift
case "$requested" in
  */*|.*|_*) name="" ;;  # only the service's own top-level scripts
  *) name=$requested ;;
esac
if [ -z "$name" ] || ! printf ' %s ' "$available" | grep -q " $name "; then
  echo "unknown entrypoint '$requested'; entrypoints of the ${FACES_SERVICE} image: ${available}" >&2
  exit 2
fi
exec "${FACES_PYTHON:-python}" "$service_dir/$name.py" "$@"

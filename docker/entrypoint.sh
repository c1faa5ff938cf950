#!/bin/sh
# Every image's entrypoint: `docker run IMAGE NAME [ARGS...]` runs services/$FACES_SERVICE/NAME.py
# with the image's Python, the way the local runner runs it in .venvs/<service>/; e.g.
#   docker run --rm IMAGE embed --model model4_insightface --images ... --out ...
set -eu
service_dir="/app/services/${FACES_SERVICE:?the image sets FACES_SERVICE}"
available=$(cd "$service_dir" && ls *.py 2>/dev/null | sed -n 's/\.py$//p' | grep -v '^_' | tr '\n' ' ')
if [ $# -eq 0 ]; then
  echo "usage: docker run [options] IMAGE ENTRYPOINT [ARGS...]; entrypoints of the ${FACES_SERVICE} image: ${available}" >&2
  exit 2
fi
requested=$1
shift
case "$requested" in
  */*|.*|_*) name="" ;;  # only the service's own top-level scripts
  *) name=$requested ;;
esac
if [ -z "$name" ] || [ ! -f "$service_dir/$name.py" ]; then
  echo "unknown entrypoint '$requested'; entrypoints of the ${FACES_SERVICE} image: ${available}" >&2
  exit 2
fi
exec "${FACES_PYTHON:-python}" "$service_dir/$name.py" "$@"

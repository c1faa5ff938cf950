#!/usr/bin/env bash
# Make the Debian base images the Dockerfiles start FROM available to the local engine, under
# their Docker Hub names (debian:bookworm-slim, debian:bullseye-slim), so the Dockerfiles stay
# unchanged. An image already present is kept; otherwise it is pulled; where no registry can be
# reached (a build host with only Debian's archive), it is built from the archive with
# debootstrap and `docker import`, trimmed the way Docker's official slim images are.
#   docker/base-images.sh [SUITE ...]      (default: bookworm bullseye; needs root to debootstrap)
set -euo pipefail
DOCKER=${DOCKER:-/usr/bin/docker}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(bookworm bullseye)

for suite in "${suites[@]}"; do
  tag="debian:${suite}-slim"
  if "$DOCKER" image inspect "$tag" >/dev/null 2>&1; then
    echo "base image $tag: present"
    continue
  fi
  if "$DOCKER" pull -q "$tag" >/dev/null 2>&1; then
    echo "base image $tag: pulled"
    continue
  fi
  command -v debootstrap >/dev/null || { echo "base image $tag: no registry and no debootstrap (apt-get install debootstrap)" >&2; exit 1; }
  started=$(date +%s)
  root=$(mktemp -d "/tmp/debootstrap-${suite}.XXXXXX")
  trap 'rm -rf "$root"' EXIT
  echo "base image $tag: no registry; building it with debootstrap from $MIRROR"
  debootstrap --variant=minbase "$suite" "$root" "$MIRROR" >"$root.log" 2>&1 \
    || { echo "debootstrap $suite failed; last lines of $root.log:" >&2; tail -20 "$root.log" >&2; exit 1; }
  # What the official slim images leave out: docs, man pages, other locales, apt caches.
  rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
         "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
         "$root"/var/log/*.log
  find "$root"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  tar -C "$root" -c . | "$DOCKER" import \
    -c 'CMD ["bash"]' -c 'ENV LANG=C.UTF-8' \
    -m "debootstrap --variant=minbase $suite $MIRROR" - "$tag" >/dev/null
  rm -rf "$root" "$root.log"
  trap - EXIT
  echo "base image $tag: built in $(( $(date +%s) - started )) s, $("$DOCKER" image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}')"
done

#!/usr/bin/env bash
# Make the Debian base images the Dockerfiles start FROM available to the local engine, under
# their Docker Hub names (debian:bookworm-slim, debian:bullseye-slim), so the Dockerfiles stay
# unchanged. An image already present is kept; otherwise it is pulled; where no registry can be
# reached (a build host with only Debian's archive), it is built from the archive with
# debootstrap and `docker import`, trimmed the way Docker's official slim images are.
#   docker/base-images.sh [SUITE ...]      (default: bookworm bullseye; needs root to debootstrap)
# Several suites are made at the same time (debootstrap mostly waits on the network).
set -euo pipefail
DOCKER=${DOCKER:-/usr/bin/docker}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(bookworm bullseye)

make_base() {
  local suite=$1 tag root started
  tag="debian:${suite}-slim"
  if "$DOCKER" image inspect "$tag" >/dev/null 2>&1; then
    echo "base image $tag: present"
    return 0
  fi
  if "$DOCKER" pull -q "$tag" >/dev/null 2>&1; then
    echo "base image $tag: pulled"
    return 0
  fi
  command -v debootstrap >/dev/null || { echo "base image $tag: no registry and no debootstrap (apt-get install debootstrap)" >&2; return 1; }
  started=$(date +%s)
  root=$(mktemp -d "/tmp/debootstrap-${suite}.XXXXXX")
  echo "base image $tag: no registry; building it with debootstrap from $MIRROR"
  debootstrap --variant=minbase "$suite" "$root" "$MIRROR" >"$root.log" 2>&1 \
    || { echo "debootstrap $suite failed; last lines of $root.log:" >&2; tail -20 "$root.log" >&2; rm -rf "$root"; return 1; }
  # What the official slim images leave out (docs, man pages, locales, apt caches), now and in
  # every package installed later, as their /etc/dpkg and /etc/apt settings do.
  cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/man/*
CFG
  cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
Acquire::GzipIndexes "true";
Acquire::CompressionTypes::Order:: "gz";
APT::AutoRemove::SuggestsImportant "false";
CFG
  find "$root"/usr/share/doc -mindepth 1 ! -name copyright ! -type d -delete
  rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* \
         "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
         "$root"/var/log/*.log
  find "$root"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  tar -C "$root" -c . | "$DOCKER" import \
    -c 'CMD ["bash"]' \
    -m "debootstrap --variant=minbase $suite $MIRROR" - "$tag" >/dev/null
  rm -rf "$root" "$root.log"
  echo "base image $tag: built in $(( $(date +%s) - started )) s, $("$DOCKER" image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}')"
}

pids=()
for suite in "${suites[@]}"; do
  make_base "$suite" &
  pids+=($!)
done
failed=0
for pid in "${pids[@]}"; do
  wait "$pid" || failed=1
done
exit "$failed"

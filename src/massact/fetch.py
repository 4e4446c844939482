"""Download package archives so that nothing from them is used, or run, before its
sha256 is checked.

- **Wheels** are fetched by pip in hash-checking mode (``--require-hashes``, binary
  only): pip compares the archive with the pinned sha256 as it downloads it, before
  anything is unpacked, and a wheel is never built, so no code from it runs.
- **Source distributions** are never given to pip to download: ``pip download`` of an
  sdist prepares its metadata, which runs the package's own build code (``setup.py``)
  before the project could look at the archive. Instead pip is asked only *where* the
  archive is (binary-only, so it cannot download or build the source), the project
  fetches those bytes itself and keeps them only if their sha256 is the pinned one.

Either way pip's own configuration (index, extra indexes, find-links) decides where
the files come from; a source archive's bytes are then read with Python's urllib
(certificates from PIP_CERT, REQUESTS_CA_BUNDLE or SSL_CERT_FILE, else the system's;
proxies from the usual environment variables). An archive already in the download
folder with the pinned sha256 is used without any network access.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from urllib.parse import unquote
import zipfile
from pathlib import Path

from .errors import UserError
from .io import sha256_file

log = logging.getLogger(__name__)


def _name_version(requirement: str) -> tuple[str, str]:
    name, _, version = requirement.partition("==")
    if not name or not version:
        raise UserError(f"{requirement!r} is not of the form name==version")
    return name, version


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def mismatch(what: str, expected: str, got: str, where: str = "") -> UserError:
    return UserError(
        f"checksum mismatch for {what}: expected sha256 {expected.lower()}, got {got}"
        f"{where}. Nothing from it was used. The download is corrupt or the package on "
        "the index changed: run again; if it persists, check the version and the sha256 "
        "in the config (a changed archive under the same version is a reason for "
        "suspicion, not for updating the hash).")


def check_sha256(path: Path, expected: str, what: str) -> None:
    got = sha256_file(path)
    if got != expected.lower():
        raise mismatch(what, expected, got, f" ({path})")


def _verified(dest: Path, name: str, sha256: str) -> Path | None:
    """An archive of package ``name`` already in ``dest`` with the pinned sha256."""
    if not dest.is_dir():
        return None
    for p in sorted(dest.iterdir()):
        if p.is_file() and _normalized(p.name).startswith(_normalized(name) + "_") \
                and sha256_file(p) == sha256.lower():
            return p
    return None


def _pip(args: list[str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pip", *args, "--disable-pip-version-check"]
    return subprocess.run(cmd, capture_output=True, text=True)


def fetch_wheel(requirement: str, sha256: str, dest: Path) -> Path:
    """The wheel of ``requirement`` (name==version) in ``dest``, checked by pip against
    ``sha256`` before it is unpacked. Raise UserError on a mismatch or a failed download."""
    name, _ = _name_version(requirement)
    dest = Path(dest)
    found = _verified(dest, name, sha256)
    if found:
        return found
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="massact-pip-") as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text(f"{requirement} --hash=sha256:{sha256.lower()}\n")
        log.info("downloading %s with pip (hash-checking mode)", requirement)
        proc = _pip(["download", "--no-deps", "--only-binary=:all:", "--require-hashes",
                     "-d", tmp, "-r", str(req)])
        text = (proc.stderr or "") + (proc.stdout or "")
        if proc.returncode != 0:
            got = re.search(r"Got\s+([0-9a-f]{64})", text)
            if "DO NOT MATCH THE HASHES" in text and got:
                raise mismatch(f"package {requirement}", sha256, got.group(1),
                               " (pip checked the archive before unpacking it)")
            tail = "\n".join(text.strip().splitlines()[-5:])
            raise UserError(
                f"could not download {requirement!r} with pip:\n{tail}\n"
                "Check that pip can reach its package index (pip config list), or download "
                "the file elsewhere and use a 'path' source.")
        wheels = [p for p in Path(tmp).iterdir() if p.suffix == ".whl"]
        if len(wheels) != 1:
            raise UserError(f"pip reported success for {requirement!r} but left "
                            f"{len(wheels)} wheels")
        check_sha256(wheels[0], sha256, f"package {requirement}")  # pip did; say it twice
        out = dest / wheels[0].name
        shutil.move(wheels[0], out)
    return out


def locate_sdist(requirement: str) -> str:
    """The address pip's configured indexes give for the source archive of
    ``requirement``. pip runs binary-only, so it lists the links and can neither
    download nor build the source distribution."""
    name, version = _name_version(requirement)
    # binary-only for a Python that does not exist: no file of any kind can be chosen, so
    # pip lists the links and stops, having downloaded and built nothing
    proc = _pip(["download", "-vv", "--no-deps", "--only-binary=:all:", "--python-version", "1",
                 "-d", os.devnull, requirement])
    links = re.findall(r"(?:Found link|Skipping link: [^\n]*?:) (\S+?),?(?=\s|$)",
                       proc.stdout + proc.stderr, re.M)
    for link in links:
        filename = unquote(link.split("#")[0].split("?")[0].rsplit("/", 1)[-1])
        for ext in (".tar.gz", ".zip"):
            if filename.endswith(ext) and "-" in filename:
                n, v = filename[: -len(ext)].rsplit("-", 1)
                if _normalized(n) == _normalized(name) and v == version:
                    return link.split("#")[0]
    raise UserError(
        f"pip's package index has no source archive of {requirement!r}. Check the name and "
        "version, and that pip can reach its index (pip config list).")


def _ssl_context():
    """Certificates as pip would take them from the environment (PIP_CERT,
    REQUESTS_CA_BUNDLE, SSL_CERT_FILE), else the system's. Proxies come from the usual
    environment variables (urllib reads them)."""
    import ssl

    for var in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        if os.environ.get(var):
            return ssl.create_default_context(cafile=os.environ[var])
    return ssl.create_default_context()


def fetch_sdist(requirement: str, sha256: str, dest: Path) -> Path:
    """The source archive of ``requirement`` in ``dest``: fetched without pip building
    it, kept only if its sha256 is ``sha256``; nothing in it is executed."""
    name, _ = _name_version(requirement)
    dest = Path(dest)
    found = _verified(dest, name, sha256)
    if found:
        return found
    url = locate_sdist(requirement)
    filename = unquote(url.rsplit("/", 1)[-1])
    dest.mkdir(parents=True, exist_ok=True)
    part = dest / (filename + ".part")
    log.info("downloading %s (source archive, not built)", requirement)
    try:
        with urllib.request.urlopen(url, timeout=180, context=_ssl_context()) as r, \
                open(part, "wb") as out:
            shutil.copyfileobj(r, out, 1 << 20)
    except OSError as e:
        part.unlink(missing_ok=True)
        raise UserError(f"could not download {requirement!r} from its index ({e}); "
                        "check the network and run again")
    got = sha256_file(part)
    if got != sha256.lower():
        part.unlink()
        raise mismatch(f"package {requirement}", sha256, got,
                       " (checked before the archive was opened; it was deleted)")
    out = dest / filename
    part.replace(out)
    return out


def extract_member(archive: Path, member: str, dest: Path) -> Path:
    """Extract one file of a wheel (zip) or sdist (tar.gz) to ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        if archive.suffix == ".whl" or zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z, z.open(member) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
        else:
            with tarfile.open(archive) as t:
                src = t.extractfile(member)
                if src is None:
                    raise KeyError(member)
                with open(dest, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
    except KeyError:
        raise UserError(f"{archive.name} has no file {member!r}: is the package version right?")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as e:
        raise UserError(f"{archive} is corrupt ({e}); delete it and run again")
    return dest

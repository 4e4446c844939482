"""Where a job computes: the device it resolves to and the threads it pins (massact.runtime)."""

import os
from types import SimpleNamespace

import pytest
import torch

from massact.errors import UserError
from massact.runtime import resolve_device, rule_context, set_threads


@pytest.fixture
def gpu(monkeypatch):
    """gpu(True/False): make this process see, or not see, a CUDA device."""
    def see(available: bool):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    return see


@pytest.fixture
def restore_threads(monkeypatch):
    """Put torch's thread count and OMP_NUM_THREADS back after the test."""
    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", str(before)))
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("seen", [True, False])
def test_cpu_is_cpu_whatever_the_machine(gpu, seen):
    gpu(seen)
    assert resolve_device("cpu") == "cpu"


def test_auto_is_cuda_when_the_job_sees_a_gpu(gpu):
    gpu(True)
    assert resolve_device("auto") == "cuda"
    assert resolve_device() == "cuda"  # auto is the default


def test_auto_falls_back_to_cpu_without_a_gpu(gpu):
    gpu(False)
    assert resolve_device("auto") == "cpu"
    assert resolve_device() == "cpu"


def test_cuda_with_a_gpu(gpu):
    gpu(True)
    assert resolve_device("cuda") == "cuda"


def test_cuda_without_a_gpu_says_what_to_do(gpu):
    gpu(False)
    with pytest.raises(UserError) as e:
        resolve_device("cuda")
    msg = str(e.value)
    assert "no GPU" in msg  # what went wrong
    assert "device: auto" in msg and "cpu" in msg  # and what to do


@pytest.mark.parametrize("bad", ["gpu", "CUDA", "cuda:0", "mps", ""])
def test_unknown_devices_are_refused_with_the_choices(gpu, bad):
    gpu(True)
    with pytest.raises(UserError, match="auto, cpu or cuda"):
        resolve_device(bad)


def test_no_gpu_needed_to_resolve_on_this_machine():
    """Without monkeypatching: whatever this machine has, auto picks a device that works."""
    device = resolve_device("auto")
    assert device == ("cuda" if torch.cuda.is_available() else "cpu")
    torch.zeros(2, device=device)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_set_threads_pins_torch_to_the_allocation(restore_threads, n):
    assert set_threads(n) == n
    assert torch.get_num_threads() == n
    assert os.environ["OMP_NUM_THREADS"] == str(n)


@pytest.mark.parametrize("n, want", [(0, 1), (-4, 1), ("2", 2)])
def test_set_threads_takes_at_least_one(restore_threads, n, want):
    assert set_threads(n) == want
    assert torch.get_num_threads() == want


@pytest.mark.parametrize("asked, slurm, want", [(8, "2", 2), (1, "4", 1), (3, "", 3)])
def test_a_slurm_allocation_caps_the_threads(restore_threads, monkeypatch, asked, slurm, want):
    """A rule asking for every core gets at most the CPUs SLURM allocated to the job."""
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", slurm)
    assert set_threads(asked) == want
    assert torch.get_num_threads() == want


def test_set_threads_twice_in_one_process(restore_threads):
    """The inter-op pool can be set once per process; a second call must still work."""
    set_threads(2)
    set_threads(1)
    assert torch.get_num_threads() == 1


def test_a_rule_body_runs_with_the_jobs_threads(restore_threads, tmp_path):
    """rule_context pins the threads snakemake gives the job (--cpus-per-task under SLURM)."""
    job = SimpleNamespace(log=[str(tmp_path / "job.log")], threads=2, rule="extract_activations")
    torch.set_num_threads(1)
    with rule_context(job):
        inside = torch.get_num_threads()
    assert inside == 2


def test_a_job_log_holds_what_it_printed_and_wrote(tmp_path, capsys):
    out = tmp_path / "table.csv"
    job = SimpleNamespace(log=[str(tmp_path / "job.log")], threads=1, rule="massive_table",
                          output=[str(out)])
    with rule_context(job):
        print("3 massive activations found")
        out.write_text("a,b\n")
    text = (tmp_path / "job.log").read_text()
    assert "3 massive activations found" in text
    assert f"done: wrote {out} (4 bytes)" in text
    assert "massive activations" not in capsys.readouterr().out  # the log, not the console


def test_a_job_asking_for_cuda_without_a_gpu_fails_with_advice(gpu, tmp_path, capsys):
    """The failure a user sees when device: cuda lands on a CPU-only node."""
    gpu(False)
    log = tmp_path / "job.log"
    job = SimpleNamespace(log=[str(log)], threads=1, rule="extract_activations")
    before = torch.get_num_threads()
    try:
        with pytest.raises(SystemExit) as e:
            with rule_context(job):
                resolve_device("cuda")
    finally:
        torch.set_num_threads(before)
    assert e.value.code == 1
    assert "device: auto" in log.read_text() and "Traceback" not in log.read_text()
    assert "ERROR in rule extract_activations" in capsys.readouterr().err

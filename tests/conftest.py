"""Shared test set-up.

The suite runs as ``pytest -n 2`` on 2 cores: each worker gets one intra-op thread, since
two OpenMP thread pools spinning on two cores make every step many times slower.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run ``dlcamp ARGS`` as a user would: a subprocess, its status and output."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "dlcamp", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def run_cli_in_process(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """``dlcamp ARGS`` through ``dlcamp.cli.main.main`` in this process: the same exit status and
    output as the subprocess, without importing torch and Lightning again (4-5 s a call).

    What only a process of its own can show goes to ``run_cli``: another environment (a
    crash injected by ``DLCAMP_CRASH_AFTER_STEP``, plug-ins on the path), another working
    directory, and DDP (``--devices``), whose launcher starts copies of the running program.
    The global RNG state is restored afterwards, so tests do not see each other's draws.
    """
    if cwd is not None or env is not None or "--devices" in args:
        return run_cli(*args, cwd=cwd, env=env, timeout=timeout)
    import contextlib
    import io

    from dlcamp.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), torch.random.fork_rng(devices=[]):
        try:
            code = main(list(args))
        except SystemExit as e:  # argparse's own errors and --help
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    return subprocess.CompletedProcess(["dlcamp", *args], code, out.getvalue(), err.getvalue())


@pytest.fixture
def cli():
    return run_cli_in_process


# A tiny version of the foundation recipe: a few epochs, a small MLP, fast on 1 thread.
TINY = ["--set", "trainer.max_epochs=2", "--set", "model.width=32", "--set", "trainer.log_every_n_steps=5"]


@pytest.fixture
def tiny():
    return list(TINY)


def _check_usage_error(proc, *words):
    """A user's mistake: exit status 2, one line on stderr (no traceback) naming ``words``."""
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for w in words:
        assert w in lines[0], lines[0]


@pytest.fixture
def usage_error():
    return _check_usage_error


def randomise_norms(model: torch.nn.Module, seed: int = 1) -> None:
    """Give every batch norm non-trivial running statistics and affine parameters (conformance tests)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                m.running_var.copy_(torch.empty(n).uniform_(0.8, 1.2, generator=g))
                m.weight.copy_(torch.empty(n).uniform_(0.8, 1.2, generator=g))
                m.bias.copy_(0.1 * torch.randn(n, generator=g))

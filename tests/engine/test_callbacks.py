"""Engine callbacks: atomic checkpoint files and the RNG state carried in checkpoints."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from dlcamp.engine.callbacks import AtomicCheckpointIO, RunState


def test_atomic_checkpoint_leaves_old_file_when_save_fails(tmp_path):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        io.save_checkpoint({"step": 2, "bad": Unpicklable()}, path)
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary file left


def test_run_state_restores_every_random_stream():
    state = RunState()
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    saved = state.state_dict()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(2), np.random.seed(2), random.seed(2)
    restored = RunState()
    restored.load_state_dict(torch.load(_roundtrip(saved), weights_only=True))  # as a checkpoint would
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], got[0]) and np.array_equal(expected[1], got[1]) and expected[2] == got[2]


def _roundtrip(obj):
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return buf

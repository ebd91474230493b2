"""Progress lines of long loops and the training's stopping message."""

from __future__ import annotations

import numpy as np

from ccframe.logs import Progress, with_progress


def test_progress_lines_count_items_and_share():
    lines: list[str] = []
    progress = Progress("read", lines.append, total=40, every_s=0.0)
    for _ in range(4):
        progress.update(10)
    assert len(lines) == 4
    assert lines[-1].startswith("read: 40 waveforms of 40 (100%) (")
    assert lines[0].startswith("read: 10 waveforms of 40 (25%)")


def test_progress_is_throttled():
    lines: list[str] = []
    progress = Progress("infer", lines.append, every_s=3600.0)
    for _ in range(100):
        progress.update(5)
    assert lines == [] and progress.done == 500


def test_with_progress_passes_chunks_through_and_counts_entries():
    lines: list[str] = []
    chunks = [{"a": np.zeros(3), "b": np.ones(3)}, {"a": np.zeros(2), "b": np.ones(2)}]
    progress = Progress("simulate", lines.append, total=5, every_s=0.0)
    assert list(with_progress(chunks, progress)) == chunks
    assert progress.done == 5 and lines[-1].startswith("simulate: 5 waveforms of 5 (100%)")


def test_stopping_message_says_why_and_which_epoch():
    from ccframe.ml.config import TrainingConfig
    from ccframe.ml.train import stopping_message

    cfg = TrainingConfig(epochs=20, patience=3)
    early = stopping_message("counter", 9, 6, 0.1234, cfg)
    assert "stopped early after epoch 9 of 20 (no lower validation loss for 3 epochs)" in early
    assert early.endswith("restored the weights of epoch 6 (val_loss 0.1234)")
    assert "ran all 20 epochs" in stopping_message("counter", 20, 20, 0.1, cfg)

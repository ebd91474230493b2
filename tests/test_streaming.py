"""Training that streams: arrays on disk, the epoch order of streamed batches, time lists
encoded per batch, and a model trained from batches."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccframe.errors import InputError
from ccframe.kernels.config import TimeListConfig
from ccframe.kernels.timelist import encode_accepted, encode_time_list
from ccframe.ml.batches import ArrayBatches, EpochOrder, TimeListBatches, WindowBatches
from ccframe.ml.store import ArrayWriter, read_arrays


def test_array_folder_appends_and_maps(tmp_path):
    writer = ArrayWriter(tmp_path / "a", "key")
    rng = np.random.default_rng(0)
    parts = [rng.normal(size=(n, 3, 1)).astype(np.float32) for n in (5, 0, 7)]
    for part in parts:
        writer.append("x", part)
    writer.append("n", np.arange(4, dtype=np.int16))
    writer.close({"note": "hi"})
    arrays, attrs = read_arrays(tmp_path / "a")
    assert attrs == {"note": "hi"}
    assert isinstance(arrays["x"], np.memmap) and not arrays["x"].flags.writeable
    np.testing.assert_array_equal(arrays["x"], np.concatenate(parts))
    assert arrays["n"].dtype == np.int16 and arrays["n"].tolist() == [0, 1, 2, 3]
    other = ArrayWriter(tmp_path / "c", "key")
    other.append("x", np.zeros(3))
    with pytest.raises(ValueError, match="earlier chunks"):
        other.append("x", np.zeros(3, np.float32))
    other.discard()


def test_an_unclosed_or_foreign_folder_is_refused(tmp_path):
    writer = ArrayWriter(tmp_path / "a", "key")
    writer.append("x", np.zeros(3))
    with pytest.raises(InputError, match="not a readable array folder"):
        read_arrays(tmp_path / "a")  # no manifest yet: a run killed while building
    writer.discard()
    assert not (tmp_path / "a").exists()


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 300),
    block=st.integers(1, 17),
    buffer=st.integers(1, 5),
    seed=st.integers(0, 3),
    epoch=st.integers(0, 3),
)
def test_epoch_order_visits_every_row_once(n, block, buffer, seed, epoch):
    order = EpochOrder(n, block, buffer, seed)
    group = order.group_rows
    seen = np.concatenate(
        [order.rows(epoch, lo, min(lo + group, n)) for lo in range(0, n, group)] or [[]]
    )
    assert sorted(seen.tolist()) == list(range(n))
    again = EpochOrder(n, block, buffer, seed)
    np.testing.assert_array_equal(again.rows(epoch, 0, min(group, n)), seen[: min(group, n)])


def test_epoch_order_shuffles_across_blocks_and_epochs():
    order = EpochOrder(10_000, 100, 4, seed=3)
    first = order.rows(1, 0, 400)
    assert len(set((first // 100).tolist())) == 4  # four whole blocks, shuffled together
    assert sorted(first.tolist()) != list(range(400))
    assert not np.array_equal(order.rows(2, 0, 400), first)


def test_window_batches_gather_labels_and_class_weights():
    windows = np.arange(40, dtype=np.float32).reshape(10, 4, 1)
    label = np.array([0, 1, 2, 0, 0, 1, 0, 0, 2, 0], dtype=np.int8)
    rows = np.array([1, 2, 3, 5, 7, 9])
    batches = WindowBatches(windows, label, rows, 4, seed=1, shuffle=True, class_weights=(0.5, 2))
    batches.on_epoch_begin()
    got = [batches[b] for b in range(len(batches))]
    assert len(batches) == 2 and [len(g[0]) for g in got] == [4, 2]
    x = np.concatenate([g[0] for g in got])
    assert sorted(x[:, 0, 0].tolist()) == sorted(windows[rows, 0, 0].tolist())
    for xb, yb, wb in got:
        row = (xb[:, 0, 0] / 4).astype(int)
        np.testing.assert_array_equal(yb, (label[row] > 0).astype(np.float32))
        np.testing.assert_array_equal(wb, np.where(label[row] > 0, 2.0, 0.5))
    with pytest.raises(IndexError):
        batches[2]


def test_encode_accepted_equals_the_jagged_encoding():
    rng = np.random.default_rng(5)
    counts = rng.integers(0, 9, 50)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    position = rng.integers(-3, 1300, offsets[-1]).astype(np.int32)
    accept = rng.random(offsets[-1]) < 0.6
    cfg = TimeListConfig(n_bins=64)
    rows = np.array([3, 0, 49, 7, 7])
    got = encode_accepted(position, offsets, accept, rows, 1.2, 1024 / 1.2, cfg)
    times = ak.unflatten(position / 1.2, counts)[ak.unflatten(accept, counts)]
    want = encode_time_list(times, 1024 / 1.2, cfg)[rows]
    np.testing.assert_array_equal(got, want)


def test_time_list_batches_encode_per_batch():
    offsets = np.array([0, 2, 2, 5])
    position = np.array([10, 500, 0, 20, 1000], dtype=np.int32)
    accept = np.array([True, True, False, True, True])
    target = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    cfg = TimeListConfig(n_bins=8)
    batches = TimeListBatches(
        (position, offsets, accept), target, np.arange(3), (1.0, 1024.0, cfg), 2
    )
    lists, y = batches[0]
    assert lists.shape == (2, 8, 1) and y.tolist() == [1.0, 2.0]
    assert lists[0, :, 0].tolist() == [1, 0, 0, 1, 0, 0, 0, 0] and lists[1].sum() == 0
    lists, y = batches[1]
    assert lists[0, :, 0].tolist() == [1, 0, 0, 0, 0, 0, 0, 1] and y.tolist() == [3.0]


def test_training_from_streamed_batches_is_deterministic(tmp_path):
    from ccframe.ml.runtime import configure, keras

    x = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.float32)
    writer = ArrayWriter(tmp_path / "d", "key")
    writer.append("x", x)
    writer.append("y", y)
    writer.close({})
    arrays, _ = read_arrays(tmp_path / "d")

    def train() -> np.ndarray:
        configure(seed=2)
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1, "sigmoid")])
        model.compile("adam", "binary_crossentropy")
        data = ArrayBatches(arrays["x"], arrays["y"], np.arange(300), 32, seed=2, shuffle=True)
        model.fit(data, epochs=3, verbose=0, shuffle=False)
        return model.get_weights()[0]

    first = train()
    np.testing.assert_array_equal(first, train())
    assert first[0, 0] > 0.1  # learned that x0 decides


def test_validation_in_memory_is_all_rows_or_a_seeded_subset():
    x = np.arange(100, dtype=np.float32).reshape(100, 1)
    batches = ArrayBatches(x, np.arange(100.0), np.arange(10, 60), 8)
    xs, ys = batches.in_memory(10_000)
    assert xs[:, 0].tolist() == list(range(10, 60)) and ys.tolist() == list(range(10, 60))
    xs, ys = batches.in_memory(8 * 20)  # 8 bytes per row: 20 rows
    assert len(xs) == 20 and np.all(np.diff(xs[:, 0]) > 0) and set(xs[:, 0]) <= set(range(10, 60))
    np.testing.assert_array_equal(batches.in_memory(8 * 20)[0], xs)


def test_pipelined_chain_equals_batch_by_batch(trained):
    from ccframe.io.config import DataConfig
    from ccframe.io.reader import iter_batches
    from ccframe.ml.chain import Chain

    chain = Chain.load(trained)
    data = DataConfig(files=[str(trained / "sim.root")], chunk_size=70)
    pipelined = list(chain.apply_all(iter_batches(data), extra=len))
    plain = [chain.apply(batch) for batch in iter_batches(data)]
    assert len(pipelined) == len(plain) > 2
    for (batch, out, n), want in zip(pipelined, plain, strict=True):
        assert n == len(batch)
        for key in ("position", "offsets", "score", "accept", "n_clusters_ml"):
            np.testing.assert_array_equal(out[key], want[key])


def test_repeated_batches_are_the_epochs_in_sequence():
    x = np.arange(100, dtype=np.float32).reshape(100, 1)
    batches = ArrayBatches(x, np.arange(100.0), np.arange(100), 16, seed=4, shuffle=True)
    stream = batches.repeated()
    n = len(batches)
    for epoch in (1, 2, 3):
        batches.on_epoch_begin()
        assert batches.epoch == epoch
        for b in range(n):  # item (epoch - 1) n + b of the stream is batch b of the epoch
            np.testing.assert_array_equal(stream[(epoch - 1) * n + b][0], batches[b][0])
    # every row once per epoch, in another order each epoch
    first = np.concatenate([stream[b][0][:, 0] for b in range(n)])
    second = np.concatenate([stream[n + b][0][:, 0] for b in range(n)])
    assert sorted(first) == sorted(second) == list(range(100))
    assert first.tolist() != second.tolist()
    with pytest.raises(IndexError):
        batches[n]

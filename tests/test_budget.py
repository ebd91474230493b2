"""The networks' sizes counted from the steering file match what Keras builds."""

from __future__ import annotations

import pytest

from ccframe.ml.budget import classifier_size, counter_size, training_bytes
from ccframe.ml.config import ClassifierConfig, CounterConfig


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"lstm_units": 32, "dense": [64, 1]},
        {"lstm_units": 7, "dense": [5, 3], "dropout": [0.1, 0.0], "batch_norm": True},
        {"lstm_units": 4, "dense": [], "dropout": []},
    ],
)
def test_classifier_parameters_match_keras(settings):
    from ccframe.ml.models import build_classifier

    cfg = ClassifierConfig(**settings)
    assert classifier_size(cfg, 15)[0] == build_classifier(cfg, 15).count_params()


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"filters": [4], "pool_size": 8, "dense": [8], "dropout": [0.0]},
        {"filters": [3, 5, 2], "kernel_size": 3, "pool_size": 1, "dense": [4], "batch_norm": True},
        {"filters": [2] * 7, "pool_size": 4, "dense": [3], "dropout": [0.0]},  # pools stop at 1
    ],
)
def test_counter_parameters_match_keras(settings):
    from ccframe.ml.models import build_counter

    cfg = CounterConfig(**settings)
    assert counter_size(cfg, 1024)[0] == build_counter(cfg, 1024, 25.0).count_params()


def test_seed_topologies_and_training_memory():
    assert classifier_size(ClassifierConfig(), 15)[0] == 50_179
    assert classifier_size(ClassifierConfig(lstm_units=32, dense=[64, 1]), 15)[0] == 6_531
    assert training_bytes(1000, 10, 100) == 4 * (4 * 1000 + 3 * 10 * 100)

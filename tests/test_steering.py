"""Steering files: validation, errors by YAML path and line, --set overrides, round trips."""

from __future__ import annotations

import pytest
from conftest import REPO

from ccframe.errors import SteeringError
from ccframe.steering.loader import dump_steering, load_steering, parse_yaml, validate

SHIPPED = sorted((REPO / "steering").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_steering_files_validate(path):
    steering = load_steering(path)
    assert steering.schema_version == 1


def write(tmp_path, text):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


BASE = "schema_version: 1\nname: t\nsimulate:\n  n_waveforms: 10\n"


def error_of(tmp_path, text, overrides=()):
    with pytest.raises(SteeringError) as info:
        load_steering(write(tmp_path, text), overrides)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_unknown_key_names_line_and_closest(tmp_path):
    message = error_of(tmp_path, BASE + "  noize:\n    rms_mv: 2\n")
    assert "s.yaml:5" in message
    assert "unknown key 'simulate.noize'" in message
    assert "'noise'" in message


def test_unknown_top_level_key_lists_valid_keys(tmp_path):
    message = error_of(tmp_path, BASE + "zzz: 1\n")
    assert "unknown key 'zzz'" in message and "simulate" in message


def test_wrong_type(tmp_path):
    message = error_of(tmp_path, BASE + "  chunk_size: lots\n")
    assert "simulate.chunk_size = 'lots'" in message and "integer" in message


@pytest.mark.parametrize(
    ("line", "key"),
    [("  n_waveforms: -5\n", "simulate.n_waveforms"), ("  noise: {rms_mv: -1}\n", "rms_mv")],
)
def test_out_of_range(tmp_path, line, key):
    text = "schema_version: 1\nname: t\nsimulate:\n" + line
    message = error_of(tmp_path, text)
    assert key in message and "greater than" in message


def test_momentum_below_fit_validity(tmp_path):
    message = error_of(tmp_path, BASE + "  momentum: {min_gev: 0.05}\n")
    assert "beta*gamma" in message and "min_gev >=" in message


def test_yaml_syntax_error_names_line(tmp_path):
    message = error_of(tmp_path, BASE + "  particle: [pi\n")
    assert "s.yaml:" in message and "YAML syntax error" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", "empty"), ("- a\n- b\n", "mapping"), ("schema_version: 2\nname: t\n", "schema_version")],
)
def test_malformed_files(tmp_path, text, expected):
    assert expected in error_of(tmp_path, text)


def test_missing_file(tmp_path):
    with pytest.raises(SteeringError, match="not found"):
        load_steering(tmp_path / "none.yaml")


def test_nothing_to_read(tmp_path):
    assert "nothing to read" in error_of(tmp_path, "schema_version: 1\nname: t\n")


def test_set_overrides(tmp_path):
    path = write(tmp_path, BASE)
    steering = load_steering(
        path,
        [
            "simulate.n_waveforms=77",
            "simulate.noise.rms_mv=2.5",
            "simulate.particle=[pi, K]",
            "data.files=[a.root]",
            "simulate.particle.1=p",
        ],
    )
    assert steering.simulate.n_waveforms == 77
    assert steering.simulate.noise.rms_mv == 2.5
    assert steering.simulate.particles == ["pi", "p"]
    assert steering.data.files == ["a.root"]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("foo", "expected dotted.key=value"),
        ("simulate.n_waveforms.x=1", "is a value"),
        ("simulate.drift.time_ns.0=1", "set the whole list"),
        ("simulate.particle=[pi]", None),
        ("simulate.n_wavefroms=5", "--set simulate.n_wavefroms: unknown key"),
    ],
)
def test_bad_overrides(tmp_path, override, expected):
    if expected is None:  # a list to index into, then an index past its end
        text = BASE + "  particle: [pi, K]\n"
        assert "list index below 2" in error_of(tmp_path, text, ["simulate.particle.5=K"])
        return
    assert expected in error_of(tmp_path, BASE, [override])


def test_resolved_dump_round_trips(tmp_path):
    steering = load_steering(write(tmp_path, BASE), ["simulate.particle=K"])
    text = dump_steering(steering)
    again, _ = parse_yaml(text, "dump")
    assert validate(again) == steering
    assert "cluster_size_percent" in text  # every default written out

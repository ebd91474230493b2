"""Steering files: validation, errors by YAML path and line, --set overrides, round trips."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from conftest import REPO

from ccframe.cli import main
from ccframe.errors import SteeringError
from ccframe.steering.loader import dump_steering, load_steering
from ccframe.steering.schema import SCHEMA_VERSION, Steering

SHIPPED = sorted((REPO / "steering").glob("*.yaml"))


def test_quickstart_is_shipped():
    assert REPO / "steering" / "quickstart.yaml" in SHIPPED


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_steering_files_validate(path):
    steering = load_steering(path)
    assert steering.schema_version == SCHEMA_VERSION
    assert steering.name == path.stem  # the run folder is named after the file


def write(tmp_path, text):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


BASE = "schema_version: 1\nname: t\nsimulate:\n  n_waveforms: 10\n"  # lines 1-4


def error_of(tmp_path, text, overrides=()):
    with pytest.raises(SteeringError) as info:
        load_steering(write(tmp_path, text), overrides)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_unknown_key_names_line_and_closest(tmp_path):
    message = error_of(tmp_path, BASE + "  noize:\n    rms_mv: 2\n")
    assert message.startswith(f"{tmp_path / 's.yaml'}:5: unknown key 'simulate.noize'")
    assert "(did you mean 'noise'" in message  # the closest first


def test_unknown_nested_key_names_its_line(tmp_path):
    text = BASE + "  pulse:\n    rise_ns: 1.0\n    fal_ns: 4.0\n"
    message = error_of(tmp_path, text)
    assert "s.yaml:7: unknown key 'simulate.pulse.fal_ns'" in message
    assert "'fall_ns'" in message


def test_unknown_key_without_close_match_lists_valid_keys(tmp_path):
    message = error_of(tmp_path, BASE + "zzz: 1\n")
    assert "s.yaml:5: unknown key 'zzz'" in message
    assert "valid keys here: schema_version, name, seed, output, data, simulate" in message


def test_wrong_type(tmp_path):
    message = error_of(tmp_path, BASE + "  chunk_size: lots\n")
    assert "s.yaml:5: simulate.chunk_size = 'lots'" in message and "valid integer" in message


def test_no_silent_coercion(tmp_path):
    text = BASE.replace("n_waveforms: 10", "n_waveforms: '10'")  # a string, not a number
    message = error_of(tmp_path, text)
    assert "simulate.n_waveforms" in message and "valid integer" in message


def test_a_key_given_twice_is_an_error(tmp_path):
    message = error_of(tmp_path, BASE + "  n_waveforms: 20\n")
    assert message.endswith(
        "s.yaml:5: key 'simulate.n_waveforms' is given twice (first on line 4); keep one"
    )


def test_a_bare_stage_runs_with_defaults_and_null_turns_it_off(tmp_path):
    steering = load_steering(write(tmp_path, BASE + "tune:\ntraditional: null\n"))
    assert steering.tune is not None and steering.tune.max_events == 2000
    assert steering.traditional is None


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "  n_waveforms: -5\n",
            "s.yaml:4: simulate.n_waveforms = -5: Input should be greater than 0",
        ),
        (
            "  noise: {rms_mv: -1}\n",
            "s.yaml:4: simulate.noise.rms_mv = -1: Input should be greater than or equal to 0",
        ),
    ],
)
def test_out_of_range(tmp_path, line, expected):
    message = error_of(tmp_path, "schema_version: 1\nname: t\nsimulate:\n" + line)
    assert expected in message


def test_momentum_below_fit_validity(tmp_path):
    text = BASE + "  particle: pi\n  momentum: {distribution: fixed, min_gev: 0.05}\n"
    message = error_of(tmp_path, text)
    assert "min_gev 0.05" in message and "for pi" in message and "beta*gamma" in message
    assert "use min_gev >= 0.06978" in message  # 0.5 * m_pi
    load_steering(write(tmp_path, text.replace("0.05", "0.07")))  # just above: valid


def test_yaml_syntax_error_names_the_line(tmp_path):
    message = error_of(tmp_path, BASE + "   particle: pi\nseed: 3\n")
    assert message.startswith(f"{tmp_path / 's.yaml'}:5: YAML syntax error")


def test_unclosed_bracket_names_where_it_was_noticed(tmp_path):
    # YAML notices an unclosed flow list where the next token breaks it (line 6), not line 5.
    message = error_of(tmp_path, BASE + "  particle: [pi\nseed: 3\n")
    assert "s.yaml:6: YAML syntax error" in message and "']'" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "s.yaml: steering file is empty"),
        ("# only a comment\n", "s.yaml: steering file is empty"),
        ("- a\n- b\n", "s.yaml: expected a mapping of steering keys, got list"),
        ("just words\n", "s.yaml: expected a mapping of steering keys, got str"),
        ("schema_version: 2\nname: t\nsimulate: {}\n", "s.yaml:1: schema_version = 2"),
        ("name: t\nsimulate: {}\n", "missing required key 'schema_version'"),
        ("schema_version: 1\nname: a b\nsimulate: {}\n", "s.yaml:2: name = 'a b'"),
    ],
)
def test_malformed_files(tmp_path, text, expected):
    assert expected in error_of(tmp_path, text)


def test_missing_file(tmp_path):
    with pytest.raises(SteeringError, match=r"none\.yaml: steering file not found"):
        load_steering(tmp_path / "none.yaml")


def test_nothing_to_read(tmp_path):
    assert "nothing to read" in error_of(tmp_path, "schema_version: 1\nname: t\n")


def test_set_overrides(tmp_path):
    path = write(tmp_path, BASE + "  particle: [pi, K]\n")
    steering = load_steering(
        path,
        [
            "simulate.n_waveforms=77",  # a value in the file
            "simulate.noise.rms_mv=2.5",  # a nested section not in the file
            "data.files=[a.root, b.root]",  # a top-level section not in the file
            "simulate.particle.1=p",  # a list item
            "name=renamed",
            "data.truth=none",
        ],
    )
    assert steering.simulate.n_waveforms == 77
    assert steering.simulate.noise.rms_mv == 2.5
    assert steering.simulate.noise.spectrum == "coloured"  # the rest of the section: defaults
    assert steering.data.files == ["a.root", "b.root"]
    assert steering.simulate.particles == ["pi", "p"]
    assert steering.name == "renamed" and steering.output_dir == "runs/renamed"
    assert steering.data.truth == "none"


def test_later_override_wins_and_file_is_untouched(tmp_path):
    path = write(tmp_path, BASE)
    steering = load_steering(path, ["seed=1", "seed=2"])
    assert steering.seed == 2
    assert path.read_text() == BASE


def test_override_enables_a_stage(tmp_path):
    path = write(tmp_path, "schema_version: 1\nname: t\n")
    steering = load_steering(path, ["simulate.n_waveforms=5"])
    assert steering.simulate is not None and steering.simulate.n_waveforms == 5


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("foo", "--set 'foo': expected dotted.key=value"),
        ("=3", "expected dotted.key=value"),
        (
            "simulate.n_waveforms.x=1",
            "--set simulate.n_waveforms.x: simulate.n_waveforms is a value",
        ),
        ("simulate.drift.time_ns.0=1", "set the whole list: --set simulate.drift.time_ns=[...]"),
        ("simulate.particle.5=K", "--set simulate.particle.5: expected a list index below 2"),
        ("simulate.particle.x=K", "expected a list index below 2"),
        ("simulate.n_wavefroms=5", "--set simulate.n_wavefroms: unknown key"),
        ("simulate.n_waveforms=-1", "--set simulate.n_waveforms: simulate.n_waveforms = -1"),
        ("simulate.particle=pion", "--set simulate.particle: simulate.particle = 'pion'"),
    ],
)
def test_bad_overrides(tmp_path, override, expected):
    message = error_of(tmp_path, BASE + "  particle: [pi, K]\n", [override])
    assert expected in message


def test_resolved_dump_round_trips(tmp_path):
    steering = load_steering(write(tmp_path, BASE), ["simulate.particle=[K, p]", "seed=9"])
    text = dump_steering(steering)
    assert "cluster_size_percent" in text  # every default written out
    resolved = tmp_path / "resolved.yaml"
    resolved.write_text(text)
    again = load_steering(resolved)
    assert again == steering
    assert dump_steering(again) == text


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_files_round_trip(tmp_path, path):
    steering = load_steering(path)
    resolved = tmp_path / "resolved.yaml"
    resolved.write_text(dump_steering(steering))
    assert load_steering(resolved) == steering


def test_every_section_rejects_unknown_keys():
    def sections(model, seen):
        if model in seen:
            return
        seen.add(model)
        for field in model.model_fields.values():
            for arg in (field.annotation, *getattr(field.annotation, "__args__", ())):
                if isinstance(arg, type) and hasattr(arg, "model_fields"):
                    sections(arg, seen)

    found: set[type] = set()
    sections(Steering, found)
    assert len(found) > 5
    assert all(m.model_config.get("extra") == "forbid" for m in found), found


def test_tube_radius_beyond_drift_table_is_refused(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("schema_version: 1\nname: t\nsimulate:\n  detector: {tube_radius_cm: 0.9}\n")
    with pytest.raises(SteeringError, match="exceeds the x-t table"):
        load_steering(path)


# ---- every key described: --explain, the JSON schema for editors --------------------------

SCHEMA_FILE = REPO / "steering" / "ccframe.schema.json"


def test_every_key_has_a_description():
    """Each field of every section reachable from Steering documents itself (the string
    literal below it); a key holding a section may rely on the section's docstring."""
    from ccframe.steering.explain import iter_fields, undocumented

    assert len(list(iter_fields())) > 150
    missing = undocumented()
    assert not missing, (
        f"steering keys without a description: {', '.join(missing)}; add a docstring line "
        'below each field (e.g. `"""[mV] Noise RMS of the simulated waveform."""`)'
    )


def test_units_in_key_names_agree_with_descriptions():
    from ccframe.steering.explain import iter_fields, unit_disagreements, unit_of

    assert unit_of("rms_mv") == "mV" and unit_of("c_sqrt_ns") == "sqrt(ns)"
    assert unit_of("sampling_branch") is None
    with_units = [key for key, _, name, _ in iter_fields() if unit_of(name)]
    assert "simulate.pulse.amplitude_mv" in with_units and len(with_units) > 30
    assert not unit_disagreements()


def test_shipped_json_schema_is_current():
    from ccframe.steering.explain import json_schema

    assert SCHEMA_FILE.is_file()
    shipped = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert shipped == json_schema(), (
        "steering/ccframe.schema.json is stale: regenerate it with "
        "`ccframe schema -o steering/ccframe.schema.json`"
    )


def test_json_schema_describes_keys_and_accepts_shipped_files():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    amplitude = schema["$defs"]["Pulse"]["properties"]["amplitude_mv"]
    assert amplitude["description"].startswith("[mV] ")
    assert "\n" not in amplitude["description"]
    validator = jsonschema.Draft7Validator(schema)
    jsonschema.Draft7Validator.check_schema(schema)
    for path in SHIPPED:
        raw = yaml.safe_load(path.read_text())
        errors = [e.message for e in validator.iter_errors(raw)]
        assert not errors, (path.name, errors[:3])
    bad = {"schema_version": 1, "name": "t", "simulate": {"pulse": {"amplitude_mv": "big"}}}
    assert not validator.is_valid(bad)


def test_schema_command_writes_the_shipped_schema(tmp_path, capsys):
    out = tmp_path / "schema.json"
    with pytest.raises(SystemExit) as info:
        main(["schema", "-o", str(out)])
    assert info.value.code == 0
    assert out.read_text(encoding="utf-8") == SCHEMA_FILE.read_text(encoding="utf-8")
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(["schema"])
    assert info.value.code == 0
    assert json.loads(capsys.readouterr().out) == json.loads(out.read_text())


def test_validate_explain_lists_every_key_with_its_meaning(capsys):
    from ccframe.steering.explain import description

    quickstart = REPO / "steering" / "quickstart.yaml"
    with pytest.raises(SystemExit) as info:
        main(["validate", str(quickstart), "--print", "--explain"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("output runs/quickstart)")  # the verdict line comes last
    lines = out.splitlines()
    amplitude = next(x for x in lines if x.startswith("simulate.pulse.amplitude_mv: 8.0 "))
    assert re.search(r"8\.0 +# \[mV\] ", amplitude), amplitude
    assert all(len(x) <= 100 for x in lines[:-1] if not x.startswith(("simulate.ionization",)))
    # every resolved leaf key appears, with the first words of its description
    steering = load_steering(quickstart)
    flat = _flatten(steering.model_dump(mode="json"))
    shown = {x.split(":", 1)[0] for x in lines if x and not x.startswith((" ", "#"))}
    assert set(flat) <= shown, sorted(set(flat) - shown)[:5]
    field = Steering.model_fields["seed"]
    assert f"# {description(field).split()[0]}" in out


def _flatten(d, prefix=""):
    out = {}
    for key, value in d.items():
        if isinstance(value, dict) and value and key != "truth":
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_validate_without_explain_prints_yaml(capsys):
    quickstart = REPO / "steering" / "quickstart.yaml"
    with pytest.raises(SystemExit):
        main(["validate", str(quickstart), "--print"])
    assert "# " not in capsys.readouterr().out.split("\n", 3)[0]

"""RNTuple input: read like TTrees (mapping, chunks, truth, sampling field, checksums, memory
check, the same clear errors), written by uproot and by ROOT; corrupt pages; `ccframe
inspect` and `ccframe run` on RNTuples; the warning for an implausible conversion to mV."""

from __future__ import annotations

import importlib.util
import json
import logging
import subprocess
import sys
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
import yaml
from samples import make_samples
from test_cli import assert_one_line_error, cli

from ccframe.errors import InputError, ResourceError
from ccframe.io.config import DataConfig
from ccframe.io.reader import iter_batches
from ccframe.io.sanity import conversion_problem
from ccframe.kernels.checksum import row_checksums
from ccframe.kernels.config import CandidateConfig, TimeListConfig, WindowConfig
from ccframe.ml.chain import ChainSettings, check_inputs
from ccframe.simulate.config import SimulateConfig
from ccframe.simulate.stage import simulate_to_root

RATE = make_samples.RATE_GHZ
N = 6  # entries of the small samples (make_samples.waves)

# ---- helpers -------------------------------------------------------------------------------


def rntuple(path: Path, fields: dict, name: str = "sim") -> Path:
    """A file with one RNTuple written by uproot (`file[name] = {...}` writes an RNTuple)."""
    with uproot.recreate(path) as f:
        f[name] = fields
    assert uproot.open(path).classnames() == {f"{name};1": "ROOT::RNTuple"}
    return path


def sample_fields(jagged: bool = False, **more) -> dict:
    w = make_samples.waves()
    waveform = ak.from_regular(ak.Array(w), axis=1) if jagged else w  # std::vector<float>
    return {"waveform": waveform, "sampling_ghz": make_samples.rate(), **more}


def read_all(**kwargs) -> list:
    return list(iter_batches(DataConfig(**kwargs)))


def joined(batches: list, name: str) -> np.ndarray:
    return np.concatenate([getattr(b, name) for b in batches])


def flip(path: Path, offset: int, mask: int = 0x10) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(data)


def page_of(path: Path, field: str) -> tuple[int, int]:
    """(file offset, stored bytes) of the first page of `field`'s values."""
    ntuple = uproot.open(path)["sim"]
    leaves = {ntuple[field].field_id}
    leaves |= {i for i, r in enumerate(ntuple.field_records) if r.parent_field_id in leaves}
    column = max(c.idx for c in ntuple.column_records if c.field_id in leaves)
    locator = ntuple.page_link_list[0][column].pages[0].locator
    return int(locator.offset), int(locator.num_bytes)


# ---- written by uproot ---------------------------------------------------------------------


@pytest.mark.parametrize("jagged", [False, True], ids=["std::array", "std::vector"])
@pytest.mark.parametrize("chunk_size", [4, 100])
def test_rntuple_reads_like_the_ttree(tmp_path, jagged, chunk_size):
    w = make_samples.waves()
    truth = {
        "event_id": np.arange(100, 100 + N, dtype=np.int64),
        "n_clusters": np.arange(N, dtype=np.int32),
        "cluster_time_ns": ak.Array([[float(k)] * k for k in range(N)]),
        "waveform_checksum": row_checksums(w),
    }
    fields = sample_fields(jagged, **truth)
    tree = tmp_path / "tree.root"
    make_samples.tree(tree, fields)
    ntuple = rntuple(tmp_path / "ntuple.root", fields)
    typename = uproot.open(ntuple)["sim"]["waveform"].typename
    assert typename == ("std::vector<float>" if jagged else "std::array<float,100>")
    want = read_all(files=[str(tree)], chunk_size=chunk_size)
    got = read_all(files=[str(ntuple)], chunk_size=chunk_size)
    assert [len(b) for b in got] == [len(b) for b in want]
    for name in ("waveforms", "baseline", "rms", "entry"):
        assert np.array_equal(joined(got, name), joined(want, name)), name
    assert got[0].sampling_ghz == RATE
    assert got[0].truth.fields == want[0].truth.fields
    assert ak.to_list(got[-1].truth) == ak.to_list(want[-1].truth)


def test_rntuple_max_events_mapping_and_conversion(tmp_path):
    w = make_samples.waves()
    adc = np.round(w * 10 + 1000).astype(np.int16)  # negative pulses in raw counts
    path = rntuple(tmp_path / "raw.root", {"ch0": 2000 - adc, "nc": np.arange(N)}, name="h")
    data = {"tree": "h", "waveform_branch": "ch0", "sampling_ghz": RATE, "scale": 0.1}
    (batch,) = read_all(
        files=[str(path)],
        **data,
        offset_mv=-100.0,
        polarity="negative",
        truth={"n_clusters": "nc"},
        max_events=4,
    )
    assert np.allclose(batch.waveforms, (adc[:4] - 1000) / 10, atol=1e-4)
    assert list(batch.truth.n_clusters) == [0, 1, 2, 3]


def test_checksum_field_is_verified(tmp_path):
    w = make_samples.waves()
    sums = row_checksums(w)
    sums[2] ^= np.uint64(1)
    path = rntuple(tmp_path / "sum.root", sample_fields(waveform_checksum=sums))
    with pytest.raises(InputError) as info:
        read_all(files=[str(path)])
    assert "RNTuple 'sim' entry 2: field 'waveform' does not match its checksum" in str(info.value)
    other = rntuple(tmp_path / "odd.root", sample_fields(waveform_checksum=w[:, 0].copy()))
    with pytest.raises(InputError, match="field 'waveform_checksum' has type float; expected"):
        read_all(files=[str(other)])


def nested(path: Path) -> Path:
    return rntuple(path, sample_fields(waveform=ak.Array([[[1.0, 2.0], [3.0]]] * N)))


def nan_in_entry_3() -> np.ndarray:
    w = make_samples.waves()
    w[3, 40] = np.nan
    return w


# (what to write, data overrides, texts the message must hold besides the file's name)
BAD = {
    "missing ntuple": (
        lambda p: rntuple(p, sample_fields()),
        {"tree": "sym"},
        ["no tree 'sym'", "did you mean 'sim'", "trees here: sim (RNTuple)"],
    ),
    "missing field": (
        lambda p: rntuple(p, {"wavefrom": make_samples.waves()}),
        {},
        ["RNTuple 'sim' has no field 'waveform'", "data.waveform_branch", "'wavefrom'"],
    ),
    "string field": (
        lambda p: rntuple(p, sample_fields(waveform=ak.Array(["1 2 3"] * N))),
        {},
        ["field 'waveform' has type std::string", "expected an array of numbers per entry"],
    ),
    "vector of vectors": (
        nested,
        {},
        ["std::vector<std::vector<double>>, several arrays per entry", "one channel"],
    ),
    "array of arrays": (
        lambda p: rntuple(p, sample_fields(waveform=np.zeros((N, 3, 100), np.float32))),
        {},
        ["std::array<std::array<float,100>,3>, several arrays per entry"],
    ),
    "scalar field": (
        lambda p: rntuple(p, sample_fields(waveform=np.zeros(N, np.float32))),
        {},
        ["field 'waveform' holds one float per entry", "expected an array of samples"],
    ),
    "empty": (
        lambda p: rntuple(p, {"waveform": np.zeros((0, 100), np.float32)}),
        {"sampling_ghz": RATE},
        ["RNTuple 'sim' is empty (0 entries)"],
    ),
    "unequal lengths": (
        lambda p: rntuple(p, sample_fields(waveform=ak.Array([[1.0] * 40] * 4 + [[1.0] * 39] * 2))),
        {"baseline_window_ns": 1.0},
        ["field 'waveform' entry 4 has 39 samples, entry 0 has 40", "equal length"],
    ),
    "nan": (
        lambda p: rntuple(p, sample_fields(waveform=nan_in_entry_3())),
        {"chunk_size": 2},
        ["entry 3 of RNTuple 'sim' has NaN or inf samples", "on_bad_waveform: skip"],
    ),
    "truth field missing": (
        lambda p: rntuple(p, sample_fields()),
        {"truth": {"n_clusters": "nclusters"}},
        ["RNTuple 'sim' has no field 'nclusters'", "truth 'n_clusters' in data.truth"],
    ),
    "no sampling rate": (
        lambda p: rntuple(p, {"waveform": make_samples.waves()}),
        {},
        ["no branch 'sampling_ghz'", "set data.sampling_ghz"],
    ),
}


@pytest.mark.parametrize(("write", "data", "expected"), BAD.values(), ids=BAD.keys())
def test_bad_rntuple_is_one_clear_error(tmp_path, write, data, expected):
    path = tmp_path / "bad.root"
    write(path)
    with pytest.raises(InputError) as info:
        read_all(files=[str(path)], **data)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: "), message
    for text in expected:
        assert text in message, message


def test_nan_entries_skipped_when_asked(tmp_path):
    path = rntuple(tmp_path / "nan.root", sample_fields(waveform=nan_in_entry_3()))
    batches = read_all(files=[str(path)], on_bad_waveform="skip", chunk_size=2)
    assert list(joined(batches, "entry")) == [0, 1, 2, 4, 5]


def test_corrupt_compressed_page_names_file_ntuple_and_field(tmp_path, capsys):
    path = rntuple(tmp_path / "bad.root", sample_fields())
    offset, size = page_of(path, "waveform")
    flip(path, offset + size // 2)
    code, _, err = cli(capsys, "inspect", path)
    assert_one_line_error(code, err)
    assert f"{path}: RNTuple 'sim', field 'waveform' (entries 0..5): corrupt or unreadable" in err
    with pytest.raises(InputError, match="field 'waveform'"):
        read_all(files=[str(path)], chunk_size=2)


@pytest.fixture
def little_memory(monkeypatch):
    """Pretend the machine has 1 MB of available memory."""
    monkeypatch.setattr("ccframe.resources.available_memory", lambda: 1_000_000)


@pytest.mark.parametrize("jagged", [False, True], ids=["std::array", "std::vector"])
def test_chunk_memory_is_estimated(tmp_path, little_memory, jagged):
    rows = np.zeros((100, 1000), np.float32)
    fields = {"waveform": ak.from_regular(ak.Array(rows), axis=1) if jagged else rows}
    path = rntuple(tmp_path / "big.root", fields)
    with pytest.raises(ResourceError, match="a chunk of 100 waveforms of 1000 samples"):
        read_all(files=[str(path)], sampling_ghz=1.0)
    assert len(read_all(files=[str(path)], sampling_ghz=1.0, chunk_size=10)) == 10


def test_chain_checks_rntuple_inputs_before_reading(tmp_path):
    path = rntuple(tmp_path / "fixed.root", sample_fields())
    settings = ChainSettings(
        CandidateConfig(), WindowConfig(), TimeListConfig(), 0.5, RATE, 2400, 25.0
    )
    with pytest.raises(InputError, match="100 samples per waveform, the chain was trained on 2400"):
        check_inputs(settings, DataConfig(), [str(path)])
    jagged = rntuple(tmp_path / "jagged.root", sample_fields(jagged=True))
    check_inputs(settings, DataConfig(), [str(jagged)])  # its length is checked per batch


# ---- written by ROOT -----------------------------------------------------------------------

ROOT_WRITER = r"""
import sys, warnings
import numpy as np
warnings.simplefilter("ignore")
import ROOT
ROOT.gInterpreter.Declare('''
#include <ROOT/RNTupleModel.hxx>
#include <ROOT/RNTupleWriter.hxx>
#include <array>
#include <vector>
void ccframe_write(const char *path, const float *w, int n, int nentries_per_cluster) {
  auto model = ROOT::RNTupleModel::Create();
  auto vf = model->MakeField<std::vector<float>>("waveform");
  auto vd = model->MakeField<std::vector<double>>("wave_double");
  auto vs = model->MakeField<std::vector<short>>("wave_short");
  auto af = model->MakeField<std::array<float, 100>>("wave_array");
  auto rate = model->MakeField<double>("sampling_ghz");
  auto id = model->MakeField<std::int64_t>("event_id");
  auto writer = ROOT::RNTupleWriter::Recreate(std::move(model), "sim", path);
  for (int i = 0; i < n; ++i) {
    vf->assign(w + 100 * i, w + 100 * (i + 1));
    vd->assign(w + 100 * i, w + 100 * (i + 1));
    vs->resize(100);
    for (int k = 0; k < 100; ++k) {
      (*vs)[k] = short(100 * w[100 * i + k]);
      (*af)[k] = w[100 * i + k];
    }
    *rate = 1.2;
    *id = 100 + i;
    writer->Fill();
    if ((i + 1) % nentries_per_cluster == 0) writer->CommitCluster();
  }
}
''')
w = np.ascontiguousarray(np.load(sys.argv[2]), dtype=np.float32)
ROOT.ccframe_write(sys.argv[1], w, len(w), 50)
"""


def root_waves() -> np.ndarray:
    return make_samples.waves(200, 100, seed=3)


@pytest.fixture(scope="module")
def root_file(tmp_path_factory) -> Path:
    """An RNTuple written by ROOT (in a subprocess): 200 waveforms of 100 samples as
    std::vector<float>, <double>, <short> (x100) and std::array<float,100>."""
    if importlib.util.find_spec("ROOT") is None:
        pytest.skip("PyROOT is not installed")
    folder = tmp_path_factory.mktemp("root")
    np.save(folder / "w.npy", root_waves())
    path = folder / "root_written.root"
    script = [sys.executable, "-c", ROOT_WRITER, str(path), str(folder / "w.npy")]
    done = subprocess.run(script, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return path


@pytest.mark.parametrize(
    ("field", "scale"),
    [("waveform", 1.0), ("wave_double", 1.0), ("wave_array", 1.0), ("wave_short", 0.01)],
)
def test_root_written_fields(root_file, field, scale):
    ntuple = uproot.open(root_file)["sim"]
    assert len(ntuple.cluster_summaries) > 1  # several clusters: chunks cross their borders
    batches = read_all(files=[str(root_file)], waveform_branch=field, scale=scale, chunk_size=64)
    assert [len(b) for b in batches] == [64, 64, 64, 8]
    want = root_waves()
    if field == "wave_short":
        want = (want * 100).astype(np.int16).astype(np.float32) * np.float32(0.01)
    assert np.allclose(joined(batches, "waveforms"), want, atol=1e-6)
    assert list(joined(batches, "entry")) == list(range(200))
    assert batches[0].sampling_ghz == RATE
    assert list(batches[-1].truth.event_id) == list(range(292, 300))


def test_root_page_checksum_catches_a_flip_that_decompresses(root_file, tmp_path, capsys):
    path = tmp_path / "flipped.root"
    offset, size = page_of(root_file, "waveform")
    assert uproot.open(root_file)["sim"].page_link_list[0][0].pages[0].has_checksum
    want = root_waves()
    for k in range(size // 2, size):  # a flip that zstd does not notice: uproot reads wrong values
        path.write_bytes(root_file.read_bytes())
        flip(path, offset + k, mask=0x01)
        try:
            values = uproot.open(path)["sim"]["waveform"].array(library="np")
        except Exception:
            continue
        if not np.array_equal(values, want):
            break
    else:
        pytest.fail("no silently wrong byte found in the page")
    code, _, err = cli(capsys, "inspect", path)
    assert_one_line_error(code, err)
    assert f"{path}: RNTuple 'sim', field 'waveform' (entries 0..49): corrupt" in err
    assert "(a page does not match its checksum)" in err


# ---- ccframe inspect and ccframe run -------------------------------------------------------


def test_inspect_lists_and_describes_an_rntuple(tmp_path, capsys):
    tree = tmp_path / "both.root"
    with uproot.recreate(tree) as f:
        f.mktree("meta", {"run": np.int32})
        f["meta"].extend({"run": np.array([7], np.int32)})
        f["sim"] = sample_fields()
    code, out, err = cli(capsys, "inspect", tree)
    assert code == 0 and err == "", err
    assert "tree 'meta': 1 entries" in out and "RNTuple 'sim': 6 entries" in out
    assert "waveform      std::array<float,100>" in out
    assert "waveform statistics of 'sim/waveform'" in out
    assert "waveforms        6  (100 samples, 1.2 GHz" in out


ASKED = {
    "missing tree": (["--tree", "sym"], "no tree 'sym' (did you mean 'sim'?); trees here: sim"),
    "missing branch": (["--branch", "wave"], "RNTuple 'sim' has no field 'wave' (--branch)"),
    "tree without branch": (["--tree", "sim", "--branch", "x"], "has no field 'x'"),
}


@pytest.mark.parametrize(("options", "expected"), ASKED.values(), ids=ASKED.keys())
def test_inspect_fails_when_the_asked_tree_or_branch_is_unreadable(
    tmp_path, capsys, options, expected
):
    path = rntuple(tmp_path / "n.root", sample_fields())
    code, _, err = cli(capsys, "inspect", path, *options)
    assert_one_line_error(code, err)
    assert expected in err


def test_inspect_without_the_default_branch_lists_and_hints(tmp_path, capsys):
    path = rntuple(tmp_path / "n.root", {"ch0": make_samples.waves()})
    code, out, err = cli(capsys, "inspect", path)
    assert code == 0, err
    assert "no tree 'sim' with a 'waveform' branch: use --tree/--branch" in out


def test_run_on_an_rntuple_counts_like_on_the_ttree(tmp_path, capsys):
    original = tmp_path / "sim.root"
    simulate_to_root(SimulateConfig(n_waveforms=150, chunk_size=100), seed=11, path=original)
    arrays = uproot.open(original)["sim"].arrays()
    converted = rntuple(tmp_path / "sim_rntuple.root", {k: arrays[k] for k in arrays.fields})
    counts = {}
    for name, path in (("ttree", original), ("rntuple", converted)):
        steering = {
            "schema_version": 1,
            "name": name,
            "seed": 1,
            "output": str(tmp_path / name),
            "data": {"files": [str(path)], "chunk_size": 64},
            "traditional": {},
        }
        file = tmp_path / f"{name}.yaml"
        file.write_text(yaml.safe_dump(steering))
        code, _, err = cli(capsys, "run", file)
        assert code == 0, err
        out = uproot.open(tmp_path / name / "traditional.root")["traditional"]
        counts[name] = out.arrays(["entry", "n_clusters_traditional", "n_clusters_true"])
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        assert summary["read"]["waveforms"] == 150
    assert ak.to_list(counts["rntuple"]) == ak.to_list(counts["ttree"])
    assert ak.sum(counts["rntuple"].n_clusters_traditional) > 0


# ---- the conversion to mV looks wrong: a warning -------------------------------------------


def converted(scale: float = 1.0, offset: float = 0.0, sign: float = 1.0, pulse: float = 20.0):
    """(waveforms, baseline, rms) of 50 noise waveforms with a pulse, converted."""
    rng = np.random.default_rng(5)
    w = rng.normal(0.0, 1.0, (50, 200)).astype(np.float32)
    w[:, 120:124] += np.float32(pulse)
    w = (w * scale + offset) * sign
    return w, w[:, :30].mean(axis=1), w[:, :30].std(axis=1)


def test_plausible_waveforms_give_no_warning():
    assert conversion_problem(*converted(), DataConfig()) is None
    assert conversion_problem(*converted(pulse=0.0), DataConfig()) is None  # noise only
    assert conversion_problem(*converted(offset=-1500.0), DataConfig()) is None
    empty = np.zeros((0, 10), np.float32)
    assert conversion_problem(empty, np.zeros(0), np.zeros(0), DataConfig()) is None


@pytest.mark.parametrize("offset", [32505.0, -5000.0])
def test_unconverted_adc_counts_name_scale_and_offset(offset):
    problem = conversion_problem(*converted(offset=offset), DataConfig())
    assert problem is not None
    assert problem.startswith("median baseline ") and "raw ADC counts?" in problem
    assert "check data.scale and data.offset_mv (now 1 and 0" in problem


def test_downward_pulses_name_the_polarity():
    problem = conversion_problem(*converted(sign=-1.0), DataConfig(polarity="negative"))
    assert problem is not None
    assert "pulses point down in 50 of 50 waveforms" in problem
    assert "check data.polarity (now negative)" in problem


def test_reader_warns_once_per_file(tmp_path, caplog):
    w = -make_samples.waves(60, 100)  # negative pulses, read as positive
    one = rntuple(tmp_path / "one.root", sample_fields(waveform=w, sampling_ghz=np.full(60, RATE)))
    two = tmp_path / "two.root"
    make_samples.tree(two, {"waveform": w + 32000, "sampling_ghz": np.full(60, RATE)})
    with caplog.at_level(logging.WARNING, logger="ccframe"):
        batches = read_all(files=[str(one), str(two)], chunk_size=10)
    assert len(batches) == 12
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 2, messages
    assert messages[0].startswith(f"{one}: pulses point down") and "data.polarity" in messages[0]
    assert messages[1].startswith(f"{two}: median baseline") and "data.scale" in messages[1]


def test_inspect_warns_on_stderr_and_still_reports(capsys):
    beam = make_samples.HERE / "beamtest_like.root"
    args = ["inspect", beam, "--tree", "h", "--branch", "ch0", "--sampling-ghz", "1.2"]
    code, out, err = cli(capsys, *args)
    assert code == 0
    assert err.startswith("ccframe: warning: ") and "median baseline" in err
    assert "data.scale and data.offset_mv" in err and len(err.splitlines()) == 1
    assert "waveform statistics of 'h/ch0'" in out

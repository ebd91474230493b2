"""Hostile values cannot inject into the rendered HTCondor submit files, the DAG or the trial
shell script: each is refused in one line, or quoted so that it reads back unchanged."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from conftest import TINY_ML, tiny_steering
from hypothesis import given
from hypothesis import strategies as st
from test_cli import cli

from ccframe.errors import CondorError
from ccframe.sweep import condor
from ccframe.sweep.config import SweepConfig
from ccframe.sweep.trials import Trial

htcondor = pytest.importorskip("htcondor2")

GRID = {
    "method": "grid",
    "executor": "condor",
    "parameters": {"ml.classifier.lstm_units": {"values": [4, 6]}},
}
TRIAL_KEYS = {
    "universe", "executable", "initialdir", "log", "output", "error", "request_cpus",
    "request_memory", "request_disk", "should_transfer_files",
}  # fmt: skip
COLLECT_KEYS = {"universe", "executable", "arguments", "initialdir", "log", "output", "error"}
HOSTILE_PATH = '"; touch {file}; "'


# ---- helpers ----


def one_line_error(code, err):
    """The single `ccframe: error:` line of a clean refusal (exit code 2, no traceback)."""
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1].startswith("ccframe: error:"), err
    assert sum(line.startswith("ccframe: error:") for line in lines) == 1
    assert "Traceback" not in err
    return lines[-1]


def dry_run(capsys, tmp_path, sweep=None, output=None):
    """`ccframe sweep --dry-run` of a two-trial condor grid; (code, stderr, run folder)."""
    top = {"sweep": {**GRID, **(sweep or {})}}
    if output is not None:
        top["output"] = str(output)
    path = tiny_steering(tmp_path, "sw", 200, top=top, **TINY_ML)
    code, _, err = cli(capsys, "sweep", path, "--dry-run")
    return code, err, (output or tmp_path / "sw")


def no_condor_files(run):
    folder = run / "condor"
    return not folder.exists() or not [*folder.glob("*.sub"), *folder.glob("*.dag")]


def split_new_syntax(text):
    """HTCondor's new-syntax arguments (the documented rules): the outer double quotes
    dropped and "" read as ", then words split at spaces, '...' quoting ('' is ')."""
    assert text.startswith('"') and text.endswith('"'), text
    raw = text[1:-1].replace('""', '"')
    words, word, started, quoted, i = [], "", False, False, 0
    while i < len(raw):
        c = raw[i]
        if quoted and c == "'" and raw[i + 1 : i + 2] == "'":
            word, i = word + "'", i + 2
            continue
        if c == "'":
            quoted, started = not quoted, True
        elif c in " \t" and not quoted:
            if started:
                words.append(word)
            word, started = "", False
        else:
            word, started = word + c, True
        i += 1
    assert not quoted, text
    return [*words, word] if started else words


def dag_tokens(line):
    """A DAG line split as DAGMan's lexer does (src/condor_utils/dag_parser.cpp): spaces and
    tabs separate tokens; "..." or '...' is one token, with \\ escaping inside it."""
    tokens, token, started, quote, escaped = [], "", False, None, False
    for c in line:
        if escaped:
            token, escaped = token + c, False
        elif quote:
            if c == "\\":
                escaped = True
            elif c == quote:
                quote = None
            else:
                token += c
        elif c in " \t":
            if started:
                tokens.append(token)
            token, started = "", False
        elif c in "\"'":
            quote, started = c, True
        else:
            token, started = token + c, True
    assert quote is None, line
    return [*tokens, token] if started else tokens


def submit(path):
    """The parsed submit description of a rendered file (its keys, the Submit object)."""
    desc = htcondor.Submit(path.read_text())
    return set(desc.keys()), desc


def bash(script, cwd, env=None):
    return subprocess.run(
        ["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def sweep_config(**update):
    """A valid condor sweep with schema-bypassing updates (as render() may be called)."""
    base = SweepConfig.model_validate(GRID)
    return base.model_copy(update=update)


def render_direct(tmp_path, run_name="run", **update):
    run = tmp_path / run_name
    trials = [Trial(0, {}, run / "trials" / "0000")]
    trials[0].folder.mkdir(parents=True)
    return run, lambda: condor.render(run, trials, sweep_config(**update))


# ---- refused values: one clean line, nothing rendered ----


@pytest.mark.parametrize(
    ("sweep", "names"),
    [
        ({"requirements": "true\nexecutable = /bin/sh"}, "requirements"),
        ({"requirements": 'true executable = "/bin/sh"'}, "sweep.requirements"),
        ({"requirements": "Memory > $ENV(HOME)"}, "sweep.requirements"),
        ({"accounting_group": 'x\n+Owner = "root"'}, "accounting_group"),
        ({"accounting_group": 'x +Owner = "root"'}, "sweep.accounting_group"),
    ],
)
def test_hostile_sweep_values_are_refused(tmp_path, capsys, sweep, names):
    code, err, run = dry_run(capsys, tmp_path, sweep)
    line = one_line_error(code, err)
    assert names in line and len(line) < 300
    assert no_condor_files(run)


@pytest.mark.parametrize(
    ("update", "what"),
    [
        ({"requirements": "true\nexecutable = /bin/sh"}, "sweep.requirements"),
        ({"requirements": '(OpSys == "LINUX") \\'}, "sweep.requirements"),
        ({"requirements": "(a"}, "sweep.requirements"),
        ({"accounting_group": 'x\n+Owner = "root"'}, "sweep.accounting_group"),
        ({"accounting_group": "group ccframe"}, "sweep.accounting_group"),
        ({"request_cpus": "1\nexecutable = /bin/sh"}, "sweep.request_cpus"),
        ({"retries": "1\nJOB evil /tmp/evil.sub"}, "sweep.retries"),
        ({"transfer": "shared\nexecutable = /bin/sh"}, "sweep.transfer"),
    ],
)
def test_render_refuses_without_the_schema(tmp_path, update, what):
    run, render = render_direct(tmp_path, **update)
    with pytest.raises(CondorError, match=re.escape(what)) as info:
        render()
    assert "\n" not in str(info.value) and "expected" in str(info.value)
    assert no_condor_files(run)


@pytest.mark.parametrize("name", ["run\nexecutable = /bin/sh", "run\r", "run$(DOLLAR)"])
def test_render_refuses_a_run_folder_it_cannot_write(tmp_path, name):
    run, render = render_direct(tmp_path, name)
    with pytest.raises(CondorError, match="the run folder") as info:
        render()
    assert "\n" not in str(info.value)
    assert no_condor_files(run)


def test_long_refused_values_are_cut_short(tmp_path):
    _, render = render_direct(tmp_path, requirements="x\n" + "y" * 5000)
    with pytest.raises(CondorError) as info:
        render()
    assert len(str(info.value)) < 200 and "..." in str(info.value)


@pytest.mark.parametrize("folder", ["out$(HOME)", "out$ENV(HOME)", "a$$(OpSys)"])
def test_a_run_folder_with_a_macro_is_refused(tmp_path, capsys, folder):
    code, err, run = dry_run(capsys, tmp_path, output=tmp_path / folder)
    line = one_line_error(code, err)
    assert "the run folder" in line and "'$'" in line
    assert no_condor_files(run)


@pytest.mark.parametrize("value", ["/opt/$(HOME)/lib", "/opt/lib\nexecutable = /bin/sh"])
def test_a_pythonpath_with_a_macro_or_a_newline_is_refused(tmp_path, capsys, monkeypatch, value):
    monkeypatch.setenv("PYTHONPATH", value)
    code, err, run = dry_run(capsys, tmp_path)
    assert "PYTHONPATH" in one_line_error(code, err)
    assert no_condor_files(run)


@pytest.mark.parametrize("python", ["/opt/py$(x)/bin/python", "/opt/py/bin/python "])
def test_an_interpreter_path_condor_cannot_carry_is_refused(tmp_path, capsys, monkeypatch, python):
    monkeypatch.setattr(sys, "executable", python)
    code, err, run = dry_run(capsys, tmp_path)
    assert "sys.executable" in one_line_error(code, err)
    assert no_condor_files(run)


# ---- hostile but representable values: rendered so that they read back unchanged ----


def check_rendering(run, python=None, trial_keys=TRIAL_KEYS):
    """Parse every rendered file and check each value reads back as given."""
    python, pythonpath = python or sys.executable, os.environ.get("PYTHONPATH")
    folder = run.resolve() / "condor"
    for number in ("0000", "0001"):
        keys, desc = submit(folder / f"trial_{number}.sub")
        assert keys == trial_keys
        assert desc["executable"] == str(folder / "run_trial.sh")
        assert desc["initialdir"] == str(run.resolve() / "trials" / number)
        assert desc["log"] == str(folder / "sweep.log")
    keys, desc = submit(folder / "collect.sub")
    assert keys == COLLECT_KEYS | ({"environment"} if pythonpath else set())
    assert desc["executable"] == python
    assert split_new_syntax(desc["arguments"]) == ["-m", "ccframe", "collect", str(run.resolve())]
    if pythonpath:
        assert split_new_syntax(desc["environment"]) == [f"PYTHONPATH={pythonpath}"]
    dag = (folder / "sweep.dag").read_text().splitlines()
    jobs = [dag_tokens(line) for line in dag if line.startswith(("JOB", "FINAL"))]
    assert jobs == [
        ["JOB", "t0000", str(folder / "trial_0000.sub")],
        ["JOB", "t0001", str(folder / "trial_0001.sub")],
        ["FINAL", "collect", str(folder / "collect.sub")],
    ]
    script = folder / "run_trial.sh"
    assert bash(f"bash -n {_sh(script)}", run).returncode == 0
    return script.read_text()


def _sh(path):
    return "'" + str(path).replace("'", "'\\''") + "'"


@pytest.mark.parametrize("folder", ["with space", "it's", 'say "hi"', "tab\\back slash", "#x"])
def test_an_output_folder_with_spaces_or_quotes_renders_safely(tmp_path, capsys, folder):
    code, err, run = dry_run(capsys, tmp_path, output=tmp_path / folder)
    assert code == 0, err
    check_rendering(run)


def test_a_hostile_pythonpath_is_one_shell_word_and_one_environment_value(
    tmp_path, capsys, monkeypatch
):
    pwned = tmp_path / "pwned"
    hostile = HOSTILE_PATH.format(file=pwned) + " 'quoted' `id` x"
    monkeypatch.setenv("PYTHONPATH", hostile)
    code, err, run = dry_run(capsys, tmp_path)
    assert code == 0, err
    script = check_rendering(run)
    (export,) = [line for line in script.splitlines() if line.startswith("export PYTHONPATH=")]
    env = {"PATH": "/usr/bin:/bin"}
    shown = bash(f'{export}\nprintf %s "$PYTHONPATH"', tmp_path, env)
    assert shown.returncode == 0 and shown.stdout == hostile, shown.stderr
    prepended = bash(f'{export}\nprintf %s "$PYTHONPATH"', tmp_path, {**env, "PYTHONPATH": "/x"})
    assert prepended.stdout == hostile + ":/x"
    assert not pwned.exists()


@pytest.mark.parametrize("python", ["/opt/my python/bin/python3", '/opt/it\'s "py"/python'])
def test_an_interpreter_path_with_spaces_or_quotes_renders_safely(
    tmp_path, capsys, monkeypatch, python
):
    monkeypatch.setattr(sys, "executable", python)
    code, err, run = dry_run(capsys, tmp_path, {"max_runtime_s": 60})
    assert code == 0, err
    script = check_rendering(run, python=python, trial_keys=TRIAL_KEYS | {"periodic_remove"})
    start = script.index("measure=(")
    measure = script[start : script.index(")", script.index("--disk-mb", start)) + 1]
    shown = bash(f'{measure}\nprintf "%s\\n" "${{measure[@]}}"', tmp_path)
    assert shown.stdout.splitlines()[0] == python and "--max-runtime-s" in shown.stdout
    assert f"-- {condor.shell_quote(python)} -m ccframe run steering.yaml" in script


def test_plain_requirements_and_group_are_kept_as_given(tmp_path, capsys):
    requirements = '(OpSys == "LINUX") && (Memory > 2048) && regexp("^c[0-9]+", Machine)'
    sweep = {"requirements": requirements, "accounting_group": "group_ccframe.user@cern.ch"}
    code, err, run = dry_run(capsys, tmp_path, sweep)
    assert code == 0, err
    keys, desc = submit(run.resolve() / "condor" / "trial_0000.sub")
    assert keys == TRIAL_KEYS | {"requirements", "accounting_group"}
    assert desc["requirements"] == requirements
    assert desc["accounting_group"] == "group_ccframe.user@cern.ch"


# ---- the quoting functions on their own ----

PRINTABLE = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x24F, exclude_characters="$\x7f")
)


@given(st.lists(PRINTABLE, max_size=5))
def test_arguments_round_trip(args):
    text = condor.condor_arguments(args)
    assert split_new_syntax(text) == args
    assert htcondor.Submit(f"arguments = {text}\nqueue\n")["arguments"] == text


@given(PRINTABLE)
def test_environment_values_round_trip(value):
    text = condor.condor_environment({"PYTHONPATH": value})
    assert split_new_syntax(text) == [f"PYTHONPATH={value}"]
    assert htcondor.Submit(f"environment = {text}\nqueue\n")["environment"] == text


@given(PRINTABLE.filter(bool))
def test_dag_paths_round_trip(path):
    line = f"JOB t0000 {condor.dag_path(path)} DIR x"
    assert dag_tokens(line) == ["JOB", "t0000", path, "DIR", "x"]


def test_the_documented_examples_of_the_new_syntax():
    """condor_submit(1), arguments and environment: the manual's own examples."""
    assert condor.condor_arguments(["3", "simple", "arguments"]) == '"3 simple arguments"'
    assert condor.condor_arguments(["one", '"two"', "spacey 'quoted' argument"]) == (
        "\"one \"\"two\"\" 'spacey ''quoted'' argument'\""
    )
    assert split_new_syntax("\"one two=\"\"2\"\" three='spacey ''quoted'' value'\"") == [
        "one", 'two="2"', "three=spacey 'quoted' value",
    ]  # fmt: skip


@pytest.mark.parametrize("bad", ["a\nb", "a\x00", "a\x7f", "$(HOME)", "x$ENV(HOME)"])
def test_the_quoting_functions_refuse_what_they_cannot_carry(bad):
    for quote in (condor.condor_arguments, condor.condor_environment):
        with pytest.raises(CondorError):
            quote([bad] if quote is condor.condor_arguments else {"X": bad})
    with pytest.raises(CondorError):
        condor.condor_path(bad)


def test_a_bad_environment_name_is_refused():
    with pytest.raises(CondorError, match="environment name"):
        condor.condor_environment({"A=B C": "x"})


def test_finalize_guards_every_rendered_value(tmp_path, monkeypatch):
    """A site's own templates (CCFRAME_CONDOR_TEMPLATES) get the same guard on any value."""
    for name in condor.TEMPLATES:
        (tmp_path / name).write_text((condor.template_dir() / name).read_text())
    (tmp_path / "sweep.dag.j2").write_text("# metric {{ metric }}\n")
    monkeypatch.setenv("CCFRAME_CONDOR_TEMPLATES", str(tmp_path))
    run, render = render_direct(tmp_path, metric="x\nJOB evil /tmp/evil.sub")
    with pytest.raises(CondorError, match="control character"):
        render()
    assert no_condor_files(run)


def test_a_refused_sweep_writes_no_trials(capsys, tmp_path):
    code, err, run = dry_run(capsys, tmp_path, output=tmp_path / "bad$(DOLLAR)run")
    one_line_error(code, err)
    assert not (run / "trials").exists() and no_condor_files(run)

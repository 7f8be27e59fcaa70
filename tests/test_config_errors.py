"""Every kind of bad config gives one clear error naming the file and the field, and no traceback."""

import pytest

from conftest import run_dtb
from dtb.errors import ConfigError
from dtb.spec import load_spec

BASE = """
[simulation]
dt = "0.1 ms"
duration = "100 ms"

[[populations]]
name = "E"
size = 80
kind = "excitatory"

[[populations]]
name = "I"
size = 20
kind = "inhibitory"

[[projections]]
source = "E"
target = "I"
rule = "fixed_indegree"
indegree = 10
receptor = "ampa"
weight = "0.5 nS"
delay = "1.5 ms"

[[stimuli]]
type = "poisson"
population = "E"
rate = "1000 Hz"
weight = "1 nS"
"""

CASES = [
    # (description, (old, new) replacement in BASE, field named, words in the message)
    ("unknown population", ('target = "I"', 'target = "J"'), "projections[0].target", "unknown population 'J'"),
    ("negative size", ("size = 80", "size = -5"), "populations[0].size", "positive"),
    ("zero size", ("size = 20", "size = 0"), "populations[1].size", "positive"),
    ("delay below dt", ('delay = "1.5 ms"', 'delay = "0.05 ms"'), "projections[0].delay", "below dt"),
    ("unit mistake", ('delay = "1.5 ms"', 'delay = "1.5 mV"'), "projections[0].delay", "voltage"),
    ("bare number", ('weight = "0.5 nS"', "weight = 0.5"), "projections[0].weight", "unit"),
    ("unknown unit", ('rate = "1000 Hz"', 'rate = "1000 bananas"'), "stimuli[0].rate", "unknown unit"),
    ("missing field", ('rule = "fixed_indegree"\n', ""), "projections[0].rule", "missing field"),
    ("missing indegree", ("indegree = 10\n", ""), "projections[0].indegree", "missing field"),
    ("unknown field", ("indegree = 10", "indegree = 10\nindgree = 3"), "projections[0].indgree",
     "unknown field; did you mean 'indegree'?"),
    ("misspelled field", ("indegree = 10", "indegre = 10"), "projections[0].indegree",
     "missing field (the table has 'indegre': a misspelling of it?)"),
    ("misspelled section", ("[simulation]", '[neuron_default]\nC_m = "200 pF"\n\n[simulation]'), "neuron_default",
     "did you mean 'neuron_defaults'? (known here: assimilation, atlas, bold, bridge, conditions, cpg, monitors, "
     "neuron_defaults, populations, projections, simulation, stimuli, subject, task)"),
    ("bad rule", ('rule = "fixed_indegree"', 'rule = "all_to_all_please"'), "projections[0].rule", "not one of"),
    ("bad receptor", ('receptor = "ampa"', 'receptor = "glutamate"'), "projections[0].receptor", "not one of"),
    ("Dale's law", ('source = "E"', 'source = "I"'), "projections[0].receptor", "inhibitory"),
    ("negative weight", ('weight = "0.5 nS"', 'weight = "-0.5 nS"'), "projections[0].weight", "negative"),
    ("probability > 1", ('rule = "fixed_indegree"\nindegree = 10', 'rule = "fixed_probability"\nprobability = 1.5'),
     "projections[0].probability", "[0.0, 1.0]"),
    ("one_to_one sizes", ('rule = "fixed_indegree"\nindegree = 10', 'rule = "one_to_one"'), "projections[0].rule",
     "equal sizes"),
    ("negative dt", ('dt = "0.1 ms"', 'dt = "-0.1 ms"'), "simulation.dt", "positive"),
    ("unknown neuron parameter", ('kind = "inhibitory"', 'kind = "inhibitory"\nparams = {V_threshold = "-50 mV"}'),
     "populations[1].params.V_threshold", "unknown neuron parameter"),
    ("reset above threshold", ('kind = "inhibitory"', 'kind = "inhibitory"\nparams = {V_reset = "-40 mV"}'),
     "populations[1].params.V_reset", "below V_th"),
    ("bad kind", ('kind = "inhibitory"', 'kind = "inhibitatory"'), "populations[1].kind", "not one of"),
    ("duplicate name", ('name = "I"', 'name = "E"'), "populations[1].name", "duplicate"),
    ("integer as string", ("indegree = 10", 'indegree = "10"'), "projections[0].indegree", "integer"),
    ("stimulus stop before start", ('weight = "1 nS"', 'weight = "1 nS"\nstart = "50 ms"\nstop = "20 ms"'),
     "stimuli[0].stop", "after start"),
]


@pytest.mark.parametrize("desc,change,field,words", CASES, ids=[c[0] for c in CASES])
def test_bad_config_names_file_and_field(tmp_path, desc, change, field, words):
    old, new = change
    assert old in BASE
    path = tmp_path / "bad.toml"
    path.write_text(BASE.replace(old, new, 1))
    with pytest.raises(ConfigError) as e:
        load_spec(path)
    msg = str(e.value)
    assert e.value.field == field, msg
    assert str(path) in msg
    assert words in msg, msg


def test_base_config_is_valid(tmp_path):
    path = tmp_path / "ok.toml"
    path.write_text(BASE)
    spec = load_spec(path)
    assert spec.n_neurons == 100 and spec.projections[0].weight.value == pytest.approx(0.5e-9)


def test_not_toml_and_missing_file(tmp_path):
    bad = tmp_path / "broken.toml"
    bad.write_text("[simulation\ndt = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_spec(bad)
    with pytest.raises(ConfigError, match="file not found"):
        load_spec(tmp_path / "nope.toml")


@pytest.mark.parametrize("ranks", [1, 2])
def test_cli_reports_config_error_without_traceback(tmp_path, ranks):
    path = tmp_path / "bad.toml"
    path.write_text(BASE.replace('delay = "1.5 ms"', 'delay = "1.5 mV"'))
    p = run_dtb(["run", str(path), "--ranks", str(ranks), "--out", str(tmp_path / "out")])
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    lines = [ln for ln in p.stderr.splitlines() if "error" in ln]
    assert len(lines) == 1 and "projections[0].delay" in lines[0] and str(path) in lines[0]
    assert not (tmp_path / "out").exists()


def test_cli_rejects_bad_duration(tmp_path):
    path = tmp_path / "ok.toml"
    path.write_text(BASE)
    p = run_dtb(["run", str(path), "--duration", "10 mV"])
    assert p.returncode == 2 and "Traceback" not in p.stderr and "time" in p.stderr


def test_cli_reports_unwritable_output(tmp_path):
    path = tmp_path / "ok.toml"
    path.write_text(BASE)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    p = run_dtb(["run", str(path), "--out", str(blocker / "out")])
    assert p.returncode == 2 and "Traceback" not in p.stderr and "cannot write results" in p.stderr

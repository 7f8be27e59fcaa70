"""Task protocols: BIDS events files (and their errors), trial types mapped to atlas regions."""

import numpy as np
import pytest

from dtb.errors import DtbError
from dtb.spec import PoissonStimulus, spec_from_dict
from dtb.task import Event, TaskSettings, TrialType, add_task_stimuli, match_regions, read_events, write_events

TYPES = {"visual": TrialType("visual", ("pericalcarine", "cuneus"), "poisson", 300.0)}


def _events(tmp_path, text):
    p = tmp_path / "events.tsv"
    p.write_text(text)
    return p


def test_read_and_write_events(tmp_path):
    p = _events(tmp_path, "onset\tduration\ttrial_type\tamplitude\n10\t10\tvisual\t2\n30\t10\tvisual\tn/a\n")
    ev = read_events(p, TYPES, 60.0)
    assert ev == [Event(10.0, 10.0, "visual", 2.0), Event(30.0, 10.0, "visual", 1.0)]
    out = write_events(tmp_path / "copy.tsv", ev)
    assert read_events(out, TYPES, 60.0) == ev


@pytest.mark.parametrize("text, words", [
    ("onset\ttrial_type\n1\tvisual\n", "missing column(s) duration"),
    ("onset\tduration\ttrial_type\n1\t-2\tvisual\n", "line 2: negative duration"),
    ("onset\tduration\ttrial_type\n1\t2\tvisual\n70\t2\tvisual\n", "line 3: onset 70 s is past the end of the run"),
    ("onset\tduration\ttrial_type\n1\t2\tauditory\n", "no events of the trial types the config models (visual)"),
    ("onset\tduration\ttrial_type\nsoon\t2\tvisual\n", "onset must be a number"),
    ("onset\tduration\ttrial_type\n", "no events"),
])
def test_bad_events_files(tmp_path, text, words):
    with pytest.raises(DtbError) as e:
        read_events(_events(tmp_path, text), TYPES, 60.0)
    assert words in str(e.value) and "events.tsv" in str(e.value)


def test_events_as_bids_allows_them(tmp_path, caplog):
    """n/a where BIDS allows it; trial types the config does not model are left out with one
    warning naming them, or refused when strict."""
    text = ("onset\tduration\ttrial_type\tamplitude\tresponse_time\n"
            "0\tn/a\tfixation\tn/a\t0.4\n5\t10\tvisual\tn/a\tn/a\n20\tn/a\tvisual\t2\t1.1\n"
            "30\t1\tfixation\t1\tn/a\n40\t1\tn/a\t1\tn/a\n")
    path = _events(tmp_path, text)
    with caplog.at_level("WARNING", logger="dtb.task"):
        ev = read_events(path, TYPES, 60.0)
    assert ev == [Event(5.0, 10.0, "visual", 1.0), Event(20.0, 0.0, "visual", 2.0)]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "left out 3 events" in warnings[0] and "fixation (2), n/a (1)" in warnings[0]
    with pytest.raises(DtbError, match="trial types the config does not model: fixation"):
        read_events(path, TYPES, 60.0, strict=True)
    with pytest.raises(DtbError, match="line 2: onset must be a number"):
        read_events(_events(tmp_path, "onset\tduration\ttrial_type\nn/a\t1\tvisual\n"), TYPES, 60.0)


def test_trial_types_map_to_atlas_labels_and_add_stimuli():
    regions = ["l_pericalcarine", "r_pericalcarine", "l_cuneus", "r_cuneus", "l_precentral"]
    assert match_regions(("pericalcarine", "l_cuneus"), regions) == ["l_pericalcarine", "r_pericalcarine", "l_cuneus"]
    with pytest.raises(DtbError, match="matches no region"):
        match_regions(("v1",), regions)
    pops = []
    stims = []
    for r in regions:
        for kind, k in (("E", "excitatory"), ("I", "inhibitory")):
            pops.append({"name": f"{r}_{kind}", "region": r, "size": 10, "kind": k})
            stims.append({"type": "poisson", "population": f"{r}_{kind}", "rate": "1000 Hz", "weight": "1 nS"})
    spec = spec_from_dict({"populations": pops, "stimuli": stims, "simulation": {"duration": "60 s"}})
    settings = TaskSettings(trial_types=tuple(TYPES.values()))
    out = add_task_stimuli(spec, [Event(10, 5, "visual", 2.0)], settings)
    new = [s for s in out.stimuli if isinstance(s, PoissonStimulus) and s.start == 10]
    assert sorted(s.population for s in new) == ["l_cuneus_E", "l_pericalcarine_E", "r_cuneus_E", "r_pericalcarine_E"]
    assert all(s.rate == 600.0 and s.stop == 15 and s.weight == pytest.approx(1e-9) for s in new)


def test_rest_then_task_shifts_the_protocol(tmp_path):
    """--rest T: T of rest first; events move by T and the run grows by T (the spec, not a run)."""
    import argparse
    from pathlib import Path
    from dtb.cli.run import load_run_spec as _load_run_spec
    root = Path(__file__).resolve().parents[1] / "dtb" / "examples"
    args = argparse.Namespace(config=str(root / "visual_task.toml"), duration=None, seed=None, command="task",
                              events=None, rest=20.0)
    spec = _load_run_spec(args)
    plain = _load_run_spec(argparse.Namespace(**{**vars(args), "rest": None}))
    assert spec.simulation.duration == pytest.approx(plain.simulation.duration + 20.0)
    assert [e.onset for e in args._events] == [e.onset + 20.0 for e in read_events(
        root / "visual_events.tsv", {t.name: t for t in spec.task.trial_types}, plain.simulation.duration)]
    starts = sorted({s.start for s in spec.stimuli if isinstance(s, PoissonStimulus) and s.start > 0})
    assert starts[0] >= 20.0


def test_fitted_hyperparameters_are_loaded(tmp_path):
    """dtb run --hyperparameters: a region whose fitted AMPA scale is 1.5 fires more (its inhibitory
    neurons: the region's own inhibition then holds its excitatory rate near where it was)."""
    import json
    import h5py
    from conftest import SMALL_NETWORK, run_dtb
    cfg = tmp_path / "net.toml"
    cfg.write_text(SMALL_NETWORK)
    fitted = tmp_path / "fitted.h5"
    with h5py.File(fitted, "w") as f:
        f.create_dataset("network/regions", data=np.array(["A", "B"], dtype="S"))
        f.create_dataset("hp/final", data=np.array([[[1.0], [1.5]], [[1.0], [1.5]]]))     # (members, regions, H)
        f.attrs["hyperparameters"] = json.dumps(["ampa"])
        f.attrs["settings"] = json.dumps({"gamma_shape": 50.0})
    rates = {}
    for name, extra in (("plain", []), ("fitted", ["--hyperparameters", str(fitted)])):
        p = run_dtb(["run", str(cfg), "--out", str(tmp_path / name), "--no-plots", "-q", *extra])
        assert p.returncode == 0, p.stderr
        rates[name] = json.loads((tmp_path / name / "summary.json").read_text())["mean_rate_hz"]
    assert rates["fitted"]["B_I"] > 1.5 * rates["plain"]["B_I"]
    wrong = tmp_path / "wrong.h5"
    with h5py.File(wrong, "w") as f:
        f.create_dataset("network/regions", data=np.array(["A", "C"], dtype="S"))
        f.create_dataset("hp/final", data=np.ones((2, 2, 1)))
        f.attrs["hyperparameters"] = json.dumps(["ampa"])
        f.attrs["settings"] = json.dumps({})
    p = run_dtb(["run", str(cfg), "--out", str(tmp_path / "w"), "--no-plots", "--hyperparameters", str(wrong)])
    assert p.returncode == 2 and "do not match" in p.stderr and "Traceback" not in p.stderr
    p = run_dtb(["run", str(cfg), "--out", str(tmp_path / "w"), "--no-plots", "--rest", "5 s"])
    assert p.returncode == 2 and "--rest belongs to dtb task" in p.stderr


def test_the_results_line_lists_every_file_by_folder():
    from pathlib import Path

    from dtb.cli.run import results_line
    out = Path("/o")
    line = results_line([out / "run.h5", out / "zmap_visual.nii.gz", out / "region_z.tsv",
                         out / "bids" / "dataset_description.json", out / "bids" / "sub-x" / "func" / "a.json"])
    assert line == "/o/: run.h5, zmap_visual.nii.gz, region_z.tsv; /o/bids/ (2 files)"


def test_events_carry_a_modulation_column_only_when_it_changes_something():
    from dtb.task import Event, events_frame
    plain = events_frame([Event(1.0, 2.0, "a", 1.0), Event(5.0, 2.0, "a", 1.0)])
    assert list(plain.columns) == ["onset", "duration", "trial_type"]
    scaled = events_frame([Event(1.0, 2.0, "a", 1.0), Event(5.0, 2.0, "a", 0.5)])
    assert list(scaled.modulation) == [1.0, 0.5]

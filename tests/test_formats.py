"""The formats neuroimagers and modellers use: NWB export read back with pynwb, and the BIDS
derivative folder of a run's BOLD."""

import json

import h5py
import numpy as np
import pytest

from conftest import SMALL_NETWORK, run_dtb

pynwb = pytest.importorskip("pynwb")

BOLD = '\n[bold]\ntr = "50 ms"\npreset = "dtb"\n'


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("formats")
    cfg = d / "net.toml"
    cfg.write_text(SMALL_NETWORK.replace('duration = "300 ms"', 'duration = "200 ms"') + BOLD)
    p = run_dtb(["run", str(cfg), "--out", str(d / "out"), "--no-plots", "-q"])
    assert p.returncode == 0, p.stderr
    return d / "out" / "run.h5"


def test_nwb_export_round_trip(small_run, tmp_path):
    from dtb.results import read_spikes
    out = tmp_path / "run.nwb"
    p = run_dtb(["export", str(small_run), "--nwb", "--out", str(out)])
    assert p.returncode == 0, p.stderr
    gids, times_ms = read_spikes(small_run, unit="ms")
    with h5py.File(small_run) as f:
        rates, bold = f["rates"][()], f["bold/signal"][()]
        config, seed = f.attrs["config"], int(f.attrs["seed"])
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        nwb = io.read()
        units = nwb.units.to_dataframe()
        assert len(units) == 560 and list(units.gid) == list(range(560))
        for gid in (int(gids[0]), int(gids[len(gids) // 2])):
            np.testing.assert_allclose(units.spike_times[gid], np.sort(times_ms[gids == gid]) / 1e3)
        assert sum(len(s) for s in units.spike_times) == len(gids)
        assert units.population[0] == "A_E" and units.region[559] == "B" and units.kind[300] == "excitatory"
        dtb_module = nwb.processing["dtb"]
        np.testing.assert_array_equal(dtb_module["population_rates"].data[:], rates)
        np.testing.assert_array_equal(dtb_module["regional_BOLD"].data[:], bold)
        assert dtb_module["regional_BOLD"].rate == pytest.approx(20.0)
        assert nwb.source_script == config and f"seed {seed}" in nwb.experiment_description
        assert nwb.subject.subject_id == "net" and nwb.subject.species == "Homo sapiens"
        assert nwb.units.resolution == pytest.approx(1e-4) and nwb.trials is None
    p = run_dtb(["export", str(tmp_path / "missing.h5"), "--nwb"])
    assert p.returncode == 2 and "file not found" in p.stderr


def test_nwb_passes_nwbinspector_with_task_events_as_trials(small_run, tmp_path):
    """nwbinspector finds nothing critical and no best-practice violation (Subject from the
    config, the units' resolution the simulation step), and a task's events come as trials."""
    import shutil

    from nwbinspector import Importance, inspect_nwbfile
    run = tmp_path / "run.h5"
    shutil.copy(small_run, run)
    (tmp_path / "events.tsv").write_text("onset\tduration\ttrial_type\tamplitude\n0.02\t0.05\tflash\t1\n"
                                         "0.1\t0.05\tflash\t0.5\n")
    out = tmp_path / "run.nwb"
    p = run_dtb(["export", str(run), "--nwb", "--out", str(out)])
    assert p.returncode == 0, p.stderr
    found = [m for m in inspect_nwbfile(nwbfile_path=str(out))
             if m.importance in (Importance.CRITICAL, Importance.BEST_PRACTICE_VIOLATION)]
    assert not found, [f"{m.importance.name}: {m.message}" for m in found]
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        trials = io.read().trials.to_dataframe()
    assert list(trials.trial_type) == ["flash", "flash"] and list(trials.amplitude) == [1.0, 0.5]
    np.testing.assert_allclose(trials.stop_time - trials.start_time, 0.05)


def test_bids_derivative_of_a_run(tmp_path):
    """With an atlas, a run's BOLD also lands in OUT/bids with BIDS names and sidecars."""
    from dtb import bids
    from dtb.config import spec_from_dict
    import tomllib
    from atlas import builtin
    net = tomllib.loads(SMALL_NETWORK)
    spec = spec_from_dict(net)
    nifti = tmp_path / "bold.nii.gz"
    nifti.write_bytes(b"not really an image")
    events = tmp_path / "events.tsv"
    events.write_text("onset\tduration\ttrial_type\tamplitude\n1\t2\tvisual\t1\n")
    import dataclasses
    from dtb.bold import BoldSettings
    from dtb.task import TaskSettings
    spec = dataclasses.replace(spec, bold=BoldSettings(tr=2.0, atlas=str(builtin.DK_VOLUME), labels=str(builtin.DK_TABLE)),
                               source=str(tmp_path / "my_net.toml"), subject=dataclasses.replace(spec.subject, id="mynet"))
    written = bids.write_derivative(tmp_path, spec, nifti, bids.task_label("sub-01_task-visual01_events.tsv"), events)
    func = tmp_path / "bids" / "sub-mynet" / "func"
    bold = "sub-mynet_task-visual01_space-MNI152_desc-dtb_bold"
    assert (func / f"{bold}.nii.gz").read_bytes() == b"not really an image"
    sidecar = json.loads((func / f"{bold}.json").read_text())
    assert sidecar["RepetitionTime"] == 2.0 and sidecar["TaskName"] == "visual01" and sidecar["StartTime"] == 2.0
    assert sidecar["dtb"]["seed"] == 99
    desc = json.loads((tmp_path / "bids" / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative" and desc["GeneratedBy"][0]["Name"] == "dtb"
    ev = json.loads((func / "sub-mynet_task-visual01_events.json").read_text())
    assert ev["onset"]["Units"] == "s" and "amplitude" in ev
    assert len(written) == 5 and bids.task_label(None) == "task" and bids.label("whole_brain") == "wholebrain"
    named = dataclasses.replace(spec, task=TaskSettings(trial_types=(), name="visual"))
    assert bids.task_label("sub-01_task-other_events.tsv", named) == "visual"      # the config's name wins
    assert bids.task_label(None, spec) == "mynet"                                    # else the config's
    _bids_valid(tmp_path / "bids", written)


def _bids_valid(root, written):
    """Every file passes the BIDS validator's Python package (raw BIDS rules: each name is checked
    with the derivative entities space- and desc- taken out; those two must come in BIDS order)."""
    from bids_validator import BIDSValidator

    from assimilation.nifti_input import DERIVATIVE_ENTITIES, ENTITIES, bids_name, bids_parts
    v = BIDSValidator()
    for path in written:
        entities, suffix, ext = bids_parts(path.name)
        if entities:
            keys = list(entities)
            assert keys == [k for k in ENTITIES if k in entities], path.name          # BIDS order
            raw = {k: val for k, val in entities.items() if k not in DERIVATIVE_ENTITIES}
            path = path.with_name(bids_name(raw, suffix, ext))
        assert v.is_bids("/" + str(path.relative_to(root))), path

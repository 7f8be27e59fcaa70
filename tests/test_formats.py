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
    p = run_dtb(["export", str(tmp_path / "missing.h5"), "--nwb"])
    assert p.returncode == 2 and "file not found" in p.stderr


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
    spec = dataclasses.replace(spec, bold=BoldSettings(tr=2.0, atlas=str(builtin.DK_VOLUME), labels=str(builtin.DK_TABLE)),
                               source=str(tmp_path / "my_net.toml"))
    written = bids.write_derivative(tmp_path, spec, nifti, bids.task_label("sub-01_task-visual01_events.tsv"), events)
    func = tmp_path / "bids" / "sub-mynet" / "func"
    assert (func / "sub-mynet_task-visual01_bold.nii.gz").read_bytes() == b"not really an image"
    sidecar = json.loads((func / "sub-mynet_task-visual01_bold.json").read_text())
    assert sidecar["RepetitionTime"] == 2.0 and sidecar["TaskName"] == "visual01"
    assert sidecar["dtb"]["seed"] == 99
    desc = json.loads((tmp_path / "bids" / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative" and desc["GeneratedBy"][0]["Name"] == "dtb"
    ev = json.loads((func / "sub-mynet_task-visual01_events.json").read_text())
    assert ev["onset"]["Units"] == "s" and "amplitude" in ev
    assert len(written) == 5 and bids.task_label(None) == "task" and bids.label("whole_brain") == "wholebrain"

"""Export a run (run.h5) to NWB 2 (pynwb), the format electrophysiology tools read:

    subject                    from the config's [subject]: subject_id, species, description, age, sex
    units                      one row per neuron: spike_times (s), gid, population, region, kind;
                               resolution = the simulation step (s)
    trials                     with a task (events.tsv beside run.h5, as dtb task writes it): one per
                               event, start_time, stop_time (s), trial_type, amplitude
    processing/dtb/population_rates     TimeSeries (bins x populations), Hz; columns in the description
    processing/dtb/regional_rate        TimeSeries (samples x regions), Hz per neuron
    processing/dtb/regional_I_exc, regional_I_inh   TimeSeries, pA per neuron
    processing/dtb/regional_BOLD        TimeSeries (TRs x regions), fractional signal change (with [bold])
    source_script              the config (TOML text); source_script_file_name its path
    experiment_description     the seed, the rank count and the dtb version
"""

from __future__ import annotations

import datetime as _dt
import uuid
from pathlib import Path

import h5py
import numpy as np

from dtb.errors import DtbError


def _read_run(path: Path) -> dict:
    try:
        with h5py.File(path, "r") as f:
            pops = [(r["name"], r["region"], r["kind"], int(r["first_gid"]), int(r["size"]))
                    for r in f["network/populations"][()]]
            pops = [tuple(x.decode() if isinstance(x, bytes) else x for x in p) for p in pops]
            spikes = {p[0]: (f["spikes"][p[0]]["node_ids"][()].astype(np.int64),
                             f["spikes"][p[0]]["timestamps"][()] / 1e3) for p in pops}
            run = {"attrs": dict(f.attrs), "populations": pops, "spikes": spikes, "dt_s": float(f.attrs["dt_ms"]) / 1e3,
                   "regions": [r.decode() if isinstance(r, bytes) else r for r in f["network/regions"][()]],
                   "rates": f["rates"][()], "bin_s": float(f["rates"].attrs["bin_ms"]) / 1e3,
                   "interval_s": float(f["regions"].attrs["interval_ms"]) / 1e3,
                   "regional": {k: f["regions"][k][()] for k in ("rate", "I_exc", "I_inh")}}
            if "bold" in f:
                run["bold"] = f["bold/signal"][()]
                run["tr_s"] = float(f["bold"].attrs["tr_s"])
    except FileNotFoundError:
        raise DtbError(f"{path}: file not found") from None
    except (OSError, KeyError) as e:
        raise DtbError(f"{path}: not a run file written by dtb run ({e})") from None
    return run


def export_nwb(run_path: str | Path, out: str | Path) -> Path:
    """Write ``out`` (.nwb) from the run file ``run_path`` (layout in the module docstring)."""
    import dataclasses
    import json

    from pynwb import NWBHDF5IO, NWBFile, TimeSeries
    from pynwb.file import Subject
    from dtb.files import atomic_path
    run_path, out = Path(run_path), Path(out)
    run = _read_run(run_path)
    a = run["attrs"]
    created = _dt.datetime.fromisoformat(str(a.get("created", _dt.datetime.now(_dt.timezone.utc).isoformat())))
    nwb = NWBFile(session_description=f"dtb simulation of {a.get('config_path', '?')}",
                  identifier=str(uuid.uuid5(uuid.NAMESPACE_URL, f"dtb:{run_path.resolve()}:{a.get('created', '')}")),
                  session_start_time=created, source_script=str(a.get("config", "")),
                  source_script_file_name=str(a.get("config_path", "")),
                  experiment_description=f"seed {int(a.get('seed', 0))}; {int(a.get('n_ranks', 1))} MPI rank(s); "
                                         f"dtb {a.get('dtb_version', '?')}; biological time "
                                         f"{float(a.get('duration_ms', 0)) / 1e3:g} s",
                  keywords=["simulation", "spiking network", "dtb"])
    from dtb.spec import Subject as Who
    who = {**dataclasses.asdict(Who(id="dtb")), **(json.loads(a["subject"]) if "subject" in a else {})}
    nwb.subject = Subject(subject_id=who["id"], species=who["species"], description=who["description"],
                          age=who["age"], sex=who["sex"])
    _add_units(nwb, run)
    _add_trials(nwb, run_path.parent / "events.tsv")
    module = nwb.create_processing_module("dtb", "simulated population and regional activity (dtb run)")
    names = [p[0] for p in run["populations"]]
    module.add(TimeSeries(name="population_rates", data=run["rates"], unit="Hz", starting_time=0.0,
                          rate=1.0 / run["bin_s"], description="firing rate per neuron; columns: " + ", ".join(names)))
    for key, unit, what in (("rate", "Hz", "firing rate per neuron"), ("I_exc", "pA", "excitatory synaptic current "
                            "per neuron"), ("I_inh", "pA", "inhibitory synaptic current per neuron")):
        module.add(TimeSeries(name=f"regional_{key}", data=run["regional"][key], unit=unit,
                              starting_time=run["interval_s"], rate=1.0 / run["interval_s"],
                              description=f"{what}; columns: " + ", ".join(run["regions"])))
    if "bold" in run:
        module.add(TimeSeries(name="regional_BOLD", data=run["bold"], unit="fractional signal change",
                              starting_time=run["tr_s"], rate=1.0 / run["tr_s"],
                              description="balloon-Windkessel BOLD per region; columns: " + ", ".join(run["regions"])))
    with atomic_path(out) as tmp, NWBHDF5IO(str(tmp), "w") as io:
        io.write(nwb)
    return out


def _add_trials(nwb, events: Path) -> None:
    """A task's events (dtb task's events.tsv) as NWB trials."""
    if not events.exists():
        return
    import csv
    with open(events, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if not rows:
        return
    nwb.add_trial_column(name="trial_type", description="the event's trial type ([task] trial_types)")
    nwb.add_trial_column(name="amplitude", description="the event's amplitude (a factor on its trial type's input)")
    for r in rows:
        onset, duration = float(r["onset"]), float(r["duration"])
        nwb.add_trial(start_time=onset, stop_time=onset + duration, trial_type=r["trial_type"],
                      amplitude=float(r.get("amplitude") or 1.0))


def _add_units(nwb, run: dict) -> None:
    """One unit per neuron, with its spike times and where it sits."""
    from pynwb.misc import Units
    nwb.units = Units(name="units", description="the simulated neurons, one per global id", resolution=run["dt_s"])
    for col, text in (("gid", "global neuron id in the run"), ("population", "population name"),
                      ("region", "region name"), ("kind", "excitatory or inhibitory")):
        nwb.add_unit_column(name=col, description=text)
    for name, region, kind, first, size in run["populations"]:
        ids, times = run["spikes"][name]
        order = np.argsort(ids, kind="stable")
        ids, times = ids[order], times[order]
        bounds = np.searchsorted(ids, np.arange(size + 1))
        for i in range(size):
            nwb.add_unit(spike_times=times[bounds[i]:bounds[i + 1]], gid=first + i, population=name, region=region,
                         kind=kind)

"""Run results: gathered from all ranks onto rank 0, written as one HDF5 file, read back.

HDF5 layout (one file per run, ``run.h5``; times in ms, currents in pA, rates in Hz):

    /                         attrs: dtb_version, config (TOML text), config_path, subject (JSON: id,
                                     species, description; [subject]), seed, n_ranks,
                                     dt_ms, duration_ms, versions (JSON), created (ISO 8601)
    /spikes/<population>/     SONATA spike report: node_ids (uint64, index inside the population),
                              timestamps (float64, attr units="ms"); group attr sorting = by_time
    /network/populations      table: name, region, kind, first_gid, size
    /network/regions          region names (row order of the regional arrays)
    /rates                    (n_bins x n_populations) Hz; attrs bin_ms, columns
    /regions/I_exc, I_inh     (n_samples x n_regions) mean excitatory (AMPA+NMDA) / inhibitory
                              (GABAa+GABAb) synaptic current per neuron over each interval, pA;
    /regions/rate             (n_samples x n_regions) firing rate per neuron over each interval, Hz;
                              attrs interval_ms; /regions/t_ms holds each interval's end,
                              /regions/sizes the neurons per region
    /bold                     (when [bold] is configured) signal (n_TR x n_regions), t_s, attrs
    /state/<k>/               recorded variables: gids, t_ms, and one (n_times x n_neurons) array
                              per variable, SI units (attr units)
    /cpg                      (when [cpg] is configured) t_ms, y (n_times x n_oscillators x 2: flexor,
                              extensor output), group (group index per oscillator), attr groups
    /plasticity/<k>/          (when projection k is plastic) its synapses at the end of the run,
                              sorted by (target, ordinal): target, source (gids), weight (nS);
                              attrs source, target (population names)
                              history_t_ms, history (n x 4: mean, std, min, max nS) when
                              monitors.plasticity_interval is set
    /bridge/error/            (with [bridge.error]) t_ms, intended, angle (n x joints, rad) per period
    /summary                  attrs: neurons, synapses, spikes, wall_s, build_s, realtime_factor, ...

The global id of a spike is ``first_gid`` of its population plus its node id.
The file is written to a temporary name in the same folder and renamed, so a crash never leaves
a half-written run.h5.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

import dtb
from dtb.bold import regional_activity
from dtb.engine.kernel import Simulation
from dtb.files import atomic_path
from dtb.spec import NetworkSpec

SONATA_SORTING = h5py.enum_dtype({"none": 0, "by_id": 1, "by_time": 2}, basetype=np.uint8)


@dataclass
class RunResults:
    spec: NetworkSpec
    n_ranks: int
    duration: float                       # simulated time (s)
    spike_gids: np.ndarray                # int64, sorted by (step, gid)
    spike_steps: np.ndarray               # int64
    region_exc: np.ndarray                # (n_samples, n_regions) pA
    region_inh: np.ndarray
    region_rate: np.ndarray               # (n_samples, n_regions) Hz per neuron
    region_interval: float                # s
    states: list = field(default_factory=list)   # (name, gids, t (s), {var: array})
    summary: dict = field(default_factory=dict)
    plastic: np.ndarray | None = None     # rows of Simulation.plastic_weights(), all ranks
    plastic_history: dict | None = None   # Simulation.plastic_history
    bridge_error: list | None = None      # BodyCoupling.error_log: (t, intended, angle)
    bold: np.ndarray | None = None        # (n_TR, n_regions), when [bold] is configured
    bold_state: object = None             # the balloon model's final state
    cpg: tuple | None = None              # (t (s), y (n_t, N, 2)) recorded CPG outputs

    @property
    def spike_times(self) -> np.ndarray:
        """Spike times in seconds."""
        return self.spike_steps * self.spec.simulation.dt

    def rates(self, bin_width: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Population rates (Hz): (bin start times in s, array n_bins x n_populations)."""
        spec = self.spec
        bw = bin_width or spec.monitors.rate_bin
        steps_per_bin = max(int(round(bw / spec.simulation.dt)), 1)
        n_steps = int(round(self.duration / spec.simulation.dt))
        n_bins = max(int(np.ceil(n_steps / steps_per_bin)), 1)
        pop = spec.population_index(self.spike_gids)
        b = np.minimum(self.spike_steps // steps_per_bin, n_bins - 1)
        counts = np.zeros((n_bins, len(spec.populations)))
        np.add.at(counts, (b, pop), 1)
        sizes = np.array([p.size for p in spec.populations], dtype=float)
        return np.arange(n_bins) * steps_per_bin * spec.simulation.dt, counts / sizes / (steps_per_bin * spec.simulation.dt)

    # ----------------------------------------------------------------- tables
    def spikes_frame(self):
        """pandas DataFrame of every spike: time_s, gid, population, region."""
        import pandas as pd
        pop = self.spec.population_index(self.spike_gids)
        names = np.array([p.name for p in self.spec.populations])
        regions = np.array([p.region for p in self.spec.populations])
        return pd.DataFrame({"time_s": self.spike_times, "gid": self.spike_gids, "population": names[pop],
                             "region": regions[pop]})

    def rates_frame(self, bin_width: float | None = None):
        """pandas DataFrame of population rates (Hz): one column per population, indexed by the
        bins' start time (s)."""
        import pandas as pd
        t, r = self.rates(bin_width)
        return pd.DataFrame(r, index=pd.Index(t, name="time_s"), columns=[p.name for p in self.spec.populations])

    def regions_frame(self, quantity: str = "rate"):
        """pandas DataFrame of regional activity, one column per region, indexed by the end of
        each sampling interval (s): ``rate`` (Hz per neuron), ``I_exc`` or ``I_inh`` (pA per neuron)."""
        import pandas as pd
        data = {"rate": self.region_rate, "I_exc": self.region_exc, "I_inh": self.region_inh}
        if quantity not in data:
            raise ValueError(f"quantity must be one of {', '.join(data)}, got {quantity!r}")
        t = np.arange(1, len(data[quantity]) + 1) * self.region_interval
        return pd.DataFrame(data[quantity], index=pd.Index(t, name="time_s"), columns=list(self.spec.regions))

    def bold_frame(self):
        """pandas DataFrame of the regional BOLD (fractional signal change), one column per
        region, indexed by the scan times (s: the ends of the TRs). A DtbError without [bold]."""
        if self.bold is None:
            from dtb.errors import DtbError
            raise DtbError(f"{self.spec.source}: this run has no BOLD: add a [bold] section to the config "
                           f"(docs/bold_and_task.md), or compute it afterwards with `dtb bold RUN.h5 --tr ...`")
        import pandas as pd
        t = np.arange(1, len(self.bold) + 1) * self.spec.bold.tr
        return pd.DataFrame(self.bold, index=pd.Index(t, name="time_s"), columns=list(self.spec.regions))

    def states_frame(self, monitor: str | None = None):
        """pandas DataFrame of the recorded state variables ([[monitors.state]]), one row per
        (monitor, time, neuron): columns monitor, time_s, gid and one per variable, in SI units
        (V, S, A); ``monitor``: only that one. A DtbError when nothing was recorded."""
        import pandas as pd
        from dtb.errors import DtbError
        chosen = [s for s in self.states if monitor is None or s[0] == monitor]
        if not chosen:
            known = ", ".join(s[0] for s in self.states) or "none"
            raise DtbError(f"no state monitor {monitor!r} in this run (recorded: {known}; see [[monitors.state]] "
                           f"in docs/model.md)" if monitor else "this run recorded no state variables: add a "
                           "[[monitors.state]] to the config (docs/model.md)")
        parts = []
        for name, gids, t, data in chosen:
            t = np.asarray(t)
            cols = {"monitor": name, "time_s": np.repeat(t, len(gids)), "gid": np.tile(np.asarray(gids), len(t))}
            cols.update({var: np.asarray(arr).reshape(-1) for var, arr in data.items()})
            parts.append(pd.DataFrame(cols))
        return pd.concat(parts, ignore_index=True)

    def mean_rates(self) -> dict[str, float]:
        """Mean rate per population over the whole run (Hz)."""
        pop = self.spec.population_index(self.spike_gids)
        counts = np.bincount(pop, minlength=len(self.spec.populations))
        return {p.name: counts[k] / p.size / self.duration for k, p in enumerate(self.spec.populations)}


def gather_results(sim: Simulation, summary: dict | None = None) -> RunResults | None:
    """Collect every rank's records on rank 0 (collective: all ranks call it). Others get None."""
    sim.finish_exchange()
    gids, steps = sim.local_spikes()
    rows = np.array(sim.region_rows, dtype=np.int64).reshape(-1, 3, len(sim.spec.regions))
    states = []
    for k, (sm, mine, mon) in enumerate(sim.state_monitors):
        t, data = sim.state_record(k)
        states.append((mine, t, data))
    n_syn = sim.n_synapses_total()
    from dtb.engine.kernel import peak_rss
    pieces = sim.comm.gather((gids, steps, rows, states, sim.stats, peak_rss(),
                              sim.plastic_weights() if sim.plastic else None), root=0)
    if sim.rank != 0:
        return None
    all_g = np.concatenate([p[0] for p in pieces])
    all_s = np.concatenate([p[1] for p in pieces])
    order = np.lexsort((all_g, all_s))
    total_rows = sum(p[2] for p in pieces)
    spec = sim.spec
    interval = sim.region_every * sim.dt
    i_exc, i_inh, rate = regional_activity(total_rows, spec.region_sizes, interval)
    state_out = []
    for k, sm in enumerate(spec.monitors.state):
        parts = [p[3][k] for p in pieces if len(p[3][k][0])]
        g = np.concatenate([x[0] for x in parts]) if parts else np.zeros(0, np.int64)
        t = parts[0][1] if parts else np.zeros(0)
        data = {v: np.concatenate([x[2][v] for x in parts], axis=1) if parts else np.zeros((0, 0))
                for v in sm.variables}
        state_out.append((f"{k}", g, t, data))
    summ = {"neurons": spec.n_neurons, "synapses": n_syn, "spikes": int(len(all_g)), "n_ranks": sim.size,
            "min_delay_steps": sim.D,
            "build_s_max": max(p[4].build_seconds for p in pieces),
            "synapses_remote": int(sum(p[4].n_synapses_remote for p in pieces)),
            "peak_rss_mb_per_rank": [round(p[5] / 2**20, 1) for p in pieces],
            "synapse_bytes_per_rank": [p[4].rss_after_first_step - p[4].rss_before_synapses for p in pieces],
            "synapses_per_rank": [p[4].n_synapses_local + p[4].n_synapses_remote for p in pieces]}
    summ.update(summary or {})
    bold = sim.bold.bold if sim.bold is not None else None
    bold_state = sim.bold.integrator.state if sim.bold is not None and sim.bold.integrator is not None else None
    return RunResults(bold=bold, bold_state=bold_state, spec=spec, n_ranks=sim.size, duration=sim.t, spike_gids=all_g[order],
                      spike_steps=all_s[order], region_exc=i_exc, region_inh=i_inh, region_rate=rate,
                      region_interval=interval,
                      states=state_out, cpg=sim.cpg.recording() if sim.cpg is not None else None,
                      summary=summ, plastic=gather_plastic([p[6] for p in pieces]) if sim.plastic else None,
                      plastic_history=sim.plastic_history or None)


def gather_plastic(parts: list[np.ndarray]) -> np.ndarray:
    """Join ranks' :meth:`Simulation.plastic_weights` rows, sorted by (projection, target, ordinal)."""
    rows = np.concatenate(parts)
    return rows[np.lexsort((rows[:, 2], rows[:, 1], rows[:, 0]))]


def package_versions() -> dict[str, str]:
    import brian2
    import mpi4py
    import scipy
    out = {"dtb": dtb.__version__, "python": platform.python_version(), "brian2": brian2.__version__,
           "numpy": np.__version__, "scipy": scipy.__version__, "h5py": h5py.__version__,
           "mpi4py": mpi4py.__version__}
    try:
        from mpi4py import MPI
        out["mpi"] = MPI.Get_library_version().splitlines()[0].strip()
    except Exception:
        pass
    return out


#: the mean rate assumed when estimating the size of a run's results before it runs
ASSUMED_RATE_HZ = 20.0


def estimated_results_bytes(spec) -> float:
    """The size of run.h5 before the run: spikes at ASSUMED_RATE_HZ (a node id and a time, 16
    bytes each), the regional samples (3 int64 per region per sample) and 1 MB of the rest."""
    t = spec.simulation.duration
    spikes = spec.n_neurons * t * ASSUMED_RATE_HZ * 16
    regions = len(spec.regions) * 3 * 8 * t / spec.monitors.region_interval
    return spikes + regions + 2**20


def write_results(res: RunResults, path: str | Path) -> Path:
    """Write ``res`` to ``path`` atomically (temporary file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    spec = res.spec
    dt = spec.simulation.dt
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["dtb_version"] = dtb.__version__
        f.attrs["config"] = spec.text
        f.attrs["config_path"] = spec.source
        f.attrs["subject"] = json.dumps(dataclasses.asdict(spec.subject))
        f.attrs["seed"] = spec.simulation.seed
        f.attrs["n_ranks"] = res.n_ranks
        f.attrs["dt_ms"] = dt * 1e3
        f.attrs["duration_ms"] = res.duration * 1e3
        f.attrs["versions"] = json.dumps(package_versions())
        f.attrs["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        spikes = f.create_group("spikes")
        pop = spec.population_index(res.spike_gids)
        for k, p in enumerate(spec.populations):
            sel = pop == k
            g = spikes.create_group(p.name)
            g.attrs.create("sorting", 2, dtype=SONATA_SORTING)
            g.create_dataset("node_ids", data=(res.spike_gids[sel] - p.first_gid).astype(np.uint64))
            ts = g.create_dataset("timestamps", data=res.spike_steps[sel] * (dt * 1e3))
            ts.attrs["units"] = "ms"
        net = f.create_group("network")
        table = np.array([(p.name, p.region, p.kind, p.first_gid, p.size) for p in spec.populations],
                         dtype=[("name", h5py.string_dtype()), ("region", h5py.string_dtype()),
                                ("kind", h5py.string_dtype()), ("first_gid", "<i8"), ("size", "<i8")])
        net.create_dataset("populations", data=table)
        net.create_dataset("regions", data=np.array(spec.regions, dtype=h5py.string_dtype()))
        t_bins, rates = res.rates()
        r = f.create_dataset("rates", data=rates)
        r.attrs["bin_ms"] = spec.monitors.rate_bin * 1e3
        r.attrs["columns"] = [p.name for p in spec.populations]
        r.attrs["units"] = "Hz"
        reg = f.create_group("regions")
        reg.attrs["interval_ms"] = res.region_interval * 1e3
        n = len(res.region_exc)
        reg.create_dataset("t_ms", data=np.arange(1, n + 1) * res.region_interval * 1e3)
        for name, arr, unit in (("I_exc", res.region_exc, "pA"), ("I_inh", res.region_inh, "pA"),
                                ("rate", res.region_rate, "Hz")):
            d = reg.create_dataset(name, data=arr)
            d.attrs["units"] = unit
        reg.create_dataset("sizes", data=spec.region_sizes)
        st = f.create_group("state")
        for name, gids, t, data in res.states:
            g = st.create_group(name)
            g.create_dataset("gids", data=gids)
            g.create_dataset("t_ms", data=np.asarray(t) * 1e3)
            for var, arr in data.items():
                g.create_dataset(var, data=arr)
        if res.bold is not None:
            from dtb.bold import write_bold_group
            write_bold_group(f, res.bold, spec.bold, res.bold_state)
        if res.cpg is not None:
            from dtb.engine.cpg import group_index
            c = f.create_group("cpg")
            c.create_dataset("t_ms", data=res.cpg[0] * 1e3)
            c.create_dataset("y", data=res.cpg[1])
            c.create_dataset("group", data=group_index(spec.cpg))
            c.attrs["groups"] = [g.name for g in spec.cpg.groups]
        if res.plastic is not None:
            for k in np.unique(res.plastic[:, 0]).astype(int):
                rows = res.plastic[res.plastic[:, 0] == k]
                g = f.create_group(f"plasticity/{k}")
                g.attrs["source"] = spec.projections[k].source
                g.attrs["target"] = spec.projections[k].target
                g.create_dataset("target", data=rows[:, 1].astype(np.int64))
                g.create_dataset("source", data=rows[:, 3].astype(np.int64))
                w = g.create_dataset("weight", data=rows[:, 4] * 1e9)
                w.attrs["units"] = "nS"
        for k, (t, stats) in (res.plastic_history or {}).items():
            g = f.require_group(f"plasticity/{k}")
            g.create_dataset("history_t_ms", data=np.asarray(t) * 1e3)
            h = g.create_dataset("history", data=np.asarray(stats).reshape(-1, 4) * 1e9)
            h.attrs["columns"] = ["mean", "std", "min", "max"]
            h.attrs["units"] = "nS"
        if res.bridge_error:
            g = f.create_group("bridge/error")
            g.create_dataset("t_ms", data=np.array([x[0] for x in res.bridge_error]) * 1e3)
            g.create_dataset("intended", data=np.array([x[1] for x in res.bridge_error]))
            g.create_dataset("angle", data=np.array([x[2] for x in res.bridge_error]))
            g.attrs["units"] = "rad"
        summ = f.create_group("summary")
        for k, v in res.summary.items():
            summ.attrs[k] = v
    return path


def write_json(data: dict, path: str | Path) -> Path:
    """Write ``data`` as indented JSON atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2))
    return path


def read_spikes(path: str | Path, unit: str = "s") -> tuple[np.ndarray, np.ndarray]:
    """Spikes of a run file as (global ids, times in ``unit``: "s", as the rest of the API, or
    "ms", as the file stores them), sorted by (time, gid)."""
    if unit not in ("s", "ms"):
        raise ValueError(f"unit must be 's' or 'ms', got {unit!r}")
    with h5py.File(path, "r") as f:
        pops = f["network/populations"][()]
        gids, times = [], []
        for row in pops:
            name = row["name"].decode() if isinstance(row["name"], bytes) else row["name"]
            g = f["spikes"][name]
            gids.append(g["node_ids"][()].astype(np.int64) + int(row["first_gid"]))
            times.append(g["timestamps"][()])
    g, t = np.concatenate(gids), np.concatenate(times)
    order = np.lexsort((g, t))
    return g[order], t[order] * (1e-3 if unit == "s" else 1.0)


def read_results(path: str | Path) -> RunResults:
    """A finished run's file (run.h5 of ``dtb run``, ``dtb task`` or ``dtb.simulate(out=...)``)
    as the RunResults ``dtb.simulate`` returns: its network from the config text stored in the
    file, spikes, regional activity, state monitors, BOLD and CPG outputs (plastic weights and
    the bridge's log stay in the file: /plasticity, /bridge). DtbError for a file that is not one."""
    import tomllib

    from dtb.errors import DtbError
    from dtb.spec import spec_from_dict
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            text, source, seed = str(f.attrs["config"]), str(f.attrs["config_path"]), int(f.attrs["seed"])
            dt, duration = float(f.attrs["dt_ms"]) * 1e-3, float(f.attrs["duration_ms"]) * 1e-3
            spec = spec_from_dict(tomllib.loads(text), source=source, text=text,
                                  overrides={"seed": seed, "duration": duration})
            order = {str(k): m.variables for k, m in enumerate(spec.monitors.state)}
            gids, t_ms = read_spikes(path, unit="ms")
            reg = f["regions"]
            res = RunResults(spec=spec, n_ranks=int(f.attrs["n_ranks"]), duration=duration,
                             spike_gids=gids, spike_steps=np.rint(t_ms * 1e-3 / dt).astype(np.int64),
                             region_exc=reg["I_exc"][()], region_inh=reg["I_inh"][()], region_rate=reg["rate"][()],
                             region_interval=float(reg.attrs["interval_ms"]) * 1e-3,
                             states=[(name, g["gids"][()], g["t_ms"][()] * 1e-3,
                                      {k: g[k][()] for k in order.get(name, sorted(set(g) - {"gids", "t_ms"}))})
                                     for name, g in f["state"].items()],
                             summary=dict(f["summary"].attrs) if "summary" in f else {},
                             bold=f["bold/signal"][()] if "bold" in f else None,
                             cpg=(f["cpg/t_ms"][()] * 1e-3, f["cpg/y"][()]) if "cpg" in f else None)
    except FileNotFoundError:
        raise DtbError(f"{path}: file not found") from None
    except (OSError, KeyError) as e:
        raise DtbError(f"{path}: not a run file written by dtb ({e})") from None
    return res

"""A cost model of dtb runs, fitted on this machine and projected to whole brains on clusters.

Wall time per biological second of one rank holding n = N / R neurons with K synapses each,
firing at f Hz, time step dt, exchanging spikes every D seconds:

    compute  = (c_step + n * c_neuron) / dt  +  n * K * f * c_event
    exchange = (1 / D) * (c_round + L * ceil(log2 nodes))  +  S * c_spike  +  B / bandwidth

where S is the number of spikes a rank receives per biological second and B the bytes a node
receives per biological second: with dtb's allgather every rank receives every spike of the
network (S = N f, B = 8 N f); with a targeted exchange (what the Digital Twin Brain and NEST do at
scale) a rank receives only spikes of the sources of its synapses, S = min(N, n K) f. L and the
bandwidth describe the interconnect (:class:`Interconnect`); the c_* are fitted from short runs
on this machine (:func:`fit`). Memory per rank: m0 + n * m_neuron + n * K * m_synapse.

The model ignores load imbalance beyond what the fitted exchange cost absorbs, network
contention, and the cost of the body/BOLD/assimilation work; benchmarks/scaling.py states how
close it comes on the runs it can check here.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

#: the Digital Twin Brain's published whole-brain runs (Lu et al. 2024, Nature Computational
#: Science / arXiv:2308.01241): 86 billion neurons on about 10,000 GPUs, real-time factors
PUBLISHED_DTB = {"neurons": 8.6e10, "gpus": 10_000, "realtime_factors": (65.0, 78.8, 118.8),
                 "source": "Lu et al. 2024, Digital Twin Brain (86e9 neurons, ~10,000 GPUs)"}
#: NEST's published record on the K computer (RIKEN / Juelich press release, August 2013):
#: 1.73e9 neurons, 10.4e12 synapses, 40 minutes for one second of biological time on 82,944 nodes
PUBLISHED_NEST = {"neurons": 1.73e9, "synapses": 10.4e12, "nodes": 82_944, "realtime_factor": 2400.0,
                  "source": "NEST on the K computer, RIKEN/Juelich 2013 (1.73e9 neurons, 40 min per biological s)"}


@dataclass
class UnitCosts:
    """Per-unit costs of the engine (seconds, bytes), fitted on one machine."""

    c_step: float = 0.0          # s per time step per rank (fixed)
    c_neuron: float = 0.0        # s per neuron per time step (update + background noise)
    c_event: float = 0.0         # s per synaptic event
    c_round: float = 0.0         # s per exchange round (local)
    c_spike: float = 0.0         # s per spike received in an exchange
    m0: float = 0.0              # bytes per rank (interpreter, Brian2)
    m_neuron: float = 0.0        # bytes per neuron
    m_synapse: float = 0.0       # bytes per synapse
    machine: str = ""

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> "UnitCosts":
        return cls(**json.loads(Path(path).read_text()))


@dataclass
class Interconnect:
    """Between nodes. Defaults: HDR InfiniBand, as on JUWELS Booster (Juelich): 200 Gb/s per
    adapter, four per node (NVIDIA ConnectX-6 datasheet: 200 Gb/s, ~0.6 us; MPI small-message
    latency on such systems is 1-2 us)."""

    latency_s: float = 1.5e-6
    bandwidth_Bps: float = 4 * 25e9
    source: str = "JUWELS Booster: 4 x HDR200 InfiniBand per node (ConnectX-6, 200 Gb/s, ~1.5 us MPI latency)"


@dataclass
class Node:
    """A compute node: ranks (one per core) and memory."""

    cores: int = 96
    memory_bytes: float = 512e9
    speed: float = 1.0             # core speed relative to the machine the costs were fitted on


@dataclass
class Workload:
    neurons: float
    indegree: float = 100.0
    rate_hz: float = 5.0
    dt: float = 1e-4
    min_delay: float = 1e-3        # s: the exchange interval


@dataclass
class Prediction:
    neurons: float
    nodes: int
    ranks: int
    compute_s: float               # per biological second
    exchange_s: float
    memory_per_node: float
    wall_s: float = field(init=False)

    def __post_init__(self):
        self.wall_s = self.compute_s + self.exchange_s


def predict(c: UnitCosts, w: Workload, ranks: int, nodes: int = 1, net: Interconnect | None = None,
            exchange: str = "allgather", speed: float = 1.0) -> Prediction:
    """Wall time per biological second and memory per node of ``w`` on ``ranks`` ranks."""
    n = w.neurons / ranks
    compute = ((c.c_step + n * c.c_neuron) / w.dt + n * w.indegree * w.rate_hz * c.c_event) / speed
    rounds = 1.0 / w.min_delay if ranks > 1 else 0.0
    if exchange == "allgather":
        received = w.neurons * w.rate_hz * (ranks - 1) / ranks
        node_bytes = 8.0 * w.neurons * w.rate_hz if nodes > 1 else 0.0
    elif exchange == "targeted":
        received = min(w.neurons * (ranks - 1) / ranks, n * w.indegree) * w.rate_hz
        per_node = ranks // max(nodes, 1)
        node_bytes = 8.0 * min(w.neurons, n * per_node * w.indegree) * w.rate_hz if nodes > 1 else 0.0
    else:
        raise ValueError(f"unknown exchange {exchange!r}")
    ex = rounds * c.c_round / speed + received * c.c_spike / speed
    if nodes > 1 and net is not None:
        ex += rounds * net.latency_s * math.ceil(math.log2(nodes)) + node_bytes / net.bandwidth_Bps
    mem_rank = c.m0 + n * c.m_neuron + n * w.indegree * c.m_synapse
    return Prediction(w.neurons, nodes, ranks, compute, ex, mem_rank * ranks / max(nodes, 1))


def nodes_needed(c: UnitCosts, w: Workload, node: Node, headroom: float = 0.8) -> int:
    """Fewest nodes whose memory (times ``headroom``) holds the network."""
    per_neuron = c.m_neuron + w.indegree * c.m_synapse
    n = 1
    while True:
        if (c.m0 * node.cores + w.neurons / n * per_neuron) <= headroom * node.memory_bytes or n > 1e7:
            return n
        n = max(n + 1, int(n * 1.05))


def projection(c: UnitCosts, sizes, node: Node, net: Interconnect, indegree: float = 100.0, rate_hz: float = 5.0,
               nodes: int | None = None) -> list[dict]:
    """For each network size: nodes (fewest that fit, or ``nodes``), and the predicted real-time
    factor with dtb's allgather and with a targeted exchange."""
    rows = []
    for size in sizes:
        w = Workload(neurons=float(size), indegree=indegree, rate_hz=rate_hz)
        m = nodes or nodes_needed(c, w, node)
        ranks = m * node.cores
        a = predict(c, w, ranks, m, net, "allgather", node.speed)
        t = predict(c, w, ranks, m, net, "targeted", node.speed)
        rows.append({"neurons": size, "nodes": m, "ranks": ranks, "memory_per_node_GB": t.memory_per_node / 1e9,
                     "compute_s": t.compute_s, "rtf_allgather": a.wall_s, "rtf_targeted": t.wall_s})
    return rows


# ------------------------------------------------------------------------- fitting
def fit(runs: list[dict]) -> UnitCosts:
    """Least-squares per-unit costs from measured runs, each a dict with: ranks, neurons,
    synapses, spikes, duration_s, dt, wall_s, exchange_s, exchange_rounds, peak_rss (bytes, max
    over ranks). Compute costs come from the 1-rank runs (wall = compute), exchange costs from
    the multi-rank runs (their measured exchange time), memory from the 1-rank runs."""
    one = [r for r in runs if r["ranks"] == 1]
    many = [r for r in runs if r["ranks"] > 1]
    if len(one) < 3 or not many:
        raise ValueError("fit needs at least three 1-rank runs and one multi-rank run")
    A = np.array([[r["duration_s"] / r["dt"], r["neurons"] * r["duration_s"] / r["dt"],
                   r["spikes"] * r["synapses"] / r["neurons"]] for r in one])
    y = np.array([r["wall_s"] for r in one])
    c_step, c_neuron, c_event = _nonneg_lstsq(A, y)
    # exchange: per received spike from a micro-measurement of the unpacking (the runs here
    # receive too few spikes to separate it), the rest per round
    c_spike = time_per_received_spike()
    e = np.array([r["exchange_s"] - c_spike * r["spikes"] * (r["ranks"] - 1) / r["ranks"] for r in many])
    c_round = float(max(np.sum(e * [r["exchange_rounds"] for r in many]) /
                        np.sum(np.square([r["exchange_rounds"] for r in many])), 0.0))
    M = np.array([[1.0, r["neurons"], r["synapses"]] for r in one])
    m0, m_neuron, m_synapse = _nonneg_lstsq(M, np.array([r["peak_rss"] for r in one]))
    return UnitCosts(c_step, c_neuron, c_event, c_round, c_spike, m0, m_neuron, m_synapse)


def time_per_received_spike(n_spikes: int = 1_000_000, n_proxies: int = 200_000, repeats: int = 3) -> float:
    """Seconds per spike for what a rank does with each received spike: decode the packed
    (gid, step) word and find the gid among its proxies (as ``Simulation._collect_spikes`` and
    ``_schedule_proxies`` do)."""
    import time
    rng = np.random.default_rng(0)
    proxies = np.sort(rng.choice(10 * n_proxies, n_proxies, replace=False)).astype(np.int64)
    packed = (rng.integers(0, 10 * n_proxies, n_spikes, dtype=np.int64) << 16) | rng.integers(0, 10, n_spikes)
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        gids, due = packed >> 16, (packed & 0xFFFF) + 5
        pos = np.minimum(np.searchsorted(proxies, gids), n_proxies - 1)
        mine = proxies[pos] == gids
        pos, due = pos[mine], due[mine]
        best = min(best, time.perf_counter() - t0)
    return best / n_spikes


def _nonneg_lstsq(A: np.ndarray, y: np.ndarray) -> np.ndarray:
    from scipy.optimize import nnls
    scale = np.abs(A).max(axis=0)
    scale[scale == 0] = 1.0
    x, _ = nnls(A / scale, y)
    return x / scale


def predict_run(c: UnitCosts, run: dict) -> float:
    """Predicted wall time (s) of a measured run on this machine (same network and rates)."""
    w = Workload(neurons=run["neurons"], indegree=run["synapses"] / run["neurons"],
                 rate_hz=run["spikes"] / run["neurons"] / run["duration_s"], dt=run["dt"],
                 min_delay=run["min_delay_s"])
    return predict(c, w, run["ranks"]).wall_s * run["duration_s"]


def default_costs() -> UnitCosts:
    """The costs fitted on the development machine (benchmarks/scaling.py; 2-core VM)."""
    return UnitCosts.load(Path(__file__).with_name("costs_default.json"))


# --------------------------------------------------------------------- calibration
#: the calibration runs: (neurons, indegree, ranks); weights scale with 100 / indegree so rates
#: stay similar while synaptic events per neuron vary
CALIBRATION = ((10_000, 100, 1), (20_000, 100, 1), (10_000, 300, 1), (5_000, 100, 2), (10_000, 100, 2))
#: runs the model predicts without having seen them: strong (20k on 2) and weak (40k on 2) scaling
VALIDATION = ((20_000, 100, 2), (40_000, 100, 2))


def atlas_config(neurons: int, indegree: int, duration: float) -> dict:
    """The whole-brain atlas network of the given size, weights scaled by 100 / indegree."""
    f = 100.0 / indegree
    return {"simulation": {"duration": f"{duration} s", "seed": 11},
            "atlas": {"neurons": neurons, "indegree": indegree, "w_exc": f"{0.6 * f} nS",
                      "w_inh": f"{6 * f} nS", "w_long": f"{0.5 * f} nS"},
            "monitors": {"region_interval": "1 ms"}}


def measure_run(neurons: int, indegree: int, ranks: int, duration: float, workdir: str | Path) -> dict:
    """Run the atlas network with ``dtb run`` and return the figures :func:`fit` needs."""
    import subprocess
    import sys
    from atlas import toml
    workdir = Path(workdir)
    name = f"n{neurons}_k{indegree}_r{ranks}"
    cfg = workdir / f"{name}.toml"
    cfg.write_text(toml.dumps(atlas_config(neurons, indegree, duration), "cluster.scaling calibration"))
    out = workdir / name
    cmd = [sys.executable, "-P", "-m", "dtb", "run", str(cfg), "--ranks", str(ranks), "--out", str(out), "--no-plots",
           "-q", "--no-progress"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"calibration run {name} failed: {p.stderr[-2000:]}")
    s = json.loads((out / "summary.json").read_text())
    dt = 1e-4
    return {"ranks": ranks, "neurons": s["neurons"], "synapses": s["synapses"], "spikes": s["spikes"],
            "duration_s": s["duration_s"], "dt": dt, "exchange_s": s["exchange_s_rank0"],
            # the simulation loop: the first step loads (or compiles) the kernels
            "wall_s": s["wall_s"] - s.get("first_step_s_rank0", 0.0),
            "exchange_rounds": s.get("exchange_rounds", 0), "min_delay_s": s["min_delay_steps"] * dt,
            "peak_rss": max(s["peak_rss_mb_per_rank"]) * 2**20}


def calibrate(workdir: str | Path, duration: float = 1.0, runs=CALIBRATION, log=None) -> tuple[UnitCosts, list[dict]]:
    """Measure the calibration runs on this machine and fit the costs."""
    import platform
    measured = []
    for n, k, r in runs:
        m = measure_run(n, k, r, duration, workdir)
        measured.append(m)
        if log:
            log(f"  {n:>7} neurons, indegree {k:>3}, {r} rank(s): {m['wall_s'] / duration:.2f} s per biological s, "
                f"{m['spikes'] / m['neurons'] / duration:.1f} Hz")
    c = fit(measured)
    c.machine = f"{platform.node()} ({platform.processor() or platform.machine()}), {duration:g} s runs"
    return c, measured

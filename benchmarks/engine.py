"""Engine benchmark: dtb on 1 and 2 ranks beside Brian2 (runtime and C++ standalone, 1 and 2
threads) and NEST, on one network, side by side in one script run.

Reference network: 5 regions x (3,200 E + 800 I) = 20,000 conductance-based LIF neurons, 400
incoming synapses each (8 million), distributed local delays and 4-12 ms inter-region delays,
Poisson background tuned to ~5 Hz.

    python benchmarks/engine.py [--duration 0.5] [--rounds 3] [--skip-nest] [--profile]

Contenders run one after the other in each of ``--rounds`` rounds (alternating, so a slow spell
of a shared machine hits all of them), and each is reported by its fastest round. The wall is
that of the simulation loop: dtb's run minus its first step (which loads the compiled code),
Brian2 standalone's own timing of its network run (``last_run_info.txt``; the C++ compilation is
reported apart), the runtime's and NEST's run after a first step. Printed per contender: wall
seconds per biological second, the ratio to dtb on 1 rank, synaptic events per second, mean
rate, peak RSS per rank and bytes per synapse. ``--profile`` adds dtb's breakdown per rank 0:
ns per neuron-step (compiled neuron pass with the Poisson background), ns per synaptic event
(queue and delivery), the spike exchange, and the rest (Python, Brian2's loop, the scheduler).

Plain Brian2 and its standalone version use the very same synapses (drawn with dtb.connect),
float conductance jumps (``g_post += w``) and PoissonInput for the background (Brian2's default
compiler flags). NEST 3.10 uses ``iaf_cond_exp`` (the closest built-in model: one excitatory and
one inhibitory conductance; AMPA and NMDA inputs go to the excitatory one, GABA to the
inhibitory one), the same connection rules and distributions from NEST's own generator,
poisson_generator background, 2 threads.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REGIONS = ["R0", "R1", "R2", "R3", "R4"]
N_E, N_I = 3200, 800
BG_RATE, BG_W = "3850 Hz", "1.2 nS"


def reference_config(duration: float) -> str:
    out = [f'[simulation]\ndt = "0.1 ms"\nduration = "{duration} s"\nseed = 2024\n\n'
           '[monitors]\nrate_bin = "10 ms"\nregion_interval = "10 ms"\n']
    for r in REGIONS:
        out.append(f'[[populations]]\nname = "{r}_E"\nregion = "{r}"\nsize = {N_E}\nkind = "excitatory"\n')
        out.append(f'[[populations]]\nname = "{r}_I"\nregion = "{r}"\nsize = {N_I}\nkind = "inhibitory"\n')

    def proj(s, t, k, rec, w, d):
        return (f'[[projections]]\nsource = "{s}"\ntarget = "{t}"\nrule = "fixed_indegree"\nindegree = {k}\n'
                f'receptor = "{rec}"\nweight = {w}\ndelay = {d}\n')
    local_d = '{distribution = "uniform", low = "1 ms", high = "3 ms"}'
    for i, r in enumerate(REGIONS):
        for tgt in (f"{r}_E", f"{r}_I"):
            out.append(proj(f"{r}_E", tgt, 220, "ampa", '{distribution = "normal", mean = "0.25 nS", std = "0.05 nS"}', local_d))
            out.append(proj(f"{r}_E", tgt, 40, "nmda", '"0.02 nS"', local_d))
            out.append(proj(f"{r}_I", tgt, 80, "gabaa", '{distribution = "normal", mean = "3 nS", std = "0.5 nS"}', local_d))
        # long range: 60 inputs from the two neighbouring regions on a ring
        for j in (i - 1, i + 1):
            src = REGIONS[j % len(REGIONS)]
            d = 4 + 4 * abs(j - i) + 2 * (i % 3)
            for tgt in (f"{r}_E", f"{r}_I"):
                out.append(proj(f"{src}_E", tgt, 30, "ampa", '"0.25 nS"',
                                f'{{distribution = "normal", mean = "{d} ms", std = "1 ms", low = "2 ms"}}'))
        for tgt in (f"{r}_E", f"{r}_I"):
            out.append(f'[[stimuli]]\ntype = "poisson"\npopulation = "{tgt}"\nrate = "{BG_RATE}"\nweight = "{BG_W}"\n')
    return "\n".join(out)


def events_per_second(spec, rates: dict[str, float]) -> float:
    """Synaptic events per biological second: sum over projections of synapses x source rate."""
    total = 0.0
    for pr in spec.projections:
        tgt = spec.population(pr.target)
        total += tgt.size * pr.indegree * rates[pr.source]
    return total


# --------------------------------------------------------------------------------------- dtb
def run_dtb(cfg: Path, ranks: int, out: Path) -> dict:
    """``dtb run --ranks N``, exactly as a user starts it (dtb launches mpiexec itself)."""
    cmd = [sys.executable, "-m", "dtb", "run", str(cfg), "--ranks", str(ranks), "--out", str(out), "--no-plots", "-q"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    s = json.loads((out / "summary.json").read_text())
    prof = {k[:-len("_rank0")]: v for k, v in s.items() if k.endswith("_rank0")}
    return {"wall": s["wall_s"] - prof["first_step_s"], "rates": s["mean_rate_hz"], "rss_mb": s["peak_rss_mb_per_rank"],
            "bytes_per_syn": sum(s["synapse_bytes_per_rank"]) / sum(s["synapses_per_rank"]),
            "synapses": s["synapses"], "build": s["build_s"], "profile": prof}


# ------------------------------------------------------------------------------ plain Brian2
def brian2_network(b2, spec):
    """The spec as a Brian2 user would write it: one NeuronGroup, one Synapses per receptor with
    the synapses of dtb.connect, PoissonInput background; returns (network, group, monitor,
    synapse count, RSS before the synapses)."""
    from dtb import connect
    from dtb.engine.kernel import current_rss

    b2.defaultclock.dt = spec.simulation.dt * b2.second
    p = spec.populations[0].params
    eqs = """
    dv/dt = (g_L*(E_L - v) + g_ampa*(E_ampa - v) + g_nmda*(E_nmda - v) + g_gabaa*(E_gabaa - v)) / C_m : volt (unless refractory)
    dg_ampa/dt = -g_ampa/tau_ampa : siemens
    dg_nmda/dt = -g_nmda/tau_nmda : siemens
    dg_gabaa/dt = -g_gabaa/tau_gabaa : siemens
    """
    units = {"C_m": b2.farad, "g_L": b2.siemens, "t_ref": b2.second}
    ns = {k: v * units.get(k, b2.volt if k.startswith(("E_", "V_")) else b2.second if k.startswith("tau") else 1)
          for k, v in p.items()}
    n = spec.n_neurons
    G = b2.NeuronGroup(n, eqs, threshold="v > V_th", reset="v = V_reset", refractory=ns["t_ref"],
                       method="exponential_euler", namespace=ns)
    G.v = "V_reset + rand() * (V_th - V_reset)"
    rss0 = current_rss()
    chunks: dict[str, list] = {}
    for k, pr in enumerate(spec.projections):
        tgt = spec.population(pr.target)
        gids = np.arange(tgt.first_gid, tgt.first_gid + tgt.size)
        inc = connect.draw_sources(pr, k, spec.population(pr.source), tgt, gids, spec.simulation.seed)
        w = connect.draw_weights(pr, k, inc, spec.simulation.seed)
        d = connect.draw_delay_steps(pr, k, inc, spec.simulation.seed, spec.simulation.dt)
        chunks.setdefault(pr.receptor, []).append((inc.source, inc.target, w, d))
    syns = []
    for receptor, parts in chunks.items():
        i, j, w, d = (np.concatenate(x) for x in zip(*parts))
        S = b2.Synapses(G, G, "w : siemens (constant)", on_pre=f"g_{receptor}_post += w")
        S.connect(i=i.astype(np.int32), j=j.astype(np.int32))
        S.w = w * b2.siemens                      # array assignment: works on every device
        S.delay = d * spec.simulation.dt * b2.second
        syns.append(S)
    bg = []
    for s in spec.stimuli:
        pop = spec.population(s.population)
        bg.append(b2.PoissonInput(G[pop.first_gid:pop.first_gid + pop.size], "g_ampa", 1000, s.rate / 1000 * b2.Hz,
                                  weight=s.weight * b2.siemens))
    mon = b2.SpikeMonitor(G)
    n_syn = sum(len(part[0]) for parts in chunks.values() for part in parts)
    return b2.Network(G, mon, *syns, *bg), G, mon, n_syn, rss0


def _rates(spec, spike_i: np.ndarray, duration: float) -> dict[str, float]:
    counts = np.bincount(np.asarray(spike_i), minlength=spec.n_neurons)
    return {p.name: counts[p.first_gid:p.first_gid + p.size].sum() / p.size / duration for p in spec.populations}


def plain_brian2(cfg_path: str) -> dict:
    """The reference network in Brian2's runtime mode (Cython), in one process."""
    import brian2 as b2
    from dtb.engine.kernel import current_rss
    from dtb.spec import load_spec

    b2.prefs.codegen.target = "cython"
    b2.BrianLogger.log_level_warn()
    spec = load_spec(cfg_path)
    net, G, mon, n_syn, rss0 = brian2_network(b2, spec)
    net.run(spec.simulation.dt * b2.second)
    rss1 = current_rss()
    t0 = time.perf_counter()
    net.run(spec.simulation.duration * b2.second - spec.simulation.dt * b2.second)
    wall = time.perf_counter() - t0
    return {"wall": wall, "rates": _rates(spec, mon.i[:], spec.simulation.duration),
            "rss_mb": [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024],
            "bytes_per_syn": (rss1 - rss0) / n_syn, "synapses": n_syn}


def standalone_build(cfg_path: str, threads: int, directory: str) -> dict:
    """Generate, compile and run the reference network with Brian2's C++ standalone device
    (``threads`` OpenMP threads); the binary in ``directory`` can then be run again
    (:func:`standalone_run`). Compile time is reported apart from the run."""
    import brian2 as b2
    from dtb.spec import load_spec

    b2.set_device("cpp_standalone", directory=directory, build_on_run=False)
    b2.prefs.devices.cpp_standalone.openmp_threads = threads
    b2.BrianLogger.log_level_warn()
    spec = load_spec(cfg_path)
    net, G, mon, n_syn, _ = brian2_network(b2, spec)
    net.run(spec.simulation.duration * b2.second)
    t0 = time.perf_counter()
    b2.device.build(directory=directory, compile=True, run=True, with_output=False)
    total = time.perf_counter() - t0
    return {"wall": b2.device._last_run_time, "compile_s": total - b2.device.timers["run_binary"],
            "synapses": n_syn, "rates": _rates(spec, mon.i[:], spec.simulation.duration),
            "rss_mb": [float("nan")], "bytes_per_syn": float("nan")}


def standalone_run(directory: str, threads: int) -> dict:
    """Run the compiled standalone binary once: its own timing of the network run, peak RSS."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMP_WAIT_POLICY="passive")
    subprocess.run(["./main", "--results_dir", "results"], cwd=directory, check=True, env=env,
                   stdout=subprocess.DEVNULL)
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss     # this process's only child
    run_time = float(Path(directory, "results", "last_run_info.txt").read_text().split()[0])
    return {"wall": run_time, "rss_mb": [rss / 1024], "bytes_per_syn": float("nan")}


# -------------------------------------------------------------------------------------- NEST
def nest_build(spec, threads: int = 2):
    """The spec's populations, projections and Poisson stimuli as NEST iaf_cond_exp neurons (the
    first population's parameters for all); returns (populations by name, synapses, RSS before
    the synapses)."""
    import nest
    from dtb.engine.kernel import current_rss

    nest.set_verbosity("M_ERROR")
    nest.ResetKernel()
    nest.SetKernelStatus({"resolution": spec.simulation.dt * 1e3, "local_num_threads": threads,
                          "rng_seed": spec.simulation.seed})
    p = spec.populations[0].params
    params = {"C_m": p["C_m"] * 1e12, "g_L": p["g_L"] * 1e9, "E_L": p["E_L"] * 1e3, "V_th": p["V_th"] * 1e3,
              "V_reset": p["V_reset"] * 1e3, "t_ref": p["t_ref"] * 1e3, "E_ex": p["E_ampa"] * 1e3,
              "E_in": p["E_gabaa"] * 1e3, "tau_syn_ex": p["tau_ampa"] * 1e3, "tau_syn_in": p["tau_gabaa"] * 1e3}
    pops = {}
    for pop in spec.populations:
        pops[pop.name] = nest.Create("iaf_cond_exp", pop.size, params=params)
        pops[pop.name].V_m = nest.random.uniform(params["V_reset"], params["V_th"])
    rss0 = current_rss()

    def dist(d, scale, sign=1.0):
        if d.kind == "constant":
            return sign * d.value * scale
        if d.kind == "uniform":
            return nest.random.uniform(d.low * scale, d.high * scale)
        return nest.math.redraw(nest.random.normal(d.mean * scale, d.std * scale), d.low * scale,
                                (d.high if np.isfinite(d.high) else 1e6) * scale)

    n_syn = 0
    for pr in spec.projections:
        sign = -1.0 if pr.receptor.startswith("gaba") else 1.0
        w = dist(pr.weight, 1e9)
        if sign < 0:
            w = -1.0 * w if isinstance(w, float) else nest.math.redraw(w, 0, 1e6) * -1.0
        nest.Connect(pops[pr.source], pops[pr.target],
                     {"rule": "fixed_indegree", "indegree": pr.indegree, "allow_autapses": False},
                     {"synapse_model": "static_synapse", "weight": w, "delay": dist(pr.delay, 1e3)})
        n_syn += spec.population(pr.target).size * pr.indegree
    for s in spec.stimuli:
        if s.rate > 0:
            pg = nest.Create("poisson_generator", params={"rate": s.rate})
            nest.Connect(pg, pops[s.population], syn_spec={"weight": s.weight * 1e9, "delay": spec.simulation.dt * 1e3})
    return pops, n_syn, rss0


def nest_simulate(spec, pops, n_syn: int, rss0: int) -> dict:
    """Run the built NEST network for the spec's duration: wall time (after a first step), rates,
    peak RSS, bytes per synapse."""
    import nest
    from dtb.engine.kernel import current_rss

    rec = nest.Create("spike_recorder")
    for pop in pops.values():
        nest.Connect(pop, rec)
    nest.Simulate(spec.simulation.dt * 1e3)
    rss1 = current_rss()
    t0 = time.perf_counter()
    nest.Simulate(spec.simulation.duration * 1e3 - spec.simulation.dt * 1e3)
    wall = time.perf_counter() - t0
    senders = rec.get("events", "senders")
    rates = {}
    for name, pop in pops.items():
        ids = np.asarray(pop.tolist())
        rates[name] = np.isin(senders, ids).sum() / len(ids) / spec.simulation.duration
    return {"wall": wall, "rates": rates, "rss_mb": [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024],
            "bytes_per_syn": (rss1 - rss0) / n_syn, "synapses": n_syn}


def nest_run(cfg_path: str, threads: int = 2) -> dict:
    from dtb.spec import load_spec

    spec = load_spec(cfg_path)
    return nest_simulate(spec, *nest_build(spec, threads))


def _subprocess_json(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def contenders(cfg: Path, tmp: Path, skip_nest: bool) -> dict:
    """name -> a function that runs the contender once and returns its measurements. Standalone
    projects are generated and compiled here, once (compile time kept in their first result)."""
    runs = {"dtb, 1 rank": lambda: run_dtb(cfg, 1, tmp / "r1"),
            "dtb, 2 ranks": lambda: run_dtb(cfg, 2, tmp / "r2"),
            "Brian2 runtime (Cython), 1 process": lambda: _subprocess_json("--plain-brian2", str(cfg))}
    for threads in (1, 2):
        d = tmp / f"standalone{threads}"
        first = _subprocess_json("--standalone", str(cfg), "--threads", str(threads), "--dir", str(d))
        log_line = f"Brian2 cpp_standalone, {threads} thread{'s' if threads > 1 else ''}"
        print(f"  {log_line}: generated and compiled in {first['compile_s']:.0f} s", flush=True)
        rates = first["rates"]
        runs[log_line] = (lambda d=d, t=threads, r=rates, c=first["compile_s"]:
                          {**_subprocess_json("--standalone-run", str(d), "--threads", str(t)),
                           "rates": r, "compile_s": c})
    if not skip_nest:
        runs["NEST 3.10 iaf_cond_exp, 2 threads"] = lambda: _subprocess_json("--nest", str(cfg))
    return runs


def print_table(spec, results: dict, duration: float) -> None:
    base = results["dtb, 1 rank"]["wall"]
    print(f"{'contender':<38}{'wall s / bio s':>15}{'ratio':>7}{'events/s':>11}{'rate Hz':>9}"
          f"{'peak RSS MB':>13}{'B/synapse':>11}")
    for name, r in results.items():
        mean_rate = sum(r["rates"][p.name] * p.size for p in spec.populations) / spec.n_neurons
        ev = events_per_second(spec, r["rates"]) * duration / r["wall"]
        rss = "/".join(f"{x:.0f}" for x in r["rss_mb"])
        print(f"{name:<38}{r['wall'] / duration:>15.2f}{r['wall'] / base:>7.2f}{ev:>11.3g}{mean_rate:>9.2f}"
              f"{rss:>13}{r['bytes_per_syn']:>11.1f}")


def print_profile(name: str, r: dict, duration: float) -> None:
    """dtb's per-part breakdown on rank 0 (from the run's summary.json)."""
    p = r["profile"]
    wall = r["wall"]
    rest = wall - p["neuron_s"] - p["delivery_s"] - p["exchange_s"]
    print(f"{name}: neuron pass {p['ns_per_neuron_step']:.1f} ns per neuron-step ({100 * p['neuron_s'] / wall:.0f} %), "
          f"delivery {p['ns_per_event']:.1f} ns per event ({100 * p['delivery_s'] / wall:.0f} %), "
          f"exchange {100 * p['exchange_s'] / wall:.0f} %, rest (Python, Brian2's loop, scheduler) "
          f"{100 * rest / wall:.0f} % of {wall / duration:.2f} s per biological s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=0.5, help="biological seconds per run (default 0.5)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of all contenders; each keeps its fastest (default 3)")
    ap.add_argument("--skip-nest", action="store_true", help="leave NEST out (its GSL solver makes it the slowest)")
    ap.add_argument("--profile", action="store_true", help="print dtb's per-part breakdown (rank 0)")
    ap.add_argument("--plain-brian2", metavar="CONFIG", help=argparse.SUPPRESS)
    ap.add_argument("--nest", metavar="CONFIG", help=argparse.SUPPRESS)
    ap.add_argument("--standalone", metavar="CONFIG", help=argparse.SUPPRESS)
    ap.add_argument("--standalone-run", metavar="DIR", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.plain_brian2:
        print(json.dumps(plain_brian2(args.plain_brian2)))
        return
    if args.nest:
        print(json.dumps(nest_run(args.nest)))
        return
    if args.standalone:
        print(json.dumps(standalone_build(args.standalone, args.threads, args.dir)))
        return
    if args.standalone_run:
        print(json.dumps(standalone_run(args.standalone_run, args.threads)))
        return
    from dtb.spec import load_spec

    tmp = Path(tempfile.mkdtemp(prefix="dtb-bench-"))
    cfg = tmp / "reference.toml"
    cfg.write_text(reference_config(args.duration))
    spec = load_spec(cfg)
    print(f"reference network: {spec.n_neurons} neurons, {len(spec.regions)} regions, "
          f"{sum(spec.population(p.target).size * p.indegree for p in spec.projections):,} synapses, "
          f"{args.duration:g} s biological time, dt 0.1 ms; {time.strftime('%Y-%m-%d %H:%M')}, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; {args.rounds} rounds, fastest kept", flush=True)
    # warm dtb's caches (Brian2's Cython, the numba kernels) so no run pays for compilation
    for ranks in ("1", "2"):
        subprocess.run([sys.executable, "-m", "dtb", "run", str(cfg), "--ranks", ranks, "--duration", "2 ms",
                        "--out", str(tmp / f"warm{ranks}"), "--no-plots", "-q"], check=True, stdout=subprocess.DEVNULL)
    runs = contenders(cfg, tmp, args.skip_nest)
    results: dict[str, dict] = {}
    for k in range(args.rounds):
        for name, fn in runs.items():
            r = fn()
            print(f"  round {k + 1}: {name:<38} {r['wall'] / args.duration:6.2f} s per biological s", flush=True)
            if name not in results or r["wall"] < results[name]["wall"]:
                results[name] = r
    print()
    print_table(spec, results, args.duration)
    r1, r2 = results["dtb, 1 rank"], results["dtb, 2 ranks"]
    sa = results["Brian2 cpp_standalone, 1 thread"]
    print()
    print(f"dtb speed-up 1 -> 2 ranks: {r1['wall'] / r2['wall']:.2f}x (goal >= 1.8x)")
    print(f"dtb 1 rank / Brian2 cpp_standalone 1 thread: {r1['wall'] / sa['wall']:.2f} (goal <= 1)")
    print(f"dtb bytes per synapse (RSS growth over the synapses and first step): {r1['bytes_per_syn']:.1f}")
    if args.profile:
        print()
        print_profile("dtb, 1 rank", r1, args.duration)
        print_profile("dtb, 2 ranks (rank 0)", r2, args.duration)


if __name__ == "__main__":
    main()

"""Engine benchmark: dtb on 1 and 2 ranks, the same network in plain Brian2, and NEST, side by side.

Reference network: 5 regions x (3,200 E + 800 I) = 20,000 conductance-based LIF neurons, 400
incoming synapses each (8 million), distributed local delays and 4-12 ms inter-region delays,
Poisson background tuned to 5-10 Hz. Prints per run: wall seconds per biological second,
synaptic events per second, peak RSS per rank and bytes per synapse.

    python benchmarks/engine.py [--duration 1.0] [--skip-nest]

Plain Brian2 uses the very same synapses (drawn with dtb.connect), float conductance jumps
(``g_post += w``) and PoissonInput for the background. NEST 3.10 uses ``iaf_cond_exp`` (the
closest built-in model: one excitatory and one inhibitory conductance; AMPA and NMDA inputs go to
the excitatory one, GABA to the inhibitory one), the same connection rules and distributions from
NEST's own generator, poisson_generator background, 2 threads.
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
    return {"wall": s["wall_s"], "rates": s["mean_rate_hz"], "rss_mb": s["peak_rss_mb_per_rank"],
            "bytes_per_syn": sum(s["synapse_bytes_per_rank"]) / sum(s["synapses_per_rank"]),
            "synapses": s["synapses"], "build": s["build_s"]}


# ------------------------------------------------------------------------------ plain Brian2
def plain_brian2(cfg_path: str) -> dict:
    """The same network, written the way a Brian2 user would, in one process."""
    import brian2 as b2
    from dtb import connect
    from dtb.engine.kernel import current_rss
    from dtb.spec import load_spec

    b2.prefs.codegen.target = "cython"
    b2.BrianLogger.log_level_warn()
    spec = load_spec(cfg_path)
    b2.defaultclock.dt = spec.simulation.dt * b2.second
    p = spec.populations[0].params
    eqs = """
    dv/dt = (g_L*(E_L - v) + g_ampa*(E_ampa - v) + g_nmda*(E_nmda - v) + g_gabaa*(E_gabaa - v)) / C_m : volt (unless refractory)
    dg_ampa/dt = -g_ampa/tau_ampa : siemens
    dg_nmda/dt = -g_nmda/tau_nmda : siemens
    dg_gabaa/dt = -g_gabaa/tau_gabaa : siemens
    """
    ns = {k: v for k, v in p.items()}
    units = {"C_m": b2.farad, "g_L": b2.siemens, "t_ref": b2.second}
    ns = {k: v * units.get(k, b2.volt if k.startswith(("E_", "V_")) else b2.second if k.startswith("tau") else 1)
          for k, v in ns.items()}
    n = spec.n_neurons
    G = b2.NeuronGroup(n, eqs, threshold="v > V_th", reset="v = V_reset", refractory=ns["t_ref"],
                       method="exponential_euler", namespace=ns)
    G.v = "V_reset + rand() * (V_th - V_reset)"
    rss0 = current_rss()
    syns = {}
    for k, pr in enumerate(spec.projections):
        tgt = spec.population(pr.target)
        gids = np.arange(tgt.first_gid, tgt.first_gid + tgt.size)
        inc = connect.draw_sources(pr, k, spec.population(pr.source), tgt, gids, spec.simulation.seed)
        w = connect.draw_weights(pr, k, inc, spec.simulation.seed)
        d = connect.draw_delay_steps(pr, k, inc, spec.simulation.seed, spec.simulation.dt)
        S = syns.get(pr.receptor)
        if S is None:
            S = syns[pr.receptor] = b2.Synapses(G, G, "w : siemens (constant)", on_pre=f"g_{pr.receptor}_post += w")
        n_old = len(S)
        S.connect(i=inc.source.astype(np.int32), j=inc.target.astype(np.int32))
        S.variables["w"].get_value()[n_old:] = w
        S.pre.variables["delay"].get_value()[n_old:] = d * spec.simulation.dt
    bg = []
    for s in spec.stimuli:
        pop = spec.population(s.population)
        bg.append(b2.PoissonInput(G[pop.first_gid:pop.first_gid + pop.size], "g_ampa", 1000, s.rate / 1000 * b2.Hz,
                                  weight=s.weight * b2.siemens))
    mon = b2.SpikeMonitor(G)
    net = b2.Network(G, mon, *syns.values(), *bg)
    net.run(spec.simulation.dt * b2.second)
    rss1 = current_rss()
    t0 = time.perf_counter()
    net.run(spec.simulation.duration * b2.second - spec.simulation.dt * b2.second)
    wall = time.perf_counter() - t0
    n_syn = sum(len(S) for S in syns.values())
    counts = np.bincount(np.asarray(mon.i[:]), minlength=n)
    rates = {p.name: counts[p.first_gid:p.first_gid + p.size].sum() / p.size / spec.simulation.duration for p in spec.populations}
    return {"wall": wall, "rates": rates, "rss_mb": [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024],
            "bytes_per_syn": (rss1 - rss0) / n_syn, "synapses": n_syn}


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


def _subprocess_json(flag: str, cfg: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, flag, str(cfg)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=1.0, help="biological seconds (default 1)")
    ap.add_argument("--skip-nest", action="store_true")
    ap.add_argument("--plain-brian2", metavar="CONFIG", help=argparse.SUPPRESS)
    ap.add_argument("--nest", metavar="CONFIG", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.plain_brian2:
        print(json.dumps(plain_brian2(args.plain_brian2)))
        return
    if args.nest:
        print(json.dumps(nest_run(args.nest)))
        return
    from dtb.spec import load_spec

    tmp = Path(tempfile.mkdtemp(prefix="dtb-bench-"))
    cfg = tmp / "reference.toml"
    cfg.write_text(reference_config(args.duration))
    spec = load_spec(cfg)
    print(f"reference network: {spec.n_neurons} neurons, {len(spec.regions)} regions, "
          f"{sum(spec.population(p.target).size * p.indegree for p in spec.projections):,} synapses, "
          f"{args.duration:g} s biological time, dt 0.1 ms; this machine: {os.cpu_count()} cores")
    results = {}
    # warm the Brian2 compile cache so no run pays for compilation
    subprocess.run([sys.executable, "-m", "dtb", "run", str(cfg), "--duration", "2 ms", "--out", str(tmp / "warm"),
                    "--no-plots", "-q"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, "-m", "dtb", "run", str(cfg), "--ranks", "2", "--duration", "2 ms",
                    "--out", str(tmp / "warm2"), "--no-plots", "-q"], check=True, stdout=subprocess.DEVNULL)
    results["dtb, 1 rank"] = run_dtb(cfg, 1, tmp / "r1")
    results["dtb, 2 ranks"] = run_dtb(cfg, 2, tmp / "r2")
    results["plain Brian2, 1 process"] = _subprocess_json("--plain-brian2", cfg)
    if not args.skip_nest:
        try:
            results["NEST 3.10 iaf_cond_exp, 2 threads"] = _subprocess_json("--nest", cfg)
        except subprocess.CalledProcessError as e:
            print(f"NEST run failed: {e.stderr[-500:]}")
    print()
    print(f"{'run':<36}{'wall s / bio s':>15}{'events/s':>12}{'mean rate Hz':>14}{'peak RSS MB/rank':>18}{'B/synapse':>11}")
    for name, r in results.items():
        mean_rate = sum(r["rates"][p.name] * p.size for p in spec.populations) / spec.n_neurons
        ev = events_per_second(spec, r["rates"]) * args.duration / r["wall"]
        rss = "/".join(f"{x:.0f}" for x in r["rss_mb"])
        print(f"{name:<36}{r['wall'] / args.duration:>15.2f}{ev:>12.3g}{mean_rate:>14.2f}{rss:>18}{r['bytes_per_syn']:>11.1f}")
    r1, r2 = results["dtb, 1 rank"], results["dtb, 2 ranks"]
    b = results["plain Brian2, 1 process"]
    print()
    print(f"speed-up 1 -> 2 ranks: {r1['wall'] / r2['wall']:.2f}x (target >= 1.7x)")
    print(f"dtb 1 rank vs plain Brian2: {100 * (r1['wall'] / b['wall'] - 1):+.1f} % wall time (target within 15 %)")
    print(f"dtb bytes per synapse: {r1['bytes_per_syn']:.1f} (target <= 24, per-synapse weights and delays)")


if __name__ == "__main__":
    main()

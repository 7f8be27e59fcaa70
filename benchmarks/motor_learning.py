"""Motor-learning benchmark: the adaptation experiment (dtb/examples/motor_learning.toml with the
MuJoCo forelimb in lockstep over the bridge) under each condition, and its cost: wall seconds per biological second
of the full motor circuit with the body, split into brain, bridge wait and body physics, on 1 and
2 ranks; the brain alone beside NEST running the same network (static synapses: NEST has no
climbing-fibre-gated rule) with the same CPG drive replayed.

    python benchmarks/motor_learning.py [--conditions intact plasticity_lesion ...] [--seeds 1 2 3]
                                        [--baselines 2 3 4] [--skip-speed] [--skip-nest]

Prints, per condition (a Markdown table, means ± sd over the seeds): the perturbed joint's signed
amplitude error in the first two and last two perturbed trials and its reduction, the washout
after-effect (first and last washout trial), the baseline movement amplitude, and the mean rates
of GPi/SNr, motor thalamus, M1, Purkinje cells and DCN; then the intact reduction for 2, 3 and 4
baseline trials (the schedule check); then the cost of the loop.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "dtb" / "examples" / "motor_learning.toml"
sys.path.insert(0, str(ROOT / "benchmarks"))
CONDITIONS = ("intact", "plasticity_lesion", "purkinje_lesion", "dopamine_depleted")


def experiment(condition: str, ranks: int, out: Path, extra: list[str] = ()) -> dict:
    cmd = [sys.executable, "-m", "dtb", "experiment", "adaptation", str(CONFIG), "--ranks", str(ranks), "--out",
           str(out), "-q", "--no-plots", *extra]
    if condition != "intact":
        cmd += ["--condition", condition]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    s = json.loads((out / "experiment.json").read_text())
    run = json.loads((out / "summary.json").read_text())
    with h5py.File(out / "body.h5", "r") as f:
        body_s = float(f.attrs["step_wall_s"])
    s.update(realtime_factor=run["realtime_factor"], brain_s=run["wall_s"] - run["bridge_wait_s"],
             wait_s=run["bridge_wait_s"], body_s=body_s, spikes=run["spikes"], neurons=run["neurons"],
             synapses=run["synapses"], rss=max(run["peak_rss_mb_per_rank"]))
    return s


def _ms(values: list[float], scale: float = 1.0, fmt: str = "+.3f") -> str:
    """mean ± sd (over seeds)."""
    v = np.array(values) * scale
    return f"{v.mean():{fmt}} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.{fmt[-2]}f}"


def conditions_table(conditions: list[str], seeds: list[int], tmp: Path) -> dict:
    """The adaptation experiment per condition and seed (4 baseline, 8 perturbed, 5 washout trials):
    a Markdown table of means ± sd over the seeds."""
    rows: dict[str, list[dict]] = {}
    print("| condition | signed error, first two → last two perturbed trials | reduction | washout: first → last "
          "trial | baseline elbow amplitude (rad) | GPi/SNr | motor thalamus | M1 | Purkinje | DCN |\n" + "|---" * 10 + "|")
    for c in conditions:
        rs = rows[c] = [experiment(c, 1, tmp / f"{c}_{seed}", ["--seed", str(seed)]) for seed in seeds]
        col = lambda k: [r[k] for r in rs]                                         # noqa: E731
        rate = lambda name: np.mean([r["rates_hz"][name] for r in rs])            # noqa: E731
        print(f"| {c} | {_ms(col('signed_error_early_perturbed'))} → {_ms(col('signed_error_late_perturbed'))} | "
              f"{_ms(col('error_reduction'), 100, '.0f')} % | {_ms(col('after_effect_first_washout'))} → "
              f"{_ms(col('signed_error_last_washout'))} | {np.mean([r['amplitude_baseline_rad']['elbow'] for r in rs]):.3f} | "
              f"{rate('GPi'):.1f} | {rate('Thal'):.1f} | {rate('M1'):.1f} | {rate('PC'):.1f} | {rate('DCN'):.1f} |",
              flush=True)
    return rows


def schedule_check(baselines: list[int], seeds: list[int], tmp: Path, known: dict) -> None:
    """The intact reduction for each number of baseline trials (8 perturbed, 2 washout), per seed."""
    print(f"\nintact: error reduction by number of baseline trials (seeds {', '.join(map(str, seeds))}; 8 perturbed)")
    for b in baselines:
        red = [known[seed] if b == 4 and seed in known else
               experiment("intact", 1, tmp / f"b{b}_{seed}", ["--seed", str(seed), "--baseline", str(b),
                                                                "--washout", "2"])["error_reduction"] for seed in seeds]
        print(f"  {b} baseline trials: {_ms(red, 100, '.0f')} %  (per seed: {', '.join(f'{100 * x:.0f}' for x in red)})",
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip-nest", action="store_true")
    ap.add_argument("--skip-speed", action="store_true", help="leave out the cost of the loop (1 and 2 ranks)")
    ap.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=CONDITIONS)
    ap.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3], help="seeds of each condition (default 1 2 3)")
    ap.add_argument("--baselines", nargs="*", type=int, default=[2, 3, 4],
                    help="baseline trial counts of the schedule check (default 2 3 4; none: skip it)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dtb-motor-"))
    print(f"{time.strftime('%Y-%m-%d')}, this machine: {os.cpu_count()} cores; {CONFIG.name}; 2 s of settling, then "
          f"elbow muscles x0.5 in trials 4-11 of 17 (2 s each); means ± sd over seeds {args.seeds}\n")
    experiment("intact", 1, tmp / "warm", ["--baseline", "0", "--perturbation", "2", "--washout", "0", "--trial", "0.2 s"])
    rows = conditions_table(args.conditions, args.seeds, tmp)
    if args.baselines:
        known = {seed: r["error_reduction"] for seed, r in zip(args.seeds, rows.get("intact", []))}
        schedule_check(args.baselines, args.seeds, tmp, known)
    if args.skip_speed:
        return
    rows = {c: rs[0] for c, rs in rows.items()}
    print("\ncost of the closed loop (36 s: 2 s of settling and 17 trials, intact), forelimb in lockstep, "
          "sensory delay 1 period:")
    print(f"  {'':<18}{'wall s per bio s':>17}{'brain s':>9}{'bridge wait s':>15}{'body physics s':>16}{'RSS MB/rank':>13}")
    for ranks in (1, 2):
        s = rows["intact"] if ranks == 1 and "intact" in rows else experiment("intact", ranks, tmp / f"intact{ranks}")
        print(f"  {f'{ranks} rank(s)':<18}{s['realtime_factor']:>17.2f}{s['brain_s']:>9.2f}{s['wait_s']:>15.2f}"
              f"{s['body_s']:>16.2f}{s['rss']:>13.0f}")
    s = next(iter(rows.values()))
    print(f"  ({s['neurons']:,} neurons, {s['synapses']:,} synapses, {s['spikes']:,} spikes)")
    if not args.skip_nest:
        text = CONFIG.read_text()
        brain_cfg = tmp / "motor_brain.toml"
        brain_cfg.write_text(text[:text.index("[bridge]")] + text[text.index("[conditions.plasticity_lesion]"):])
        subprocess.run([sys.executable, "-m", "dtb", "run", str(brain_cfg), "--duration", "10 s", "--out",
                        str(tmp / "brain"), "-q", "--no-plots"], check=True, stdout=subprocess.DEVNULL)
        b = json.loads((tmp / "brain" / "summary.json").read_text())
        print(f"\nthe brain alone, 10 s (no body; S1 and the olive at their config rates):\n"
              f"  dtb, 1 rank (plastic PF-PC): {b['wall_s'] / 10:.2f} s per biological second, {b['spikes']:,} spikes")
        try:
            out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "closed_loop.py"), "--nest", str(brain_cfg),
                                  str(tmp / "brain" / "run.h5")], check=True, capture_output=True, text=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"  NEST 3.10 iaf_cond_exp, 2 threads, static synapses, same CPG drive: {r['wall'] / 10:.2f} s per "
                  f"biological second")
        except (subprocess.CalledProcessError, ImportError) as e:
            print(f"  NEST: not run ({str(e)[:200]}); pip install nest-simulator")


if __name__ == "__main__":
    main()

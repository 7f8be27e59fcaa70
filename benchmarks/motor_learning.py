"""Motor-learning benchmark: the adaptation experiment (dtb/examples/motor_learning.toml with the
MuJoCo forelimb in lockstep over the bridge) under each condition, and its cost: real-time factor
of the full motor circuit with the body, split into brain, bridge wait and body physics, on 1 and
2 ranks; the brain alone beside NEST running the same network (static synapses: NEST has no
climbing-fibre-gated rule) with the same CPG drive replayed.

    python benchmarks/motor_learning.py [--skip-nest] [--conditions intact plasticity_lesion ...]

Prints, per condition: the perturbed joint's signed amplitude error in the first and last
perturbed trial and its reduction, the washout after-effect (first and last washout trial), the
baseline movement amplitude, and the mean rates of GPi/SNr, motor thalamus, M1, Purkinje cells
and DCN.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip-nest", action="store_true")
    ap.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=CONDITIONS)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dtb-motor-"))
    print(f"this machine: {os.cpu_count()} cores; {CONFIG.name}; elbow muscles x0.5 in trials 4-11 of 17 (2 s each)\n")
    experiment("intact", 1, tmp / "warm", ["--baseline", "0", "--perturbation", "2", "--washout", "0", "--trial", "0.2 s"])
    rows = {}
    print(f"{'condition':<19}{'first':>7}{'last':>8}{'less':>6}{'washout':>9}{'->':>8}{'amp rad':>9}"
          f"{'GPi':>6}{'Thal':>6}{'M1':>6}{'PC':>6}{'DCN':>6}{'RTF':>6}")
    for c in args.conditions:
        s = rows[c] = experiment(c, 1, tmp / c)
        r = s["rates_hz"]
        print(f"{c:<19}{s['signed_error_first_perturbed']:>+7.3f}{s['signed_error_last_perturbed']:>+8.3f}"
              f"{100 * s['error_reduction']:>5.0f}%{s['after_effect_first_washout']:>+9.3f}"
              f"{s['signed_error_last_washout']:>+8.3f}{s['amplitude_baseline_rad']['elbow']:>9.3f}"
              f"{r['GPi']:>6.1f}{r['Thal']:>6.1f}{r['M1']:>6.1f}{r['PC']:>6.1f}{r['DCN']:>6.1f}{s['realtime_factor']:>6.2f}")
    print("\ncost of the closed loop (34 s, intact), forelimb in lockstep, sensory delay 1 period:")
    print(f"  {'':<18}{'real-time factor':>17}{'brain s':>9}{'bridge wait s':>15}{'body physics s':>16}{'RSS MB/rank':>13}")
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

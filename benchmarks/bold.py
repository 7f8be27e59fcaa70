"""BOLD benchmark: balloon-Windkessel region-steps per second on one core, dtb against neurolib.

    python benchmarks/bold.py [--members 100] [--regions 1000] [--steps 2000]

Both integrate the same drive (members x regions series, dt 1 ms) with the Friston 2000
parameters; neurolib's ``simulateBOLD`` is numba-compiled explicit Euler (compiled once before
timing). dtb's integrator is numpy, vectorised over the whole (members x regions) array.
Run it with one thread per process (OMP/MKL threads do not matter: both are single-threaded).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from dtb.models.balloon import BalloonIntegrator, BalloonState, preset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", type=int, default=100)
    ap.add_argument("--regions", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=2000)
    args = ap.parse_args()
    shape = (args.members, args.regions)
    n = args.members * args.regions
    dt = 1e-3
    rng = np.random.default_rng(0)
    u = rng.uniform(0, 1, size=(args.steps,) + shape)
    p = preset("friston2000")

    integ = BalloonIntegrator(p, dt, BalloonState.rest(shape))
    integ.step(u[0])
    t0 = time.perf_counter()
    for i in range(args.steps):
        integ.step(u[i])
    dtb_rate = args.steps * n / (time.perf_counter() - t0)

    rows = [("dtb (numpy, log states)", dtb_rate)]
    try:
        from neurolib.models.bold.timeIntegration import simulateBOLD
        Z = u.reshape(args.steps, n).T.copy()
        ones = np.ones(n)
        simulateBOLD(Z[:, :10].copy(), dt, ones, X=np.zeros(n), F=ones, Q=ones, V=ones)   # numba compile
        t0 = time.perf_counter()
        simulateBOLD(Z, dt, ones, X=np.zeros(n), F=ones, Q=ones, V=ones)
        rows.append(("neurolib simulateBOLD (numba)", args.steps * n / (time.perf_counter() - t0)))
    except ImportError:
        rows.append(("neurolib (not installed: pip install neurolib)", float("nan")))
    print(f"{args.members} members x {args.regions} regions, {args.steps} steps of {dt * 1e3:g} ms")
    print(f"{'implementation':<48}{'region-steps/s':>16}")
    for name, rate in rows:
        print(f"{name:<48}{rate:>16.3g}")
    print(f"target: >= 5e7 region-steps/s on one core; dtb / neurolib = {rows[0][1] / rows[1][1]:.2f}")


if __name__ == "__main__":
    main()

"""Where a fitted twin's forecasts lose: its filter's own one-TR-ahead forecast, over time, from
the ``assimilation.h5`` files ``dtb assimilate`` wrote (e.g. kept by
``benchmarks/assimilation_hcp.py --keep DIR``).

    python benchmarks/filter_diagnosis.py DIR/131217.h5 [more.h5 ...] [--block 25]

For each file, in blocks of ``--block`` TRs over the training half and then the held-out half
(both held-out modes): the root mean square error, over regions, of the filter's forecast of
every observed row one TR ahead (``/forecast/mean``, ``/heldout/<mode>/filter/mean``), beside
persistence's (the row before) on the same rows; both in the observation's z units. Then the
first held-out TRs alone (the frozen mode's hyperparameters change there), the forecast
branches' error one TR ahead, and the fraction of member × region hyperparameters within 0.1 of
the lower bound (the "updating" mode's random walk carries them there) at the middle and end of
training and at the end of the held-out half, and the fraction of the members' unbounded x in
the sigmoid's flat ends at the end of training.
"""

from __future__ import annotations

import argparse
import json

import h5py
import numpy as np

MODES = ("updating", "frozen")


def rmse_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Root mean square of a - b over regions, per row."""
    return np.sqrt(np.mean((a - b) ** 2, axis=1))


def blocks(e: np.ndarray, start: int, stop: int, size: int) -> list[float]:
    """Means of e over [start, stop) in blocks of ``size`` rows."""
    return [float(e[i:min(i + size, stop)].mean()) for i in range(start, stop, size)]


def near_low(hp: np.ndarray, low: float) -> float:
    """Fraction of hyperparameter values within 0.1 of ``low``."""
    return float(np.mean(hp < low + 0.1))


def diagnose(path: str, block: int) -> None:
    with h5py.File(path, "r") as f:
        y = f["observed"][:]
        n_train = len(f["forecast/mean"])
        settings = json.loads(f.attrs["settings"])
        persistence = np.r_[np.nan, rmse_rows(y[1:], y[:-1])]
        print(f"{path}: {n_train} training TRs, {len(y) - n_train} held out; one-TR-ahead rmse, "
              f"filter / persistence, blocks of {block} TRs")
        train = rmse_rows(f["forecast/mean"][:], y[:n_train])
        pairs = zip(blocks(train, 1, n_train, block), blocks(persistence, 1, n_train, block))
        print("  training:       " + "  ".join(f"{a:.2f}/{b:.2f}" for a, b in pairs))
        for mode in MODES:
            if f"heldout/{mode}/filter/mean" not in f:
                continue
            held = rmse_rows(f[f"heldout/{mode}/filter/mean"][:], y[n_train:])
            pairs = zip(blocks(held, 0, len(held), block), blocks(persistence[n_train:], 0, len(held), block))
            first = ", ".join(f"{x:.2f}" for x in held[:5])
            print(f"  held out, {mode:9s}" + "  ".join(f"{a:.2f}/{b:.2f}" for a, b in pairs)
                  + f"   first 5 TRs: {first}")
            branch = f[f"heldout/{mode}/forecast/mean"][:, 0]
            o = f["heldout/origins"][:]
            ok = o + 1 < len(y)
            print(f"    forecast branches, 1 TR: rmse {np.sqrt(np.mean((branch[ok] - y[o[ok] + 1]) ** 2)):.3f}, "
                  f"persistence {np.sqrt(np.mean((y[o[ok]] - y[o[ok] + 1]) ** 2)):.3f}")
        low = settings["low"]
        names = json.loads(f.attrs["hyperparameters"])
        hp_train = f["hp/mean"][:]
        for h, name in enumerate(names):
            at = [near_low(hp_train[n_train // 2, :, h], low), near_low(hp_train[-1, :, h], low)]
            if "heldout/updating/hp/mean" in f:
                at.append(near_low(f["heldout/updating/hp/mean"][-1, :, h], low))
            print(f"  regions' ensemble-mean {name} within 0.1 of the lower bound {low:g} (mid-training, end of "
                  f"training, end of held-out updating): " + ", ".join(f"{100 * x:.0f} %" for x in at))
        x = f["hp/x_final"][:]
        print(f"  members' x at the end of training beyond +-3 (the sigmoid's flat ends, hp within 5 % of the "
              f"range from a bound): {100 * np.mean(np.abs(x) > 3):.0f} %")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", help="assimilation.h5 files")
    ap.add_argument("--block", type=int, default=25, help="TRs per block (default 25)")
    args = ap.parse_args(argv)
    for path in args.files:
        diagnose(path, args.block)


if __name__ == "__main__":
    main()

"""Figures of the cluster package."""

from __future__ import annotations

from pathlib import Path


def scaling_png(rows: list[dict], path: str | Path) -> None:
    """Projected real-time factor and nodes against network size (log-log)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cluster.scaling import PUBLISHED_DTB, PUBLISHED_NEST

    n = [r["neurons"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    a.loglog(n, [r["rtf_allgather"] for r in rows], "o-", label="dtb (allgather exchange)")
    a.loglog(n, [r["rtf_targeted"] for r in rows], "s-", label="with a targeted exchange")
    a.loglog(n, [r["compute_s"] for r in rows], ":", color="gray", label="compute only")
    for f in PUBLISHED_DTB["realtime_factors"]:
        a.plot(PUBLISHED_DTB["neurons"], f, "r*", ms=10)
    a.plot([], [], "r*", label="Digital Twin Brain, published (~10,000 GPUs)")
    a.plot(PUBLISHED_NEST["neurons"], PUBLISHED_NEST["realtime_factor"], "k^", ms=8,
           label="NEST on the K computer, published")
    a.axhline(1.0, color="k", lw=0.5)
    a.set_xlabel("neurons")
    a.set_ylabel("wall s per biological s")
    a.legend(fontsize=7)
    a.set_title("projected real-time factor")
    b.loglog(n, [r["nodes"] for r in rows], "o-")
    b.set_xlabel("neurons")
    b.set_ylabel("nodes (fewest whose memory holds it)")
    b.set_title("nodes needed")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

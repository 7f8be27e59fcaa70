"""``dtb atlas info`` and ``dtb atlas build``: inspect a parcellation and connectome, build the
network config they imply."""

from __future__ import annotations

from pathlib import Path


def add_parsers(sub) -> None:
    atlas = sub.add_parser("atlas", help="parcellations and connectomes: inspect, build networks",
                           description="Inspect an atlas (parcellation + structural connectome) or build the "
                                       "network config it implies. Default: the bundled Desikan-Killiany atlas "
                                       "with the 68-region TVB connectome.")
    asub = atlas.add_subparsers(dest="atlas_command", metavar="ACTION")
    asub.required = True

    def atlas_inputs(p):
        p.add_argument("atlas", nargs="?", default="desikan-killiany", metavar="ATLAS",
                       help="the parcellation: a built-in name (desikan-killiany, the default) or a label volume "
                            "(NIfTI, with --labels)")
        p.add_argument("--labels", default=None, help="label table for a parcellation volume (CSV/TSV/LUT)")
        p.add_argument("--connectome", default="tvb-68", help="built-in name or TVB zip / CSV / .npy / .mat")
        p.add_argument("--names", default=None, help="region names, one per line (for .npy / .mat)")
        p.add_argument("--lengths", default=None, help="tract lengths in mm, if not in the connectome file")
        p.add_argument("--sizes", default=None, help="region sizes (voxels), instead of a parcellation")
        p.add_argument("--velocity", type=float, default=5.0, help="conduction velocity in m/s (default 5)")

    info = asub.add_parser("info", help="regions, volumes, connectome density, delay range",
                           description="Print the regions, their volumes, the connectome's density and the "
                                       "delay range at the given conduction velocity; --plots writes PNGs.")
    atlas_inputs(info)
    info.add_argument("--plots", default=None, help="folder for connectome.png and parcellation.png")
    info.set_defaults(func=cmd_atlas_info)
    build = asub.add_parser("build", help="build the network config (TOML) of an atlas",
                            description="Build the network an atlas implies (neurons by volume, long-range "
                                        "in-degree by connectome weight, delays from tract lengths) and write it "
                                        "as a TOML config that dtb run accepts.")
    atlas_inputs(build)
    build.add_argument("--neurons", type=int, default=50_000, help="total neurons (default 50000)")
    build.add_argument("--min-neurons", type=int, default=50, help="neurons per region at least (default 50)")
    build.add_argument("--indegree", type=int, default=100, help="synapses per neuron (default 100)")
    build.add_argument("--seed", type=int, default=1)
    build.add_argument("--out", "-o", required=True, help="output config (.toml)")
    build.add_argument("--plots", default=None, help="folder for connectome.png, neurons.png, parcellation.png")
    build.set_defaults(func=cmd_atlas_build)


def _load_atlas(args):
    from atlas.config import load_atlas
    return load_atlas(parcellation=args.atlas, labels=args.labels, connectome=args.connectome,
                      names=args.names, lengths=args.lengths, sizes=args.sizes)


def cmd_atlas_info(args) -> int:
    import numpy as np
    a = _load_atlas(args)
    w, ln = a.connectome.weights, a.connectome.lengths
    off = ~np.eye(len(w), dtype=bool)
    density = float((w[off] > 0).mean())
    delays = ln[(w > 0) & off] / args.velocity
    unit = "mm³" if a.parcellation is not None else "voxels"
    print(f"{len(a.regions)} regions; parcellation: {getattr(a.parcellation, 'source', 'sizes file')}; "
          f"connectome: {a.connectome.source}")
    print(f"volumes ({unit}): min {a.volumes.min():.0f} ({a.regions[int(a.volumes.argmin())]}), median "
          f"{np.median(a.volumes):.0f}, max {a.volumes.max():.0f} ({a.regions[int(a.volumes.argmax())]}), "
          f"total {a.volumes.sum():.0f}")
    print(f"connectome density {100 * density:.1f} % of region pairs; weights {w[w > 0].min():.3g}..{w.max():.3g}")
    if len(delays):
        print(f"delays at {args.velocity:g} m/s: {delays.min():.2f}..{delays.max():.2f} ms (median {np.median(delays):.2f})")
    if args.plots:
        from atlas import plots
        out = Path(args.plots)
        out.mkdir(parents=True, exist_ok=True)
        plots.connectome_png(w, ln, a.regions, out / "connectome.png")
        if a.parcellation is not None:
            plots.parcellation_png(a.parcellation.labels, out / "parcellation.png", a.parcellation.affine)
        print(f"figures in {out}")
    return 0


def cmd_atlas_build(args) -> int:
    from atlas import toml
    from atlas.build import AtlasNetworkSettings, network_config, neurons_per_region
    from dtb.errors import DtbError
    from dtb.spec import spec_from_dict

    a = _load_atlas(args)
    if args.min_neurons < 2:
        raise DtbError(f"--min-neurons must be at least 2 (an excitatory and an inhibitory neuron), got "
                       f"{args.min_neurons}")
    settings = AtlasNetworkSettings(neurons=args.neurons, min_neurons=args.min_neurons, indegree=args.indegree,
                                    velocity=args.velocity, seed=args.seed)
    net = network_config(a.regions, a.volumes, a.connectome.weights, a.connectome.lengths, settings)
    spec = spec_from_dict(net, source="<atlas build>")   # validate before writing
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    header = (f"dtb atlas build: {len(a.regions)} regions from {a.connectome.source}, {spec.n_neurons} neurons, "
              f"indegree {args.indegree}, velocity {args.velocity:g} m/s, seed {args.seed}")
    from dtb.files import atomic_path
    with atomic_path(out) as tmp:
        tmp.write_text(toml.dumps(net, header))
    print(f"{header}\n{len(spec.populations)} populations, {len(spec.projections)} projections -> {out}")
    if args.plots:
        from atlas import plots
        d = Path(args.plots)
        d.mkdir(parents=True, exist_ok=True)
        plots.connectome_png(a.connectome.weights, a.connectome.lengths, a.regions, d / "connectome.png")
        plots.neurons_png(a.regions, neurons_per_region(a.volumes, settings.neurons, settings.min_neurons),
                          a.volumes, d / "neurons.png")
        if a.parcellation is not None:
            plots.parcellation_png(a.parcellation.labels, d / "parcellation.png", a.parcellation.affine)
    return 0

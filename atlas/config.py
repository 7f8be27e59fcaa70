"""The ``[atlas]`` section of a network config: which parcellation and connectome, and how to
turn them into populations, projections and background input (see :mod:`atlas.build`).

    [atlas]
    parcellation = "desikan-killiany"   # built-in, or a label volume (NIfTI) with labels = "table.csv"
    connectome = "tvb-68"               # built-in, or a TVB zip / CSV / .npy / .mat (names, lengths: files)
    sizes = "nvoxel.txt"                # region sizes (voxels) instead of a parcellation
    neurons = 50000                     # total, the one scale knob
    min_neurons = 50                    # per region
    ei_ratio = 4.0
    indegree = 100                      # synapses per neuron
    long_range_fraction = 0.2
    long_range_scaling = "uniform"      # or "in_strength": long-range weight per region in
                                        # proportion to its incoming connectome strength
    long_range_exponent = 1.0           # in_strength: weight factor s_i^p / mean(s^p) (0.5: square root)
    long_range_inhibitory = 1.0         # long-range weight onto I as a fraction of that onto E (0: E only)
    velocity = "5 m/s"
    min_delay = "1 ms"
    w_exc = "0.6 nS"                    # local E -> E, I   (AMPA)
    w_inh = "6 nS"                      # local I -> E, I   (GABAa)
    w_long = "0.5 nS"                   # long-range E -> E, I   (AMPA)
    background_rate = "3300 Hz"         # Poisson input per neuron
    background_weight = "1.2 nS"
    subcortical = ["Left-Thalamus"]     # regions given subcortical_params
    subcortical_params = {t_ref = "2 ms"}

Relative paths are relative to the config file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from atlas import builtin
from atlas.build import LONG_RANGE_EXPONENTS, LONG_RANGE_SCALINGS, AtlasNetworkSettings, network_config
from atlas.io import Connectome, match_regions, read_connectome, read_parcellation
from dtb.errors import ConfigError, DtbError


@dataclass
class Atlas:
    """Regions in connectome order, their volumes (mm^3) or sizes, and the connectome."""

    regions: list[str]
    volumes: np.ndarray
    connectome: Connectome
    parcellation: object = None       # atlas.io.Parcellation or None


def load_atlas(parcellation: str | None = "desikan-killiany", labels: str | None = None,
               connectome: str = "tvb-68", names: str | None = None, lengths: str | None = None,
               sizes: str | None = None, base: Path = Path(".")) -> Atlas:
    """Read and match a parcellation (or region sizes) and a connectome."""
    def path(x):
        return str(base / x) if x is not None else None

    if connectome in builtin.CONNECTOMES:
        con = builtin.connectome(connectome)
    else:
        con = read_connectome(path(connectome), names=path(names), lengths=path(lengths))
    if sizes is not None:
        try:
            v = np.loadtxt(path(sizes), ndmin=2)[:, 0]
        except (OSError, ValueError) as e:
            raise DtbError(f"{path(sizes)}: cannot read region sizes: {e}") from None
        if len(v) != len(con.names):
            raise DtbError(f"{path(sizes)}: {len(v)} sizes for {len(con.names)} connectome regions")
        return Atlas(list(con.names), v.astype(float), con)
    if parcellation in builtin.PARCELLATIONS:
        parc = builtin.parcellation(parcellation, keep=set(con.names))
        source = parcellation
    else:
        if labels is None:
            raise DtbError("a parcellation volume needs its label table (labels = ...)")
        parc = read_parcellation(path(parcellation), path(labels))
        source = path(parcellation)
    match_regions(list(parc.names.values()), con.names, source, con.source)
    vol = parc.volumes()
    empty = [r for r in con.names if vol[r] <= 0]
    if empty:
        raise DtbError(f"{source}: region(s) with no voxels: {', '.join(empty)}")
    return Atlas(list(con.names), np.array([vol[r] for r in con.names]), con, parc)


def expand_atlas(data: dict, source: str, reader_cls) -> dict:
    """Replace the [atlas] section of a config dict by the populations, projections and
    background stimuli it describes (other sections are kept; [[stimuli]] are added)."""
    base = Path(source).parent if source != "<dict>" else Path(".")
    r = reader_cls(source, "atlas", data["atlas"])
    d = AtlasNetworkSettings()
    sim = data.get("simulation", {})
    sr = reader_cls(source, "simulation", sim)
    dt = sr.quantity("dt", "time", d.dt, positive=True)
    settings = AtlasNetworkSettings(
        neurons=r.int("neurons", d.neurons, minimum=1),
        min_neurons=r.int("min_neurons", d.min_neurons, minimum=2),
        ei_ratio=r.float("ei_ratio", d.ei_ratio, low=0.01, high=100.0),
        indegree=r.int("indegree", d.indegree, minimum=0),
        long_range_fraction=r.float("long_range_fraction", d.long_range_fraction, low=0.0, high=1.0),
        long_range_scaling=r.str("long_range_scaling", d.long_range_scaling, choices=LONG_RANGE_SCALINGS),
        long_range_exponent=r.float("long_range_exponent", d.long_range_exponent, *LONG_RANGE_EXPONENTS),
        long_range_inhibitory=r.float("long_range_inhibitory", d.long_range_inhibitory, low=0.0, high=1.0),
        velocity=r.quantity("velocity", "velocity", d.velocity, positive=True),
        min_delay=r.quantity("min_delay", "time", d.min_delay, positive=True),
        dt=dt,
        w_exc=r.quantity("w_exc", "conductance", d.w_exc, nonnegative=True),
        w_inh=r.quantity("w_inh", "conductance", d.w_inh, nonnegative=True),
        w_long=r.quantity("w_long", "conductance", d.w_long, nonnegative=True),
        background_rate=r.quantity("background_rate", "rate", d.background_rate, nonnegative=True),
        background_weight=r.quantity("background_weight", "conductance", d.background_weight, nonnegative=True),
        subcortical=tuple(r.list("subcortical", [])),
        subcortical_params=dict(r.raw("subcortical_params", {})),
    )
    if settings.min_delay < dt:
        raise r.error("min_delay", "must be at least dt")
    kwargs = dict(parcellation=r.str("parcellation", "desikan-killiany"),
                  labels=r.str("labels", None) if r.has("labels") else None,
                  connectome=r.str("connectome", "tvb-68"),
                  names=r.str("names", None) if r.has("names") else None,
                  lengths=r.str("lengths", None) if r.has("lengths") else None,
                  sizes=r.str("sizes", None) if r.has("sizes") else None)
    r.done()
    try:
        atlas = load_atlas(base=base, **kwargs)
    except DtbError as e:
        raise ConfigError(source, "atlas", str(e)) from None
    unknown = sorted(set(settings.subcortical) - set(atlas.regions))
    if unknown:
        raise ConfigError(source, "atlas.subcortical", f"not atlas regions: {', '.join(unknown)}")
    try:
        net = network_config(atlas.regions, atlas.volumes, atlas.connectome.weights, atlas.connectome.lengths, settings)
    except DtbError as e:
        raise ConfigError(source, "atlas", str(e)) from None
    out = {k: v for k, v in data.items() if k != "atlas"}
    if isinstance(out.get("bold"), dict) and "atlas" not in out["bold"] and atlas.parcellation is not None:
        # paint the BOLD signal into this parcellation unless told otherwise
        table = builtin.DK_TABLE if kwargs["parcellation"] in builtin.PARCELLATIONS else base / kwargs["labels"]
        out["bold"] = dict(out["bold"], atlas=str(Path(atlas.parcellation.source).resolve()), labels=str(Path(table).resolve()))
    for key in ("populations", "projections"):
        if key in out:
            raise ConfigError(source, key, "a config with [atlas] gets its populations and projections from the atlas")
    out["populations"] = net["populations"]
    out["projections"] = net["projections"]
    out["stimuli"] = net["stimuli"] + list(out.get("stimuli", []))
    return out

"""dtb: a digital twin brain simulator.

The Python API (docs/api.md):

    import dtb
    net = dtb.load("net.toml")                  # or a dict, or TOML text
    res = dtb.simulate(net, duration="1 s")     # dtb.results.RunResults on this process
    res.mean_rates(); res.rates_frame(); res.spikes_frame(); res.bold_frame()
    res = dtb.open("results/x/run.h5")         # a finished run's file, as the same RunResults
    net2 = net.with_stimulus(0, rate="3600 Hz")  # a changed copy (also with_population, with_projection)

Packages:
    dtb.spec       network description (populations, projections, stimuli, monitors) from TOML
    dtb.models     neuron model equations and documented defaults
    dtb.connect    connection rules, drawn per target neuron (rank independent)
    dtb.partition  which rank owns which global neuron ids
    dtb.engine     the Brian2 kernel: build, exchange spikes over MPI, record
    dtb.runs       running a network: build, checkpoints, body coupling, results (the library
                   behind dtb run)
    dtb.cli        the ``dtb`` command line
"""

from __future__ import annotations

__version__ = "0.1.0"


def load(config, **overrides):
    """A network (dtb.spec.NetworkSpec) from a TOML file path, TOML text or a dict; ``overrides``
    replace [simulation] fields, with units where they have them (``duration="2 s"``, ``seed=3``)."""
    import tomllib
    from pathlib import Path
    from dtb.spec import load_spec, spec_from_dict
    values = _si(overrides)
    if isinstance(config, dict):
        return spec_from_dict(config, overrides=values)
    if isinstance(config, str) and "\n" in config:
        return spec_from_dict(tomllib.loads(config), source="<text>", text=config, overrides=values)
    return load_spec(Path(config), overrides=values)


def simulate(network, duration=None, seed=None, out=None, progress: bool = False, comm=None):
    """Run ``network`` (a NetworkSpec, or what :func:`load` takes) in this process (or on the
    ranks of ``comm``); the results (dtb.results.RunResults; None on ranks other than 0). With
    ``out`` the files of ``dtb run`` are written there too."""
    from pathlib import Path
    from dtb.runs import RunOptions, simulate as run
    from dtb.spec import NetworkSpec
    spec = network if isinstance(network, NetworkSpec) else load(network)
    values = _si({"duration": duration, "seed": seed})
    if values:
        spec = spec.with_simulation(**values)
    options = RunOptions(out=Path(out) if out is not None else None, progress=progress)
    return run(spec, comm, options).results


def open(path):   # noqa: A001 (dtb.open, like h5py.File or nibabel.load)
    """A finished run's ``run.h5`` as dtb.results.RunResults (what :func:`simulate` returns)."""
    from dtb.results import read_results
    return read_results(path)


def _si(values: dict) -> dict:
    """Simulation overrides in SI: a duration may be a string with a unit."""
    from dtb.units import parse_quantity
    out = {}
    for key, v in values.items():
        if v is None:
            continue
        out[key] = parse_quantity(v, "time") if key in ("duration", "dt") and isinstance(v, str) else v
    return out

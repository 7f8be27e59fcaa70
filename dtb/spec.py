"""The network specification: plain data describing what to simulate, loaded and validated from TOML.

The spec plays the role of Arbor's recipe: it says what each population, projection and stimulus
is, never which rank holds what. All quantities are SI floats; configs write them with units
("5 ms"), parsed by :mod:`dtb.units`. Every error names the file and the field.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dtb.errors import ConfigError
from dtb.models import MODELS, LIF_PARAMETER_DIMENSIONS, RECEPTORS
from dtb.units import UnitError, format_quantity, parse_quantity

EXCITATORY_RECEPTORS = ("ampa", "nmda")
INHIBITORY_RECEPTORS = ("gabaa", "gabab")
RULES = ("fixed_indegree", "fixed_probability", "one_to_one")
DISTRIBUTIONS = ("constant", "uniform", "normal", "lognormal")


@dataclass(frozen=True)
class Distribution:
    """A distribution of a synaptic weight (siemens) or delay (seconds).

    kinds: ``constant`` (value), ``uniform`` (low, high), ``normal`` (mean, std, clipped to
    [low, high]), ``lognormal`` (mean, std of the variable itself, clipped to [low, high]).
    """

    kind: str
    value: float = 0.0
    low: float = 0.0
    high: float = math.inf
    mean: float = 0.0
    std: float = 0.0

    @property
    def lower_bound(self) -> float:
        return self.value if self.kind == "constant" else self.low

    @property
    def practical_max(self) -> float:
        """The largest value drawn in practice: the upper bound, or 10 sd above the mean."""
        if self.kind == "constant":
            return self.value
        if self.kind == "uniform" or math.isfinite(self.high):
            return self.high
        return self.mean + 10.0 * self.std

    @property
    def expected(self) -> float:
        """The mean (of the unclipped distribution)."""
        if self.kind == "constant":
            return self.value
        if self.kind == "uniform":
            return 0.5 * (self.low + self.high)
        return self.mean


@dataclass(frozen=True)
class Population:
    name: str
    region: str
    size: int
    kind: str                      # "excitatory" | "inhibitory"
    model: str = "lif_cond"
    params: dict[str, float] = field(default_factory=dict)   # full parameter set, SI
    first_gid: int = 0

    @property
    def gids(self) -> range:
        return range(self.first_gid, self.first_gid + self.size)


@dataclass(frozen=True)
class Plasticity:
    """Cerebellar parallel-fibre -> Purkinje-cell plasticity, gated by climbing fibres.

    The rule of Luque et al. (2011, IEEE Trans Neural Netw 22:1321) and Garrido et al. (2013,
    Front Neural Circuits 7:159): every spike of the synapse's parallel fibre (source) potentiates
    it by ``ltp`` (LTP without a climbing fibre); every climbing-fibre spike that reaches the
    Purkinje cell (from population ``teacher``, through the config's projection teacher -> target)
    depresses each of the cell's plastic synapses by ``ltd`` x its eligibility, the sum over the
    fibre's earlier spikes of a kernel peaking (at 1) ``tau`` before the climbing-fibre spike
    (dtb.models.plasticity). LTD needs parallel-fibre activity shortly before the climbing fibre. Weights stay in [w_min, w_max]; they are integers of
    the weight quantum (every update is rounded to it), so results do not depend on the rank count.
    The depression is applied one time step after the climbing-fibre spike arrives."""

    teacher: str
    tau: float = 0.1             # s, delay of the eligibility kernel's peak
    ltp: float = 0.0             # S per parallel-fibre spike
    ltd: float = 0.0             # S per climbing-fibre spike per unit of trace
    w_min: float = 0.0           # S
    w_max: float = 1e-8          # S
    rule: str = "cerebellar_pf_pc"


@dataclass(frozen=True)
class Projection:
    source: str
    target: str
    rule: str
    receptor: str
    weight: Distribution
    delay: Distribution
    indegree: int = 0
    probability: float = 0.0
    allow_autapses: bool = False
    plasticity: Plasticity | None = None


@dataclass(frozen=True)
class PoissonStimulus:
    """Independent Poisson input to every neuron of a population (rate: events/s per neuron)."""

    population: str
    rate: float
    weight: float
    receptor: str = "ampa"
    start: float = 0.0
    stop: float = math.inf


@dataclass(frozen=True)
class CurrentStep:
    population: str
    amplitude: float
    start: float = 0.0
    stop: float = math.inf


@dataclass(frozen=True)
class CpgGroup:
    """Matsuoka half-centers (``count`` of them, one per joint or set) driving one flexor and one
    extensor LIF pool; ``phase`` (cycles) places the group in the gait."""

    name: str
    count: int
    flexor: str
    extensor: str
    phase: float = 0.0


@dataclass(frozen=True)
class CpgNetwork:
    """[cpg]: one Matsuoka parameter set for every half-center (see dtb.models.matsuoka), the
    drive of the motor pools (Poisson rate per neuron = ``rate`` x the output of its oscillator),
    and inhibitory coupling between groups (in phase when their phases are equal, antiphase when
    they differ by half a cycle). With ``drive_from``, the oscillators' tonic input (which sets
    their amplitude, not their frequency) is ``drive`` x that population's rate (low-passed with
    ``drive_tau``) / ``drive_rate``: a vigour signal, e.g. the motor thalamus after the basal
    ganglia."""

    groups: tuple[CpgGroup, ...]
    tau_r: float = 0.05            # s
    tau_a: float = 0.1             # s
    beta: float = 2.5
    w: float = 2.5
    drive: float = 1.0
    coupling: float = 0.5          # inhibition between groups (per unit of the other group's mean output)
    rate: float = 200.0            # Hz of Poisson input per pool neuron at output 1
    weight: float = 1e-9           # S per Poisson event
    receptor: str = "ampa"
    update: float = 2e-3           # s between updates of the pools' drive
    record_interval: float = 5e-3  # s between recorded oscillator outputs
    drive_from: str = ""           # population whose rate scales the tonic drive (vigour), "" for none
    drive_rate: float = 20.0       # Hz of drive_from at which the tonic drive is ``drive``
    drive_tau: float = 0.2         # s, low-pass of that rate

    @property
    def count(self) -> int:
        return sum(g.count for g in self.groups)


@dataclass(frozen=True)
class Condition:
    """[conditions.<name>]: a documented change of the network, applied with ``--condition``:
    ``plasticity`` scales every plastic projection's ltp and ltd (0: a plasticity lesion);
    ``silence`` lists populations held silent by a ``silence_current`` injected into every neuron;
    ``input_scale`` multiplies the weights of every excitatory projection onto a population (e.g.
    the loss of dopamine: cortical drive of D1 MSNs down, of D2 MSNs up)."""

    plasticity: float = 1.0
    silence: tuple[str, ...] = ()
    silence_current: float = -1e-9           # A
    input_scale: tuple[tuple[str, float], ...] = ()
    description: str = ""


@dataclass(frozen=True)
class StateMonitor:
    population: str
    indices: tuple[int, ...]
    variables: tuple[str, ...] = ("v",)
    interval: float = 0.0          # 0 means every step


@dataclass(frozen=True)
class Monitors:
    rate_bin: float = 5e-3
    region_interval: float = 1e-3
    state: tuple[StateMonitor, ...] = ()
    plasticity_interval: float = 0.0   # s between plastic-weight statistics (0: only at the end)


@dataclass(frozen=True)
class Simulation:
    dt: float = 1e-4
    duration: float = 1.0
    seed: int = 1
    weight_quantum: float = 1e-14   # siemens: 1e-5 nS
    exchange: str = "blocking"      # spike exchange between ranks: "blocking", "overlap" or "targeted"
    scale: float = 1.0              # every population's size x scale (rounded, at least 1); indegrees kept


@dataclass(frozen=True)
class NetworkSpec:
    simulation: Simulation
    populations: tuple[Population, ...]
    projections: tuple[Projection, ...] = ()
    stimuli: tuple[PoissonStimulus | CurrentStep, ...] = ()
    monitors: Monitors = Monitors()
    bold: "BoldSettings | None" = None
    task: "TaskSettings | None" = None
    assimilation: "AssimilationSettings | None" = None
    bridge: "CouplingSettings | None" = None
    cpg: CpgNetwork | None = None
    conditions: dict = field(default_factory=dict)     # name -> Condition ([conditions.<name>])
    condition: str = ""                                # the one applied ("" for none)
    source: str = "<dict>"
    text: str = ""

    @property
    def n_neurons(self) -> int:
        return sum(p.size for p in self.populations)

    def population(self, name: str) -> Population:
        for p in self.populations:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def region_sizes(self):
        """Neurons per region, in the order of :attr:`regions` (numpy array)."""
        import numpy as np
        regions = self.regions
        sizes = np.zeros(len(regions))
        for p in self.populations:
            sizes[regions.index(p.region)] += p.size
        return sizes

    def population_index(self, gids):
        """Index (into :attr:`populations`) of the population of each global id."""
        import numpy as np
        firsts = np.array([p.first_gid for p in self.populations])
        return np.searchsorted(firsts, gids, side="right") - 1

    @functools.cached_property
    def regions(self) -> list[str]:
        """Region names in order of first appearance (computed once)."""
        return list(dict.fromkeys(p.region for p in self.populations))

    @property
    def min_delay(self) -> float:
        """Smallest delay any projection can draw (s): the spike exchange interval."""
        if not self.projections:
            return self.simulation.dt
        return min(pr.delay.lower_bound for pr in self.projections)

    def with_simulation(self, **changes: Any) -> "NetworkSpec":
        return dataclasses.replace(self, simulation=dataclasses.replace(self.simulation, **changes))


# ----------------------------------------------------------------------------------------------
# loading

class _Reader:
    """Reads typed fields from a TOML table, raising ConfigError with file and field path."""

    def __init__(self, source: str, path: str, table: Any):
        self.source, self.path = source, path
        if not isinstance(table, dict):
            raise ConfigError(source, path, f"expected a table, got {type(table).__name__}")
        self.table = table
        self.used: set[str] = set()

    def _field(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(self.source, self._field(key), message)

    def has(self, key: str) -> bool:
        return key in self.table

    def raw(self, key: str, default: Any = ...) -> Any:
        self.used.add(key)
        if key not in self.table:
            if default is ...:
                raise self.error(key, "missing field")
            return default
        return self.table[key]

    def str(self, key: str, default: Any = ..., choices: tuple[str, ...] | None = None) -> str:
        v = self.raw(key, default)
        if not isinstance(v, str):
            raise self.error(key, f"expected a string, got {v!r}")
        if choices is not None and v not in choices:
            raise self.error(key, f"{v!r} is not one of: {', '.join(choices)}")
        return v

    def int(self, key: str, default: Any = ..., minimum: int | None = None) -> int:
        v = self.raw(key, default)
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.error(key, f"expected an integer, got {v!r}")
        if minimum is not None and v < minimum:
            raise self.error(key, f"must be at least {minimum}, got {v}")
        return v

    def float(self, key: str, default: Any = ..., low: float | None = None, high: float | None = None) -> float:
        v = self.raw(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.error(key, f"expected a number, got {v!r}")
        if (low is not None and v < low) or (high is not None and v > high):
            raise self.error(key, f"must lie in [{low}, {high}], got {v}")
        return float(v)

    def bool(self, key: str, default: Any = ...) -> bool:
        v = self.raw(key, default)
        if not isinstance(v, bool):
            raise self.error(key, f"expected true or false, got {v!r}")
        return v

    def quantity(self, key: str, dimension: str, default: Any = ..., positive: bool = False,
                 nonnegative: bool = False) -> float:
        if key not in self.table and default is not ...:
            self.used.add(key)
            return default
        v = self.raw(key)
        try:
            q = parse_quantity(v, dimension)
        except UnitError as e:
            raise self.error(key, str(e)) from None
        if positive and not q > 0:
            raise self.error(key, f"must be positive, got {v!r}")
        if nonnegative and q < 0:
            raise self.error(key, f"must not be negative, got {v!r}")
        return q

    def list(self, key: str, default: Any = ...) -> list:
        v = self.raw(key, default)
        if not isinstance(v, list):
            raise self.error(key, f"expected a list, got {v!r}")
        return v

    def sub(self, key: str, value: Any) -> "_Reader":
        return _Reader(self.source, self._field(key), value)

    def done(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise self.error(unknown[0], f"unknown field (known here: {', '.join(sorted(self.used)) or 'none'})")


def load_spec(path: str | Path, overrides: dict[str, Any] | None = None) -> NetworkSpec:
    """Read and validate a TOML network config. ``overrides`` replace [simulation] fields (SI)."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(source, "", "file not found") from None
    except IsADirectoryError:
        raise ConfigError(source, "", "is a folder, not a config file") from None
    except OSError as e:
        raise ConfigError(source, "", f"cannot read: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(source, "", f"not a text file (byte {e.start} is not UTF-8): a config is TOML text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(source, "", f"not valid TOML: {e}") from None
    except RecursionError:
        raise ConfigError(source, "", "not valid TOML: nested too deeply") from None
    return spec_from_dict(data, source=source, text=text, overrides=overrides)


def spec_from_dict(data: dict, source: str = "<dict>", text: str = "",
                   overrides: dict[str, Any] | None = None) -> NetworkSpec:
    if isinstance(data, dict) and "atlas" in data:
        from atlas.config import expand_atlas
        data = expand_atlas(data, source, _Reader)
    top = _Reader(source, "", data)
    sim = _read_simulation(top.sub("simulation", top.raw("simulation", {})))
    if overrides:
        sim = dataclasses.replace(sim, **{k: v for k, v in overrides.items() if v is not None})
        if sim.duration <= 0:
            raise ConfigError(source, "simulation.duration", f"must be positive, got {sim.duration} s")
        if not 0 <= sim.seed <= MAX_SEED:
            raise ConfigError(source, "simulation.seed", f"--seed must be in 0 .. 2**63 - 1, got {sim.seed}")
    defaults = dict(MODELS["lif_cond"])
    if top.has("neuron_defaults"):
        defaults.update(_read_params(top.sub("neuron_defaults", top.raw("neuron_defaults"))))

    pops_raw = top.list("populations")
    if not pops_raw:
        raise top.error("populations", "at least one population is needed")
    pops: list[Population] = []
    first = 0
    for i, raw in enumerate(pops_raw):
        p = _read_population(top.sub(f"populations[{i}]", raw), defaults, first, sim.scale)
        if any(q.name == p.name for q in pops):
            raise ConfigError(source, f"populations[{i}].name", f"duplicate population name {p.name!r}")
        pops.append(p)
        first += p.size
    by_name = {p.name: p for p in pops}

    projs = tuple(_read_projection(top.sub(f"projections[{i}]", raw), by_name, sim)
                  for i, raw in enumerate(top.list("projections", [])))
    stims = tuple(_read_stimulus(top.sub(f"stimuli[{i}]", raw), by_name)
                  for i, raw in enumerate(top.list("stimuli", [])))
    monitors = _read_monitors(top.sub("monitors", top.raw("monitors", {})), by_name, sim)
    bold = _read_bold(top.sub("bold", top.raw("bold")), sim, monitors, source) if top.has("bold") else None
    task = _read_task(top.sub("task", top.raw("task")), source) if top.has("task") else None
    assim = _read_assimilation(top.sub("assimilation", top.raw("assimilation"))) if top.has("assimilation") else None
    bridge = _read_bridge(top.sub("bridge", top.raw("bridge")), by_name, stims) if top.has("bridge") else None
    cpg = _read_cpg(top.sub("cpg", top.raw("cpg")), by_name, sim) if top.has("cpg") else None
    conds = top.sub("conditions", top.raw("conditions", {}))
    conditions = {name: _read_condition(conds.sub(name, raw), by_name) for name, raw in conds.table.items()} \
        if isinstance(conds.table, dict) else {}
    top.done()
    _check_plastic_projections(source, projs)
    _check_background_weights(source, stims + _cpg_as_stimuli(cpg), len(stims))
    _check_integer_ranges(source, sim, pops, projs, stims)
    return NetworkSpec(simulation=sim, populations=tuple(pops), projections=projs, stimuli=stims,
                       monitors=monitors, bold=bold, task=task, assimilation=assim, bridge=bridge,
                       cpg=cpg, conditions=conditions, source=source, text=text)


def _read_condition(r: _Reader, by_name: dict[str, Population]) -> Condition:
    d = Condition()
    silence = r.list("silence", [])
    for n in silence:
        if n not in by_name:
            raise r.error("silence", f"unknown population {n!r}")
    scales = r.raw("input_scale", {})
    if not isinstance(scales, dict):
        raise r.error("input_scale", f"expected a table population = factor, got {scales!r}")
    for n, f in scales.items():
        if n not in by_name:
            raise r.error(f"input_scale.{n}", "unknown population")
        if isinstance(f, bool) or not isinstance(f, (int, float)) or f < 0:
            raise r.error(f"input_scale.{n}", f"expected a factor >= 0, got {f!r}")
    c = Condition(plasticity=r.float("plasticity", d.plasticity, low=0.0), silence=tuple(silence),
                  silence_current=r.quantity("silence_current", "current", d.silence_current),
                  input_scale=tuple((n, float(f)) for n, f in scales.items()),
                  description=r.str("description", ""))
    r.done()
    return c


def apply_condition(spec: NetworkSpec, name: str) -> NetworkSpec:
    """``spec`` with its condition ``name`` applied (see Condition); ConfigError if unknown."""
    if name not in spec.conditions:
        known = ", ".join(sorted(spec.conditions)) or "none"
        raise ConfigError(spec.source, f"conditions.{name}", f"no such condition (the config defines: {known})")
    c: Condition = spec.conditions[name]
    scale = dict(c.input_scale)
    kind = {p.name: p.kind for p in spec.populations}
    projs = []
    for pr in spec.projections:
        if pr.plasticity is not None and c.plasticity != 1.0:
            pr = dataclasses.replace(pr, plasticity=dataclasses.replace(
                pr.plasticity, ltp=pr.plasticity.ltp * c.plasticity, ltd=pr.plasticity.ltd * c.plasticity))
        if pr.target in scale and kind[pr.source] == "excitatory":
            f = scale[pr.target]
            w = pr.weight
            pr = dataclasses.replace(pr, weight=dataclasses.replace(
                w, value=w.value * f, low=w.low * f, high=w.high * f if math.isfinite(w.high) else w.high,
                mean=w.mean * f, std=w.std * f))
        projs.append(pr)
    stims = spec.stimuli + tuple(CurrentStep(p, c.silence_current) for p in c.silence)
    return dataclasses.replace(spec, projections=tuple(projs), stimuli=stims, condition=name)


def _read_simulation(r: _Reader) -> Simulation:
    d = Simulation()
    dt = r.quantity("dt", "time", d.dt, positive=True)
    duration = r.quantity("duration", "time", d.duration, positive=True)
    seed = r.int("seed", d.seed, minimum=0)
    if seed > MAX_SEED:
        raise r.error("seed", f"must be at most 2**63 - 1, got {seed}")
    wq = r.quantity("weight_quantum", "conductance", d.weight_quantum, positive=True)
    exchange = r.str("exchange", d.exchange, choices=("blocking", "overlap", "targeted"))
    scale = r.float("scale", d.scale)
    if not scale > 0:
        raise r.error("scale", f"must be positive, got {scale}")
    r.done()
    return Simulation(dt=dt, duration=duration, seed=seed, weight_quantum=wq, exchange=exchange, scale=scale)


def _read_params(r: _Reader) -> dict[str, float]:
    out = {}
    for key in list(r.table):
        if key not in LIF_PARAMETER_DIMENSIONS:
            r.used.add(key)
            raise r.error(key, f"unknown neuron parameter (known: {', '.join(LIF_PARAMETER_DIMENSIONS)})")
        positive = key in ("C_m", "g_L") or key.startswith("tau_")
        out[key] = r.quantity(key, LIF_PARAMETER_DIMENSIONS[key], positive=positive,
                              nonnegative=(key == "t_ref"))
    r.done()
    return out


def _read_population(r: _Reader, defaults: dict[str, float], first_gid: int, scale: float = 1.0) -> Population:
    name = r.str("name")
    if not name:
        raise r.error("name", "must not be empty")
    size = r.int("size")
    if size <= 0:
        raise r.error("size", f"must be a positive number of neurons, got {size}")
    size = max(1, int(round(size * scale)))
    kind = r.str("kind", choices=("excitatory", "inhibitory"))
    region = r.str("region", name)
    model = r.str("model", "lif_cond", choices=tuple(MODELS))
    params = dict(defaults)
    if r.has("params"):
        params.update(_read_params(r.sub("params", r.raw("params"))))
    if params["V_reset"] >= params["V_th"]:
        raise r.error("params.V_reset", f"V_reset ({format_quantity(params['V_reset'], 'mV')}) must lie "
                      f"below V_th ({format_quantity(params['V_th'], 'mV')})")
    r.done()
    return Population(name=name, region=region, size=size, kind=kind, model=model, params=params,
                      first_gid=first_gid)


def _population_ref(r: _Reader, key: str, by_name: dict[str, Population]) -> str:
    name = r.str(key)
    if name not in by_name:
        raise r.error(key, f"unknown population {name!r}; known: {', '.join(by_name)}")
    return name


def _read_distribution(r: _Reader, key: str, dimension: str, nonneg_msg: str) -> Distribution:
    raw = r.raw(key)
    if not isinstance(raw, dict):
        return Distribution("constant", value=r.quantity(key, dimension, nonnegative=True))
    d = r.sub(key, raw)
    kind = d.str("distribution", choices=DISTRIBUTIONS)
    if kind == "constant":
        dist = Distribution("constant", value=d.quantity("value", dimension, nonnegative=True))
    elif kind == "uniform":
        low = d.quantity("low", dimension, nonnegative=True)
        high = d.quantity("high", dimension)
        if high < low:
            raise d.error("high", "must not be below low")
        dist = Distribution("uniform", low=low, high=high)
    else:
        mean = d.quantity("mean", dimension, positive=True)
        std = d.quantity("std", dimension, nonnegative=True)
        low = d.quantity("low", dimension, 0.0, nonnegative=True)
        high = d.quantity("high", dimension, math.inf)
        if high < low:
            raise d.error("high", "must not be below low")
        dist = Distribution(kind, mean=mean, std=std, low=low, high=high)
    d.done()
    return dist


def _read_projection(r: _Reader, by_name: dict[str, Population], sim: Simulation) -> Projection:
    source = _population_ref(r, "source", by_name)
    target = _population_ref(r, "target", by_name)
    rule = r.str("rule", choices=RULES)
    receptor = r.str("receptor", choices=RECEPTORS)
    kind = by_name[source].kind
    allowed = EXCITATORY_RECEPTORS if kind == "excitatory" else INHIBITORY_RECEPTORS
    if receptor not in allowed:
        raise r.error("receptor", f"population {source!r} is {kind}; its projections use {' or '.join(allowed)}, "
                      f"not {receptor}")
    indegree, probability = 0, 0.0
    if rule == "fixed_indegree":
        indegree = r.int("indegree", minimum=0)
    elif rule == "fixed_probability":
        probability = r.float("probability", low=0.0, high=1.0)
    elif by_name[source].size != by_name[target].size:
        raise r.error("rule", f"one_to_one needs equal sizes, but {source!r} has {by_name[source].size} and "
                      f"{target!r} {by_name[target].size} neurons")
    weight = _read_distribution(r, "weight", "conductance", "weights are conductances")
    delay = _read_distribution(r, "delay", "time", "")
    if delay.kind in ("normal", "lognormal") and "low" not in r.table["delay"]:
        delay = dataclasses.replace(delay, low=sim.dt)
    if delay.lower_bound < sim.dt * (1 - 1e-9):
        raise r.error("delay", f"the smallest delay ({format_quantity(delay.lower_bound, 'ms')}) is below dt "
                      f"({format_quantity(sim.dt, 'ms')}); delays must be at least one time step")
    allow_autapses = r.bool("allow_autapses", False)
    plasticity = None
    if r.has("plasticity"):
        if kind != "excitatory":
            raise r.error("plasticity", f"population {source!r} is inhibitory; plasticity is for parallel fibres "
                                        f"(excitatory)")
        plasticity = _read_plasticity(r.sub("plasticity", r.raw("plasticity")), by_name, weight)
    r.done()
    return Projection(source=source, target=target, rule=rule, receptor=receptor, weight=weight, delay=delay,
                      indegree=indegree, probability=probability, allow_autapses=allow_autapses,
                      plasticity=plasticity)


def _read_plasticity(r: _Reader, by_name: dict[str, Population], weight: Distribution) -> Plasticity:
    """[projections.plasticity] (see Plasticity)."""
    d = Plasticity(teacher="")
    r.str("rule", d.rule, choices=(d.rule,))
    p = Plasticity(teacher=_population_ref(r, "teacher", by_name),
                   tau=r.quantity("tau", "time", d.tau, positive=True),
                   ltp=r.quantity("ltp", "conductance", d.ltp, nonnegative=True),
                   ltd=r.quantity("ltd", "conductance", d.ltd, nonnegative=True),
                   w_min=r.quantity("w_min", "conductance", d.w_min, nonnegative=True),
                   w_max=r.quantity("w_max", "conductance", d.w_max, positive=True))
    if p.w_min > p.w_max:
        raise r.error("w_min", f"must not exceed w_max ({format_quantity(p.w_max, 'nS')})")
    if by_name[p.teacher].kind != "excitatory":
        raise r.error("teacher", f"population {p.teacher!r} is inhibitory; climbing fibres are excitatory")
    r.done()
    return p


def _read_stimulus(r: _Reader, by_name: dict[str, Population]) -> PoissonStimulus | CurrentStep:
    kind = r.str("type", choices=("poisson", "current"))
    population = _population_ref(r, "population", by_name)
    start = r.quantity("start", "time", 0.0, nonnegative=True)
    stop = r.quantity("stop", "time", math.inf)
    if stop <= start:
        raise r.error("stop", "must lie after start")
    if kind == "poisson":
        rate = r.quantity("rate", "rate", nonnegative=True)
        weight = r.quantity("weight", "conductance", nonnegative=True)
        receptor = r.str("receptor", "ampa", choices=RECEPTORS)
        r.done()
        return PoissonStimulus(population, rate, weight, receptor, start, stop)
    amplitude = r.quantity("amplitude", "current")
    r.done()
    return CurrentStep(population, amplitude, start, stop)


def _read_monitors(r: _Reader, by_name: dict[str, Population], sim: Simulation) -> Monitors:
    d = Monitors()
    rate_bin = r.quantity("rate_bin", "time", d.rate_bin, positive=True)
    region_interval = r.quantity("region_interval", "time", d.region_interval, positive=True)
    for key, val in (("rate_bin", rate_bin), ("region_interval", region_interval)):
        if val < sim.dt * (1 - 1e-9):
            raise r.error(key, f"must be at least dt ({format_quantity(sim.dt, 'ms')})")
    states = []
    for i, raw in enumerate(r.list("state", [])):
        s = r.sub(f"state[{i}]", raw)
        pop = _population_ref(s, "population", by_name)
        idx = s.list("indices")
        size = by_name[pop].size
        for k in idx:
            if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < size:
                raise s.error("indices", f"index {k!r} is not in 0..{size - 1} of population {pop!r}")
        variables = s.list("variables", ["v"])
        known = ("v", "I_syn", "I_exc", "I_inh") + tuple(f"g_{x}" for x in RECEPTORS)
        for v in variables:
            if v not in known:
                raise s.error("variables", f"cannot record {v!r}; known: {', '.join(known)}")
        interval = s.quantity("interval", "time", 0.0, nonnegative=True)
        s.done()
        states.append(StateMonitor(pop, tuple(idx), tuple(variables), interval))
    plasticity_interval = r.quantity("plasticity_interval", "time", d.plasticity_interval, nonnegative=True)
    if 0 < plasticity_interval < sim.dt * (1 - 1e-9):
        raise r.error("plasticity_interval", f"must be at least dt ({format_quantity(sim.dt, 'ms')})")
    r.done()
    return Monitors(rate_bin=rate_bin, region_interval=region_interval, state=tuple(states),
                    plasticity_interval=plasticity_interval)


def _read_bold(r: _Reader, sim: Simulation, monitors: Monitors, source: str):
    """[bold]: BOLD computed while the network runs (see dtb.bold)."""
    from dtb.bold import DRIVES, BoldSettings, check_tr
    from dtb.errors import DtbError
    from dtb.models.balloon import PRESETS

    d = BoldSettings()
    tr = r.quantity("tr", "time", d.tr, positive=True)
    try:
        check_tr(tr, sim.dt, monitors.region_interval)
    except DtbError as e:
        raise r.error("tr", str(e)) from None
    preset = r.str("preset", d.preset, choices=tuple(PRESETS))
    drive = r.str("drive", d.drive, choices=DRIVES)
    ref = r.quantity("reference_current", "current", d.reference_current, positive=True)
    start = r.str("start", d.start, choices=("steady", "rest"))
    noise = r.float("noise", d.noise, low=0.0, high=1.0)
    base = Path(source).parent if source != "<dict>" else Path(".")
    atlas = r.str("atlas", None) if r.has("atlas") else None
    labels = r.str("labels", None) if r.has("labels") else None
    if (atlas is None) != (labels is None):
        raise r.error("labels" if atlas else "atlas", "atlas and labels go together: the label volume and the table "
                      "naming its regions")
    for key, val in (("atlas", atlas), ("labels", labels)):
        if val is not None and not (base / val).is_file():
            raise r.error(key, f"file not found: {base / val}")
    r.done()
    return BoldSettings(tr=tr, preset=preset, drive=drive, reference_current=ref, start=start, noise=noise,
                        atlas=str(base / atlas) if atlas else None, labels=str(base / labels) if labels else None)


def _read_task(r: _Reader, source: str):
    """[task]: a stimulus protocol (see dtb.task)."""
    from dtb.task import TaskSettings, TrialType

    base = Path(source).parent if source != "<dict>" else Path(".")
    types = []
    tt = r.sub("trial_types", r.raw("trial_types"))
    for name in list(tt.table):
        t = tt.sub(name, tt.raw(name))
        regions = t.list("regions")
        if not regions or not all(isinstance(x, str) for x in regions):
            raise t.error("regions", "expected a non-empty list of region names or atlas labels")
        kind = t.str("input", "poisson", choices=("poisson", "current"))
        amp = t.quantity("amplitude", "rate" if kind == "poisson" else "current")
        if kind == "poisson" and amp < 0:
            raise t.error("amplitude", "a rate increase must not be negative")
        t.done()
        types.append(TrialType(name, tuple(regions), kind, amp))
    tt.done()
    if not types:
        raise r.error("trial_types", "define at least one trial type")
    events = r.str("events", None) if r.has("events") else None
    d = TaskSettings(trial_types=())
    settings = TaskSettings(
        trial_types=tuple(types), events=str(base / events) if events else None,
        populations=r.str("populations", d.populations, choices=("excitatory", "all")),
        hrf_model=r.str("hrf_model", d.hrf_model, choices=("spm", "glover", "spm + derivative", "glover + derivative")),
        drift_model=r.str("drift_model", d.drift_model, choices=("cosine", "polynomial")),
        high_pass=r.quantity("high_pass", "rate", d.high_pass, positive=True))
    r.done()
    return settings


def _read_assimilation(r: _Reader):
    """[assimilation]: the ensemble Kalman filter's settings (see assimilation.settings)."""
    from assimilation.settings import HYPERPARAMETERS, AssimilationSettings

    d = AssimilationSettings()
    hps = r.list("hyperparameters", list(d.hyperparameters))
    for h in hps:
        if h not in HYPERPARAMETERS:
            raise r.error("hyperparameters", f"unknown hyperparameter {h!r}; known: {', '.join(HYPERPARAMETERS)}")
    if not hps or len(set(hps)) != len(hps):
        raise r.error("hyperparameters", "expected a non-empty list without repeats")
    low = r.float("low", d.low, low=0.0)
    high = r.float("high", d.high, low=0.0)
    if not high > low:
        raise r.error("high", f"must exceed low ({low:g})")
    prior = r.float("prior", d.prior)
    if not low < prior < high:
        raise r.error("prior", f"must lie strictly between low ({low:g}) and high ({high:g})")
    band = r.list("band_pass", list(d.band_pass) if d.band_pass else [])
    if band and (len(band) != 2 or not all(isinstance(x, (int, float)) and x >= 0 for x in band) or band[0] >= band[1]):
        raise r.error("band_pass", "expected [low, high] in Hz with low < high (or [] for none)")
    horizons = r.list("forecast_horizons", list(d.forecast_horizons))
    if not horizons or not all(isinstance(h, int) and not isinstance(h, bool) and 1 <= h <= 1000 for h in horizons) \
            or len(set(horizons)) != len(horizons):
        raise r.error("forecast_horizons", f"expected a non-empty list of distinct whole numbers of TRs in [1, 1000], "
                                           f"got {horizons!r}")
    coupling = r.list("coupling", list(d.coupling))
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 for x in coupling):
        raise r.error("coupling", f"expected a list of positive factors (e.g. [0.5, 1, 2]), got {coupling!r}")
    settings = AssimilationSettings(
        members=r.int("members", d.members, minimum=2), coupling=tuple(float(x) for x in coupling),
        coupling_members=r.int("coupling_members", d.coupling_members, minimum=1),
        coupling_balance=r.bool("coupling_balance", d.coupling_balance),
        hyperparameters=tuple(hps), low=low, high=high, prior=prior,
        prior_spread=r.float("prior_spread", d.prior_spread, low=0.0),
        random_walk=r.float("random_walk", d.random_walk, low=0.0),
        random_walk_centered=r.bool("random_walk_centered", d.random_walk_centered),
        hemodynamic_noise=r.float("hemodynamic_noise", d.hemodynamic_noise, low=0.0),
        obs_noise=r.float("obs_noise", d.obs_noise, low=1e-9),
        inflation=r.float("inflation", d.inflation, low=1.0, high=10.0),
        localisation=r.str("localisation", d.localisation, choices=("none", "own", "neighbours")),
        gamma_shape=r.float("gamma_shape", d.gamma_shape, low=0.1),
        spinup=r.quantity("spinup", "time", d.spinup, nonnegative=True),
        observation=r.str("observation", d.observation, choices=("zscore", "model")),
        detrend=r.bool("detrend", d.detrend), zscore=r.bool("zscore", d.zscore),
        band_pass=tuple(float(x) for x in band) if band else None,
        band_pass_causal=r.bool("band_pass_causal", d.band_pass_causal),
        forecast_horizons=tuple(sorted(horizons)),
        forecast_stride=r.int("forecast_stride", d.forecast_stride, minimum=1))
    r.done()
    return settings


def _read_bridge(r: _Reader, by_name: dict, stims):
    """[bridge]: couple the run to a body over a rosbridge server (see bridges.coupling)."""
    from bridges.coupling import CouplingSettings

    d = CouplingSettings()
    motor = r.list("motor", [])
    sensory = r.list("sensory", [])
    for key, names in (("motor", motor), ("sensory", sensory)):
        for n in names:
            if n not in by_name:
                raise r.error(key, f"unknown population {n!r}")
    for n in sensory:
        if not any(isinstance(st, PoissonStimulus) and st.population == n and st.rate == 0 for st in stims):
            raise r.error("sensory", f"population {n!r} needs a Poisson [[stimuli]] entry with rate = \"0 Hz\": "
                                     f"the body's messages set its rate")
    settings = CouplingSettings(
        motor=tuple(motor), sensory=tuple(sensory),
        period=r.quantity("period", "time", d.period, positive=True),
        motor_topic=r.str("motor_topic", d.motor_topic), sensory_topic=r.str("sensory_topic", d.sensory_topic),
        rate_per_unit=r.quantity("rate_per_unit", "rate", d.rate_per_unit, nonnegative=True),
        mode=r.str("mode", d.mode, choices=("lockstep", "realtime")),
        sensory_delay=r.int("sensory_delay", d.sensory_delay, minimum=0),
        timeout=r.quantity("timeout", "time", d.timeout, positive=True),
        port=r.int("port", d.port, minimum=0), host=r.str("host", d.host),
        auth_secret=_config_relative(r, r.str("auth_secret", None)) if r.has("auth_secret") else None,
        allow_origin=tuple(_string_list(r, "allow_origin")),
        error=_read_error_channel(r.sub("error", r.raw("error")), by_name, stims) if r.has("error") else None)
    r.done()
    return settings


def _config_relative(r: _Reader, path: str) -> str:
    """A path from the config, relative to the config file's folder unless absolute."""
    base = Path(r.source).parent if r.source and not r.source.startswith("<") else Path(".")
    return str(Path(path) if Path(path).is_absolute() else base / path)


def _string_list(r: _Reader, key: str) -> list[str]:
    values = r.list(key, [])
    if not all(isinstance(v, str) and v for v in values):
        raise r.error(key, f"expected a list of non-empty strings, got {values!r}")
    return values


def _read_error_channel(r: _Reader, by_name: dict, stims):
    """[bridge.error]: the inferior olive's error signal (see bridges.coupling.ErrorChannel)."""
    from bridges.coupling import ErrorChannel

    groups = r.list("cpg_groups")
    n = len(groups)
    if n == 0:
        raise r.error("cpg_groups", "at least one CPG group (one per joint) is needed")
    lists = {}
    for key in ("flexor", "extensor"):
        names = r.list(key)
        if len(names) != n:
            raise r.error(key, f"expected {n} populations (one per joint of cpg_groups), got {len(names)}")
        for name in names:
            if name not in by_name:
                raise r.error(key, f"unknown population {name!r}")
            if sum(isinstance(st, PoissonStimulus) and st.population == name for st in stims) != 1:
                raise r.error(key, f"population {name!r} needs exactly one Poisson [[stimuli]] entry (the error sets "
                                   f"its rate)")
        lists[key] = tuple(names)
    for key in ("offset", "amplitude"):
        vals = r.list(key)
        if len(vals) != n or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            raise r.error(key, f"expected {n} numbers (rad, one per joint), got {vals!r}")
        lists[key] = tuple(float(v) for v in vals)
    d = ErrorChannel(cpg_groups=(), flexor=(), extensor=(), offset=(), amplitude=())
    ch = ErrorChannel(cpg_groups=tuple(str(g) for g in groups), **lists,
                      lag=r.quantity("lag", "time", d.lag, nonnegative=True),
                      baseline=r.quantity("baseline", "rate", d.baseline, nonnegative=True),
                      gain=r.quantity("gain", "rate", d.gain, nonnegative=True),
                      max_rate=r.quantity("max_rate", "rate", d.max_rate, positive=True))
    r.done()
    return ch


def _read_cpg(r: _Reader, by_name: dict, sim: Simulation) -> CpgNetwork:
    """[cpg] with its [[cpg.groups]] (see CpgNetwork)."""
    d = CpgNetwork(groups=())
    groups = []
    for i, raw in enumerate(r.list("groups")):
        g = r.sub(f"groups[{i}]", raw)
        name = g.str("name")
        if any(x.name == name for x in groups):
            raise g.error("name", f"duplicate CPG group name {name!r}")
        group = CpgGroup(name=name, count=g.int("count", 25, minimum=1),
                         flexor=_population_ref(g, "flexor", by_name), extensor=_population_ref(g, "extensor", by_name),
                         phase=g.float("phase", 0.0))
        if group.flexor == group.extensor:
            raise g.error("extensor", "must be another population than flexor")
        for key in ("flexor", "extensor"):
            size = by_name[getattr(group, key)].size
            if size < group.count:
                raise g.error(key, f"population {getattr(group, key)!r} has {size} neurons, fewer than the group's "
                                   f"{group.count} oscillators")
        g.done()
        groups.append(group)
    if not groups:
        raise r.error("groups", "at least one [[cpg.groups]] entry is needed")
    for a in groups:
        diff = (a.phase - groups[0].phase) % 1.0
        if min(abs(diff), abs(diff - 0.5), abs(diff - 1.0)) > 1e-9:
            raise r.error("groups", f"group {a.name!r} has phase {a.phase:g}: inhibitory half-center coupling sets "
                                    f"groups in phase or half a cycle apart, so phases must differ by 0 or 0.5")
    net = CpgNetwork(
        groups=tuple(groups),
        tau_r=r.quantity("tau_r", "time", d.tau_r, positive=True),
        tau_a=r.quantity("tau_a", "time", d.tau_a, positive=True),
        beta=r.float("beta", d.beta, low=0.0), w=r.float("w", d.w, low=0.0),
        drive=r.float("drive", d.drive), coupling=r.float("coupling", d.coupling, low=0.0),
        rate=r.quantity("rate", "rate", d.rate, nonnegative=True),
        weight=r.quantity("weight", "conductance", d.weight, nonnegative=True),
        receptor=r.str("receptor", d.receptor, choices=EXCITATORY_RECEPTORS),
        update=r.quantity("update", "time", d.update, positive=True),
        record_interval=r.quantity("record_interval", "time", d.record_interval, positive=True),
        drive_from=_population_ref(r, "drive_from", by_name) if r.has("drive_from") else "",
        drive_rate=r.quantity("drive_rate", "rate", d.drive_rate, positive=True),
        drive_tau=r.quantity("drive_tau", "time", d.drive_tau, positive=True))
    for key in ("update", "record_interval"):
        if getattr(net, key) < sim.dt * (1 - 1e-9):
            raise r.error(key, f"must be at least one time step (dt = {sim.dt * 1e3:g} ms)")
    r.done()
    return net


def _check_plastic_projections(source: str, projs: tuple[Projection, ...]) -> None:
    """Plastic projections onto one population share one rule and receptor (the rule's parameters
    live with the target's input slot), and the teacher must project to the target."""
    seen: dict[str, int] = {}
    for i, pr in enumerate(projs):
        if pr.plasticity is None:
            continue
        if pr.target in seen:
            first = projs[seen[pr.target]]
            if first.plasticity != pr.plasticity or first.receptor != pr.receptor:
                raise ConfigError(source, f"projections[{i}].plasticity",
                                  f"population {pr.target!r} already has a plastic projection (projections[{seen[pr.target]}]) "
                                  f"with another rule or receptor; plastic projections onto one population must share both")
        seen.setdefault(pr.target, i)
        if not any(q.source == pr.plasticity.teacher and q.target == pr.target for q in projs):
            raise ConfigError(source, f"projections[{i}].plasticity.teacher",
                              f"no projection from {pr.plasticity.teacher!r} to {pr.target!r}: the climbing fibres "
                              f"are that projection")


def _cpg_as_stimuli(cpg: CpgNetwork | None) -> tuple:
    """The pools' CPG drive as the Poisson stimuli it amounts to (for the one-weight check)."""
    if cpg is None:
        return ()
    return tuple(PoissonStimulus(name, 0.0, cpg.weight, cpg.receptor)
                 for g in cpg.groups for name in (g.flexor, g.extensor))


#: the largest seed (the counter-based generators and the output files take it as a 64-bit integer)
MAX_SEED = 2**63 - 1
#: global ids and per-step synaptic input in weight quanta are 32-bit integers in the engine
MAX_INT32 = 2**31 - 1


def _check_integer_ranges(source: str, sim: Simulation, pops, projs, stims) -> None:
    """What would overflow the engine's 32-bit integers later is refused now: the neuron count
    (global ids), a synaptic weight in weight quanta, and a Poisson input's largest likely sum in
    one step (expected count + 10 sd + 10, times its weight in quanta)."""
    n = sum(p.size for p in pops)
    if n > MAX_INT32:
        raise ConfigError(source, "populations", f"{n} neurons in all: at most {MAX_INT32} (global ids are 32-bit); "
                                                 f"lower the sizes or simulation.scale")
    quantum = sim.weight_quantum
    for i, pr in enumerate(projs):
        q = pr.weight.practical_max / quantum
        if q > MAX_INT32:
            raise ConfigError(source, f"projections[{i}].weight", f"{pr.weight.practical_max:g} S is {q:.3g} weight "
                                                                  f"quanta, more than 2**31; raise simulation.weight_quantum")
    for i, st in enumerate(stims):
        if isinstance(st, PoissonStimulus):
            lam = st.rate * sim.dt
            worst = (lam + 10.0 * math.sqrt(lam) + 10.0) * round(st.weight / quantum)
            if worst > MAX_INT32:
                raise ConfigError(source, f"stimuli[{i}].weight",
                                  f"{format_quantity(st.weight, 'nS')} at {st.rate:g} Hz can bring {worst:.3g} weight "
                                  f"quanta in one step, more than 2**31; lower the weight or rate, or raise "
                                  f"simulation.weight_quantum")


def _check_background_weights(source: str, stims, n_config: int | None = None) -> None:
    """Poisson stimuli of one population and receptor share one weight per neuron. Entries past
    the first ``n_config`` are the [cpg] drive."""
    n_config = len(stims) if n_config is None else n_config
    seen: dict[tuple[str, str], tuple[int, float]] = {}

    def where(i: int) -> str:
        return f"stimuli[{i}]" if i < n_config else "cpg"

    for i, s in enumerate(stims):
        if isinstance(s, PoissonStimulus):
            key = (s.population, s.receptor)
            if key in seen and seen[key][1] != s.weight:
                raise ConfigError(source, f"{where(i)}.weight",
                                  f"Poisson stimuli on population {s.population!r} through {s.receptor} must share "
                                  f"one weight ({where(seen[key][0])} uses {format_quantity(seen[key][1], 'nS')})")
            seen.setdefault(key, (i, s.weight))

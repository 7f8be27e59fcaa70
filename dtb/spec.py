"""The network specification: plain data describing what to simulate, loaded and validated from TOML.

The spec plays the role of Arbor's recipe: it says what each population, projection and stimulus
is, never which rank holds what. All quantities are SI floats; configs write them with units
("5 ms"), parsed by :mod:`dtb.units`. Every error names the file and the field.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field
from typing import Any

from dtb.errors import ConfigError

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
    (dtb.models.plasticity). LTD needs parallel-fibre activity shortly before the climbing fibre.
    Weights stay in [w_min, w_max]; they are integers of
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
class SimulationSettings:
    dt: float = 1e-4
    duration: float = 1.0
    seed: int = 1
    weight_quantum: float = 1e-14   # siemens: 1e-5 nS
    exchange: str = "blocking"      # spike exchange between ranks: "blocking", "overlap" or "targeted"
    scale: float = 1.0              # every population's size x scale (rounded, at least 1); indegrees kept


@dataclass(frozen=True)
class Subject:
    """[subject]: who the simulated network models (NWB's Subject; the BIDS sub- label)."""

    id: str = ""                     # default: the config file's name
    species: str = "Homo sapiens"    # Latin binomial, or an NCBI taxonomy URL
    description: str = "simulated brain (a dtb network)"
    age: str = "P18Y/P90Y"           # ISO 8601 duration or range (default: an adult of unknown age)
    sex: str = "U"                   # NWB: F, M, U (unknown) or O


@dataclass(frozen=True)
class NetworkSpec:
    simulation: SimulationSettings
    populations: tuple[Population, ...]
    projections: tuple[Projection, ...] = ()
    stimuli: tuple[PoissonStimulus | CurrentStep, ...] = ()
    monitors: Monitors = Monitors()
    bold: Any = None               # dtb.bold.BoldSettings ([bold])
    task: Any = None               # dtb.task.TaskSettings ([task])
    assimilation: Any = None       # assimilation.settings.AssimilationSettings ([assimilation])
    bridge: Any = None             # bridges.coupling.CouplingSettings ([bridge])
    cpg: CpgNetwork | None = None
    conditions: dict = field(default_factory=dict)     # name -> Condition ([conditions.<name>])
    condition: str = ""                                # the one applied ("" for none)
    subject: Subject = field(default_factory=lambda: Subject())   # [subject]: who the network models
    source: str = "<dict>"
    text: str = ""

    @property
    def n_neurons(self) -> int:
        return sum(p.size for p in self.populations)

    @functools.cached_property
    def _population_by_name(self) -> dict[str, Population]:
        return {p.name: p for p in reversed(self.populations)}       # the first of a name wins

    def population(self, name: str) -> Population:
        """The population called ``name`` (a dict lookup: an ensemble of 24 members x 188
        populations asks 400,000 times while building, which took 42 s as a linear search)."""
        try:
            return self._population_by_name[name]
        except KeyError:
            raise KeyError(name) from None

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
        """A copy with [simulation] fields changed (SI values: ``duration=2.0``, ``seed=3``)."""
        return dataclasses.replace(self, simulation=dataclasses.replace(self.simulation, **changes))

    def with_population(self, name: str, **params: Any) -> "NetworkSpec":
        """A copy in which population ``name`` has these neuron parameters changed, each a value
        with its unit (``V_th="-52 mV"``) or a number in SI units (the parameters of docs/model.md)."""
        from dtb.models import LIF_PARAMETER_DIMENSIONS
        self.population(name)
        for key in params:
            if key not in LIF_PARAMETER_DIMENSIONS:
                raise ConfigError(self.source, f"{name}.{key}", f"unknown neuron parameter (known: "
                                  f"{', '.join(LIF_PARAMETER_DIMENSIONS)})")
        values = {k: _si_value(self.source, f"{name}.{k}", v, LIF_PARAMETER_DIMENSIONS[k]) for k, v in params.items()}
        pops = tuple(dataclasses.replace(p, params={**p.params, **values}) if p.name == name else p
                     for p in self.populations)
        return dataclasses.replace(self, populations=pops)

    def with_projection(self, index: int, **changes: Any) -> "NetworkSpec":
        """A copy in which projection ``index`` (its place in [[projections]]) has a new
        ``weight`` (one value: ``"0.8 nS"``, or a Distribution), ``delay``, ``indegree`` or
        ``probability``."""
        pr = self.projections[index]
        field_of = {"weight": "conductance", "delay": "time"}
        new = {}
        for key, v in changes.items():
            where = f"projections[{index}].{key}"
            if key in field_of:
                new[key] = v if isinstance(v, Distribution) else Distribution(
                    "constant", value=_si_value(self.source, where, v, field_of[key], nonnegative=True))
            elif key == "indegree" and isinstance(v, int) and v >= 0 and pr.rule == "fixed_indegree":
                new[key] = v
            elif key == "probability" and isinstance(v, (int, float)) and 0 <= v <= 1 and pr.rule == "fixed_probability":
                new[key] = float(v)
            else:
                raise ConfigError(self.source, where, "cannot be changed this way (weight, delay, an indegree of a "
                                  "fixed_indegree rule or a probability in [0, 1] of a fixed_probability rule)")
        projs = list(self.projections)
        projs[index] = dataclasses.replace(pr, **new)
        return dataclasses.replace(self, projections=tuple(projs))

    def with_stimulus(self, index: int, **changes: Any) -> "NetworkSpec":
        """A copy in which stimulus ``index`` (its place in [[stimuli]]) has a new ``rate`` or
        ``weight`` (Poisson) or ``amplitude`` (current), or ``start`` / ``stop``."""
        st = self.stimuli[index]
        dims = {"rate": "rate", "weight": "conductance", "amplitude": "current", "start": "time", "stop": "time"}
        new = {}
        for key, v in changes.items():
            if key not in dims or not hasattr(st, key):
                raise ConfigError(self.source, f"stimuli[{index}].{key}", f"not a field of this {type(st).__name__}")
            new[key] = _si_value(self.source, f"stimuli[{index}].{key}", v, dims[key], nonnegative=key != "amplitude")
        stims = list(self.stimuli)
        stims[index] = dataclasses.replace(st, **new)
        return dataclasses.replace(self, stimuli=tuple(stims))


def _si_value(source: str, field_name: str, value: Any, dimension: str, nonnegative: bool = False) -> float:
    """A number in SI units from ``value`` (a string with its unit, or a number already in SI),
    finite, and not negative when asked; ConfigError otherwise."""
    from dtb.units import UnitError, parse_quantity
    if isinstance(value, str):
        try:
            value = parse_quantity(value, dimension)
        except UnitError as e:
            raise ConfigError(source, field_name, str(e)) from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(source, field_name, f"expected a finite number or a value with a unit, got {value!r}")
    if nonnegative and value < 0:
        raise ConfigError(source, field_name, f"must not be negative, got {value!r}")
    return float(value)


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


def load_spec(path, overrides: dict[str, Any] | None = None) -> "NetworkSpec":
    """Read and validate a TOML network config (see :func:`dtb.config.load_spec`)."""
    from dtb.config import load_spec as load
    return load(path, overrides)


def spec_from_dict(data: dict, source: str = "<dict>", text: str = "",
                   overrides: dict[str, Any] | None = None) -> "NetworkSpec":
    """Validate a config given as a dict (see :func:`dtb.config.spec_from_dict`)."""
    from dtb.config import spec_from_dict as read
    return read(data, source, text, overrides)

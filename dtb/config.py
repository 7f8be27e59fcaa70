"""Reading a network config (TOML, or a dict) into a :class:`dtb.spec.NetworkSpec`, with the file
and the field named in every error. The optional sections are read by the packages they
configure, through :data:`SECTION_READERS` (Arbor's recipe stays plain data: dtb.spec)."""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dtb.errors import ConfigError
from dtb.models import MODELS, LIF_PARAMETER_DIMENSIONS, RECEPTORS
from dtb.spec import (DISTRIBUTIONS, EXCITATORY_RECEPTORS, INHIBITORY_RECEPTORS, RULES, Condition, CpgGroup,
                      CpgNetwork, CurrentStep, Distribution, Monitors, NetworkSpec, Plasticity, PoissonStimulus,
                      Population, Projection, SimulationSettings, StateMonitor, Subject)
from dtb.units import UnitError, format_quantity, parse_quantity


class ConfigReader:
    """Reads typed fields from a TOML table, raising ConfigError with file and field path."""

    def __init__(self, source: str, path: str, table: Any):
        self.source, self.path = source, path
        if not isinstance(table, dict):
            raise ConfigError(source, path, f"expected a table, got {type(table).__name__}")
        self.table = table
        self.used: set[str] = set()
        self.known: set[str] = set()        # fields asked for, present or not: what the table may hold

    def _field(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(self.source, self._field(key), message)

    def has(self, key: str) -> bool:
        self.known.add(key)
        return key in self.table

    def file_path(self, key: str, folder: Path) -> str | None:
        """A file path (relative to ``folder``, the config's, unless absolute), or None if absent."""
        if not self.has(key):
            return None
        value = Path(self.str(key))
        return str(value if value.is_absolute() else folder / value)

    def string_list(self, key: str) -> list[str]:
        values = self.list(key, [])
        if not all(isinstance(v, str) and v for v in values):
            raise self.error(key, f"expected a list of non-empty strings, got {values!r}")
        return values

    def raw(self, key: str, default: Any = ...) -> Any:
        self.used.add(key)
        if key not in self.table:
            if default is ...:
                typo = _closest(key, [k for k in self.table if isinstance(k, str)])
                raise self.error(key, "missing field" + (f" (the table has {typo!r}: a misspelling of it?)"
                                                         if typo else ""))
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

    def sub(self, key: str, value: Any) -> "ConfigReader":
        return ConfigReader(self.source, self._field(key), value)

    def done(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            known = sorted(self.used | self.known)
            close = _closest(str(unknown[0]), known)
            hint = f"; did you mean {close!r}?" if close else ""
            raise self.error(unknown[0], f"unknown field{hint} (known here: {', '.join(known) or 'none'})")


def _closest(word: str, candidates: list[str]) -> str | None:
    """The candidate most like ``word`` (difflib), if any is close enough to be a misspelling."""
    import difflib
    found = difflib.get_close_matches(word, candidates, n=1, cutoff=0.7)
    return found[0] if found else None


@dataclass(frozen=True)
class SectionContext:
    """What a section's reader may need from the rest of the config."""
    source: str
    simulation: SimulationSettings
    monitors: Monitors
    populations: dict          # name -> Population
    stimuli: tuple

    @property
    def folder(self) -> Path:
        """The config's folder: relative paths in a config are relative to it."""
        return Path(self.source).parent if self.source and not self.source.startswith("<") else Path(".")


#: the optional sections and the function that reads each, ``read(reader, context) -> settings``,
#: in the package it configures: the spec only holds what they return (NetworkSpec.<name>)
SECTION_READERS = {
    "bold": "dtb.bold:read_section",
    "task": "dtb.task:read_section",
    "assimilation": "assimilation.settings:read_section",
    "bridge": "bridges.coupling:read_section",
}
#: sections that expand into populations and projections: ``expand(data, source, ConfigReader)``
EXPANDERS = {"atlas": "atlas.config:expand_atlas"}


def _registered(target: str):
    import importlib
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _read_section(top: "ConfigReader", name: str, context: SectionContext):
    return _registered(SECTION_READERS[name])(top.sub(name, top.raw(name)), context)


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
        data = _registered(EXPANDERS["atlas"])(data, source, ConfigReader)
    top = ConfigReader(source, "", data)
    top.known |= set(EXPANDERS)           # read (and gone) before this reader saw the table
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
    subject = _read_subject(top.sub("subject", top.raw("subject", {})), source)
    context = SectionContext(source, sim, monitors, by_name, stims)
    sections = {name: _read_section(top, name, context) for name in SECTION_READERS if top.has(name)}
    cpg = _read_cpg(top.sub("cpg", top.raw("cpg")), by_name, sim) if top.has("cpg") else None
    conds = top.sub("conditions", top.raw("conditions", {}))
    conditions = {name: _read_condition(conds.sub(name, raw), by_name) for name, raw in conds.table.items()} \
        if isinstance(conds.table, dict) else {}
    top.done()
    _check_plastic_projections(source, projs)
    _check_background_weights(source, stims + _cpg_as_stimuli(cpg), len(stims))
    _check_integer_ranges(source, sim, pops, projs, stims)
    return NetworkSpec(simulation=sim, populations=tuple(pops), projections=projs, stimuli=stims,
                       monitors=monitors, cpg=cpg, conditions=conditions, source=source, text=text, subject=subject,
                       **sections)


def _read_subject(r: ConfigReader, source: str) -> Subject:
    """[subject]: id (default: the config file's name, letters and digits), species, description,
    age, sex (the metadata NWB and BIDS ask for; see dtb.spec.Subject for the defaults)."""
    import re
    d = Subject()
    default_id = re.sub(r"[^A-Za-z0-9]", "", Path(source).stem) or "dtb"
    subject = Subject(id=r.str("id", default_id), species=r.str("species", d.species),
                      description=r.str("description", d.description), age=r.str("age", d.age),
                      sex=r.str("sex", d.sex, choices=("F", "M", "U", "O")))
    if not re.fullmatch(r"P[0-9YMWD]+(T[0-9HMS]+)?(/P[0-9YMWD]+(T[0-9HMS]+)?)?", subject.age):
        raise r.error("age", f"an ISO 8601 duration such as 'P30Y' or 'P8W', or a range 'P20Y/P40Y', got {subject.age!r}")
    if not re.fullmatch(r"[A-Za-z0-9]+", subject.id):
        raise r.error("id", f"letters and digits only (a BIDS sub- label), got {subject.id!r}")
    if not (re.fullmatch(r"[A-Z][a-z]+ [a-z]+", subject.species) or subject.species.startswith("http")):
        raise r.error("species", f"a Latin binomial ('Mus musculus') or an NCBI taxonomy URL, got {subject.species!r}")
    r.done()
    return subject


def _read_condition(r: ConfigReader, by_name: dict[str, Population]) -> Condition:
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




def _read_simulation(r: ConfigReader) -> SimulationSettings:
    d = SimulationSettings()
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
    return SimulationSettings(dt=dt, duration=duration, seed=seed, weight_quantum=wq, exchange=exchange, scale=scale)


def _read_params(r: ConfigReader) -> dict[str, float]:
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


def _read_population(r: ConfigReader, defaults: dict[str, float], first_gid: int, scale: float = 1.0) -> Population:
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


def _population_ref(r: ConfigReader, key: str, by_name: dict[str, Population]) -> str:
    name = r.str(key)
    if name not in by_name:
        raise r.error(key, f"unknown population {name!r}; known: {', '.join(by_name)}")
    return name


def _read_distribution(r: ConfigReader, key: str, dimension: str, nonneg_msg: str) -> Distribution:
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


def _read_projection(r: ConfigReader, by_name: dict[str, Population], sim: SimulationSettings) -> Projection:
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


def _read_plasticity(r: ConfigReader, by_name: dict[str, Population], weight: Distribution) -> Plasticity:
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


def _read_stimulus(r: ConfigReader, by_name: dict[str, Population]) -> PoissonStimulus | CurrentStep:
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


def _read_monitors(r: ConfigReader, by_name: dict[str, Population], sim: SimulationSettings) -> Monitors:
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


def _read_cpg(r: ConfigReader, by_name: dict, sim: SimulationSettings) -> CpgNetwork:
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


def _check_integer_ranges(source: str, sim: SimulationSettings, pops, projs, stims) -> None:
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

"""Coupling a running twin to a body over the rosbridge server.

Every control period (biological time) the twin

* publishes its **motor output** on ``motor_topic`` (``std_msgs/Float64MultiArray``): the firing
  rate (Hz) of each motor population over the last period, in the order of ``motor``, the
  population names in ``layout.dim[0].label`` (comma-separated);
* applies the latest **sensory input** from ``sensory_topic`` (``std_msgs/Float64MultiArray``):
  ``data[i]`` (one value per sensory population, clipped to >= 0) times ``rate_per_unit`` becomes
  the rate of that population's Poisson input (a ``[[stimuli]]`` entry the config gives it).

**Error channel** (``[bridge.error]``, the inferior olive of a motor-learning experiment): the
sensory message carries, after the sensory values, one angle (rad) per joint. The intended angle
of joint j is ``offset_j + amplitude_j * u_j(t - lag)``, with u_j the mean (flexor - extensor)
output of CPG group ``cpg_groups[j]`` (the motor plan in M2); with error e_j = intended - angle,
the Poisson input of population ``flexor[j]`` (more flexion needed) gets rate
``clip(baseline + gain * e_j, 0, max_rate)`` and ``extensor[j]`` ``clip(baseline - gain * e_j, 0,
max_rate)``; before ``start`` (s) the error counts as 0 (the CPGs and the limb settle first: their
start-up transient is not an error the cerebellum should learn from). Rank 0 logs (t, intended,
angle) every period.

Rank 0 talks to the server; the rates are summed over ranks and the sensory values broadcast,
so every rank applies the same input and the run stays independent of the rank count.

Modes: ``lockstep``: the run starts once a client (the body) subscribes to ``motor_topic``;
the body answers the k-th motor message with the k-th sensory message, and the twin, after
publishing motor message k, waits for sensory message k - ``sensory_delay`` and applies exactly
that one (``timeout`` seconds of wall time, then a clear error: is the body running?). With
``sensory_delay = 0`` brain and body take turns; with 1 (an afferent delay of one control period)
they compute at the same time, and the run is still deterministic;
``realtime``: the twin never waits for the body, and sleeps when it runs ahead of the wall clock
(real-time factor at most 1).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

from dtb.errors import DtbError
from dtb.spec import PoissonStimulus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ErrorChannel:
    """[bridge.error]: see the module doc. Angles in rad, rates in Hz, ``gain`` in Hz per rad."""

    cpg_groups: tuple[str, ...]
    flexor: tuple[str, ...]
    extensor: tuple[str, ...]
    offset: tuple[float, ...]
    amplitude: tuple[float, ...]
    lag: float = 0.1              # s
    baseline: float = 0.0         # Hz at zero error
    gain: float = 1000.0          # Hz per rad
    max_rate: float = 5000.0      # Hz
    start: float = 0.0            # s: before it the olive gets ``baseline`` only (the start-up transient of
    #                               the CPGs and the limb is not an error to learn from); angles are logged


def intended_angles(u_history: np.ndarray, channel: ErrorChannel, lag_periods: int) -> np.ndarray:
    """Intended joint angles (rad) now, from the CPG plan ``u_history`` (n_periods x joints, the
    newest last): offset + amplitude x u(t - lag); before the plan is that old, its first row."""
    row = u_history[max(len(u_history) - 1 - lag_periods, 0)]
    return np.asarray(channel.offset) + np.asarray(channel.amplitude) * row


def olive_rates(error: np.ndarray, channel: ErrorChannel) -> tuple[np.ndarray, np.ndarray]:
    """Poisson input rates (Hz) of the flexor and extensor olive populations for joint errors
    (rad; positive: more flexion needed)."""
    flex = np.clip(channel.baseline + channel.gain * error, 0.0, channel.max_rate)
    ext = np.clip(channel.baseline - channel.gain * error, 0.0, channel.max_rate)
    return flex, ext


@dataclass(frozen=True)
class CouplingSettings:
    motor: tuple[str, ...] = ()          # motor populations
    sensory: tuple[str, ...] = ()        # sensory populations (each with a Poisson stimulus)
    period: float = 0.01                 # [s] control period (biological time)
    motor_topic: str = "/dtb/motor"
    sensory_topic: str = "/dtb/sensory"
    rate_per_unit: float = 100.0         # [Hz] Poisson rate per unit of sensory value
    mode: str = "lockstep"               # or "realtime"
    sensory_delay: int = 0               # lockstep: apply the body's reply to the motor message of this many periods ago
    timeout: float = 10.0                # [s] wall time to wait for the body in lockstep
    port: int = 9090
    host: str = "127.0.0.1"
    auth_secret: str | None = None       # file with the rosauth secret: clients must authenticate
    allow_origin: tuple[str, ...] = ()   # web page origins allowed to connect (browsers are refused otherwise)
    error: ErrorChannel | None = None


class BodyCoupling:
    """Attach to a Simulation (before run()); ``server``: a running RosbridgeServer on rank 0
    (None on the other ranks)."""

    def __init__(self, sim, settings: CouplingSettings, server=None):
        self.sim, self.s, self.server = sim, settings, server
        spec = sim.spec
        for name in settings.motor + settings.sensory:
            spec.population(name)            # KeyError -> caught by the caller with a clear message
        self._motor_mask = [np.isin(sim.local_gids, np.arange(p.first_gid, p.first_gid + p.size))
                            for p in (spec.population(n) for n in settings.motor)]
        self._sizes = np.array([spec.population(n).size for n in settings.motor], dtype=float)
        self._stim = []
        for name in settings.sensory:
            idx = [k for k, st in enumerate(spec.stimuli) if getattr(st, "population", None) == name
                   and getattr(st, "rate", None) == 0]
            if not idx:
                raise DtbError(f"sensory population {name!r} needs a Poisson [[stimuli]] entry with rate 0 Hz (its "
                               f"rate is set from the body's messages)")
            self._stim.append(idx[0])
        self._error_setup(sim, settings.error)
        self._spike_pos = 0
        self._new = threading.Event()
        self._seq = 0                    # sensory messages received
        self._seen = 0
        self._inbox: collections.deque = collections.deque()   # lockstep: messages not yet applied
        self._applied = 0
        self.sent = 0
        self.received = 0
        self.wait_seconds = 0.0
        self._t0_wall = None
        self._t0_bio = 0.0
        if server is not None:
            server.on(settings.sensory_topic, self._on_sensory)
        sim.add_hook(settings.period, self._tick)

    def _error_setup(self, sim, ch: ErrorChannel | None) -> None:
        self.error_log: list[tuple[float, np.ndarray, np.ndarray]] = []   # rank 0: (t, intended, angle)
        if ch is None:
            return
        if sim.cpg is None:
            raise DtbError("[bridge.error] needs a [cpg] section: the intended trajectory is the CPG's plan")
        names = [g.name for g in sim.spec.cpg.groups]
        self._err_groups = []
        gi = np.repeat(np.arange(len(names)), [g.count for g in sim.spec.cpg.groups])
        for name in ch.cpg_groups:
            if name not in names:
                raise DtbError(f"[bridge.error] cpg_groups: no CPG group {name!r} (groups: {', '.join(names)})")
            self._err_groups.append(gi == names.index(name))
        self._olive = []
        for name in ch.flexor + ch.extensor:
            idx = [k for k, st in enumerate(sim.spec.stimuli) if getattr(st, "population", None) == name
                   and hasattr(st, "rate")]
            if len(idx) != 1:
                raise DtbError(f"[bridge.error]: population {name!r} needs exactly one Poisson [[stimuli]] entry "
                               f"(its rate is set from the error)")
            self._olive.append(idx[0])
        self._lag_periods = int(round(ch.lag / self.s.period))
        self._u: collections.deque = collections.deque(maxlen=self._lag_periods + 1)

    def _plan(self) -> np.ndarray:
        """u_j: mean flexor - extensor output of each error joint's CPG group (every rank alike)."""
        y = self.sim.cpg.outputs()
        return np.array([np.mean(y[m, 0] - y[m, 1]) for m in self._err_groups])

    def wait_for_body(self) -> float:
        """Block (collectively) until a client subscribes to the motor topic, so that brain and
        body start together and the body's start-up is not counted as run time. Lockstep: no
        subscriber within ``timeout`` is an error; realtime: a warning, and the run goes on.
        Returns the seconds waited (rank 0)."""
        waited, problem = 0.0, None
        if self.server is not None:
            t0 = time.perf_counter()
            while not self.server.subscribers(self.s.motor_topic):
                if time.perf_counter() - t0 > self.s.timeout:
                    problem = (f"no subscriber to {self.s.motor_topic} (and no message on {self.s.sensory_topic}) "
                               f"within {self.s.timeout:g} s of wall time: is the body running and connected to "
                               f"ws://{self.s.host}:{self.server.port}? (dtb body --port {self.server.port})")
                    break
                time.sleep(0.01)
            waited = time.perf_counter() - t0
            if problem and self.s.mode == "realtime":
                log.warning("realtime: %s; running without it", problem)
                problem = None
            elif problem:
                problem = "lockstep: " + problem
        if self.sim.size > 1:
            problem = self.sim.comm.bcast(problem, root=0)
        if problem:
            raise DtbError(problem)
        return waited

    def finish(self, timeout: float = 5.0) -> None:
        """Lockstep, after the run: wait (briefly) for the body's replies to every motor message
        sent, so that the body has simulated exactly the run's duration."""
        if self.server is None or self.s.mode != "lockstep":
            return
        deadline = time.perf_counter() + timeout
        while self._seq < self.sent and time.perf_counter() < deadline:
            self._new.wait(0.05)
            self._new.clear()

    def _on_sensory(self, msg: dict) -> None:
        self._inbox.append(msg)
        self._seq += 1
        self._new.set()

    def _motor_rates(self) -> np.ndarray:
        idx, _ = self.sim.spikes.since(self._spike_pos)
        self._spike_pos = len(self.sim.spikes)
        counts = np.array([np.count_nonzero(m[idx]) for m in self._motor_mask], dtype=np.int64)
        if self.sim.size > 1:
            from mpi4py import MPI
            self.sim.comm.Allreduce(MPI.IN_PLACE, counts, op=MPI.SUM)
        return counts / self._sizes / self.s.period

    def _tick(self, sim) -> None:
        rates = self._motor_rates() if self.s.motor else np.zeros(0)
        values, problem = None, None
        if self.server is not None:
            self.server.publish(self.s.motor_topic, {
                "layout": {"dim": [{"label": ",".join(self.s.motor), "size": len(rates), "stride": len(rates)}],
                           "data_offset": 0},
                "data": [float(r) for r in rates]}, "std_msgs/Float64MultiArray")
            self.sent += 1
            if self.s.mode == "lockstep":
                # the body answers motor message k with sensory message k; apply k - delay
                due = self.sent - self.s.sensory_delay
                t0 = time.perf_counter()
                while self._seq < due:
                    if not self._new.wait(self.s.timeout):
                        problem = (f"lockstep: no message on {self.s.sensory_topic} within {self.s.timeout:g} s of "
                                   f"wall time at t = {sim.t:.3f} s: is the body running and connected to "
                                   f"ws://{self.s.host}:{self.server.port}?")
                        break
                    self._new.clear()
                self.wait_seconds += time.perf_counter() - t0
                latest = None
                while self._applied < due and self._inbox:
                    latest = self._inbox.popleft()
                    self._applied += 1
            else:
                self._pace(sim)
                latest = self.server.latest(self.s.sensory_topic)
            self._seen = self._seq
            if latest is not None and problem is None:
                data = np.asarray(latest.get("data", []), dtype=float)
                n_angles = len(self.s.error.cpg_groups) if self.s.error is not None else 0
                if len(data) != len(self.s.sensory) + n_angles:
                    problem = (f"{self.s.sensory_topic}: {len(data)} values, expected {len(self.s.sensory) + n_angles} "
                               f"(one per sensory population: {', '.join(self.s.sensory)}"
                               f"{f', then {n_angles} joint angles' if n_angles else ''})")
                else:
                    values = data.copy()
                    values[:len(self.s.sensory)] = np.clip(data[:len(self.s.sensory)], 0.0, None)
                    self.received += 1
        if sim.size > 1:
            problem, values = sim.comm.bcast((problem, values), root=0)
        if problem:
            raise DtbError(problem)
        ch = self.s.error
        if ch is not None:
            self._u.append(self._plan())
        if values is not None:
            rates = {k: v * self.s.rate_per_unit for k, v in zip(self._stim, values[:len(self.s.sensory)])}
            if ch is not None:
                angle = values[len(self.s.sensory):]
                intended = intended_angles(np.array(self._u), ch, self._lag_periods)
                error = intended - angle if sim.t >= ch.start else np.zeros_like(angle)
                flex, ext = olive_rates(error, ch)
                rates.update(zip(self._olive, np.concatenate([flex, ext])))
                if sim.rank == 0:
                    self.error_log.append((sim.t, intended, angle))
            sim.set_stimulus_rates(rates)

    def _pace(self, sim) -> None:
        """Real time: sleep while biological time runs ahead of wall time."""
        now = time.perf_counter()
        if self._t0_wall is None:
            self._t0_wall, self._t0_bio = now, sim.t
            return
        ahead = (sim.t - self._t0_bio) - (now - self._t0_wall)
        if ahead > 0:
            time.sleep(ahead)


def read_section(r, context) -> CouplingSettings:
    """[bridge] (``r``: a dtb.config.ConfigReader; ``context``: a dtb.config.SectionContext)."""
    by_name, stims = context.populations, context.stimuli
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
        auth_secret=r.file_path("auth_secret", context.folder), allow_origin=tuple(r.string_list("allow_origin")),
        error=_read_error_channel(r.sub("error", r.raw("error")), by_name, stims) if r.has("error") else None)
    r.done()
    return settings


def _read_error_channel(r, by_name: dict, stims):
    """[bridge.error]: the inferior olive's error signal (see :class:`ErrorChannel`)."""
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
                      max_rate=r.quantity("max_rate", "rate", d.max_rate, positive=True),
                      start=r.quantity("start", "time", d.start, nonnegative=True))
    r.done()
    return ch

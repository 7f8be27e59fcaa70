"""Coupling a running twin to a body over the rosbridge server.

Every control period (biological time) the twin

* publishes its **motor output** on ``motor_topic`` (``std_msgs/Float64MultiArray``): the firing
  rate (Hz) of each motor population over the last period, in the order of ``motor``, the
  population names in ``layout.dim[0].label`` (comma-separated);
* applies the latest **sensory input** from ``sensory_topic`` (``std_msgs/Float64MultiArray``):
  ``data[i]`` (one value per sensory population, clipped to >= 0) times ``rate_per_unit`` becomes
  the rate of that population's Poisson input (a ``[[stimuli]]`` entry the config gives it).

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

log = logging.getLogger(__name__)


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
                if len(data) != len(self.s.sensory):
                    problem = (f"{self.s.sensory_topic}: {len(data)} values, expected {len(self.s.sensory)} (one per "
                               f"sensory population: {', '.join(self.s.sensory)})")
                else:
                    values = np.clip(data, 0.0, None)
                    self.received += 1
        if sim.size > 1:
            problem, values = sim.comm.bcast((problem, values), root=0)
        if problem:
            raise DtbError(problem)
        if values is not None:
            sim.set_stimulus_rates({k: v * self.s.rate_per_unit for k, v in zip(self._stim, values)})

    def _pace(self, sim) -> None:
        """Real time: sleep while biological time runs ahead of wall time."""
        now = time.perf_counter()
        if self._t0_wall is None:
            self._t0_wall, self._t0_bio = now, sim.t
            return
        ahead = (sim.t - self._t0_bio) - (now - self._t0_wall)
        if ahead > 0:
            time.sleep(ahead)

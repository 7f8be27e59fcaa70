"""Matsuoka CPG populations inside a Simulation: a Brian2 group of half-centers that drives LIF pools.

Every rank holds the whole oscillator group (a few hundred ODEs, deterministic, identical on every
rank), so the drive of a pool neuron does not depend on which rank owns it and no message is
needed. Oscillator ``i`` of a group drives the pool neurons ``j`` with ``i = j * count // size``
(consecutive blocks), flexor unit -> flexor pool, extensor unit -> extensor pool. Every ``update``
the Poisson rate of those neurons is set to their stimuli's rate plus ``rate * y`` (y: the unit's
output, max(0, x)); the events arrive through ``receptor`` with ``weight``.

Coupling (Brian2 ``Synapses`` with summed inputs; :func:`coupling_pairs`): oscillator k of a
group is inhibited by oscillator k (the same joint) of every other group, with weight
``coupling / n_groups``: through the *same* unit for groups half a cycle away (antiphase), through
the *opposite* unit for groups at its own phase (in phase); and by its neighbours k +- 1 (mod
count: a ring, so that every oscillator gets the same input) in its own group (in phase, half
that weight). Oscillators start at their group's phase of the cycle (flexor or extensor
leading) with a small deterministic spread, which the coupling removes.
"""

from __future__ import annotations

import numpy as np

from dtb import rng
from dtb.models.matsuoka import BRIAN2_EQUATIONS
from dtb.spec import CpgNetwork

STREAM_CPG = 0x43504700   # counter-based stream for the oscillators' initial spread


def coupling_pairs(cpg: CpgNetwork) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Coupling synapses (source j, target i, weight, antiphase?): every oscillator k of a group
    receives from the oscillator at the same relative position (joint) of every other group, with
    weight ``coupling / n_groups``, and from its neighbours k - 1 and k + 1 (mod count) in its own
    group (in phase), with half that weight each. Antiphase pairs inhibit through the same unit, in-phase
    pairs through the opposite unit."""
    counts = [g.count for g in cpg.groups]
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    phase = [g.phase for g in cpg.groups]
    k = cpg.coupling / len(cpg.groups)
    src, tgt, w, anti = [], [], [], []
    for a, na in enumerate(counts):
        for b, nb in enumerate(counts):
            if a == b:
                continue
            i = np.arange(na)
            src.append(first[b] + i * nb // na)
            tgt.append(first[a] + i)
            w.append(np.full(na, k))
            anti.append(np.full(na, abs(((phase[a] - phase[b]) % 1.0) - 0.5) < 1e-9))
        if na > 1:
            # a ring: every oscillator gets the same neighbour input (at the ends of a chain the
            # missing neighbour changed the frequency, and the group slowly fell out of phase)
            i = np.arange(na)
            for step in (-1, 1):
                src.append(first[a] + (i + step) % na)
                tgt.append(first[a] + i)
                w.append(np.full(na, k / 2))
                anti.append(np.zeros(na, bool))
    return (np.concatenate(src).astype(np.int64), np.concatenate(tgt).astype(np.int64),
            np.concatenate(w), np.concatenate(anti))


def group_index(cpg: CpgNetwork) -> np.ndarray:
    """Group of each oscillator (oscillators are numbered group by group)."""
    return np.repeat(np.arange(len(cpg.groups)), [g.count for g in cpg.groups])


def initial_state(cpg: CpgNetwork, seed: int) -> dict[str, np.ndarray]:
    """x1, x2, v1, v2 of every oscillator: groups at phase 0 start flexor-leading, at 0.5
    extensor-leading, each oscillator shifted by a counter-based uniform draw in [0, 0.1)."""
    n = cpg.count
    jitter = 0.1 * rng.uniform(seed, STREAM_CPG, np.arange(n, dtype=np.int64), 0)
    lead = (np.array([g.phase for g in cpg.groups])[group_index(cpg)] % 1.0) < 0.25
    x1 = np.where(lead, 1.0, 0.0) + jitter
    x2 = np.where(lead, 0.0, 1.0)
    return {"x1": x1, "x2": x2, "v1": np.zeros(n), "v2": np.zeros(n)}


class CpgDriver:
    """Builds the oscillator group for ``sim`` and sets its pools' Poisson drive (see module doc)."""

    VARIABLES = ("x1", "x2", "v1", "v2")

    def __init__(self, sim, b2):
        cpg: CpgNetwork = sim.spec.cpg
        self.sim, self.cpg = sim, cpg
        n = cpg.count
        G = b2.NeuronGroup(n, BRIAN2_EQUATIONS, method="rk4", name="dtb_cpg")
        G.tau_r = cpg.tau_r * b2.second
        G.tau_a = cpg.tau_a * b2.second
        G.beta, G.w, G.u = cpg.beta, cpg.w, cpg.drive
        for name, value in initial_state(cpg, sim.seed).items():
            G.variables[name].set_value(value)
        src, tgt, weight, anti = coupling_pairs(cpg)
        objects = [G]
        if len(src):
            S = b2.Synapses(G, G, model="""a_same : 1 (constant)
                                           a_cross : 1 (constant)
                                           c1_post = -(a_same*y1_pre + a_cross*y2_pre) : 1 (summed)
                                           c2_post = -(a_same*y2_pre + a_cross*y1_pre) : 1 (summed)""",
                            name="dtb_cpg_coupling")
            S.connect(i=src, j=tgt)
            S.a_same = np.where(anti, weight, 0.0)
            S.a_cross = np.where(anti, 0.0, weight)
            objects.append(S)
        self.group, self.objects = G, objects
        # the local pool neurons: which oscillator and unit drives each
        targets, osc, unit = [], [], []
        first = 0
        for g in cpg.groups:
            for u, name in enumerate((g.flexor, g.extensor)):
                p = sim.spec.population(name)
                mine, idx = sim.locate(np.arange(p.first_gid, p.first_gid + p.size, dtype=np.int64))
                j_in_pool = np.flatnonzero(mine)
                targets.append(idx[mine])
                osc.append(first + j_in_pool * g.count // p.size)
                unit.append(np.full(len(j_in_pool), u))
            first += g.count
        self.targets = np.concatenate(targets).astype(np.int64)
        self.osc = np.concatenate(osc).astype(np.int64)
        self.unit = np.concatenate(unit).astype(np.int64)
        self._flat = 2 * self.osc + self.unit          # index into outputs().reshape(-1)
        self.lam_per_unit = cpg.rate * sim.dt
        self.every = max(int(np.rint(cpg.update / sim.dt)), 1)
        self.record_every = max(int(np.rint(cpg.record_interval / sim.dt)), 1)
        self.t: list[float] = []
        self.y: list[np.ndarray] = []
        self.prefix: tuple[np.ndarray, np.ndarray] | None = None
        # vigour: the tonic drive follows a population's rate (summed over ranks: the same
        # oscillators everywhere)
        self.drive_slice = sim.population_slices(cpg.drive_from) if cpg.drive_from else None
        self.drive_size = sim.spec.population(cpg.drive_from).size if cpg.drive_from else 0
        self.drive_r = cpg.drive_rate
        self._spike_pos = 0

    def outputs(self) -> np.ndarray:
        """(N, 2) current outputs y1 (flexor), y2 (extensor)."""
        x = np.stack([self.group.variables["x1"].get_value(), self.group.variables["x2"].get_value()], axis=1)
        return np.maximum(x, 0.0)

    def update_vigour(self) -> None:
        """Low-pass the rate of ``drive_from`` over the spikes since the last update (collective
        when there are several ranks) and set the oscillators' tonic input from it."""
        cpg, sim = self.cpg, self.sim
        idx, _ = sim.spikes.since(self._spike_pos)
        self._spike_pos = len(sim.spikes)
        sl = self.drive_slice
        count = np.array([np.count_nonzero((idx >= sl.start) & (idx < sl.stop)) if sl is not None else 0],
                         dtype=np.int64)
        if sim.size > 1:
            from mpi4py import MPI
            sim.comm.Allreduce(MPI.IN_PLACE, count, op=MPI.SUM)
        window = self.every * sim.dt
        rate = count[0] / self.drive_size / window
        self.drive_r += (rate - self.drive_r) * (window / cpg.drive_tau)
        self._set_tonic_input()

    def _set_tonic_input(self) -> None:
        """u = drive x (low-passed rate of drive_from) / drive_rate."""
        self.group.variables["u"].set_value(self.cpg.drive * self.drive_r / self.cpg.drive_rate)

    def add_drive(self, lam: np.ndarray) -> None:
        """Add the oscillators' current drive to this rank's expected events per step ``lam``."""
        y = self.outputs().reshape(-1)
        lam[self.targets] += self.lam_per_unit * y[self._flat]

    def record(self, step: int) -> None:
        self.t.append(step * self.sim.dt)
        self.y.append(self.outputs())

    def recording(self) -> tuple[np.ndarray, np.ndarray]:
        """(t (s), y (n, N, 2)) recorded outputs, earlier (checkpointed) segments included."""
        t = np.array(self.t)
        y = np.array(self.y).reshape(-1, self.cpg.count, 2)
        if self.prefix is not None:
            t, y = np.concatenate([self.prefix[0], t]), np.concatenate([self.prefix[1], y])
        return t, y

    def capture(self) -> dict[str, np.ndarray]:
        t, y = self.recording()
        state = {v: np.array(self.group.variables[v].get_value(), copy=True) for v in self.VARIABLES}
        return {**state, "record_t": t, "record_y": y, "drive_r": np.array([self.drive_r])}

    def restore(self, state: dict[str, np.ndarray]) -> None:
        for v in self.VARIABLES:
            self.group.variables[v].set_value(np.asarray(state[v]))
        self.prefix = (np.asarray(state["record_t"]), np.asarray(state["record_y"]).reshape(-1, self.cpg.count, 2))
        self.t, self.y = [], []
        if "drive_r" in state:
            self.drive_r = float(np.asarray(state["drive_r"]).reshape(-1)[0])
            if self.cpg.drive_from:
                self._set_tonic_input()
        self._spike_pos = len(self.sim.spikes)

"""The twin's structure, fitted on the training part before the filter starts, and the networks
built from it: the effective connectivity its long-range weights follow
(:mod:`assimilation.effective`), the global coupling (each candidate run freely over the
training TRs; the one whose FC is closest to the data's is kept, as a neural-mass model's K is
fitted) and, at every candidate, the operating point (feedback inhibition control,
:mod:`assimilation.fic`). ``dtb assimilate`` fits it (:func:`fit_structure`) and stores it in
assimilation.h5 (/structure); the ensemble of the filter and the free run of ``dtb validate``
are built from it by :func:`twin_simulation`.

The region input (:mod:`assimilation.region_input`) drives every free run here with its noise:
each region's std and the common part's follow the noise of the fitted effective connectivity
(their mean is ``input_std``), or every region gets ``input_std`` without one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field

import numpy as np

from assimilation.data import preprocess
from assimilation.effective import MouFit, fit_mou_ec
from assimilation.enkf import fc_matrix, fc_similarity, to_unbounded
from assimilation.ensemble import (balance_long_range, ensemble_spec, long_range_mask, scale_long_range,
                                   with_effective_connectivity)
from assimilation.fic import FicResult, excitatory_region, inhibition_factors, run_calibration
from assimilation.region_input import RegionInput
from dtb.errors import DtbError
from dtb.spec import NetworkSpec

log = logging.getLogger(__name__)

#: counter stream of the region input's noise in free runs
STREAM_FREE_INPUT = 7004


@dataclass
class TwinStructure:
    """What the filter's ensemble and the free runs are built from (see the module docstring)."""

    coupling: float = 1.0
    coupling_scores: dict[float, float] = field(default_factory=dict)
    ec: MouFit | None = None
    fic: FicResult | None = None
    input_std: tuple[np.ndarray, float] | None = None      # region input: (each region's std, common std)

    def network(self, spec: NetworkSpec, rates: dict[str, float] | None = None) -> NetworkSpec:
        """``spec`` with the effective connectivity and the global coupling."""
        if self.ec is not None:
            spec = with_effective_connectivity(spec, self.ec.C)
        return coupled(spec, self.coupling, rates)

    def to_json(self) -> str:
        """Everything needed to rebuild the networks (for a checkpoint's manifest)."""
        d: dict = {"coupling": self.coupling, "coupling_scores": {str(k): v for k, v in self.coupling_scores.items()}}
        if self.ec is not None:
            d["ec"] = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in dataclasses.asdict(self.ec).items()}
        if self.fic is not None:
            d["fic"] = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in dataclasses.asdict(self.fic).items()}
        if self.input_std is not None:
            d["input_std"] = [np.asarray(self.input_std[0]).tolist(), float(self.input_std[1])]
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str) -> "TwinStructure":
        d = json.loads(text)
        ec = fic = inp = None
        if "ec" in d:
            e = d["ec"]
            ec = MouFit(**{k: (np.array(v) if isinstance(v, list) else v) for k, v in e.items()})
        if "fic" in d:
            fic = FicResult(**{k: (np.array(v) if isinstance(v, list) else v) for k, v in d["fic"].items()})
        if "input_std" in d:
            inp = (np.array(d["input_std"][0]), float(d["input_std"][1]))
        return cls(float(d["coupling"]), {float(k): v for k, v in d.get("coupling_scores", {}).items()}, ec, fic, inp)

    def write(self, h) -> None:
        """/structure in an open assimilation.h5 (layout: assimilation.pipeline)."""
        g = h.create_group("structure")
        g.attrs["json"] = self.to_json()
        g.attrs["coupling"] = self.coupling
        if self.ec is not None:
            g.create_dataset("ec/C", data=self.ec.C)
            g.create_dataset("ec/sigma", data=self.ec.sigma)
            g["ec"].attrs.update({"sigma_common": self.ec.sigma_common, "tau_tr": self.ec.tau, "lag_tr": self.ec.lag,
                                  "gain": self.ec.gain, "fc_r_train": self.ec.fc_r, "distance": self.ec.distance})
        if self.fic is not None:
            g.create_dataset("fic/scale", data=self.fic.scale)
            g.create_dataset("fic/rates", data=self.fic.rates)
            g.create_dataset("fic/history", data=self.fic.history)
            g["fic"].attrs.update({"target_hz": self.fic.target, "tolerance": self.fic.tolerance,
                                   "converged": self.fic.converged, "within": self.fic.within})

    @classmethod
    def read(cls, h) -> "TwinStructure":
        """From an open assimilation.h5 (files written before /structure: the global coupling only)."""
        if "structure" in h:
            return cls.from_json(str(h["structure"].attrs["json"]))
        return cls(coupling=float(h.attrs.get("coupling", 1.0)))


# ----------------------------------------------------------------------------- networks
def simulation(spec: NetworkSpec, comm, **options):
    """A Simulation of ``spec`` with its BOLD recorder, once its ranks are known to fit in
    memory (dtb.memory)."""
    from dtb.bold import attach_bold
    from dtb.engine import Simulation
    from dtb.memory import check_fits, ranks_on_this_node
    size = comm.Get_size() if comm is not None else 1
    check_fits(spec, size, ranks_on_this_node(comm))
    sim = Simulation(spec, comm=comm, **options)
    attach_bold(sim)
    return sim


def spinup_trs(spec: NetworkSpec) -> int:
    """TRs run before the filter starts (at least 2: the zscore operator's statistics)."""
    return max(int(np.ceil(spec.assimilation.spinup / spec.bold.tr)), 2)


def prior_x(spec: NetworkSpec, members: int) -> np.ndarray:
    """Every member at the prior's hyperparameters (no spread), as the filter's x."""
    s = spec.assimilation
    return to_unbounded(np.full((members, len(spec.regions) * len(s.hyperparameters)), s.prior), s.low, s.high)


def twin_simulation(net: NetworkSpec, structure: TwinStructure, members: int, comm, observed: np.ndarray,
                    free: bool, x0: np.ndarray | None = None, n_assimilate: int | None = None,
                    sc: np.ndarray | None = None):
    """(Simulation, Assimilator) of ``members`` copies of ``net`` (a network of
    ``structure.network``), each neuron's conductances scaled by its Gamma multiplier x its
    region's hyperparameters (``x0``; default the prior with its spread) x its FIC factor.
    ``free``: no filter (the region input, if any, runs with its noise, keyed by the network's
    seed); otherwise the region input is the filter's."""
    from assimilation.runner import Assimilator
    s = net.assimilation
    sim = simulation(ensemble_spec(net, members), comm, per_neuron_scales=True, keep_region_rows=False,
                     keep_spikes=False)
    scales = {}
    if structure.fic is not None:
        scales["gabaa"] = inhibition_factors(excitatory_region(net, sim.local_gids, members), structure.fic.scale)
    settings = dataclasses.replace(s, members=members, input_std=0.0 if free else s.input_std)
    a = Assimilator(sim, net, settings, observed, sc=sc, n_assimilate=n_assimilate, x0=x0, scales=scales,
                    input_std=structure.input_std)
    if free and s.input_std > 0:
        std, common = structure.input_std if structure.input_std is not None else (s.input_std, 0.0)
        RegionInput(net, members, std, s.input_tau, net.bold.tr, common, s.input_populations).drive(
            sim, net.simulation.seed, STREAM_FREE_INPUT)
    return sim, a


def isolated_rates(spec: NetworkSpec, comm) -> dict[str, float]:
    """Each population's rate (Hz) with every long-range weight at 0, over the spin-up (one
    network, the config's seed): the operating point that ``coupling_balance`` keeps."""
    duration = max(spec.assimilation.spinup, 1.0)
    sim = simulation(scale_long_range(spec, 0.0), comm, keep_region_rows=False)
    sim.run(duration)
    return population_rates(sim)


def population_rates(sim) -> dict[str, float]:
    """Each population's mean rate (Hz) since the simulation started, over all ranks."""
    idx, _ = sim.spikes.since(0)
    counts = sim.comm.allreduce(np.bincount(sim.local_population[idx], minlength=len(sim.spec.populations)))
    return {p.name: float(c) / p.size / sim.t for p, c in zip(sim.spec.populations, counts)}


def coupled(spec: NetworkSpec, coupling: float, rates: dict[str, float] | None) -> NetworkSpec:
    """``spec`` at global coupling ``coupling``; balanced (ensemble.balance_long_range) when the
    populations' ``rates`` without long-range input are given."""
    spec = scale_long_range(spec, coupling)
    return spec if rates is None else balance_long_range(spec, rates)


def balance_rates(spec: NetworkSpec, comm) -> dict[str, float] | None:
    """The rates ``coupled`` balances with: measured when ``coupling_balance`` is on, else None."""
    if not spec.assimilation.coupling_balance:
        return None
    t0 = time.perf_counter()
    rates = isolated_rates(spec, comm)
    log.info("coupling balance: populations fire at %.1f Hz on average without long-range input (%.0f s)",
             np.mean(list(rates.values())), time.perf_counter() - t0)
    return rates


# ------------------------------------------------------------------------------ fitting
def broadband(raw: np.ndarray, spec: NetworkSpec, fit_rows: int) -> np.ndarray:
    """The data the effective connectivity is fitted to: detrended and z-scored like the
    observations (statistics from the first ``fit_rows`` rows), not band-passed (the MOU process
    is a model of the whole signal; band-passed, its lagged covariances are the filter's)."""
    s = spec.assimilation
    return preprocess(raw, spec.bold.tr, s.detrend, None, s.zscore, True, fit_rows)


def region_input_std(spec: NetworkSpec, ec: MouFit | None) -> tuple[np.ndarray, float] | None:
    """(each region's std, the common part's std) of the region input: ``input_std`` times the
    square root of the effective connectivity's noise variances relative to their mean."""
    s = spec.assimilation
    if s.input_std <= 0:
        return None
    if ec is None:
        return np.full(len(spec.regions), s.input_std), 0.0
    mean = float(np.mean(ec.sigma))
    return s.input_std * np.sqrt(ec.sigma / mean), s.input_std * float(np.sqrt(ec.sigma_common / mean))


def fit_structure(spec: NetworkSpec, observed: np.ndarray, broadband_train: np.ndarray, comm) -> TwinStructure:
    """Effective connectivity (when on), then the global coupling among the candidates, each at
    its own operating point (FIC, when on); ``observed``: the preprocessed training part."""
    s = spec.assimilation
    ec = None
    if s.effective_connectivity:
        t0 = time.perf_counter()
        ec = fit_mou_ec(broadband_train, long_range_mask(spec), lag=s.ec_lag, l1=s.ec_l1,
                        rho_max=s.ec_gain_max or None)
        log.info("effective connectivity: tau %.2f TR, loop gain %.2f, common input %.2f of the mean own, FC r %.3f "
                 "on the training part (%.0f s)", ec.tau, ec.gain, ec.sigma_common / float(np.mean(ec.sigma)),
                 ec.fc_r, time.perf_counter() - t0)
    rates = balance_rates(spec, comm)
    candidates = tuple(s.coupling) or (1.0,)
    base = TwinStructure(candidates[0], {}, ec, None, region_input_std(spec, ec))
    if len(candidates) == 1 and s.fic_rate <= 0:
        return base
    scores: dict[float, float] = {}
    fics: dict[float, FicResult | None] = {}
    previous = None
    for g in candidates:
        t0 = time.perf_counter()
        scores[g], fics[g] = _candidate(spec, dataclasses.replace(base, coupling=g), rates,
                                        observed if len(candidates) > 1 else None, comm, previous)
        previous = fics[g].scale if fics[g] is not None else previous     # the next candidate starts there
        log.info("global coupling %g: FC r %.3f on the training data (%.0f s)", g, scores[g], time.perf_counter() - t0)
    usable = {g: r for g, r in scores.items() if np.isfinite(r)} if len(candidates) > 1 else \
        ({candidates[0]: 0.0} if fics[candidates[0]] is None or fics[candidates[0]].converged else {})
    if not usable:
        raise DtbError(f"assimilation.coupling: no candidate in {list(candidates)} gave a usable network (a constant "
                       f"region, or feedback inhibition control that did not reach assimilation.fic_rate)")
    best = max(usable, key=usable.get)
    return dataclasses.replace(base, coupling=best, coupling_scores=scores if len(candidates) > 1 else {},
                               fic=fics[best])


def _candidate(spec: NetworkSpec, structure: TwinStructure, rates, observed: np.ndarray | None,
               comm, fic_start: np.ndarray | None = None) -> tuple[float, FicResult | None]:
    """One coupling candidate: its operating point (FIC) and, with ``observed``, the FC r of its
    free run over the training TRs (members' mean FC); NaN where it cannot be used."""
    s = spec.assimilation
    try:
        net = structure.network(spec, rates)
    except DtbError as e:
        log.warning("global coupling %g: skipped (%s)", structure.coupling, e)
        return float("nan"), None
    n = s.coupling_members
    sim, a = twin_simulation(net, structure, n, comm, np.zeros((1, len(spec.regions))), free=True,
                             x0=prior_x(net, n), n_assimilate=0)
    fic = None
    if s.fic_rate > 0:
        def set_factors(f: np.ndarray) -> None:
            a.scales["gabaa"] = f
            a.apply()
        fic = run_calibration(sim, net, n, s.fic_rate, s.fic_tolerance, s.fic_window, s.fic_iterations, set_factors,
                              fic_start)
        if not fic.converged:
            log.warning("global coupling %g: feedback inhibition control did not reach %g Hz within %.0f %% in %d "
                        "iterations (%.0f %% of the regions did)", structure.coupling, s.fic_rate,
                        100 * s.fic_tolerance, s.fic_iterations, 100 * fic.within)
            return float("nan"), fic
    if observed is None:
        return float("nan"), fic
    first = len(sim.bold.signal) + spinup_trs(spec)
    sim.run((spinup_trs(spec) + len(observed)) * spec.bold.tr)
    sim.finish_exchange()
    bold = np.array(sim.bold.signal)[first:first + len(observed)]
    if not (bold.ndim == 2 and len(bold) == len(observed) and np.all(np.isfinite(bold))
            and np.all(bold.std(axis=0) > 0)):
        return float("nan"), fic
    from assimilation.data import preprocessed_members
    members = preprocessed_members(bold.reshape(len(bold), n, len(spec.regions)), spec)
    return fc_similarity(np.mean([fc_matrix(b) for b in members], axis=0), fc_matrix(observed)), fic

"""Settings of the data assimilation, the ``[assimilation]`` section of a config.

```toml
[assimilation]
members = 8                      # ensemble size: M whole networks run side by side
hyperparameters = ["ampa", "nmda", "gabaa", "gabab"]   # receptors whose conductance scale is fitted per region
low = 0.5                        # bounds of every hyperparameter: hp = low + (high - low) * sigmoid(x)
high = 2.0
prior = 1.0                      # initial ensemble mean of every hyperparameter
prior_spread = 0.3               # std of the initial ensemble in x (the unbounded variable)
random_walk = 0.05               # std of x's diffusion per TR (the forecast of a static parameter)
random_walk_centered = true      # remove the steps' mean over members: the walk spreads the
                                 # ensemble without moving its mean by sampling noise
random_walk_reversion = "0 s"    # with a time > 0, each member's x also relaxes towards a centre
                                 # by exp(-TR / this) before every step of the walk (an
                                 # Ornstein-Uhlenbeck forecast of the hyperparameters: the walk can
                                 # no longer carry members into the sigmoid's flat ends); 0: none
random_walk_reversion_to = "prior"   # the centre: "prior" (the prior's x; biases a static
                                 # parameter towards the prior) or "mean" (the ensemble's mean x,
                                 # which stays where it is: only the spread is bounded)
hemodynamic_noise = 0.03         # std added per TR to each member's s, ln f, ln v, ln q (model error:
                                 # drive the network does not explain; keeps the ensemble spread)
obs_noise = 0.5                  # observation noise std, in observation units
inflation = 1.0                  # multiplicative inflation of the forecast anomalies
localisation = "own"             # "none", "own" (a region's variables see its own BOLD only),
                                 # "neighbours" (its own and its structural neighbours'); with few
                                 # members "own" is the robust choice (measured on HCP data)
gamma_shape = 4.0                # shape k of the per-neuron Gamma multipliers (mean 1, CV 1/sqrt(k))
spinup = "10 s"                  # run before assimilating (the zscore observation's statistics)
observation = "zscore"           # "zscore": the model BOLD standardised by its spin-up mean and std
                                 # is compared with z-scored data; "model": data in model BOLD units
input_std = 0.0                  # region input: each member's region r scales its Poisson
                                 # background rates by exp(u_r); every analysis updates u (in both
                                 # held-out modes), which between analyses relaxes towards 0 with
                                 # time constant input_tau and this stationary std (0: no input)
input_tau = "5 s"
input_populations = "excitatory"  # whose Poisson backgrounds the region input scales: "excitatory"
                                 # (the input then raises the region's excitatory rate) or "all"
effective_connectivity = false   # true: fit MOU effective connectivity (assimilation.effective) to
                                 # the training part (detrended and z-scored, not band-passed) on
                                 # the network's own long-range projections; the long-range weights
                                 # then follow it (the global coupling scales them), and the region
                                 # input's std per region and its common part follow its noise
ec_lag = 1                       # TRs between the covariances it matches (zero-lag and this)
ec_gain_max = 0.0                # bound on its loop gain rho(tau C) (0: none)
ec_l1 = 0.0                      # L1 penalty on its weights (relative to the fit's error)
fic_rate = "0 Hz"                # > 0: feedback inhibition control (assimilation.fic): before the
                                 # fit, every region's inhibition onto its excitatory neurons is
                                 # scaled until their rate is this (at every coupling candidate)
fic_tolerance = 0.1              # every region within this fraction of fic_rate
fic_window = "2 s"               # measured per iteration (members' mean, coupling_members networks)
fic_iterations = 30              # at most; a candidate that does not converge is not used
detrend = true                   # data preprocessing: linear detrend,
band_pass = []                   # [low, high] Hz Butterworth band-pass, e.g. [0.01, 0.1] (none: []),
band_pass_causal = true          # true: one causal pass, so each sample depends only on earlier
                                 # data; false: zero-phase (forward-backward), which puts later
                                 # data into every sample: dtb assimilate then refuses to score
                                 # forecasts unless given --allow-zero-phase (and labels them)
confounds = "auto"               # a NIfTI from fMRIPrep: "auto" (the "simple" set when its confounds
                                 # TSV is beside it: motion, WM/CSF, cosine drift), "simple",
                                 # "compcor" or "none"; regressed out with a fit on the training part
zscore = true                    # and z-scoring per region; the trend line and the z-score's mean
                                 # and sd are estimated on the training part only
forecast_horizons = [1, 2, 5, 10]   # TRs ahead scored on the held-out part
forecast_stride = 5              # TRs between forecast origins on the held-out part (each origin
                                 # costs max(forecast_horizons) TRs of simulation per mode)
coupling = []                    # global coupling candidates: factors on every long-range
                                 # (between-region) weight; with any, dtb assimilate first runs the
                                 # network freely over the training TRs for each, keeps the one
                                 # whose FC is closest to the data's (as a neural-mass model's K is
                                 # fitted), then fits the regions' hyperparameters; [] keeps 1
coupling_members = 4             # independent networks run per candidate; the candidate's FC is
                                 # their mean FC (one short run's FC is too noisy to rank couplings)
coupling_balance = false         # true: each population's Poisson background gives up the mean
                                 # input its long-range projections bring at its sources' rates
                                 # without long-range input (measured over the spin-up), so the
                                 # coupling moves fluctuations between regions, not their rates
                                 # (on HCP data it raised the free run's FC but broke the filter:
                                 # docs/assimilation_history.md)
```

Hierarchy: neuron i of region r gets conductance scale ``g_i * hp[r, receptor]`` where the
multiplier ``g_i ~ Gamma(k, 1/k)`` is drawn once per neuron (counter-based, keyed by its global
id) and kept: an analysis rescales every neuron of a region by the same factor, so the network
changes smoothly and its membranes, conductances and spikes in flight carry over.
"""

from __future__ import annotations

from dataclasses import dataclass

from assimilation.region_input import INPUT_POPULATIONS

#: what [assimilation] confounds may be (see assimilation.nifti_input)
CONFOUND_STRATEGIES = ("auto", "simple", "compcor", "none")

HYPERPARAMETERS = ("ampa", "nmda", "gabaa", "gabab")

#: what [assimilation] random_walk_reversion_to may be: the prior's x or the ensemble's mean x
REVERSION_CENTRES = ("prior", "mean")


@dataclass(frozen=True)
class AssimilationSettings:
    members: int = 8
    hyperparameters: tuple[str, ...] = HYPERPARAMETERS
    low: float = 0.5
    high: float = 2.0
    prior: float = 1.0
    prior_spread: float = 0.3
    random_walk: float = 0.05
    random_walk_centered: bool = True
    random_walk_reversion: float = 0.0   # [s], 0: none
    random_walk_reversion_to: str = "prior"
    hemodynamic_noise: float = 0.03
    obs_noise: float = 0.5
    inflation: float = 1.0
    localisation: str = "own"
    coupling: tuple[float, ...] = ()
    coupling_members: int = 4
    coupling_balance: bool = False
    gamma_shape: float = 4.0
    spinup: float = 10.0           # [s]
    observation: str = "zscore"
    input_std: float = 0.0
    input_tau: float = 5.0         # [s]
    input_populations: str = "excitatory"
    effective_connectivity: bool = False
    ec_lag: int = 1                # [TR]
    ec_gain_max: float = 0.0       # 0: none
    ec_l1: float = 0.0
    fic_rate: float = 0.0          # [Hz], 0: off
    fic_tolerance: float = 0.1
    fic_window: float = 2.0        # [s]
    fic_iterations: int = 30
    detrend: bool = True
    zscore: bool = True
    band_pass: tuple[float, float] | None = None   # [Hz]
    band_pass_causal: bool = True
    confounds: str = "auto"
    forecast_horizons: tuple[int, ...] = (1, 2, 5, 10)   # [TR]
    forecast_stride: int = 5                              # [TR]


def read_section(r, context) -> AssimilationSettings:
    """[assimilation] (``r``: a dtb.config.ConfigReader; ``context``: a dtb.config.SectionContext)."""
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
        random_walk_reversion=r.quantity("random_walk_reversion", "time", d.random_walk_reversion, nonnegative=True),
        random_walk_reversion_to=r.str("random_walk_reversion_to", d.random_walk_reversion_to,
                                       choices=REVERSION_CENTRES),
        hemodynamic_noise=r.float("hemodynamic_noise", d.hemodynamic_noise, low=0.0),
        obs_noise=r.float("obs_noise", d.obs_noise, low=1e-9),
        inflation=r.float("inflation", d.inflation, low=1.0, high=10.0),
        localisation=r.str("localisation", d.localisation, choices=("none", "own", "neighbours")),
        gamma_shape=r.float("gamma_shape", d.gamma_shape, low=0.1),
        spinup=r.quantity("spinup", "time", d.spinup, nonnegative=True),
        observation=r.str("observation", d.observation, choices=("zscore", "model")),
        input_std=r.float("input_std", d.input_std, low=0.0, high=3.0),
        input_tau=r.quantity("input_tau", "time", d.input_tau, positive=True),
        input_populations=r.str("input_populations", d.input_populations, choices=INPUT_POPULATIONS),
        effective_connectivity=r.bool("effective_connectivity", d.effective_connectivity),
        ec_lag=r.int("ec_lag", d.ec_lag, minimum=1),
        ec_gain_max=r.float("ec_gain_max", d.ec_gain_max, low=0.0, high=0.999),
        ec_l1=r.float("ec_l1", d.ec_l1, low=0.0, high=100.0),
        fic_rate=r.quantity("fic_rate", "rate", d.fic_rate, nonnegative=True),
        fic_tolerance=r.float("fic_tolerance", d.fic_tolerance, low=0.001, high=1.0),
        fic_window=r.quantity("fic_window", "time", d.fic_window, positive=True),
        fic_iterations=r.int("fic_iterations", d.fic_iterations, minimum=1),
        detrend=r.bool("detrend", d.detrend), zscore=r.bool("zscore", d.zscore),
        band_pass=tuple(float(x) for x in band) if band else None,
        band_pass_causal=r.bool("band_pass_causal", d.band_pass_causal),
        confounds=r.str("confounds", d.confounds, choices=CONFOUND_STRATEGIES),
        forecast_horizons=tuple(sorted(horizons)),
        forecast_stride=r.int("forecast_stride", d.forecast_stride, minimum=1))
    r.done()
    return settings

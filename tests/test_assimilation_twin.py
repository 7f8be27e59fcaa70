"""Twin experiment: BOLD from a network with known, region-varying AMPA scales (0.7 .. 1.45 over
10 regions; the other hyperparameters fixed at 1) is assimilated from a uniform prior (1.0);
the posterior recovers the truth within 10 % in most regions and its spread covers it.

Only the AMPA scale varies in the truth and is fitted: BOLD, one slow signal per region, pins
down one combination of a region's parameters (the one that sets its rate), so fitting all four
conductance scales from it leaves three directions unconstrained (see README, data assimilation)."""

import numpy as np
import pytest

from assimilation.settings import AssimilationSettings
from assimilation.twin import run_twin
from atlas.build import AtlasNetworkSettings, network_config
from dtb.spec import spec_from_dict

R = 10


def base_network():
    rng = np.random.default_rng(3)
    w = rng.random((R, R)) * (rng.random((R, R)) < 0.6)
    np.fill_diagonal(w, 0)
    lengths = 20 + 60 * rng.random((R, R))
    lengths = (lengths + lengths.T) / 2
    net = network_config([f"R{i}" for i in range(R)], np.full(R, 100.0), w, lengths,
                         AtlasNetworkSettings(neurons=200 * R, min_neurons=50, seed=1, dt=5e-4))
    net["bold"] = {"tr": "1 s", "preset": "dtb", "drive": "rate"}
    net["monitors"] = {"region_interval": "1 ms"}
    return spec_from_dict(net)


@pytest.fixture(scope="module")
def twin():
    base = base_network()
    hp_true = np.linspace(0.7, 1.45, R)[:, None]
    settings = AssimilationSettings(members=10, hyperparameters=("ampa",), observation="model", obs_noise=2e-3,
                                    prior=1.0, prior_spread=0.5, random_walk=0.02, localisation="own",
                                    hemodynamic_noise=0.0)
    return run_twin(base, hp_true, settings, n_tr=20, truth_noise=1e-4)


def test_posterior_recovers_the_truth(twin):
    truth = twin["hp_true"][:, 0]
    post = twin["hp"][-1][:, :, 0]                       # (members, regions)
    mean, sd = post.mean(axis=0), post.std(axis=0)
    rel = np.abs(mean / truth - 1)
    within = (rel < 0.10).mean()
    covered = (np.abs(mean - truth) < 2 * sd).mean()
    print(f"\nregions within 10 %: {within:.0%}; truth inside mean +- 2 sd: {covered:.0%}; errors {np.round(rel, 3)}")
    assert within >= 0.7
    assert covered >= 0.7
    # from the prior's error (all at 1.0) to the posterior's
    prior_err = np.abs(1.0 / truth - 1).mean()
    assert rel.mean() < 0.5 * prior_err
    # the ordering of the regions is recovered
    assert np.corrcoef(mean, truth)[0, 1] > 0.95


def test_forecast_tracks_the_observation(twin):
    f = twin["forecast"].mean(axis=1)                    # ensemble mean, (T, R)
    obs = twin["observed"]
    # the one-TR-ahead forecast of each region's level after the first few analyses
    err = np.abs(f[5:] - obs[5:len(f)]).mean()
    assert err < 0.15 * np.abs(obs).mean()

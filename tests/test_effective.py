"""MOU effective connectivity (assimilation.effective): the fit recovers a known connectivity from
a simulated process, its gradient is the loss's, the loop-gain bound holds; the network follows
the fitted weights (assimilation.ensemble.with_effective_connectivity)."""

import numpy as np
import pytest

from assimilation.effective import (MouFit, _Objective, fit_mou_ec, lagged_covariances, mou_fc, simulate_mou,
                                    spectral_radius)


def known_process(seed: int = 3, R: int = 12, density: float = 0.35, gain: float = 0.6, tau: float = 2.0,
                  common: float = 0.0) -> tuple[MouFit, np.ndarray]:
    rng = np.random.default_rng(seed)
    mask = rng.random((R, R)) < density
    np.fill_diagonal(mask, False)
    C = np.where(mask, rng.uniform(0.2, 1.0, (R, R)), 0.0)
    C *= gain / spectral_radius(tau * C)
    fit = MouFit(C=C, sigma=rng.uniform(0.5, 1.5, R), sigma_common=common, tau=tau, lag=1, distance=0.0, fc_r=1.0,
                 iterations=0)
    return fit, mask


def test_the_fit_recovers_a_known_effective_connectivity():
    """Weights of a 12-region MOU process (time constant 2 TRs, loop gain 0.6) from 40,000 samples
    of it: r >= 0.9 with the truth on the structural mask, the time constant within 10 %, and the
    fitted process's FC that of the data."""
    truth, mask = known_process()
    x = simulate_mou(truth, 40_000, seed=1, substeps=4)
    fit = fit_mou_ec(x, mask, common=False)
    r = np.corrcoef(fit.C[mask], truth.C[mask])[0, 1]
    assert r >= 0.9, r
    assert abs(fit.tau - truth.tau) < 0.1 * truth.tau
    assert np.all(fit.C[~mask] == 0) and np.all(fit.C >= 0)
    iu = np.triu_indices(len(mask), 1)
    assert np.corrcoef(mou_fc(fit)[iu], lagged_covariances(x, 1)[0][iu])[0, 1] > 0.98


def test_a_common_input_is_told_from_coupling():
    """With an input shared by every region and no coupling at all, the fit puts the shared
    correlation into the common input, not into the weights."""
    truth, mask = known_process(gain=0.05, common=0.8)
    x = simulate_mou(truth, 20_000, seed=2, substeps=4)
    fit = fit_mou_ec(x, mask, common=True)
    assert fit.sigma_common / fit.sigma.mean() > 0.4
    assert fit.gain < 0.3


def test_the_gradient_is_the_loss_derivative():
    rng = np.random.default_rng(4)
    truth, mask = known_process(R=6, density=0.5)
    q0, ql = lagged_covariances(simulate_mou(truth, 3000, seed=5), 1)
    obj = _Objective(q0, ql, mask, 2.0, 1, l1=0.01, rho_max=0.3)
    p = np.concatenate([rng.uniform(0.0, 0.1, mask.sum()), rng.uniform(0.5, 1.0, 6), [0.1, 2.0]])
    loss, grad = obj(p)
    for i in rng.choice(len(p), 8, replace=False):
        step = np.zeros_like(p)
        step[i] = 1e-6
        numeric = (obj(p + step)[0] - obj(p - step)[0]) / 2e-6
        assert abs(numeric - grad[i]) <= 1e-4 * max(1.0, abs(numeric)), (i, numeric, grad[i])


def test_the_loop_gain_bound_holds():
    truth, mask = known_process(gain=0.9)
    x = simulate_mou(truth, 10_000, seed=6, substeps=4)
    assert fit_mou_ec(x, mask).gain > 0.8
    assert fit_mou_ec(x, mask, rho_max=0.5).gain <= 0.55


def test_bad_data_are_refused():
    with pytest.raises(ValueError):
        lagged_covariances(np.ones((50, 3)), 1)           # constant regions
    with pytest.raises(ValueError):
        lagged_covariances(np.zeros((3, 3)), 1)           # too short


def small_atlas(regions: int, **settings):
    """A network of ``regions`` regions from a random connectome (atlas.build)."""
    from atlas.build import AtlasNetworkSettings, network_config
    from dtb.spec import spec_from_dict
    rng = np.random.default_rng(0)
    w = rng.uniform(0.0, 1.0, (regions, regions)) * (rng.random((regions, regions)) < 0.8)
    st = AtlasNetworkSettings(neurons=60 * regions, min_neurons=20, indegree=40, long_range_fraction=0.5, **settings)
    return spec_from_dict(network_config([f"R{i}" for i in range(regions)], np.ones(regions), w,
                                         rng.uniform(10, 50, (regions, regions)), st))


def test_the_network_follows_the_effective_connectivity():
    """Each target population's long-range total per source region (indegree x weight) is
    proportional to C, its synapse count is kept, the mean total of each kind of target
    population is what it was, and edges that get no synapse disappear."""
    from assimilation.ensemble import is_long_range, long_range_mask, with_effective_connectivity
    from dtb.partition import expected_projection_indegree
    spec = small_atlas(regions=5, long_range_inhibitory=0.5)
    mask = long_range_mask(spec)
    rng = np.random.default_rng(1)
    C = np.where(mask, rng.uniform(0.0, 1.0, mask.shape), 0.0)
    C[0, 1] = 0.0 if mask[0, 1] else C[0, 1]
    new = with_effective_connectivity(spec, C)
    region = {p.name: spec.regions.index(p.region) for p in spec.populations}

    def totals(s):
        out = {}
        for pr in filter(is_long_range(s), s.projections):
            out[(pr.target, region[pr.source])] = expected_projection_indegree(s, pr) * pr.weight.expected
        return out
    before, after = totals(spec), totals(new)
    for kind in ("E", "I"):
        targets = sorted({t for t, _ in before if t.endswith(kind)})
        mean = lambda tot: np.mean([sum(v for (t, _), v in tot.items() if t == x) for x in targets])  # noqa: E731
        assert mean(after) == pytest.approx(mean(before), rel=1e-9)
        for t in targets:
            i = region[t]
            edges = {j: v for (tt, j), v in after.items() if tt == t}
            ratio = [v / C[i, j] for j, v in edges.items()]
            assert np.allclose(ratio, ratio[0], rtol=1e-9)
            n_before = sum(pr.indegree for pr in spec.projections if pr.target == t and is_long_range(spec)(pr))
            n_after = sum(pr.indegree for pr in new.projections if pr.target == t and is_long_range(new)(pr))
            assert n_after == n_before
    assert all(C[region[t], j] > 0 for t, j in after)

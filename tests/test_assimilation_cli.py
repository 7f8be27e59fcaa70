"""dtb assimilate / dtb validate end to end on a small network, and their errors on bad data."""

import h5py
import numpy as np
import pytest

from conftest import run_dtb
from atlas import toml
from atlas.build import AtlasNetworkSettings, network_config

R = 6


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("assim")
    rng = np.random.default_rng(3)
    w = rng.random((R, R)) * (rng.random((R, R)) < 0.6)
    np.fill_diagonal(w, 0)
    lengths = 20 + 60 * rng.random((R, R))
    net = network_config([f"R{i}" for i in range(R)], np.full(R, 100.0), w, (lengths + lengths.T) / 2,
                         AtlasNetworkSettings(neurons=100 * R, min_neurons=50, seed=1, dt=5e-4))
    net["bold"] = {"tr": "1 s", "preset": "dtb", "drive": "rate"}
    net["monitors"] = {"region_interval": "1 ms"}
    net["assimilation"] = {"members": 4, "hyperparameters": ["ampa", "gabaa"], "spinup": "3 s",
                           "forecast_horizons": [1, 2, 5]}
    cfg = d / "net.toml"
    cfg.write_text(toml.dumps(net, "test"))
    data = np.cumsum(rng.standard_normal((R, 40)), axis=1)
    np.save(d / "bold.npy", data)
    return d, cfg, data


def test_assimilate_and_validate(setup):
    d, cfg, _ = setup
    p = run_dtb(["assimilate", str(cfg), "--bold", str(d / "bold.npy"), "--out", str(d / "out"), "--ranks", "2"])
    assert p.returncode == 0, p.stderr
    assert "training part (in-sample, not a forecast score)" in p.stdout
    for name in ("persistence", "AR(2)", "AR(p)", "MVAR(1)", "Kalman ref", "twin (updating)", "twin (frozen)"):
        assert name in p.stdout
    run = d / "out" / "assimilation.h5"
    with h5py.File(run) as f:
        assert f["observed"].shape == (40, R) and f["forecast/mean"].shape == (20, R)
        assert f["hp/final"].shape == (4, R, 2) and f.attrs["n_ranks"] == 2
        hp = f["hp/mean"][()]
        assert np.all((hp > 0.5) & (hp < 2.0))
        # the fitted twin: each member's mean over the last half of the training TRs
        trace_mean = f["hp/mean"][10:].mean(axis=0)
        np.testing.assert_allclose(f["hp/fitted"][()].mean(axis=0), trace_mean, rtol=1e-12)
        for k in ("r_forecast", "r_analysis", "r_persistence"):
            assert np.isfinite(f["metrics"].attrs[k])
        assert "in-sample" in f["metrics"].attrs["scope"]
        h = f["heldout"]
        assert list(h.attrs["horizons"]) == [1, 2, 5] and h.attrs["stride"] == 5
        np.testing.assert_array_equal(h["origins"][()], [19, 24, 29, 34])
        up = h["updating/forecast/mean"][()]
        assert up.shape == (4, 3, R) and np.isfinite(up).all()          # origin 34 + 5 = row 39, the last
        # the one-TR-ahead forecast of a branch is the filter's own forecast of that row: the run
        # ahead and the rewind leave the filter exactly where it was
        for mode in ("updating", "frozen"):
            filt = h[f"{mode}/filter/mean"][()]
            assert filt.shape == (20, R)
            np.testing.assert_array_equal(h[f"{mode}/forecast/mean"][:, 0], filt[[0, 5, 10, 15]])
        # frozen: the hyperparameters stay those of the fitted twin (hp/fitted, what dtb validate runs)
        frozen = h["frozen/hp/mean"][()]
        np.testing.assert_array_equal(frozen, np.repeat(frozen[:1], len(frozen), axis=0))
        np.testing.assert_allclose(frozen[0], f["hp/fitted"][()].mean(axis=0), rtol=1e-9)
        assert not np.allclose(h["updating/hp/mean"][()], frozen)
        assert set(h["scores"]) == {"persistence", "AR(2)", "AR(p)", "MVAR(1)", "Kalman ref", "twin (updating)",
                                    "twin (frozen)"}
        np.testing.assert_array_equal(h["scores/persistence/skill"][()], 0.0)
    for png in ("hyperparameters.png", "bold_fit.png", "forecast_skill.png"):
        assert (d / "out" / png).stat().st_size > 5000
    with h5py.File(run, "a") as f:      # a member whose sigmoid saturated sits on the bound (HCP 102816 did)
        f["hp/fitted"][0, 0, 0] = 2.0
    p = run_dtb(["validate", str(run), "--bold", str(d / "bold.npy"), "--baseline-runs", "2"])
    assert p.returncode == 0, p.stderr
    assert "linear network" in p.stdout and "structural connectome" in p.stdout and "twin (frozen)" in p.stdout
    assert "Traceback" not in p.stderr and "Model initialized" not in p.stderr     # other libraries' INFO is off
    with h5py.File(run) as f:
        v = f["validation"]
        assert v["bold"].shape == (20, 4, R) and -1 <= v.attrs["fc_r_members"] <= 1
        for k in ("fc_sc", "fc_lin", "fc_lin_runs", "fc_hopf", "lin_gain", "hopf_K"):
            assert np.isfinite(v.attrs[k]), k
        assert 0 < v.attrs["rate_min_hz"] <= v.attrs["rate_hz"] <= v.attrs["rate_max_hz"] < 200
        assert 0 <= v.attrs["sync_fraction"] <= 1
        # the model's FC: the members' mean FC, their BOLD preprocessed like the data (detrend, z-score)
        from assimilation.data import preprocess
        from assimilation.enkf import fc_matrix
        each = [fc_matrix(preprocess(v["bold"][:, m], 1.0, True, None, True)) for m in range(4)]
        np.testing.assert_allclose(v["fc/model"][()], np.mean(each, axis=0), atol=1e-12)
    assert (d / "out" / "fc.png").stat().st_size > 5000


@pytest.fixture(scope="module")
def one_rank(setup):
    """dtb assimilate on 1 rank (OUT = one/)."""
    d, cfg, _ = setup
    p = run_dtb(["assimilate", str(cfg), "--bold", str(d / "bold.npy"), "--out", str(d / "one"), "--no-plots"])
    assert p.returncode == 0, p.stderr
    return d / "one" / "assimilation.h5"


def test_held_out_forecasts_never_see_their_future(setup, one_rank, tmp_path):
    """Data that differ only from row 30 on: every forecast issued at an origin before row 30
    (the twin's in both modes, and the filter's own one-step forecasts of rows up to 30) is
    bit for bit the same; the later ones differ."""
    d, cfg, data = setup
    changed = data.copy()
    changed[:, 30:] = np.random.default_rng(11).standard_normal((R, 10)) * 5
    np.save(tmp_path / "changed.npy", changed)
    p = run_dtb(["assimilate", str(cfg), "--bold", str(tmp_path / "changed.npy"), "--out", str(tmp_path / "changed"),
                 "--no-plots"])
    assert p.returncode == 0, p.stderr
    runs = {}
    for name, path in (("same", one_rank), ("changed", tmp_path / "changed" / "assimilation.h5")):
        with h5py.File(path) as f:
            runs[name] = {k: f[f"heldout/{k}"][()] for k in ("updating/forecast/mean", "frozen/forecast/mean",
                                                             "updating/filter/mean", "frozen/filter/mean")}
    origins = np.array([19, 24, 29, 34])
    for mode in ("updating", "frozen"):
        a, b = runs["same"][f"{mode}/forecast/mean"], runs["changed"][f"{mode}/forecast/mean"]
        np.testing.assert_array_equal(a[origins < 30], b[origins < 30])
        assert not np.allclose(a[3, :3], b[3, :3])
        fa, fb = runs["same"][f"{mode}/filter/mean"], runs["changed"][f"{mode}/filter/mean"]
        np.testing.assert_array_equal(fa[:11], fb[:11])          # rows 20..30: issued from rows <= 29
        assert not np.allclose(fa[12:], fb[12:])


def test_same_result_on_one_and_two_ranks(setup, one_rank):
    d, cfg, _ = setup
    if not (d / "out" / "assimilation.h5").exists():
        pytest.skip("needs test_assimilate_and_validate's 2-rank run")
    with h5py.File(one_rank) as a, h5py.File(d / "out" / "assimilation.h5") as b:
        for k in ("hp/final", "forecast/mean", "heldout/updating/forecast/mean", "heldout/frozen/forecast/mean",
                  "heldout/updating/hp/mean"):
            np.testing.assert_array_equal(a[k][()], b[k][()])


@pytest.mark.parametrize("problem, words", [
    ("regions", "has 6 regions"),
    ("nan", "NaN"),
    ("constant", "constant (zero variance)"),
    ("tr", "differs from the config's [bold] tr"),
    ("format", "unknown BOLD format"),
    ("complex", "complex values"),
    ("text", "values of type <U"),
    ("object", "values of type object"),
    ("empty_csv", "empty file"),
    ("empty_npy", "empty file"),
    ("zero_phase", "band_pass_causal = false"),
])
def test_bad_inputs_are_clear_errors(setup, tmp_path, problem, words):
    d, cfg, data = setup
    bold = tmp_path / "bold.npy"
    args = []
    if problem == "regions":
        np.save(bold, data[:5])
        words = "but the network has 6 regions"
    elif problem == "nan":
        x = data.copy()
        x[2, 7] = np.nan
        np.save(bold, x)
    elif problem == "constant":
        x = data.copy()
        x[3] = 1.0
        np.save(bold, x)
    elif problem == "tr":
        np.save(bold, data)
        args = ["--tr", "0.72 s"]
    elif problem == "complex":
        np.save(bold, data + 1j)
    elif problem == "text":
        np.save(bold, data.astype(str))
    elif problem == "object":
        bold = tmp_path / "bold.h5"
        with h5py.File(bold, "w") as f:
            f.create_dataset("tc", data=np.array([[b"a", b"b"]] * 6), dtype=h5py.string_dtype())
    elif problem == "empty_csv":
        bold = tmp_path / "bold.csv"
        bold.write_text("")
    elif problem == "empty_npy":
        np.save(bold, np.zeros((0, 6)))
    elif problem == "zero_phase":
        np.save(bold, data)
        zero = tmp_path / "zero.toml"
        zero.write_text(cfg.read_text().replace("[assimilation]\n", "[assimilation]\nband_pass = [0.01, 0.2]\n"
                                                "band_pass_causal = false\n"))
        cfg = zero
    else:
        bold = tmp_path / "bold.xyz"
        bold.write_text("1 2 3")
    out = tmp_path / "out"
    p = run_dtb(["assimilate", str(cfg), "--bold", str(bold), "--out", str(out), *args])
    assert p.returncode == 2, p.stderr
    assert words in p.stderr and "Traceback" not in p.stderr and "Warning" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert problem == "tr" or str(bold if problem != "zero_phase" else cfg) in p.stderr
    assert not out.exists() or not any(out.iterdir())


def test_checkpoint_at_a_tr_and_resume_gives_identical_results(setup, one_rank, tmp_path):
    """A run killed after a checkpoint (rank 1 dies while writing the next one) resumes, on another
    rank count, to the same posterior and forecasts as an uninterrupted run."""
    d, cfg, _ = setup
    bold = str(d / "bold.npy")
    cut = tmp_path / "cut"
    # checkpoints every 4 TRs (4 s); the spin-up is 3 s, so the second one falls inside the filtering
    p = run_dtb(["assimilate", str(cfg), "--bold", bold, "--out", str(cut), "--no-plots", "--checkpoint-every", "4 s"],
                ranks=2, env_extra={"DTB_TEST_KILL_IN_CHECKPOINT": "1:3"})
    assert p.returncode != 0
    latest = (cut / "checkpoint" / "LATEST").read_text().strip()
    assert latest == "step-000000016000"                       # 8 s at dt 0.5 ms
    resume = ["assimilate", str(cfg), "--bold", bold, "--out", str(cut), "--no-plots", "--resume", str(cut),
              "--checkpoint-every", "4 s"]
    for _ in range(2):
        p = run_dtb(resume)
        assert p.returncode == 0, p.stderr
        with h5py.File(one_rank) as a, h5py.File(cut / "assimilation.h5") as b:
            for k in ("hp/final", "hp/mean", "forecast/mean", "analysis/mean", "heldout/updating/forecast/mean",
                      "heldout/frozen/forecast/mean", "heldout/scores/twin (frozen)/skill"):
                np.testing.assert_array_equal(a[k][()], b[k][()])
        # the last checkpoint is the end of training (3 s spin-up + 20 TRs): resuming from it again
        # redoes only the held-out part, to the same forecasts
        assert (cut / "checkpoint" / "LATEST").read_text().strip() == "step-000000046000"
    other = tmp_path / "other.npy"
    np.save(other, np.load(bold) * 2 + 1.0)
    np.save(other, np.cumsum(np.random.default_rng(9).standard_normal((R, 40)), axis=1))
    p = run_dtb(["assimilate", str(cfg), "--bold", str(other), "--out", str(cut), "--no-plots", "--resume", str(cut)])
    assert p.returncode == 2 and "other BOLD data" in p.stderr


def test_scale_long_range_scales_only_projections_between_regions(setup):
    from assimilation.ensemble import scale_long_range
    from dtb.spec import load_spec
    _, cfg, _ = setup
    spec = load_spec(cfg)
    scaled = scale_long_range(spec, 3.0)
    region = {p.name: p.region for p in spec.populations}
    n_long = 0
    for a, b in zip(spec.projections, scaled.projections):
        long_range = region[a.source] != region[a.target]
        n_long += long_range
        for field in ("value", "low", "mean", "std"):
            assert getattr(b.weight, field) == pytest.approx(getattr(a.weight, field) * (3.0 if long_range else 1.0))
    assert 0 < n_long < len(spec.projections)


def test_global_coupling_is_chosen_by_fc_on_the_training_data(setup, tmp_path):
    import json
    d, cfg, _ = setup
    text = cfg.read_text().replace('[assimilation]\n', '[assimilation]\ncoupling = [0.5, 4.0]\ncoupling_members = 2\n')
    assert "coupling = [0.5, 4.0]" in text
    from dtb.errors import ConfigError
    from dtb.spec import load_spec
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("coupling_members = 2", "coupling_members = 0"))
    with pytest.raises(ConfigError, match="assimilation.coupling_members"):
        load_spec(bad)
    c2 = tmp_path / "coupled.toml"
    c2.write_text(text)
    p = run_dtb(["assimilate", str(c2), "--bold", str(d / "bold.npy"), "--out", str(tmp_path / "o"), "--no-plots",
                 "--train-fraction", "1"])
    assert p.returncode == 0, p.stderr
    with h5py.File(tmp_path / "o" / "assimilation.h5") as f:
        scores = {float(k): v for k, v in json.loads(f.attrs["coupling_scores"]).items()}
        assert set(scores) == {0.5, 4.0} and all(np.isfinite(list(scores.values())))
        assert f.attrs["coupling"] == max(scores, key=scores.get)


def _long_range_input(spec, rates):
    """(population, receptor) -> mean conductance per second its long-range projections bring."""
    region = {p.name: p.region for p in spec.populations}
    out = {}
    for pr in spec.projections:
        if region[pr.source] != region[pr.target]:
            assert pr.rule == "fixed_indegree" and pr.weight.kind == "constant"
            key = (pr.target, pr.receptor)
            out[key] = out.get(key, 0.0) + pr.indegree * pr.weight.value * rates[pr.source]
    return out


def test_balance_lowers_each_background_by_its_long_range_mean_input(setup):
    import dataclasses
    from assimilation.ensemble import balance_long_range, scale_long_range
    from dtb.errors import DtbError
    from dtb.spec import load_spec
    _, cfg, _ = setup
    spec = scale_long_range(load_spec(cfg), 3.0)
    rates = {p.name: 5.0 + i for i, p in enumerate(spec.populations)}
    balanced = balance_long_range(spec, rates)
    added = _long_range_input(spec, rates)
    assert len(added) == 2 * R
    for a, b in zip(spec.stimuli, balanced.stimuli):
        assert b.rate == pytest.approx(a.rate - added[(a.population, a.receptor)] / a.weight, rel=1e-12)
        assert b.rate < a.rate and b.weight == a.weight
    # the mean conductance input (background + long-range) is the same as with no long-range weight
    uncoupled = scale_long_range(spec, 0.0)
    for a, b in zip(uncoupled.stimuli, balanced.stimuli):
        assert b.rate * b.weight + added[(b.population, b.receptor)] == pytest.approx(a.rate * a.weight, rel=1e-12)
    with pytest.raises(DtbError, match="lower the global coupling"):
        balance_long_range(scale_long_range(spec, 100.0), rates)
    with pytest.raises(DtbError, match="no Poisson background"):
        balance_long_range(dataclasses.replace(spec, stimuli=spec.stimuli[1:]), rates)


def test_balanced_coupling_keeps_the_regions_rates(setup, tmp_path):
    """Unbalanced, a strong global coupling drives every region far above its own rate; balanced,
    the regions keep the rate they fire at without long-range input."""
    from assimilation.pipeline import coupled, isolated_rates, population_rates
    from dtb.engine import Simulation
    from dtb.errors import ConfigError
    from dtb.spec import load_spec
    _, cfg, _ = setup
    text = cfg.read_text().replace('[assimilation]\n', '[assimilation]\ncoupling_balance = true\n')
    c2 = tmp_path / "balanced.toml"
    c2.write_text(text)
    spec = load_spec(c2)
    assert spec.assimilation.coupling_balance and not load_spec(cfg).assimilation.coupling_balance
    c2.write_text(text.replace("coupling_balance = true", 'coupling_balance = "yes"'))
    with pytest.raises(ConfigError, match="assimilation.coupling_balance"):
        load_spec(c2)
    own = isolated_rates(spec, None)
    exc = [p.name for p in spec.populations if p.kind == "excitatory"]
    assert all(own[n] > 1.0 for n in exc)

    def rates(s):
        sim = Simulation(s, keep_region_rows=False)
        sim.run(2.0)
        return population_rates(sim)
    plain, balanced = rates(coupled(spec, 4.0, None)), rates(coupled(spec, 4.0, own))
    assert np.mean([plain[n] / own[n] for n in exc]) > 1.3
    assert all(abs(balanced[n] / own[n] - 1) < 0.2 for n in exc)


def test_region_input_is_analysed_in_both_modes_and_rewound_exactly(setup, tmp_path):
    """A region input: it is analysed in both held-out modes (it moves with the hyperparameters
    frozen), and every forecast branch rewinds it exactly (the branch's one-TR forecast is the
    filter's own forecast of that row)."""
    d, cfg, _ = setup
    text = cfg.read_text().replace('forecast_horizons = [1, 2, 5]', 'forecast_horizons = [1, 2, 5]\n'
                                   'input_std = 0.2\ninput_tau = "4 s"')
    assert 'input_std = 0.2' in text
    (tmp_path / "net.toml").write_text(text)
    p = run_dtb(["assimilate", str(tmp_path / "net.toml"), "--bold", str(d / "bold.npy"), "--out", str(tmp_path / "o"),
                 "--no-plots"])
    assert p.returncode == 0, p.stderr
    with h5py.File(tmp_path / "o" / "assimilation.h5") as f:
        assert f["input/mean"].shape == (20, R) and np.isfinite(f["input/mean"][()]).all()
        assert f["input/std"][()].mean() > 0.02                   # the ensemble keeps a spread in u
        h = f["heldout"]
        for mode in ("updating", "frozen"):
            np.testing.assert_array_equal(h[f"{mode}/forecast/mean"][:, 0], h[f"{mode}/filter/mean"][[0, 5, 10, 15]])
            u = h[f"{mode}/input/mean"][()]
            assert u.shape == (20, R) and np.ptp(u, axis=0).min() > 0
        frozen = h["frozen/hp/mean"][()]
        np.testing.assert_array_equal(frozen, np.repeat(frozen[:1], len(frozen), axis=0))


@pytest.mark.slow
def test_effective_connectivity_and_fic_from_assimilate_to_validate(tmp_path):
    """The twin's structure through both commands: the effective connectivity fitted on the
    training part and the FIC operating point are stored with the fit (/structure) and rebuilt by
    dtb validate, whose free run keeps the regions' excitatory rates near the target; the linear
    model on the EC is a baseline there and in the forecasts; subject specificity among the
    subject's and two others' held-out parts."""
    rng = np.random.default_rng(5)
    w = rng.random((R, R)) * (rng.random((R, R)) < 0.7)
    np.fill_diagonal(w, 0)
    net = network_config([f"R{i}" for i in range(R)], np.full(R, 100.0), w, np.full((R, R), 30.0),
                         AtlasNetworkSettings(neurons=200 * R, min_neurons=100, seed=1, dt=1e-3, min_delay=1e-3,
                                              long_range_fraction=0.5, long_range_inhibitory=0.6))
    net["bold"] = {"tr": "1 s", "preset": "dtb", "drive": "rate"}
    net["monitors"] = {"region_interval": "10 ms"}
    net["assimilation"] = {"members": 4, "hyperparameters": ["gabaa"], "low": 0.75, "high": 1.33, "spinup": "3 s",
                           "forecast_horizons": [1, 2], "effective_connectivity": True, "fic_rate": "3 Hz",
                           "coupling": [2.0], "coupling_members": 2, "input_std": 0.02, "input_tau": "1 s"}
    cfg = tmp_path / "net.toml"
    cfg.write_text(toml.dumps(net, "test"))
    mix = rng.standard_normal((R, R))
    for name in ("bold", "other1", "other2"):
        np.save(tmp_path / f"{name}.npy", (rng.standard_normal((60, R)) @ mix).T)
    p = run_dtb(["assimilate", str(cfg), "--bold", str(tmp_path / "bold.npy"), "--out", str(tmp_path / "out"),
                 "--no-plots"], timeout=1200)
    assert p.returncode == 0, p.stderr
    run = tmp_path / "out" / "assimilation.h5"
    with h5py.File(run) as f:
        g = f["structure"]
        C = g["ec/C"][()]
        assert C.shape == (R, R) and np.all(C >= 0) and C.sum() > 0 and g["ec"].attrs["gain"] < 1
        assert g["fic"].attrs["converged"] and g["fic"].attrs["target_hz"] == 3.0
        assert np.all(np.abs(g["fic/rates"][()] / 3.0 - 1) <= 0.1) and np.all(g["fic/scale"][()] > 1)
        assert "linear EC" in f["heldout/scores"]
    p = run_dtb(["validate", str(run), "--bold", str(tmp_path / "bold.npy"), "--no-hopf", "--no-plots",
                 "--others", str(tmp_path / "other1.npy"), str(tmp_path / "other2.npy")], timeout=1200)
    assert p.returncode == 0, p.stderr
    assert "linear, effective connectivity" in p.stdout and "subject specificity among 3" in p.stdout
    with h5py.File(run) as f:
        v = dict(f["validation"].attrs)
    assert 1.5 < v["rate_e_hz"] < 6.0 and v["rate_e_over_ceiling"] == 0
    for key in ("fc_ec", "fc_ec_runs", "fc_train", "id_twin_diff", "id_ec_rank", "id_sc_own"):
        assert np.isfinite(v[key]), key

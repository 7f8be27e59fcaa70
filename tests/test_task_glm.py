"""Task BOLD analysed the neuroimaging way: a block design on the Desikan-Killiany visual labels.

One small whole-cortex twin (68 regions, 2,040 neurons, dt 0.5 ms, 160 s, scanner noise 0.04 %
BOLD) runs the block design at three amplitudes and without stimulus for three seeds; the
first-level GLM (nilearn: SPM HRF, cosine drift, AR(1)) must find the visual regions (z > 3.1),
keep the null false-positive rate at its nominal value (one-sided p = 0.001 for z > 3.1), and
grow with the amplitude."""

import nibabel as nib
import numpy as np
import pytest

from dtb.runs import build_network
from dtb.results import gather_results
from dtb.spec import spec_from_dict
from dtb.task import Event, TaskSettings, TrialType, add_task_stimuli, fit_glm, region_glm

VISUAL = ("pericalcarine", "cuneus", "lingual", "lateraloccipital")
EVENTS = [Event(20.0 + 40.0 * k, 20.0, "visual", 1.0) for k in range(4)]


def _run(seed: int, amplitude: float):
    spec = spec_from_dict({
        "simulation": {"dt": "0.5 ms", "duration": "160 s", "seed": seed},
        "atlas": {"neurons": 2040, "min_neurons": 20, "indegree": 100, "background_rate": "3200 Hz"},
        "monitors": {"region_interval": "5 ms", "rate_bin": "100 ms"},
        "bold": {"tr": "1 s", "preset": "stephan2007", "noise": 4e-4}})
    settings = TaskSettings(trial_types=(TrialType("visual", VISUAL, "poisson", amplitude),))
    if amplitude > 0:
        spec = add_task_stimuli(spec, EVENTS, settings)
    sim = build_network(spec)
    sim.run(spec.simulation.duration)
    res = gather_results(sim)
    return spec, region_glm(res.bold, EVENTS, 1.0, settings)["visual"]


@pytest.fixture(scope="module")
def task_runs():
    # six independent runs, two at a time (one per core; each is single-threaded)
    import multiprocessing
    jobs = [(1, amp) for amp in (150.0, 300.0, 600.0)] + [(seed, 0.0) for seed in (2, 3, 4)]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        done = pool.starmap(_run, jobs)
    runs = {amp: done[k] for k, (_, amp) in enumerate(jobs[:3])}
    nulls = [z for _, z in done[3:]]
    return runs, nulls


def test_visual_regions_exceed_threshold(task_runs):
    runs, _ = task_runs
    spec, z = runs[300.0]
    visual = [i for i, r in enumerate(spec.regions) if r[2:] in VISUAL]
    assert len(visual) == 8
    assert np.all(z[visual] > 3.1)


def test_null_false_positive_rate_is_nominal(task_runs):
    _, nulls = task_runs
    z = np.concatenate(nulls)                 # 3 runs x 68 regions
    assert len(z) == 204
    assert 0.8 < z.std() < 1.25               # calibrated null z
    # nominal one-sided rate for z > 3.1 is 0.001: 0.2 expected here; 3 or more would have p < 0.002
    assert (z > 3.1).sum() <= 2


def test_response_grows_with_amplitude(task_runs):
    runs, _ = task_runs
    spec = runs[150.0][0]
    visual = [i for i, r in enumerate(spec.regions) if r[2:] in VISUAL]
    means = [runs[a][1][visual].mean() for a in (150.0, 300.0, 600.0)]
    assert means[0] < means[1] < means[2]


def test_region_glm_equals_nilearn_first_level_model_on_painted_images(tmp_path):
    """The region GLM is nilearn's voxel-wise FirstLevelModel wherever the signal is painted."""
    from dtb.bold import paint_regions
    rng = np.random.default_rng(3)
    labels = np.zeros((6, 5, 4), dtype=np.int16)
    labels[:3] = 1
    labels[3:] = 2
    atlas = nib.Nifti1Image(labels, np.diag([3.0, 3.0, 3.0, 1.0]))
    events = [Event(10.0 + 30.0 * k, 15.0, "visual", 1.0) for k in range(4)]
    t = np.arange(1, 121)
    on = np.zeros(120)
    for e in events:
        on[(t > e.onset + 4) & (t <= e.onset + e.duration + 4)] = 1
    bold = 1.0 + 0.002 * rng.standard_normal((120, 2)) + np.outer(on, [0.003, 0.0])
    settings = TaskSettings(trial_types=(TrialType("visual", ("A",), "poisson", 1.0),))
    img = paint_regions(atlas, {"A": 1, "B": 2}, ["A", "B"], bold, tr=1.0)
    _, zmaps = fit_glm(img, events, 1.0, settings, mask_img=nib.Nifti1Image((labels > 0).astype(np.uint8), atlas.affine))
    zimg = np.asanyarray(zmaps["visual"].dataobj)
    z = region_glm(bold, events, 1.0, settings)["visual"]
    assert z[0] > 3.1 and abs(z[1]) < 3.1
    np.testing.assert_allclose([zimg[labels == 1].mean(), zimg[labels == 2].mean()], z, rtol=1e-3, atol=1e-3)


def test_activation_propagates_along_the_connectome():
    """With stronger long-range coupling (40 % of inputs, 1 nS), regions that receive many
    long-range inputs from the visual regions respond to the visual blocks (smaller than the
    stimulated regions, and later: their rates rise after the conduction delays), regions with
    no input from them do not."""
    from atlas.build import long_range_indegrees
    from atlas.config import load_atlas

    spec = spec_from_dict({
        "simulation": {"dt": "0.5 ms", "duration": "160 s", "seed": 1},
        "atlas": {"neurons": 2040, "min_neurons": 20, "indegree": 100, "background_rate": "3000 Hz",
                  "long_range_fraction": 0.4, "w_long": "1 nS"},
        "monitors": {"region_interval": "1 ms", "rate_bin": "100 ms"},
        "bold": {"tr": "1 s", "preset": "stephan2007", "noise": 4e-4}})
    settings = TaskSettings(trial_types=(TrialType("visual", VISUAL, "poisson", 600.0),))
    spec = add_task_stimuli(spec, EVENTS, settings)
    sim = build_network(spec)
    sim.run(spec.simulation.duration)
    res = gather_results(sim)
    z = region_glm(res.bold, EVENTS, 1.0, settings)["visual"]
    visual = [i for i, r in enumerate(spec.regions) if r[2:] in VISUAL]
    k = long_range_indegrees(load_atlas().connectome.weights, 40)[:, visual].sum(axis=1).astype(float)
    k[visual] = -1
    strong = list(np.argsort(-k)[:6])
    weak = [i for i in range(len(k)) if k[i] == 0]
    assert len(weak) > 20
    assert z[strong].max() > 3.1
    assert z[strong].mean() > z[weak].mean() + 1.0
    assert z[strong].mean() < z[visual].mean() / 2

    # onset latency of the block-averaged rate (1-ms samples, 5-ms smoothing, half of the rise)
    def latency(idx):
        window = np.arange(-50, 200)
        trace = np.mean([res.region_rate[int(e.onset * 1000) + window - 1][:, idx].mean(axis=1) for e in EVENTS], 0)
        trace = np.convolve(trace, np.ones(5) / 5, mode="same")
        base, plateau = trace[5:45].mean(), trace[150:195].mean()
        assert plateau > base
        return int(np.argmax(trace[50:] > base + 0.5 * (plateau - base)))

    assert latency(strong) >= latency(visual) + 3


def test_a_brief_events_fitted_response_peaks_where_the_balloon_models_does():
    """Model BOLD of brief events (0.5 s, every 25 s) through the balloon model, sampled as dtb
    samples it (volume k at the end of TR k), fitted by the GLM's design with finite-impulse-
    response regressors on dtb's frame times: the fitted response peaks within half a TR of the
    balloon model's own peak. Sampled at the starts of the TRs (the convention nilearn assumes by
    default), it would come one TR early."""
    import pandas as pd
    from nilearn.glm.first_level import make_first_level_design_matrix

    from dtb.models.balloon import BalloonIntegrator, bold_signal, fixed_point, preset
    from dtb.task import frame_times
    p, dt, tr, n = preset("dtb"), 5e-3, 0.5, 520
    onsets = np.arange(10.0, 250.0, 25.0)

    def bold_of(t_end: float, onsets) -> np.ndarray:
        t = np.arange(int(round(t_end / dt))) * dt
        u = 0.01 + 0.02 * np.any([(t >= o) & (t < o + 0.5) for o in onsets], axis=0)
        integ = BalloonIntegrator(p, dt, fixed_point(np.full(1, 0.01), p)[0])
        out = []
        for x in u:
            integ.step(np.array([x]))
            out.append(bold_signal(integ.state, p)[0])
        return np.array(out)
    alone = bold_of(30.0, [5.0])
    peak = (np.argmax(alone) + 1) * dt - 5.0                  # the balloon's own, at 5-ms resolution
    samples = bold_of(n * tr, onsets)[int(round(tr / dt)) - 1::int(round(tr / dt))]   # ends of the TRs
    events = pd.DataFrame({"onset": onsets, "duration": 0.5, "trial_type": "stim"})

    def fir_peak(times: np.ndarray) -> float:
        dm = make_first_level_design_matrix(times, events, hrf_model="fir", fir_delays=list(range(16)),
                                            drift_model=None)
        beta = np.linalg.lstsq(dm.values, samples - samples.mean(), rcond=None)[0][:16]
        return float(np.argmax(beta)) * tr
    assert abs(fir_peak(frame_times(n, tr)) - peak) <= tr / 2, (fir_peak(frame_times(n, tr)), peak)
    assert abs(fir_peak(np.arange(n) * tr) - (peak - tr)) <= tr / 2

"""Task-evoked activity: stimulus protocols from BIDS events files, and the first-level GLM.

A protocol maps trial types to target regions and an input:

    [task]
    events = "events.tsv"            # BIDS events (onset, duration, trial_type[, amplitude]); --events overrides
    populations = "excitatory"       # which populations of a target region get the input: excitatory | all
    hrf_model = "spm"                # nilearn FirstLevelModel options
    drift_model = "cosine"
    high_pass = "0.01 Hz"

    [task.trial_types.visual]
    regions = ["pericalcarine", "cuneus", "lingual", "lateraloccipital"]   # atlas labels: match l_/r_<label> too
    input = "poisson"                # an added Poisson rate ("Hz"), or "current" ("pA")
    amplitude = "300 Hz"             # times the event's amplitude column, if present

Each event adds, from onset to onset + duration, its input to every neuron of the target
populations (a Poisson rate through the populations' background synapses, or a current).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import logging

from dtb.errors import DtbError
from dtb.spec import CurrentStep, NetworkSpec, PoissonStimulus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrialType:
    name: str
    regions: tuple[str, ...]          # atlas labels or region names
    input: str = "poisson"            # "poisson" (rate, Hz) or "current" (A)
    amplitude: float = 0.0            # SI: Hz or A


@dataclass(frozen=True)
class Event:
    onset: float                      # s
    duration: float                   # s
    trial_type: str
    amplitude: float = 1.0


@dataclass(frozen=True)
class TaskSettings:
    trial_types: tuple[TrialType, ...]
    events: str | None = None
    name: str = ""                    # the task's name (BIDS task- label, TaskName); "" : from the events file
    populations: str = "excitatory"
    hrf_model: str = "spm"
    drift_model: str = "cosine"
    high_pass: float = 0.01           # Hz


def read_section(r, context) -> TaskSettings:
    """[task]: a stimulus protocol (``r``: a dtb.config.ConfigReader; ``context``: a
    dtb.config.SectionContext)."""
    base = context.folder
    types = []
    tt = r.sub("trial_types", r.raw("trial_types"))
    for name in list(tt.table):
        t = tt.sub(name, tt.raw(name))
        regions = t.list("regions")
        if not regions or not all(isinstance(x, str) for x in regions):
            raise t.error("regions", "expected a non-empty list of region names or atlas labels")
        kind = t.str("input", "poisson", choices=("poisson", "current"))
        amp = t.quantity("amplitude", "rate" if kind == "poisson" else "current")
        if kind == "poisson" and amp < 0:
            raise t.error("amplitude", "a rate increase must not be negative")
        t.done()
        types.append(TrialType(name, tuple(regions), kind, amp))
    tt.done()
    if not types:
        raise r.error("trial_types", "define at least one trial type")
    events = r.str("events", None) if r.has("events") else None
    d = TaskSettings(trial_types=())
    name = r.str("name", "")
    if name and not name.replace("_", "").replace("-", "").isalnum():
        raise r.error("name", f"letters, digits, - and _ only (it becomes a BIDS task- label), got {name!r}")
    settings = TaskSettings(
        trial_types=tuple(types), events=str(base / events) if events else None, name=name,
        populations=r.str("populations", d.populations, choices=("excitatory", "all")),
        hrf_model=r.str("hrf_model", d.hrf_model, choices=("spm", "glover", "spm + derivative", "glover + derivative")),
        drift_model=r.str("drift_model", d.drift_model, choices=("cosine", "polynomial")),
        high_pass=r.quantity("high_pass", "rate", d.high_pass, positive=True))
    r.done()
    return settings


def match_regions(patterns: tuple[str, ...], regions: list[str]) -> list[str]:
    """Regions named by ``patterns``: exact names, or atlas labels that match ``<hemi>_<label>``."""
    out = []
    for pat in patterns:
        hits = [r for r in regions if r == pat or (len(r) > 2 and r[1] == "_" and r[2:] == pat)]
        if not hits:
            raise DtbError(f"task region {pat!r} matches no region of the network")
        out += [h for h in hits if h not in out]
    return out


def read_events(path: str | Path, trial_types: dict[str, TrialType], run_duration: float,
                strict: bool = False) -> list[Event]:
    """A BIDS events file: tab-separated onset, duration, trial_type and optional amplitude. As
    BIDS allows, a duration of ``n/a`` is an impulse (0 s) and an amplitude of ``n/a`` is 1; events
    of trial types the config does not model (``n/a`` included) are left out with one warning
    naming them (``strict``: an error)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise DtbError(f"{path}: cannot read events: {e.strerror or e}") from None
    rows = list(csv.DictReader(text.splitlines(), delimiter="\t"))
    cols = rows[0].keys() if rows else (text.splitlines()[0].split("\t") if text.strip() else [])
    missing = [c for c in ("onset", "duration", "trial_type") if c not in cols]
    if missing:
        raise DtbError(f"{path}: missing column(s) {', '.join(missing)} (BIDS events need onset, duration, "
                       f"trial_type; found {', '.join(cols) or 'none'})")
    events, ignored = [], {}
    for line, row in enumerate(rows, 2):
        tt = (row["trial_type"] or "n/a").strip()
        if tt not in trial_types:
            ignored[tt] = ignored.get(tt, 0) + 1
            continue
        events.append(_event(path, line, row, tt, run_duration))
    if ignored:
        text = ", ".join(f"{k} ({n})" for k, n in ignored.items())
        if strict:
            raise DtbError(f"{path}: trial types the config does not model: {text}; the config defines "
                           f"{', '.join(trial_types) or 'none'}")
        log.warning("%s: left out %d events of trial types the config does not model: %s", path,
                    sum(ignored.values()), text)
    if not events:
        raise DtbError(f"{path}: no events of the trial types the config models ({', '.join(trial_types)})")
    return events


def _event(path: Path, line: int, row: dict, trial_type: str, run_duration: float) -> Event:
    def number(col, na=None):
        value = (row.get(col) or "").strip()
        if value == "n/a" and na is not None:
            return na
        try:
            x = float(value)
        except ValueError:
            raise DtbError(f"{path}: line {line}: {col} must be a number, got {row.get(col)!r}") from None
        if not math.isfinite(x):
            raise DtbError(f"{path}: line {line}: {col} must be finite, got {row.get(col)!r}")
        return x
    onset, duration = number("onset"), number("duration", na=0.0)
    amp = number("amplitude", na=1.0) if row.get("amplitude") not in (None, "") else 1.0
    if onset < 0:
        raise DtbError(f"{path}: line {line}: negative onset {onset:g} s")
    if duration < 0:
        raise DtbError(f"{path}: line {line}: negative duration {duration:g} s")
    if onset >= run_duration:
        raise DtbError(f"{path}: line {line}: onset {onset:g} s is past the end of the run ({run_duration:g} s)")
    return Event(onset, duration, trial_type, amp)


def write_events(path: str | Path, events: list[Event]) -> Path:
    path = Path(path)
    lines = ["onset\tduration\ttrial_type\tamplitude"]
    lines += [f"{e.onset:g}\t{e.duration:g}\t{e.trial_type}\t{e.amplitude:g}" for e in events]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
    return path


def add_task_stimuli(spec: NetworkSpec, events: list[Event], settings: TaskSettings) -> NetworkSpec:
    """The spec with one stimulus per event and target population added."""
    import dataclasses
    types = {t.name: t for t in settings.trial_types}
    background = {(s.population, s.receptor): s.weight for s in spec.stimuli if isinstance(s, PoissonStimulus)}
    extra = []
    for e in events:
        t = types[e.trial_type]
        for region in match_regions(t.regions, spec.regions):
            for p in spec.populations:
                if p.region != region or (settings.populations == "excitatory" and p.kind != "excitatory"):
                    continue
                stop = e.onset + e.duration
                if t.input == "poisson":
                    w = background.get((p.name, "ampa"))
                    if w is None:
                        raise DtbError(f"task input 'poisson' to {p.name}: the population has no AMPA background "
                                       f"input whose synapses the task input could use")
                    extra.append(PoissonStimulus(p.name, t.amplitude * e.amplitude, w, "ampa", e.onset, stop))
                else:
                    extra.append(CurrentStep(p.name, t.amplitude * e.amplitude, e.onset, stop))
    return dataclasses.replace(spec, stimuli=spec.stimuli + tuple(extra))


#: where a model BOLD sample sits in its TR, as a fraction of the TR from the TR's start: the end
#: (sample k is the haemodynamic state at (k + 1) TR, dtb.bold); nilearn's slice_time_ref, and
#: the BIDS sidecar's StartTime over RepetitionTime
SAMPLE_TIME_REF = 1.0


def frame_times(n: int, tr: float) -> np.ndarray:
    """[s] the times of ``n`` model BOLD samples from the start of the run: the ends of the TRs."""
    return (np.arange(n) + SAMPLE_TIME_REF) * tr


def events_frame(events: list[Event]):
    """The events as nilearn's GLM takes them; a modulation column only where an amplitude is
    not 1 (nilearn prints a note, every time, for a column that changes nothing)."""
    import pandas as pd
    rows = [{"onset": e.onset, "duration": e.duration, "trial_type": e.trial_type, "modulation": e.amplitude}
            for e in events]
    df = pd.DataFrame(rows, columns=["onset", "duration", "trial_type", "modulation"])
    return df if np.any(df.modulation != 1.0) else df.drop(columns="modulation")


def _nilearn_notes():
    """nilearn prints its notes (e.g. that a modulation column is used) to stdout whatever its
    verbosity; dtb says what matters itself."""
    import contextlib
    import io
    return contextlib.redirect_stdout(io.StringIO())


def fit_glm(bold_img, events: list[Event], tr: float, settings: TaskSettings, mask_img=None):
    """First-level GLM (nilearn): returns (model, {trial type: z-map image}); each volume sits at
    the end of its TR (SAMPLE_TIME_REF)."""
    from nilearn.glm.first_level import FirstLevelModel
    df = events_frame(events)
    import warnings
    model = FirstLevelModel(t_r=tr, slice_time_ref=SAMPLE_TIME_REF, hrf_model=settings.hrf_model,
                            drift_model=settings.drift_model, high_pass=settings.high_pass, mask_img=mask_img,
                            minimize_memory=False)
    with warnings.catch_warnings(), _nilearn_notes():   # nilearn notes, twice, that it uses the mask it was given
        warnings.filterwarnings("ignore", message=".*[Gg]eneration of a mask has been requested.*")
        model.fit(bold_img, events=df)
    zmaps = {t: model.compute_contrast(t, output_type="z_score") for t in sorted(df.trial_type.unique())}
    return model, zmaps


def region_glm(bold: np.ndarray, events: list[Event], tr: float, settings: TaskSettings,
               noise_model: str = "ar1") -> dict[str, np.ndarray]:
    """The first-level GLM on region time series (TRs x regions): {trial type: z per region}.

    Every voxel of a region carries the region's signal, so this equals nilearn's voxel-wise
    FirstLevelModel inside the regions (same design matrix, same AR(1) fit), at a fraction of the
    cost; frame times are the ends of the TRs, as the samples are."""
    from nilearn.glm.contrasts import compute_contrast
    from nilearn.glm.first_level import make_first_level_design_matrix, run_glm
    df = events_frame(events)
    with _nilearn_notes():
        dm = make_first_level_design_matrix(frame_times(len(bold), tr), df, hrf_model=settings.hrf_model,
                                            drift_model=settings.drift_model, high_pass=settings.high_pass)
    labels, results = run_glm(np.asarray(bold, dtype=np.float64), dm.values, noise_model=noise_model)
    out = {}
    for t in sorted(df.trial_type.unique()):
        con = np.zeros(dm.shape[1])
        con[list(dm.columns).index(t)] = 1.0
        out[t] = compute_contrast(labels, results, con, stat_type="t").z_score()
    return out

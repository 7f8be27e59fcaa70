"""A BIDS derivative dataset of a run's BOLD (and a task's events), beside the run's own files:

    OUT/bids/dataset_description.json                     (DatasetType "derivative", GeneratedBy dtb)
    OUT/bids/sub-<label>/func/sub-<label>_task-<task>_space-<space>_desc-dtb_bold.nii.gz   the BOLD painted into
                                                              the atlas
    OUT/bids/sub-<label>/func/sub-<label>_task-<task>_space-<space>_desc-dtb_bold.json     RepetitionTime,
                                                              StartTime, TaskName, the model
    OUT/bids/sub-<label>/func/sub-<label>_task-<task>_events.tsv    (a task) onset, duration, trial_type, amplitude
    OUT/bids/sub-<label>/func/sub-<label>_task-<task>_events.json   its columns described, with units

Timing: volume k is the model's haemodynamic state at the end of TR k, (k + 1) x RepetitionTime
after the run's start, which StartTime (= RepetitionTime) records as fMRIPrep's derivatives do
for a slice-timing reference (nilearn's first_level_from_bids reads it as slice_time_ref 1).

The subject label is [subject] id (default: the config's name, letters and digits only), the
task ``rest`` for ``dtb run`` and, for ``dtb task``, [task] name (else the events file's task-
entity, else the config's name); the space the atlas's template space (atlas.io.template_space;
no space- entity when nothing names it); desc-dtb marks the simulated BOLD. The images
are hard links to the run's own files where the filesystem allows (no second copy)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import dtb
from dtb.task import SAMPLE_TIME_REF

BIDS_VERSION = "1.9.0"
#: the desc- entity of dtb's derived BOLD
DESC = "dtb"


def label(text: str) -> str:
    """A BIDS label: letters and digits only."""
    return re.sub(r"[^A-Za-z0-9]", "", text) or "x"


def task_label(events_path: str | None, spec=None) -> str:
    """The BIDS task label: the config's [task] name, else the task- entity of the events file's
    name, else the config file's name (letters and digits)."""
    if spec is not None and spec.task is not None and spec.task.name:
        return label(spec.task.name)
    m = re.search(r"task-([A-Za-z0-9]+)", Path(events_path).name) if events_path else None
    if m:
        return m.group(1)
    return label(Path(spec.source).stem) if spec is not None else "task"


def _link(src: Path, dst: Path) -> Path:
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
    return dst


def _json(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data, indent=1) + "\n")
    return path


def write_derivative(out: Path, spec, bold_nifti: Path, task: str = "rest", events_tsv: Path | None = None) -> list[Path]:
    """The BIDS derivative folder OUT/bids for a run's BOLD NIfTI (and a task's events file)."""
    from atlas.io import template_space
    root = out / "bids"
    sub = spec.subject.id or label(Path(spec.source).stem)
    func = root / f"sub-{sub}" / "func"
    func.mkdir(parents=True, exist_ok=True)
    stem = f"sub-{sub}_task-{label(task)}"
    space = template_space(spec.bold.atlas) if spec.bold.atlas else None
    derived = f"{stem}{f'_space-{label(space)}' if space else ''}_desc-{DESC}"
    generated = {"Name": "dtb", "Version": dtb.__version__, "Description": "simulated BOLD of a spiking network "
                 "(balloon-Windkessel model of its regional activity)"}
    written = [_json(root / "dataset_description.json", {
        "Name": f"dtb simulation of {Path(spec.source).name}", "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative", "GeneratedBy": [generated]})]
    b = spec.bold
    written.append(_link(bold_nifti, func / f"{derived}_bold.nii.gz"))
    written.append(_json(func / f"{derived}_bold.json", {
        "RepetitionTime": b.tr, "StartTime": SAMPLE_TIME_REF * b.tr, "TaskName": task,
        "Units": "fractional signal change", "GeneratedBy": [generated],
        "dtb": {"config": spec.source, "seed": spec.simulation.seed, "balloon_preset": b.preset, "drive": b.drive,
                "scanner_noise": b.noise, "atlas": b.atlas, "labels": b.labels}}))
    if events_tsv is not None:
        written.append(_link(events_tsv, func / f"{stem}_events.tsv"))
        written.append(_json(func / f"{stem}_events.json", events_description(spec)))
    return written


def events_description(spec) -> dict:
    """The events sidecar: each column described, with units; trial types with their targets."""
    types = {t.name: f"{t.input} input of {t.amplitude:g} {'Hz' if t.input == 'poisson' else 'A'} to "
                     f"{', '.join(t.regions)}" for t in spec.task.trial_types} if spec.task else {}
    return {"onset": {"Description": "time of the event from the start of the run", "Units": "s"},
            "duration": {"Description": "how long its input lasts", "Units": "s"},
            "trial_type": {"Description": "the [task] trial type", "Levels": types},
            "amplitude": {"Description": "multiplies the trial type's amplitude", "Units": "1"}}

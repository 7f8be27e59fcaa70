"""Task protocols: BIDS events files (and their errors), trial types mapped to atlas regions."""

import numpy as np
import pytest

from dtb.errors import DtbError
from dtb.spec import PoissonStimulus, spec_from_dict
from dtb.task import Event, TaskSettings, TrialType, add_task_stimuli, match_regions, read_events, write_events

TYPES = {"visual": TrialType("visual", ("pericalcarine", "cuneus"), "poisson", 300.0)}


def _events(tmp_path, text):
    p = tmp_path / "events.tsv"
    p.write_text(text)
    return p


def test_read_and_write_events(tmp_path):
    p = _events(tmp_path, "onset\tduration\ttrial_type\tamplitude\n10\t10\tvisual\t2\n30\t10\tvisual\tn/a\n")
    ev = read_events(p, TYPES, 60.0)
    assert ev == [Event(10.0, 10.0, "visual", 2.0), Event(30.0, 10.0, "visual", 1.0)]
    out = write_events(tmp_path / "copy.tsv", ev)
    assert read_events(out, TYPES, 60.0) == ev


@pytest.mark.parametrize("text, words", [
    ("onset\ttrial_type\n1\tvisual\n", "missing column(s) duration"),
    ("onset\tduration\ttrial_type\n1\t-2\tvisual\n", "line 2: negative duration"),
    ("onset\tduration\ttrial_type\n1\t2\tvisual\n70\t2\tvisual\n", "line 3: onset 70 s is past the end of the run"),
    ("onset\tduration\ttrial_type\n1\t2\tauditory\n", "unknown trial_type 'auditory'"),
    ("onset\tduration\ttrial_type\nsoon\t2\tvisual\n", "onset must be a number"),
    ("onset\tduration\ttrial_type\n", "no events"),
])
def test_bad_events_files(tmp_path, text, words):
    with pytest.raises(DtbError) as e:
        read_events(_events(tmp_path, text), TYPES, 60.0)
    assert words in str(e.value) and "events.tsv" in str(e.value)


def test_trial_types_map_to_atlas_labels_and_add_stimuli():
    regions = ["l_pericalcarine", "r_pericalcarine", "l_cuneus", "r_cuneus", "l_precentral"]
    assert match_regions(("pericalcarine", "l_cuneus"), regions) == ["l_pericalcarine", "r_pericalcarine", "l_cuneus"]
    with pytest.raises(DtbError, match="matches no region"):
        match_regions(("v1",), regions)
    pops = []
    stims = []
    for r in regions:
        for kind, k in (("E", "excitatory"), ("I", "inhibitory")):
            pops.append({"name": f"{r}_{kind}", "region": r, "size": 10, "kind": k})
            stims.append({"type": "poisson", "population": f"{r}_{kind}", "rate": "1000 Hz", "weight": "1 nS"})
    spec = spec_from_dict({"populations": pops, "stimuli": stims, "simulation": {"duration": "60 s"}})
    settings = TaskSettings(trial_types=tuple(TYPES.values()))
    out = add_task_stimuli(spec, [Event(10, 5, "visual", 2.0)], settings)
    new = [s for s in out.stimuli if isinstance(s, PoissonStimulus) and s.start == 10]
    assert sorted(s.population for s in new) == ["l_cuneus_E", "l_pericalcarine_E", "r_cuneus_E", "r_pericalcarine_E"]
    assert all(s.rate == 600.0 and s.stop == 15 and s.weight == pytest.approx(1e-9) for s in new)

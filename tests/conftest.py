"""Shared helpers: write configs, run dtb (in-process or under the venv's mpiexec)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MPIEXEC = Path(sys.executable).parent / "mpiexec"


def run_dtb(args: list[str], ranks: int = 1, timeout: float = 600, cwd: Path | None = None,
            env_extra: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m dtb ARGS``; with ranks > 1 under the venv's mpiexec (as a user would)."""
    env = dict(os.environ, **(env_extra or {}))
    env.pop("DTB_UNDER_MPI", None)
    cmd = [sys.executable, "-m", "dtb", *args]
    if ranks > 1:
        cmd = [str(MPIEXEC), "-n", str(ranks), *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd or ROOT)


def assert_same_spikes(a, b, at_least: int = 1000) -> None:
    """Two run files hold the same spikes (global ids and times), bit for bit, and enough of them."""
    import numpy as np
    from dtb.results import read_spikes
    ga, ta = read_spikes(a)
    gb, tb = read_spikes(b)
    assert len(ga) > at_least
    np.testing.assert_array_equal(ga, gb)
    np.testing.assert_array_equal(ta, tb)


@pytest.fixture
def write_config(tmp_path):
    def _write(text: str, name: str = "net.toml") -> Path:
        p = tmp_path / name
        p.write_text(text)
        return p
    return _write


# A small multi-population network with noise, heterogeneous delays, all four receptors and
# every connection rule; used by the reproducibility and CLI tests.
SMALL_NETWORK = """
[simulation]
dt = "0.1 ms"
duration = "300 ms"
seed = 99

[monitors]
region_interval = "2 ms"

[[populations]]
name = "A_E"
region = "A"
size = 240
kind = "excitatory"

[[populations]]
name = "A_I"
region = "A"
size = 60
kind = "inhibitory"

[[populations]]
name = "B_E"
region = "B"
size = 200
kind = "excitatory"
params = {V_th = "-52 mV"}

[[populations]]
name = "B_I"
region = "B"
size = 60
kind = "inhibitory"

[[projections]]
source = "A_E"
target = "A_E"
rule = "fixed_indegree"
indegree = 30
receptor = "ampa"
weight = {distribution = "normal", mean = "0.6 nS", std = "0.15 nS"}
delay = {distribution = "uniform", low = "1 ms", high = "4 ms"}

[[projections]]
source = "A_E"
target = "A_E"
rule = "fixed_indegree"
indegree = 10
receptor = "nmda"
weight = "0.05 nS"
delay = {distribution = "uniform", low = "1 ms", high = "4 ms"}

[[projections]]
source = "A_E"
target = "A_I"
rule = "fixed_probability"
probability = 0.1
receptor = "ampa"
weight = {distribution = "lognormal", mean = "0.6 nS", std = "0.2 nS"}
delay = "1.5 ms"

[[projections]]
source = "A_I"
target = "A_E"
rule = "fixed_indegree"
indegree = 15
receptor = "gabaa"
weight = {distribution = "normal", mean = "3 nS", std = "0.5 nS"}
delay = {distribution = "uniform", low = "1 ms", high = "2 ms"}

[[projections]]
source = "A_I"
target = "B_I"
rule = "one_to_one"
receptor = "gabab"
weight = "0.5 nS"
delay = "3 ms"

[[projections]]
source = "B_E"
target = "B_E"
rule = "fixed_probability"
probability = 0.12
receptor = "ampa"
weight = "0.5 nS"
delay = {distribution = "normal", mean = "2 ms", std = "0.5 ms", low = "1 ms"}

[[projections]]
source = "B_I"
target = "B_E"
rule = "fixed_indegree"
indegree = 12
receptor = "gabaa"
weight = "6 nS"
delay = "1 ms"

[[projections]]
source = "A_E"
target = "B_E"
rule = "fixed_indegree"
indegree = 20
receptor = "ampa"
weight = "0.5 nS"
delay = {distribution = "normal", mean = "6 ms", std = "1.5 ms", low = "3 ms"}

[[projections]]
source = "B_E"
target = "A_E"
rule = "fixed_indegree"
indegree = 20
receptor = "ampa"
weight = "0.5 nS"
delay = {distribution = "normal", mean = "6 ms", std = "1.5 ms", low = "3 ms"}

[[projections]]
source = "B_E"
target = "B_I"
rule = "fixed_indegree"
indegree = 30
receptor = "ampa"
weight = "0.6 nS"
delay = "1 ms"

[[stimuli]]
type = "poisson"
population = "A_E"
rate = "3700 Hz"
weight = "1.2 nS"

[[stimuli]]
type = "poisson"
population = "A_I"
rate = "3300 Hz"
weight = "1.2 nS"

[[stimuli]]
type = "poisson"
population = "B_E"
rate = "3100 Hz"
weight = "1.2 nS"

[[stimuli]]
type = "poisson"
population = "B_I"
rate = "3000 Hz"
weight = "1.2 nS"

[[stimuli]]
type = "current"
population = "B_E"
amplitude = "40 pA"
start = "100 ms"
stop = "150 ms"
"""

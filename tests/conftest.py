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


# ----------------------------------------------------------------------------------- markers
#: modules whose tests start several MPI ranks (directly or through a module fixture)
MPI_MODULES = {"test_adaptation.py", "test_assimilation_cli.py", "test_checkpoint.py", "test_cli_outputs.py",
               "test_cluster.py", "test_coupling.py", "test_cpg.py", "test_exchange.py", "test_plasticity.py",
               "test_reproducibility.py", "test_rewind.py"}
#: modules whose tests run long simulations (each more than about 10 s here)
SLOW_MODULES = {"test_task_glm.py", "test_assimilation_twin.py", "test_adaptation.py", "test_closed_loop.py",
                "test_assimilation_cli.py", "test_checkpoint.py", "test_slurm.py", "test_bridge_limits.py",
                "test_coupling.py", "test_matsuoka.py", "test_api_docs.py"}


#: single tests of other modules that take more than about 3 s (measured with --durations)
SLOW_TESTS = {
    "test_impulse_response_of_the_friston_preset",
    "test_full_checkpoint_disk_is_a_clear_error_and_the_last_checkpoint_resumes",
    "test_fitted_hyperparameters_are_loaded",
    "test_constant_input_reaches_the_analytic_fixed_point",
    "test_online_bold_is_recorded_and_rank_independent",
    "test_agrees_with_neurolib",
    "test_linear_fc_is_the_analytic_correlation_and_matches_a_simulation",
    "test_linear_network_bold_matches_the_slow_limit_of_two_coupled_regions",
    "test_run_an_atlas_config_on_1_and_2_ranks",
    "test_halving_dt_changes_the_signal_by_less_than_half_a_percent_of_its_range",
    "test_a_resigned_damaged_checkpoint_is_a_clear_error",
    "test_bold_of_a_run_with_a_zero_interval_is_a_clear_error",
    "test_dropping_used_region_samples_keeps_memory_flat_and_the_bold_equal",
    "test_leftovers_of_a_killed_run_are_removed",
    "test_disconnect_mid_message_leaks_nothing",
    "test_atlas_cli_build_round_trips",
    "test_run_in_chunks_equals_one_run",
    "test_offline_bold_equals_online",
    "test_bold_cli_errors",
    "test_seed_override_and_units_of_duration",
    "test_output_folder_without_room_is_refused_before_the_run",
    "test_the_fmriprep_folder_through_dtb_assimilate",
    "test_nwb_export_round_trip",
}
MPI_TESTS = {"test_run_an_atlas_config_on_1_and_2_ranks", "test_online_bold_is_recorded_and_rank_independent"}


def pytest_collection_modifyitems(config, items):
    """Markers by module: ``slurm`` (the local Slurm), ``mpi`` (several ranks), ``slow``; the
    fast part: ``pytest -m "not slow and not mpi and not slurm"``."""
    for item in items:
        name = Path(str(item.fspath)).name
        if name == "test_slurm.py":
            item.add_marker(pytest.mark.slurm)
        test = item.originalname or item.name
        if name in MPI_MODULES or test in MPI_TESTS:
            item.add_marker(pytest.mark.mpi)
        if name in SLOW_MODULES or test in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)

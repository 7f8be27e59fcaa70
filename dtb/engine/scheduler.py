"""The scheduler (NEST's simulation manager): one Brian2 network operation per step dispatches
every periodic task (exchange, stimulus changes, recorders, hooks, progress) in a fixed order;
``run`` advances the network by whole steps."""

from __future__ import annotations

from typing import TYPE_CHECKING

import logging
import time
from typing import Callable

import numpy as np

from dtb.engine.common import current_rss

if TYPE_CHECKING:
    from dtb.engine.kernel import Simulation

log = logging.getLogger(__name__)


class Scheduler:
    """Part of :class:`dtb.engine.kernel.Simulation`."""

    # ------------------------------------------------------------------ run
    def schedule(self, period_steps: int, fn: Callable[[int], None], order: int = 0) -> None:
        self._tasks.append((order, max(int(period_steps), 1), fn))
        self._tasks.sort(key=lambda task: task[0])

    def unschedule(self, fn: Callable[[int], None]) -> None:
        self._tasks = [task for task in self._tasks if task[2] is not fn]

    def _tick(self) -> None:
        k = int(self._timestep[0]) + 1        # the step about to begin
        for _, period, fn in self._tasks:
            if k % period == 0:
                try:
                    fn(k)
                except Exception as e:        # a task's error ends the run here; run() raises it as it is
                    self._task_error = e
                    self.net.stop()
                    return

    #: seconds the first step may take before the user is told that the model is being compiled
    COMPILE_NOTICE_S = 3.0

    def _first_step(self, b2) -> None:
        """The first step, in which Brian2 and numba compile the model's code (8 s on a 2-core
        machine the first time, benchmarks/wall_times.py; later runs load it from the caches in
        ~/.cython and ~/.cache/dtb): rank 0 says so when it takes long, so that a first run is
        not silent."""
        import threading
        notice = None
        if self.rank == 0:
            notice = threading.Timer(self.COMPILE_NOTICE_S, lambda: log.info(
                "compiling the model (first run only, up to a minute; later runs use the caches in ~/.cython "
                "and ~/.cache/dtb)..."))
            notice.daemon = True
            notice.start()
        t0 = time.perf_counter()
        try:
            self._run_net(1)
        finally:
            if notice is not None:
                notice.cancel()
        self.first_step_seconds = time.perf_counter() - t0
        # the profile counts from here: the first step loads (or compiles) the kernels
        self.neuron_seconds = self.delivery_seconds = 0.0
        self._profiled_from = self.current_step()
        for d in self.delivery.values():
            d.events = 0
        self.stats.rss_after_first_step = current_rss()

    def _step(self) -> None:
        """The work of step k in Brian2's ``groups`` slot: the neuron pass, the record of its
        spikes, then the events of the static synapses due at step k (those of the spikes just
        emitted included)."""
        t0 = time.perf_counter()
        k = int(self._timestep[0])
        n = self.neuron_pass.step()
        t1 = time.perf_counter()
        if n:
            self.spikes.append(self._spikespace[:n], k)
        local = self.delivery.get(True)
        if local is not None:
            if n:
                local.push(self._spikespace[:n], k, k)
            local.deliver(k)
        remote = self.delivery.get(False)
        if remote is not None:
            remote.deliver(k)
        self.neuron_seconds += t1 - t0
        self.delivery_seconds += time.perf_counter() - t1

    def _run_net(self, steps: int) -> None:
        """Brian2's run of ``steps`` steps; afterwards no spikes are pending in the spike space
        (what Brian2's thresholder does after a run; ours is the compiled neuron pass)."""
        try:
            self.net.run(steps * self.dt * self._b2.second, namespace={}, report=None)
        finally:
            self.neuron_pass.clear_spikes()

    def add_hook(self, period: float, fn: Callable[["Simulation"], None]) -> None:
        """Call ``fn(sim)`` every ``period`` seconds of biological time (rounded to whole steps), at
        the start of the step, inside the run: no run() split, so it is cheap."""
        self.schedule(int(np.rint(period / self.dt)), lambda k: fn(self), order=0)

    def run(self, duration: float, progress: bool = False) -> None:
        """Advance by ``duration`` seconds (rounded to whole steps). Callable repeatedly."""
        b2 = self._b2
        steps = int(np.rint(duration / self.dt))
        if steps <= 0:
            return
        bar = None
        if progress and self.rank == 0:
            from tqdm import tqdm
            bar = tqdm(total=round(steps * self.dt, 6), unit="s bio", desc="simulating",
                       bar_format="{l_bar}{bar}| {n:.3f}/{total:.3f} s [{elapsed}<{remaining}]")
            start = self.current_step()
            every = max(steps // 100, self.D)

            def _progress(k: int) -> None:
                bar.n = round((k - start) * self.dt, 6)
                bar.refresh()
            self.schedule(every, _progress, order=100)
        if not self.stats.rss_after_first_step:
            self._first_step(b2)
            steps -= 1
        try:
            if steps > 0 and self._task_error is None:
                self._run_net(steps)
        finally:
            if bar is not None:
                self.unschedule(_progress)
                bar.n = bar.total
                bar.close()
        if self._task_error is not None:
            error, self._task_error = self._task_error, None
            raise error

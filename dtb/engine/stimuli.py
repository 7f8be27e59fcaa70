"""Stimuli while the network runs: Poisson rates and injected currents switched on and off at
their times, rates changed by a body or a task, and the CPG pools' drive."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from dtb.models.lif import RECEPTORS
from dtb.spec import CurrentStep, PoissonStimulus

log = logging.getLogger(__name__)


class StimulusControl:
    """Part of :class:`dtb.engine.kernel.Simulation`."""

    def _apply_stimuli(self, step: int, populations: set[str] | None = None) -> None:
        """Set background rates and injected currents active at ``step`` (start inclusive, stop
        exclusive). ``populations``: only recompute the Poisson rates of these populations (the
        same sums in the same order, so the same bits as a full update)."""
        if populations is not None and self.cpg is not None and populations & self._cpg_pools:
            populations = None
        lam = {r: np.zeros(self.n_local) for r in RECEPTORS}
        I_ext = self._base_I_ext.copy()
        for k, s in enumerate(self.spec.stimuli):
            if populations is not None and s.population not in populations:
                continue
            if k in self._rate_override:
                s = dataclasses.replace(s, rate=self._rate_override[k])
            on = int(np.rint(s.start / self.dt)) <= step and (not np.isfinite(s.stop) or step < int(np.rint(s.stop / self.dt)))
            sl = self.population_slices(s.population)
            if not on or sl is None:
                continue
            if isinstance(s, PoissonStimulus):
                lam[s.receptor][sl] += s.rate * self.dt
            elif isinstance(s, CurrentStep):
                I_ext[sl] += s.amplitude
        if populations is not None:
            for name in populations:
                sl = self.population_slices(name)
                if sl is None:
                    continue
                for r in self._background:
                    self.group.variables[f"lam_{r}"].get_value()[sl] = lam[r][sl]
                    self.group.variables[f"p0_{r}"].get_value()[sl] = np.exp(-lam[r][sl])
            return
        if self.cpg is not None:
            self._lam_base = lam[self.spec.cpg.receptor].copy()
            self.cpg.add_drive(lam[self.spec.cpg.receptor])
        for r in self._background:          # the other receptors' rates stay 0
            self.group.variables[f"lam_{r}"].set_value(lam[r])
            self.group.variables[f"p0_{r}"].set_value(np.exp(-lam[r]))
        if "I_ext" not in self.shared_parameters:
            self.group.variables["I_ext"].set_value(I_ext)

    def _drive_cpg(self, step: int) -> None:
        """Set the CPG pools' Poisson rates from the oscillators' current outputs (and, with
        ``drive_from``, the oscillators' tonic input from that population's rate)."""
        if self.spec.cpg.drive_from:
            self.cpg.update_vigour()
        r, idx = self.spec.cpg.receptor, self.cpg.targets
        lam = self.group.variables[f"lam_{r}"].get_value()
        lam[idx] = self._lam_base[idx]
        self.cpg.add_drive(lam)
        self.group.variables[f"p0_{r}"].get_value()[idx] = np.exp(-lam[idx])

    def set_stimulus_rates(self, rates: dict[int, float]) -> None:
        """Change the rates (Hz) of Poisson stimuli {index in ``spec.stimuli``: rate} from the next
        step on; every rank must set the same values (e.g. a broadcast sensory input)."""
        for index, rate in rates.items():
            if not isinstance(self.spec.stimuli[index], PoissonStimulus):
                raise TypeError(f"stimulus {index} is not a Poisson stimulus")
            self._rate_override[index] = float(rate)
        self._apply_stimuli(self.current_step() + 1, {self.spec.stimuli[i].population for i in rates})

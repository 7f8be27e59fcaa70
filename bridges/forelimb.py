"""A rodent forelimb in MuJoCo for motor-learning experiments (``dtb body --body forelimb``).

Model (``assets/forelimb.xml``): shoulder, elbow and wrist hinges in the horizontal plane, each
moved by a flexor and an extensor MuJoCo muscle (Hill-type, with activation dynamics) on a fixed
tendon; passive joint stiffness brings the limb back to 0 rad; 1 ms physics steps.

**Motor mapping**: six rates (Hz), flexor and extensor of shoulder, elbow, wrist (``MUSCLES``);
each muscle's activation command is ``clip(rate / rate_full, 0, 1)``.

**Sensory message** (what the brain gets after each control period): six muscle-stretch values
``max(-q, 0)`` (flexors, stretched by extension) and ``max(q, 0)`` (extensors), rad, in the
muscles' order (proprioception for S1), then the three joint angles (rad; the brain compares them
with the intended trajectory for the inferior olive).

**Perturbation** (switched on for ``start <= t < stop``, body time): ``gain`` multiplies the force
of both muscles of ``joint`` (a weakened or strengthened joint), ``load`` is a constant torque
(N m) against flexion on that joint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources

import numpy as np

from bridges.body import set_overrides

JOINTS = ("shoulder", "elbow", "wrist")
MUSCLES = tuple(f"{j}_{side}" for j in JOINTS for side in ("flexor", "extensor"))


@dataclass(frozen=True)
class Perturbation:
    joint: str = "elbow"
    gain: float = 1.0            # force multiplier of the joint's two muscles
    load: float = 0.0            # N m against flexion
    start: float = math.inf      # s (body time)
    stop: float = math.inf

    def active(self, t: float) -> bool:
        return self.start <= t < self.stop


class ForelimbBody:
    """The forelimb; ``step(rates, duration)`` applies six muscle-pool rates for ``duration`` s."""

    kind = "forelimb"
    motor_labels = MUSCLES
    joint_names = list(JOINTS)

    def __init__(self, rate_full: float = 50.0, perturbation: Perturbation = Perturbation()):
        import mujoco

        self.mj = mujoco
        xml = resources.files("bridges").joinpath("assets/forelimb.xml").read_text()
        self.model = mujoco.MjModel.from_xml_string(xml)
        self.data = mujoco.MjData(self.model)
        self.dt = self.model.opt.timestep
        self.rate_full = rate_full
        self.perturbation = perturbation
        if perturbation.joint not in JOINTS:
            raise ValueError(f"perturbation joint {perturbation.joint!r}: the forelimb has {', '.join(JOINTS)}")
        self.qadr = np.array([self.model.joint(j).qposadr[0] for j in JOINTS])
        self.vadr = np.array([self.model.joint(j).dofadr[0] for j in JOINTS])
        self.actuators = [self.model.actuator(i).name for i in range(self.model.nu)]
        self._gear = self.model.actuator_gear[:, 0].copy()
        j = JOINTS.index(perturbation.joint)
        self._perturbed_muscles = [2 * j, 2 * j + 1]
        self._perturbed_dof = self.vadr[j]
        self.overrides: dict[int, float] = {}
        self.perturbed = False
        mujoco.mj_forward(self.model, self.data)

    @property
    def time(self) -> float:
        return float(self.data.time)

    def activation_command(self, rates: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(rates, float) / self.rate_full, 0.0, 1.0)

    def step(self, rates: np.ndarray | None, duration: float) -> None:
        d, m = self.data, self.model
        if rates is not None:
            d.ctrl[:] = self.activation_command(rates)
        for a, value in self.overrides.items():
            d.ctrl[a] = value
        for _ in range(max(int(round(duration / self.dt)), 1)):
            on = self.perturbation.active(self.time + 0.5 * self.dt)
            if on != self.perturbed:
                self.perturbed = on
                gain = self.perturbation.gain if on else 1.0
                m.actuator_gear[self._perturbed_muscles, 0] = self._gear[self._perturbed_muscles] * gain
                d.qfrc_applied[self._perturbed_dof] = -self.perturbation.load if on else 0.0
            self.mj.mj_step(m, d)

    def command(self, names: list[str], ctrl: list[float]) -> None:
        """Muscle activations (0..1) that replace the motor mapping for the named muscles; an
        empty ``ctrl`` hands them back. ValueError for an unknown name or a length mismatch."""
        set_overrides(self.overrides, self.actuators, names, ctrl, (0.0, 1.0), "the forelimb")

    # -------------------------------------------------------------- readings
    def joint_positions(self) -> np.ndarray:
        return self.data.qpos[self.qadr].copy()

    def joint_velocities(self) -> np.ndarray:
        return self.data.qvel[self.vadr].copy()

    def sensory(self) -> np.ndarray:
        """Muscle stretch (6, rad) then joint angles (3, rad): see the module doc."""
        q = self.joint_positions()
        stretch = np.stack([np.maximum(-q, 0.0), np.maximum(q, 0.0)], axis=1).reshape(-1)
        return np.concatenate([stretch, q])

    sensory_labels = [f"{m}_stretch" for m in MUSCLES] + [f"{j}_angle" for j in JOINTS]

    def record(self) -> dict[str, np.ndarray]:
        return {"perturbed": np.array([float(self.perturbed)])}

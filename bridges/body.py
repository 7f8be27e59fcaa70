"""A rodent body in MuJoCo, driven by motor-pool rates (the spinal mapping below).

Model: dm_control's rat (``assets/rodent.xml``, Apache-2.0; 38 position-servo actuators, control
in [-1, 1] sets each joint's target angle), given a free joint and a floor, 2 ms physics steps.

**Spinal mapping** (motor-pool rates -> actuators), per limb ``LF, RF, LH, RH`` (left/right
fore/hind) with flexor rate ``f`` and extensor rate ``e`` (Hz):

    s = clip((f - e) / rate_scale, -1, 1)           drive (+1: flexor burst, -1: extensor burst)
    tau_lag dq/dt = s - q                            a spinal low-pass (q lags s by ~50 deg at 2 Hz)
    proximal joint (shoulder_L/R, hip_L/R_extend)    ctrl = sign * proximal_gain * s
                                                     sign +1 fore (shoulder), -1 hind (hip)
    distal joint   (elbow_L/R, knee_L/R)             ctrl = -distal_gain * clip(max(q, 0) / 0.3, 0, 1)

The distal joints flex (lift the paw) in the lagged flexor phase only. These signs, the
rectification and the lag were chosen by a search over the 64 sign/shape combinations for the
one that walks forward under every variation tried (drive amplitude 60-100 %, gains 0.6-0.8,
lag 60-100 ms, support 30-60 %); the others walk backward or stumble in some of them.
All other actuators get ctrl 0 (their neutral posture).

**Body-weight support**, as in rodent treadmill experiments with a harness: an upward force on
the torso of ``support`` x body weight at the harness ``height`` (m), growing by that much per cm
below it (a soft spring, damped), and a torque that keeps the trunk upright (roll and pitch;
yaw, forward and sideways motion are free). The tail is held off the floor (no tail collisions).
``support = 0`` turns the harness off.

Sensors published to the brain (per limb, in the order above): the normal contact force between
the paw (forearm/hand/finger, foot/toe bodies) and the floor, / body weight.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import numpy as np

LIMBS = ("LF", "RF", "LH", "RH")
PROXIMAL_SIGN = np.array([1.0, 1.0, -1.0, -1.0])
PROXIMAL = {"LF": "shoulder_L", "RF": "shoulder_R", "LH": "hip_L_extend", "RH": "hip_R_extend"}
DISTAL = {"LF": "elbow_L", "RF": "elbow_R", "LH": "knee_L", "RH": "knee_R"}
PAW_BODIES = {"LF": ("lower_arm_L", "hand_L", "finger_L"), "RF": ("lower_arm_R", "hand_R", "finger_R"),
              "LH": ("foot_L", "toe_L"), "RH": ("foot_R", "toe_R")}


@dataclass(frozen=True)
class SpinalMapping:
    rate_scale: float = 40.0      # Hz of flexor-extensor difference for full swing drive
    proximal_gain: float = 0.8    # ctrl units at s = 1
    distal_gain: float = 0.8
    tau_lag: float = 0.1          # s, the distal joints' low-pass
    lift_scale: float = 0.3       # q at which the distal joint is fully flexed


def set_overrides(overrides: dict[int, float], actuators: list[str], names: list[str], ctrl: list[float],
                  bounds: tuple[float, float], body: str) -> None:
    """Apply a joint command to ``overrides`` (actuator id -> ctrl): ``ctrl`` (clipped to
    ``bounds``) for the named actuators, or, with an empty ``ctrl``, hand them back. ValueError
    for an unknown name or a length mismatch (nothing is applied then)."""
    known = {n: i for i, n in enumerate(actuators)}
    for n in names:
        if n not in known:
            raise ValueError(f"unknown actuator {n!r}; {body} has {', '.join(actuators)}")
    if len(ctrl) == 0:
        for n in names:
            overrides.pop(known[n], None)
        return
    if len(names) != len(ctrl):
        raise ValueError(f"{len(names)} names but {len(ctrl)} positions")
    for n, c in zip(names, ctrl):
        overrides[known[n]] = float(np.clip(c, *bounds))


def rodent_xml() -> str:
    return resources.files("bridges").joinpath("assets/rodent.xml").read_text()


def build_model(xml: str | None = None):
    """The rat with a free joint on its torso, on a floor (MjModel)."""
    import mujoco

    spec = mujoco.MjSpec.from_string(xml or rodent_xml())
    spec.body("torso").add_freejoint()
    for geom in spec.geoms:                      # the tail does not touch the floor (held up)
        if geom.name.startswith("vertebra_C") and geom.name.endswith("_collision"):
            geom.contype, geom.conaffinity = 0, 0
    spec.worldbody.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[50, 50, 0.1])
    return spec.compile()


def swing_drive(flexor: np.ndarray, extensor: np.ndarray, rate_scale: float) -> np.ndarray:
    """s per limb from flexor and extensor rates (Hz), in [-1, 1]."""
    return np.clip((np.asarray(flexor, float) - np.asarray(extensor, float)) / rate_scale, -1.0, 1.0)


class RodentBody:
    """The simulated rat: ``step(rates, duration)`` applies motor-pool rates (flexor, extensor per
    limb, in LIMBS order: 8 values) for ``duration`` seconds of physics."""

    def __init__(self, support: float = 0.6, mapping: SpinalMapping = SpinalMapping(), upright: float = 0.02,
                 height: float = 0.05):
        import mujoco

        self.mj = mujoco
        self.model = build_model()
        self.data = mujoco.MjData(self.model)
        self.mapping, self.support, self.upright, self.height = mapping, support, upright, height
        m = self.model
        self.dt = float(m.opt.timestep)
        self.weight = float(np.sum(m.body_mass)) * float(-m.opt.gravity[2])
        self.torso = m.body("torso").id
        self.act_proximal = np.array([m.actuator(PROXIMAL[l]).id for l in LIMBS])
        self.act_distal = np.array([m.actuator(DISTAL[l]).id for l in LIMBS])
        self.joint_names = [PROXIMAL[l] for l in LIMBS] + [DISTAL[l] for l in LIMBS]
        self.qadr = np.array([m.jnt_qposadr[m.joint(n).id] for n in self.joint_names])
        self.vadr = np.array([m.jnt_dofadr[m.joint(n).id] for n in self.joint_names])
        self.paw_limb = np.full(m.ngeom, -1)
        for k, limb in enumerate(LIMBS):
            for name in PAW_BODIES[limb]:
                self.paw_limb[m.geom_bodyid == m.body(name).id] = k
        self.floor = m.geom("floor").id
        self._force = np.zeros(6)
        self.q = np.zeros(len(LIMBS))
        self.s = np.zeros(len(LIMBS))
        self.actuators = [m.actuator(i).name for i in range(m.nu)]
        self.overrides: dict[int, float] = {}       # actuator id -> ctrl set by a joint command
        mujoco.mj_forward(m, self.data)

    @property
    def time(self) -> float:
        return float(self.data.time)

    def set_rates(self, rates: np.ndarray) -> None:
        rates = np.asarray(rates, float).reshape(len(LIMBS), 2)
        self.s = swing_drive(rates[:, 0], rates[:, 1], self.mapping.rate_scale)

    def step(self, rates: np.ndarray | None, duration: float) -> None:
        """Advance by ``duration`` s (whole physics steps) with the given rates (None: keep)."""
        if rates is not None:
            self.set_rates(rates)
        d, mp = self.data, self.mapping
        a = self.dt / mp.tau_lag
        for _ in range(max(int(round(duration / self.dt)), 1)):
            self.q += a * (self.s - self.q)
            d.ctrl[self.act_proximal] = PROXIMAL_SIGN * mp.proximal_gain * self.s
            d.ctrl[self.act_distal] = -mp.distal_gain * np.clip(np.maximum(self.q, 0.0) / mp.lift_scale, 0.0, 1.0)
            for a, value in self.overrides.items():
                d.ctrl[a] = value
            self._support()
            self.mj.mj_step(self.model, d)

    def command(self, names: list[str], ctrl: list[float]) -> None:
        """Joint commands that replace the spinal mapping for the named actuators from now on:
        ctrl in [-1, 1] (each actuator is a position servo over its joint's range); names with
        an empty ``ctrl`` go back to the mapping. ValueError for an unknown name or a length
        mismatch (nothing is applied then)."""
        set_overrides(self.overrides, self.actuators, names, ctrl, (-1.0, 1.0), "the rat")

    def _support(self) -> None:
        d = self.data
        up = d.xmat[self.torso].reshape(3, 3)[:, 2]
        torque = self.upright * np.cross(up, [0.0, 0.0, 1.0]) - 0.1 * self.upright * d.cvel[self.torso][:3]
        torque[2] = 0.0
        z, vz = d.xpos[self.torso][2], d.cvel[self.torso][5]
        lift = self.support * self.weight * (1.0 + (self.height - z) / 0.01) - 0.2 * self.support * self.weight * vz / 0.1
        d.xfrc_applied[self.torso] = np.r_[0.0, 0.0, np.clip(lift, 0.0, 2 * self.weight), torque]

    # -------------------------------------------------------------- readings
    kind = "rodent"
    motor_labels = tuple(f"{limb}_{side}" for limb in LIMBS for side in ("flexor", "extensor"))
    sensory_labels = list(LIMBS)

    def sensory(self) -> np.ndarray:
        """What the brain gets: paw contact forces / body weight (see :meth:`contacts`)."""
        self._contacts = self.contacts()
        return self._contacts

    def record(self) -> dict[str, np.ndarray]:
        """Extra rows of body.h5 after a control period (after :meth:`sensory`)."""
        return {"torso/position": self.position(), "torso/orientation": self.orientation(),
                "contacts": self._contacts}

    def joint_positions(self) -> np.ndarray:
        return self.data.qpos[self.qadr].copy()

    def joint_velocities(self) -> np.ndarray:
        return self.data.qvel[self.vadr].copy()

    def position(self) -> np.ndarray:
        """Torso position (m): x forward, y left, z up."""
        return self.data.xpos[self.torso].copy()

    def orientation(self) -> np.ndarray:
        """Torso orientation quaternion (w, x, y, z)."""
        return self.data.xquat[self.torso].copy()

    def contacts(self) -> np.ndarray:
        """Paw-floor normal contact force per limb / body weight."""
        d, out = self.data, np.zeros(len(LIMBS))
        for i in range(d.ncon):
            c = d.contact[i]
            other = c.geom2 if c.geom1 == self.floor else c.geom1 if c.geom2 == self.floor else -1
            if other >= 0 and self.paw_limb[other] >= 0:
                self.mj.mj_contactForce(self.model, d, i, self._force)
                out[self.paw_limb[other]] += abs(self._force[0])
        return out / self.weight

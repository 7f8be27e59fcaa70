"""Writes dtb/examples/motor_learning.toml (run: python dtb/examples/make_motor_learning.py).

The motor-learning circuit of ``dtb experiment adaptation`` as ordinary populations and projections
(nothing in the engine is special to it). Per muscle channel c (flexor and extensor of shoulder,
elbow, wrist) and per region:

* **M2**: a pool driven by the Matsuoka CPG group of its joint (the rhythmic motor plan).
* **M1**: the motor command to muscle c = M2_c (plan) + motor thalamus (basal-ganglia gain) +
  DCN_c (cerebellar correction, through the VL thalamus, lumped) + S1_c.
* **S1**: proprioception (muscle stretch from the body).
* **Basal ganglia** (Albin, Young & Penney 1989; DeLong 1990; Nambu et al. 2002): M2 -> D1 MSNs
  -| GPi/SNr (direct), M2 -> D2 MSNs -| GPe -| STN -> GPi/SNr (indirect), M2 -> STN (hyperdirect);
  GPi/SNr -| motor thalamus -> M1. Dopamine depletion (condition ``dopamine_depleted``): cortical
  drive of D1 MSNs x DA_D1 and of D2 MSNs x DA_D2 (the classical rate model: D1 receptors
  facilitate, D2 receptors suppress cortico-striatal transmission).
* **Cerebellum** (Eccles, Ito & Szentagothai 1967; Marr 1969; Albus 1971; Ito 2001): M1_c
  (efference copy) and S1_c (feedback) -> pontine mossy fibres MF_c -> granule cells GrC_c (4 MF
  each) <-> Golgi cells; parallel fibres of the joint's flexor and extensor granule cells -> the
  Purkinje cells of both of its microzones (plastic, dtb.models.plasticity); inferior olive IO_c ->
  one climbing fibre per Purkinje cell; PC_c -| DCN_c (with MF collaterals) -> M1_c. The olive
  fires with the error between the intended angle (the CPG plan, [bridge.error]) and the angle
  the body reports.

Sizes are for real time on a laptop core; ``simulation.scale`` scales them all. The intended
trajectory ([bridge.error] offset, amplitude, lag) is the intact limb's movement for the plan:
fitted (r = 0.98) to a baseline run of this circuit with the forelimb.
"""

J = ("shoulder", "elbow", "wrist")
S = ("flexor", "extensor")
CH = [f"{j}_{s}" for j in J for s in S]
out = []
def pop(name, region, size, kind, note=""):
    out.append(f'[[populations]]{"  # " + note if note else ""}\nname = "{name}"\nregion = "{region}"\n'
               f'size = {size}\nkind = "{kind}"\n')
def proj(src, tgt, rec, w, indeg=None, prob=None, delay="2 ms", note="", extra=""):
    rule = (f'rule = "fixed_indegree"\nindegree = {indeg}' if indeg is not None
            else f'rule = "fixed_probability"\nprobability = {prob}')
    out.append(f'[[projections]]{"  # " + note if note else ""}\nsource = "{src}"\ntarget = "{tgt}"\n{rule}\n'
               f'receptor = "{rec}"\nweight = "{w}"\ndelay = "{delay}"\n{extra}')
def stim(popn, rate, w="4 nS", note=""):
    out.append(f'[[stimuli]]{"  # " + note if note else ""}\ntype = "poisson"\npopulation = "{popn}"\n'
               f'rate = "{rate}"\nweight = "{w}"\n')

P = dict(m2=100, m1=100, s1=50, msn=100, gpe=50, stn=50, gpi=50, thal=100, mf=20, grc=100, goc=10, pc=20, io=10, dcn=20)
for c in CH: pop(f"M2_{c}", "M2", P["m2"], "excitatory", "CPG-driven rhythm" if c == CH[0] else "")
for c in CH: pop(f"M1_{c}", "M1", P["m1"], "excitatory", "motor command to one muscle" if c == CH[0] else "")
for c in CH: pop(f"S1_{c}", "S1", P["s1"], "excitatory", "proprioception (muscle stretch)" if c == CH[0] else "")
pop("D1", "striatum", P["msn"], "inhibitory", "direct-pathway MSNs")
pop("D2", "striatum", P["msn"], "inhibitory", "indirect-pathway MSNs")
pop("GPe", "GPe", P["gpe"], "inhibitory")
pop("STN", "STN", P["stn"], "excitatory")
pop("GPi", "GPi_SNr", P["gpi"], "inhibitory", "basal-ganglia output")
pop("Thal", "thalamus", P["thal"], "excitatory", "motor thalamus (VA/VL)")
for c in CH: pop(f"MF_{c}", "cerebellum", P["mf"], "excitatory", "mossy fibres (pontine relay)" if c == CH[0] else "")
for c in CH: pop(f"GrC_{c}", "cerebellum", P["grc"], "excitatory", "granule cells (parallel fibres)" if c == CH[0] else "")
for c in CH: pop(f"GoC_{c}", "cerebellum", P["goc"], "inhibitory", "Golgi cells" if c == CH[0] else "")
for c in CH: pop(f"PC_{c}", "cerebellum", P["pc"], "inhibitory", "Purkinje cells of one microzone" if c == CH[0] else "")
for c in CH: pop(f"IO_{c}", "cerebellum", P["io"], "excitatory", "inferior olive (climbing fibres)" if c == CH[0] else "")
for c in CH: pop(f"DCN_{c}", "cerebellum", P["dcn"], "excitatory", "deep cerebellar nuclei" if c == CH[0] else "")

# cortex
for c in CH:
    proj(f"M2_{c}", f"M2_{c}", "ampa", "0.5 nS", 10, note="M2 recurrent")
    proj(f"M2_{c}", f"M1_{c}", "ampa", "W_M2M1", 20, note="M2 -> M1: the rhythmic plan")
    proj("Thal", f"M1_{c}", "ampa", "W_THM1", 20, note="motor thalamus -> M1 (the basal-ganglia loop back to cortex)")
    proj(f"DCN_{c}", f"M1_{c}", "ampa", "W_DCNM1", 10, note="DCN -> (VL thalamus) -> M1: cerebellar correction")
    proj(f"S1_{c}", f"M1_{c}", "ampa", "0.3 nS", 5, note="S1 -> M1")
# basal ganglia
for c in CH:
    proj(f"M2_{c}", "D1", "ampa", "W_CTXD1", 4, note="cortico-striatal (direct)")
    proj(f"M2_{c}", "D2", "ampa", "W_CTXD2", 4, note="cortico-striatal (indirect)")
    proj(f"M2_{c}", "STN", "ampa", "0.5 nS", 3, note="hyperdirect")
proj("D1", "GPi", "gabaa", "W_D1GPI", 20, note="direct pathway: D1 -| GPi/SNr")
proj("D2", "GPe", "gabaa", "W_D2GPE", 20, note="indirect: D2 -| GPe")
proj("GPe", "STN", "gabaa", "1 nS", 10, note="indirect: GPe -| STN")
proj("GPe", "GPi", "gabaa", "1 nS", 10, note="indirect: GPe -| GPi")
proj("STN", "GPi", "ampa", "1 nS", 10, note="STN -> GPi")
proj("STN", "GPe", "ampa", "0.5 nS", 10, note="STN -> GPe")
proj("GPi", "Thal", "gabaa", "W_GPITH", 20, note="GPi/SNr -| motor thalamus")
# cerebellum
for c in CH:
    proj(f"M1_{c}", f"MF_{c}", "ampa", "W_M1MF", 20, note="M1 efference copy -> pontine mossy fibres")
    proj(f"S1_{c}", f"MF_{c}", "ampa", "1 nS", 10, note="S1 feedback -> mossy fibres")
for c in CH:
    proj(f"MF_{c}", f"GrC_{c}", "ampa", "W_MFGRC", 4, note="MF -> GrC (4 mossy fibres per granule cell)")
    proj(f"GrC_{c}", f"GoC_{c}", "ampa", "W_GRCGOC", 20, note="GrC -> Golgi")
    proj(f"GoC_{c}", f"GrC_{c}", "gabaa", "0.5 nS", 4, note="Golgi -| GrC")
for j in J:
    for s in S:
        c = f"{j}_{s}"
        for src in S:
            proj(f"GrC_{j}_{src}", f"PC_{c}", "ampa", "W_PF", 50, delay="1 ms", note="parallel fibres -> Purkinje (plastic)",
                 extra=f'[projections.plasticity]\nteacher = "IO_{c}"\ntau = "PL_TAU"\nltp = "PL_LTP"\n'
                       'ltd = "PL_LTD"\nw_max = "PL_WMAX"\n')
        proj(f"IO_{c}", f"PC_{c}", "ampa", "W_CF", 1, note="climbing fibre (one per Purkinje cell)")
        proj(f"PC_{c}", f"DCN_{c}", "gabaa", "W_PCDCN", 10, note="Purkinje -| DCN")
        proj(f"MF_{c}", f"DCN_{c}", "ampa", "0.5 nS", 5, note="MF collaterals -> DCN")
# background
for c in CH:
    stim(f"M1_{c}", "BG_M1")
    stim(f"S1_{c}", "0 Hz", note="stretch of the muscle, set by the body's messages" if c == CH[0] else "")
    stim(f"IO_{c}", "IO_BASE", note="inferior olive: the error sets the rate" if c == CH[0] else "")
    stim(f"PC_{c}", "BG_PC")
    stim(f"DCN_{c}", "BG_DCN")
    stim(f"MF_{c}", "BG_MF")
stim("D1", "BG_MSN"); stim("D2", "BG_MSN")
stim("GPe", "BG_GPE"); stim("STN", "BG_STN"); stim("GPi", "BG_GPI"); stim("Thal", "BG_THAL")
for c in CH: stim(f"GrC_{c}", "BG_GRC")
for c in CH: stim(f"GoC_{c}", "BG_GOC")

HEAD = """
[simulation]
dt = "0.5 ms"
duration = "4 s"
seed = 2027
scale = 1.0              # the one size knob: every population x scale (indegrees kept)

[monitors]
rate_bin = "10 ms"
region_interval = "10 ms"
plasticity_interval = "TRIAL"

[cpg]                    # M2 rhythm: one half-center group per joint
tau_r = "CPG_TAUR"
tau_a = "CPG_TAUA"
beta = 2.5
w = 2.5
drive = 1.0
coupling = 0.2
rate = "CPG_RATE"
weight = "4 nS"
receptor = "ampa"
update = "2 ms"
record_interval = "10 ms"
drive_from = "Thal"      # vigour: the tonic drive (the plan's amplitude) follows the motor thalamus
drive_rate = "25 Hz"     # its rate at which the drive is 1 (about its intact rate)
drive_tau = "200 ms"

[[cpg.groups]]
name = "shoulder"
count = 10
flexor = "M2_shoulder_flexor"
extensor = "M2_shoulder_extensor"
phase = 0.0

[[cpg.groups]]
name = "elbow"
count = 10
flexor = "M2_elbow_flexor"
extensor = "M2_elbow_extensor"
phase = 0.0

[[cpg.groups]]
name = "wrist"
count = 10
flexor = "M2_wrist_flexor"
extensor = "M2_wrist_extensor"
phase = 0.5

[bridge]
motor = MOTOR
sensory = SENSORY
period = "10 ms"
rate_per_unit = "S1_RATE"
mode = "lockstep"
sensory_delay = 1
timeout = "120 s"
port = 9090

[bridge.error]
cpg_groups = ["shoulder", "elbow", "wrist"]
flexor = IOF
extensor = IOE
offset = OFFSET
amplitude = AMPL
lag = "LAG"
baseline = "IO_BASE"
gain = "IO_GAIN"
max_rate = "IO_MAX"
start = "2 s"                    # the CPGs and the limb settle before the olive hears an error

[conditions.plasticity_lesion]
description = "cerebellar lesion: no PF-PC plasticity (LTP and LTD off)"
plasticity = 0.0

[conditions.purkinje_lesion]
description = "cerebellar lesion: Purkinje cells silenced (-5 nA each)"
silence = PCS
silence_current = "-5 nA"

[conditions.dopamine_depleted]
description = "dopamine depletion: cortical drive of D1 MSNs x DA_D1, of D2 MSNs x DA_D2"
input_scale = { D1 = DA_D1, D2 = DA_D2 }
"""
PARAMETERS = {
    "TRIAL": "500 ms",
    "CPG_TAUR": "100 ms",
    "CPG_TAUA": "200 ms",
    "CPG_RATE": "3000 Hz",
    "S1_RATE": "6000 Hz",
    "OFFSET": [0.0, 0.0, 0.0],
    "AMPL": [1.34, 1.05, 0.55],
    "LAG": "180 ms",
    "IO_BASE": "400 Hz",
    "IO_GAIN": "4000 Hz",
    "IO_MAX": "6000 Hz",
    "DA_D1": 0.3,
    "DA_D2": 2.0,
    "W_M2M1": "2 nS",
    "W_THM1": "0.5 nS",
    "W_DCNM1": "3 nS",
    "W_CTXD1": "2 nS",
    "W_CTXD2": "2 nS",
    "W_D1GPI": "6 nS",
    "W_D2GPE": "6 nS",
    "W_GPITH": "1.5 nS",
    "W_MFGRC": "15 nS",
    "W_PF": "4 nS",
    "W_CF": "20 nS",
    "W_PCDCN": "8 nS",
    "PL_TAU": "150 ms",
    "PL_LTP": "0.012 nS",
    "PL_LTD": "0.012 nS",
    "PL_WMAX": "8 nS",
    "BG_M1": "200 Hz",
    "BG_PC": "900 Hz",
    "BG_DCN": "2500 Hz",
    "BG_MSN": "500 Hz",
    "BG_GPE": "2000 Hz",
    "BG_STN": "1200 Hz",
    "BG_GPI": "1500 Hz",
    "BG_THAL": "1350 Hz",
    "BG_GRC": "300 Hz",
    "BG_GOC": "1000 Hz",
    "W_GRCGOC": "2 nS",
    "BG_MF": "600 Hz",
    "W_M1MF": "8 nS",
}


def render(p: dict = PARAMETERS) -> str:
    head = HEAD
    lists = {"MOTOR": [f"M1_{c}" for c in CH], "SENSORY": [f"S1_{c}" for c in CH],
             "IOF": [f"IO_{j}_flexor" for j in J], "IOE": [f"IO_{j}_extensor" for j in J],
             "PCS": [f"PC_{c}" for c in CH]}
    for k, v in lists.items():
        head = head.replace(k, "[" + ", ".join(f'"{x}"' for x in v) + "]")
    body = head + "\n" + "\n".join(out)
    for k in sorted(p, key=len, reverse=True):
        body = body.replace(k, str(p[k]))
    return body



if __name__ == "__main__":
    from pathlib import Path
    target = Path(__file__).with_name("motor_learning.toml")
    note = ("# GENERATED by dtb/examples/make_motor_learning.py (edit the script, then run it): the motor-learning\n"
            "# circuit of `dtb experiment adaptation` (docs/motor_learning.md); the script's docstring gives the\n"
            "# circuit and its sources. M2 CPGs, M1, S1, basal ganglia, motor thalamus and a cerebellum whose\n"
            "# parallel-fibre -> Purkinje synapses learn from inferior-olive error signals.\n")
    target.write_text(note + render())
    print(f"wrote {target}")

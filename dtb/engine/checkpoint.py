"""Checkpoints: the complete state of a distributed run, written atomically, resumable on any
number of ranks with spikes identical to an uninterrupted run.

Layout of a checkpoint folder (default ``OUT/checkpoint``)::

    LATEST                    name of the newest complete checkpoint (replaced atomically)
    step-000000012000/        the state at the start of that time step
        manifest.json         step, t_s, n_ranks, dtb version, config fingerprint, path and text,
                              seed and duration, and the sha256 of every rank file (written last)
        rank-00000.h5         one rank's state, by global neuron id:
                                /neurons/{gid, v, lastspike, not_refractory, Q_exc, Q_inh, g_<r>,
                                          acc (pending input, weight quanta per receptor), scale_<r>}
                                /spikes/{gid, step}     every spike of the rank so far
                                /regions/rows           regional samples so far (rank's sums)
                                /stimuli/rate_override  Poisson rates set at run time (index, Hz)
                                /state/<k>/{gids, t, <var>}   state recordings so far
                                /bold/{signal, row, state}    BOLD recorder (rank 0)
                                /cpg/{x1, x2, v1, v2, record_t, record_y}  CPG oscillators (rank 0)
                                /plastic/{key, w, elig_a, elig_b, tlast}  plastic synapses onto the rank's
                                        neurons; key = (projection, target gid, ordinal, source gid)
                                /extra/...              e.g. the assimilation filter (rank 0)

Spikes still in flight are not stored: the resumed run rebuilds its delay queues from the spikes
of the last (maximum delay) steps, for whatever partition it has (see ``Simulation.restore``).

Atomicity: a checkpoint is written into ``.tmp-step-…``; once every rank's file is on disk
(fsync) rank 0 writes the manifest, renames the folder, then replaces ``LATEST``, and only then
deletes the previous checkpoint. A rank killed while writing leaves the previous checkpoint
valid and a ``.tmp`` folder that the next checkpoint removes. On load, every file's checksum is
verified and the config fingerprint and dtb version must match.

Signals: with :func:`install_signal_handlers`, SIGUSR1 or SIGTERM on any rank makes every rank
finish the current exchange interval, write a checkpoint and stop; ``dtb run`` then exits with
:data:`EXIT_CHECKPOINTED`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

import dtb
from dtb.errors import DtbError
from dtb.files import array_bytes, free_bytes

log = logging.getLogger(__name__)

#: exit status of ``dtb run`` stopped by SIGUSR1/SIGTERM after writing a checkpoint (EX_TEMPFAIL)
EXIT_CHECKPOINTED = 75
FORMAT_VERSION = 1


def fingerprint(spec) -> str:
    """sha256 of everything that defines the network and its inputs (not its duration or path)."""
    from dtb.spec import Subject
    core = dataclasses.replace(spec, simulation=dataclasses.replace(spec.simulation, duration=0.0),
                               source="", text="", subject=Subject())     # metadata: not the network
    return hashlib.sha256(repr(core).encode()).hexdigest()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_rank_file(path: Path, state: dict, rank: int) -> None:
    with h5py.File(path, "w") as f:
        f.attrs["step"] = state["step"]
        f.attrs["rank"] = rank
        g = f.create_group("neurons")
        for name, arr in state["neurons"].items():
            g.create_dataset(name, data=arr)
        s = f.create_group("spikes")
        s.create_dataset("gid", data=state["spike_gid"])
        s.create_dataset("step", data=state["spike_step"])
        f.create_dataset("regions/rows", data=state["region_rows"])
        f.create_dataset("stimuli/rate_override", data=state["rate_override"])
        for k, (gids, t, data) in enumerate(state["states"]):
            m = f.create_group(f"state/{k}")
            m.create_dataset("gids", data=gids)
            m.create_dataset("t", data=t)
            for v, arr in data.items():
                m.create_dataset(v, data=arr)
        if state.get("cpg") is not None and rank == 0:
            c = f.create_group("cpg")
            for name, value in state["cpg"].items():
                c.create_dataset(name, data=value)
        if state.get("plastic") is not None:
            c = f.create_group("plastic")
            for name, value in state["plastic"].items():
                c.create_dataset(name, data=value)
        if state["bold"] is not None and rank == 0:
            b = f.create_group("bold")
            b.create_dataset("signal", data=state["bold"]["signal"])
            b.attrs["row"] = state["bold"]["row"]
            if state["bold"]["state"] is not None:
                b.create_dataset("state", data=state["bold"]["state"])
        for name, arr in (state.get("extra") or {}).items():
            f.create_dataset(f"extra/{name}", data=arr)
        _maybe_fault(f, rank)
        f.flush()
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


_writes = 0


def _maybe_fault(f, rank: int) -> None:
    """Fault injection for the tests: ``DTB_TEST_KILL_IN_CHECKPOINT=RANK:N`` kills rank RANK
    (SIGKILL) in the middle of writing its N-th checkpoint file."""
    global _writes
    _writes += 1
    spec = os.environ.get("DTB_TEST_KILL_IN_CHECKPOINT")
    if spec:
        r, n = (int(x) for x in spec.split(":"))
        if r == rank and n == _writes:
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)


class Checkpointer:
    """Writes checkpoints of a running :class:`~dtb.engine.kernel.Simulation` into ``folder``:
    every ``every`` seconds of biological time (if given) and when a stop was requested (then
    it also stops the run, and :attr:`stopped` turns true). ``meta``: config path, text, seed and
    duration, stored in the manifest."""

    #: complete checkpoints kept (the newest and the one before it)
    KEEP = 2

    def __init__(self, sim, folder: str | Path, every: float | None, meta: dict, extra=None):
        self.sim, self.folder, self.meta, self.extra = sim, Path(folder), meta, extra
        self.stopped = False
        self.paused = False               # True: write nothing and leave stop requests to the caller
        self.written: list[int] = []
        self.seconds = 0.0
        if sim.rank == 0 and self.folder.is_dir():
            for stale in self.folder.glob(".tmp-step-*"):     # an attempt a killed run left behind
                shutil.rmtree(stale, ignore_errors=True)
        if every:
            steps = max(int(np.rint(every / sim.dt)), 1)
            sim.schedule(steps, self._periodic, order=90)
        sim.schedule(sim.P, self._check_stop, order=91)

    def _periodic(self, k: int) -> None:
        if self.paused:
            return
        if k > 0 and (not self.written or self.written[-1] != k):
            self.write(k)

    def _check_stop(self, k: int) -> None:
        if self.sim.stop_agreed and not self.stopped and not self.paused:
            if not self.written or self.written[-1] != k:
                self.write(k)
            self.stopped = True
            self.sim.net.stop()

    def write(self, k: int) -> Path:
        """Write a checkpoint of the state at the start of step ``k`` (collective: all ranks call it
        at the same step; from the scheduler, or between runs with ``k = sim.current_step()``)."""
        t0 = time.perf_counter()
        sim, comm = self.sim, self.sim.comm
        name = f"step-{k:012d}"
        tmp, final = self.folder / f".tmp-{name}", self.folder / name
        problem = None
        if sim.rank == 0:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                if tmp.exists():
                    shutil.rmtree(tmp)
                tmp.mkdir()
            except OSError as e:
                problem = f"cannot create {tmp} ({e.strerror})"
        problem = comm.bcast(problem, root=0)
        if problem:
            raise self._failed(problem, k)
        path = tmp / f"rank-{sim.rank:05d}.h5"
        state = sim.capture(k)
        if self.extra is not None and sim.rank == 0:
            state["extra"] = self.extra.capture()
        problem = _write_checked(path, state, sim.rank, comm)
        if problem:
            if sim.rank == 0:
                shutil.rmtree(tmp, ignore_errors=True)
            raise self._failed(problem, k)
        sums = comm.gather((path.name, _sha256(path)), root=0)
        if sim.rank == 0:
            manifest = dict(self.meta, format=FORMAT_VERSION, dtb_version=dtb.__version__, step=k, t_s=k * sim.dt,
                            dt_s=sim.dt, n_ranks=sim.size, fingerprint=fingerprint(sim.spec),
                            created=time.strftime("%Y-%m-%dT%H:%M:%S"), files=dict(sums))
            mpath = tmp / "manifest.json"
            with open(mpath, "w") as fh:
                json.dump(manifest, fh, indent=1)
                fh.flush()
                os.fsync(fh.fileno())
            _fsync_dir(tmp)
            if final.exists():
                shutil.rmtree(final)
            os.rename(tmp, final)
            latest_tmp = self.folder / ".LATEST.tmp"
            latest_tmp.write_text(name + "\n")
            with open(latest_tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(latest_tmp, self.folder / "LATEST")
            _fsync_dir(self.folder)
            kept = sorted(p.name for p in self.folder.glob("step-*"))[-self.KEEP:]
            for old in self.folder.iterdir():      # older checkpoints and abandoned attempts
                if (old.name.startswith("step-") and old.name not in kept) or old.name.startswith(".tmp-step-"):
                    shutil.rmtree(old, ignore_errors=True)
        comm.Barrier()
        self.written.append(k)
        self.seconds += time.perf_counter() - t0
        log.info("checkpoint at t = %.4g s -> %s (%.2f s)", k * sim.dt, final, time.perf_counter() - t0)
        return final


    def _failed(self, problem: str, k: int) -> DtbError:
        latest = self.folder / "LATEST"
        kept = f"the last checkpoint ({latest.read_text().strip()}) is intact: free space and resume from it " \
               f"with --resume" if latest.exists() else "no earlier checkpoint to resume from"
        return DtbError(f"checkpoint at t = {k * self.sim.dt:.4g} s not written: {problem}; {kept}")


def _write_checked(path: Path, state: dict, rank: int, comm) -> str | None:
    """Write a rank's file if every rank's file fits on its disk; what went wrong on any rank
    (the same answer on every rank: all write or none), or None. A full disk is found before
    anything is written (HDF5 failing in the middle of a write can crash the process)."""
    need = int(1.2 * array_bytes(state)) + 2**16
    free = free_bytes(path.parent)
    total_need = comm.allreduce(need)
    problem = None
    if free < total_need:
        problem = (f"{path.parent}: {free / 2**20:.2f} MB free, about {total_need / 2**20:.2f} MB needed "
                   f"(no space left on device)")
    problems = comm.allgather(problem)
    if any(problems):
        return next(p for p in problems if p)
    try:
        _write_rank_file(path, state, rank)
    except (OSError, RuntimeError, ValueError) as e:
        problem = f"{path}: {e}"
    problems = comm.allgather(problem)
    return next((p for p in problems if p), None)


def install_signal_handlers(sim, signals=(signal.SIGUSR1, signal.SIGTERM)) -> None:
    """On any of ``signals``, ask every rank to checkpoint and stop (see ``Simulation.request_stop``)."""
    def _handler(signum, frame):
        log.warning("signal %s: checkpointing at the next exchange, then stopping", signal.Signals(signum).name)
        sim.request_stop()
    for s in signals:
        signal.signal(s, _handler)


@dataclass
class CheckpointInfo:
    folder: Path          # the step-… folder
    manifest: dict


def find_checkpoint(path: str | Path) -> CheckpointInfo:
    """The newest complete checkpoint under ``path`` (a run's output folder, a checkpoint folder,
    or a ``step-…`` folder), with its manifest; checksums verified. Raises DtbError."""
    path = Path(path)
    if not path.exists():
        raise DtbError(f"{path}: no such folder to resume from")
    if (path / "manifest.json").exists():
        step_dir = path
    else:
        base = path / "checkpoint" if (path / "checkpoint" / "LATEST").exists() else path
        latest = base / "LATEST"
        if not latest.exists():
            raise DtbError(f"{path}: no checkpoint here (expected {path / 'checkpoint' / 'LATEST'}; write one with "
                           f"dtb run --checkpoint-every T, or stop a run with SIGUSR1)")
        step_dir = base / latest.read_text().strip()
    mpath = step_dir / "manifest.json"
    try:
        manifest = json.loads(mpath.read_text())
    except (OSError, ValueError) as e:
        raise DtbError(f"{mpath}: unreadable checkpoint manifest ({e})") from None
    for key in ("format", "dtb_version", "step", "n_ranks", "fingerprint", "files"):
        if key not in manifest:
            raise DtbError(f"{mpath}: field {key!r} missing: not a dtb checkpoint manifest")
    if manifest["format"] != FORMAT_VERSION or manifest["dtb_version"] != dtb.__version__:
        raise DtbError(f"{step_dir}: written by dtb {manifest['dtb_version']} (checkpoint format {manifest['format']}); "
                       f"this is dtb {dtb.__version__} (format {FORMAT_VERSION}): resume it with the version that "
                       f"wrote it")
    return CheckpointInfo(step_dir, manifest)


def verify(info: CheckpointInfo) -> None:
    """Check every rank file against the manifest's sha256 (DtbError naming the corrupt file)."""
    files = info.manifest["files"]
    if len(files) != info.manifest["n_ranks"]:
        raise DtbError(f"{info.folder}: the manifest lists {len(files)} files for {info.manifest['n_ranks']} ranks")
    for name, digest in files.items():
        p = info.folder / name
        if not p.exists():
            raise DtbError(f"{p}: missing from the checkpoint")
        if _sha256(p) != digest:
            raise DtbError(f"{p}: checksum mismatch: the checkpoint is corrupt (sha256 differs from its manifest)")


def check_compatible(info: CheckpointInfo, spec) -> None:
    fp = fingerprint(spec)
    if info.manifest["fingerprint"] != fp:
        raise DtbError(f"{info.folder}: this checkpoint belongs to another network or seed (config "
                       f"{info.manifest.get('config_path', '?')}, seed {info.manifest.get('seed', '?')}); the given "
                       f"config {spec.source} differs: resume with the config and seed that wrote it")


def restore(sim, info: CheckpointInfo, extra=None) -> None:
    """Load the checkpoint into a freshly built ``sim`` (any number of ranks; before run()), and
    the state of ``extra`` (e.g. the assimilation filter: an object with capture()/restore(dict)).
    A checkpoint whose files do not hold what this network needs is a DtbError naming it."""
    try:
        _restore(sim, info, extra)
    except DtbError:
        raise
    except (KeyError, ValueError, IndexError, TypeError, OSError, RuntimeError) as e:
        raise DtbError(f"{info.folder}: the checkpoint does not fit this network or is damaged "
                       f"({type(e).__name__}: {str(e)[:160]})") from None


def _restore(sim, info: CheckpointInfo, extra=None) -> None:
    step = int(info.manifest["step"])
    neurons: dict[str, list] = {}
    sp_g, sp_s, rows, bold, override, cpg = [], [], None, None, None, None
    plastic: dict[str, list] = {}
    recent = step - 1 - sim.max_delay_steps() - sim.D
    states: list = [None] * len(sim.state_monitors)
    for name in sorted(info.manifest["files"]):
        with h5py.File(info.folder / name, "r") as f:
            gid = f["neurons/gid"][()]
            mine = sim.locate(gid)[0]
            if mine.any():
                for key in f["neurons"]:
                    neurons.setdefault(key, []).append(f["neurons"][key][()][mine])
            g, s = f["spikes/gid"][()], f["spikes/step"][()]
            keep = sim.locate(g)[0] | (s >= recent)
            sp_g.append(g[keep])
            sp_s.append(s[keep])
            r = f["regions/rows"][()]
            rows = r if rows is None else rows + r
            for k in range(len(sim.state_monitors)):
                m = f[f"state/{k}"]
                part = (m["gids"][()], m["t"][()], {v: m[v][()] for v in m if v not in ("gids", "t")})
                states[k] = part if states[k] is None else _merge_state(states[k], part)
            if override is None and "stimuli/rate_override" in f:
                override = f["stimuli/rate_override"][()]
            if extra is not None and "extra" in f:
                extra.restore({k: f["extra"][k][()] for k in f["extra"]})
            if "cpg" in f:
                cpg = {name: f["cpg"][name][()] for name in f["cpg"]}
            if "plastic" in f:
                key = f["plastic/key"][()]
                mine = sim.locate(key[:, 1])[0] if len(key) else np.zeros(0, bool)
                for name in f["plastic"]:
                    plastic.setdefault(name, []).append(f["plastic"][name][()][mine])
            if "bold" in f:
                bold = {"signal": f["bold/signal"][()], "row": int(f["bold"].attrs["row"]),
                        "state": f["bold/state"][()] if "state" in f["bold"] else None}
    merged = {k: np.concatenate(v) for k, v in neurons.items()}
    for k, part in enumerate(states):          # columns by gid
        o = np.argsort(part[0])
        states[k] = (part[0][o], part[1], {v: a[:, o] for v, a in part[2].items()})
    sim.restore(step, merged, np.concatenate(sp_g), np.concatenate(sp_s), rows, states, bold, override, cpg,
                {k: np.concatenate(v) for k, v in plastic.items()} if plastic else None)


def _merge_state(a, b):
    """Join the columns (gids) of two ranks' recordings of one monitor, sorted by gid."""
    ga, ta, da = a
    gb, tb, db = b
    if len(gb) == 0:
        return a
    if len(ga) == 0:
        return b
    g = np.concatenate([ga, gb])
    o = np.argsort(g)
    return g[o], ta if len(ta) else tb, {v: np.concatenate([da[v], db[v]], axis=1)[:, o] for v in da}

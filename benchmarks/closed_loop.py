"""Closed-loop benchmark: bridge latency and throughput with roslibpy, and the real-time factor of
the default motor circuit (dtb/examples/motor_loop.toml, 10,400 neurons, 100 CPGs) with the
MuJoCo rat in lockstep, split into brain, body and bridge; the brain alone beside NEST running
the same network with the same CPG drive.

    python benchmarks/closed_loop.py [--duration 8] [--messages 2000] [--skip-nest]

Bridge peers, side by side on this machine: a bare websocket echo (the `websockets` package, no
rosbridge layer: the floor any websocket bridge pays), and our server between a host and a
roslibpy client, and between two roslibpy clients.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "dtb" / "examples" / "motor_loop.toml"
sys.path.insert(0, str(ROOT / "benchmarks"))

FLOATS8 = {"layout": {"dim": [], "data_offset": 0}, "data": [1.5] * 8}


def _stats(seconds: list[float]) -> str:
    ms = np.array(seconds) * 1e3
    return f"median {np.median(ms):.2f} ms, p99 {np.percentile(ms, 99):.2f} ms"


def bare_websocket_echo(n: int) -> list[float]:
    """Round trips of a small JSON text through a plain websockets echo server."""
    import websockets

    async def main():
        async def echo(ws):
            async for m in ws:
                await ws.send(m)
        async with websockets.serve(echo, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            async with websockets.connect(f"ws://127.0.0.1:{port}") as ws:
                text = json.dumps({"op": "publish", "topic": "/x", "msg": FLOATS8})
                out = []
                for _ in range(n):
                    t0 = time.perf_counter()
                    await ws.send(text)
                    await ws.recv()
                    out.append(time.perf_counter() - t0)
                return out
    return asyncio.run(main())


def _roslibpy_client(port: int):
    import roslibpy
    from bridges.body_node import _no_delay
    ros = roslibpy.Ros(host="127.0.0.1", port=port)
    ros.run()
    _no_delay(ros)
    return ros


def host_to_roslibpy(n: int) -> list[float]:
    """The brain's view: the hosting process publishes, a roslibpy client answers (as the body does)."""
    import roslibpy
    from bridges.rosbridge import RosbridgeServer
    server = RosbridgeServer("127.0.0.1", 0).start_in_thread()
    ros = _roslibpy_client(server.port)
    pong = roslibpy.Topic(ros, "/pong", "std_msgs/Float64MultiArray")
    pong.advertise()
    roslibpy.Topic(ros, "/ping", "std_msgs/Float64MultiArray").subscribe(lambda m: pong.publish(roslibpy.Message(m)))
    got = threading.Event()
    server.on("/pong", lambda m: got.set())
    while not server.subscribers("/ping"):
        time.sleep(0.01)
    out = []
    for _ in range(n):
        got.clear()
        t0 = time.perf_counter()
        server.publish("/ping", FLOATS8, "std_msgs/Float64MultiArray")
        got.wait(5)
        out.append(time.perf_counter() - t0)
    ros.close()
    server.stop()
    return out


def roslibpy_to_roslibpy(n: int, burst: int) -> tuple[list[float], float]:
    """Two roslibpy clients through the server: round trips (A publishes, B echoes), then the
    rate at which B receives a burst of messages A publishes as fast as it can."""
    import roslibpy
    from bridges.rosbridge import RosbridgeServer
    server = RosbridgeServer("127.0.0.1", 0).start_in_thread()
    a, b = _roslibpy_client(server.port), _roslibpy_client(server.port)
    ping = roslibpy.Topic(a, "/ping", "std_msgs/Float64MultiArray")
    pong_b = roslibpy.Topic(b, "/pong", "std_msgs/Float64MultiArray")
    ping.advertise()
    pong_b.advertise()
    got = threading.Event()
    count = [0]
    done = threading.Event()

    def on_ping(m):
        if m["data"][0] < 0:                      # throughput phase: count only
            count[0] += 1
            if count[0] == burst:
                done.set()
        else:
            pong_b.publish(roslibpy.Message(m))
    roslibpy.Topic(b, "/ping", "std_msgs/Float64MultiArray").subscribe(on_ping)
    roslibpy.Topic(a, "/pong", "std_msgs/Float64MultiArray").subscribe(lambda m: got.set())
    while server.subscribers("/ping") < 1 or server.subscribers("/pong") < 1:
        time.sleep(0.01)
    out = []
    for _ in range(n):
        got.clear()
        t0 = time.perf_counter()
        ping.publish(roslibpy.Message(FLOATS8))
        got.wait(5)
        out.append(time.perf_counter() - t0)
    neg = {"layout": {"dim": [], "data_offset": 0}, "data": [-1.0] * 8}
    t0 = time.perf_counter()
    for _ in range(burst):
        ping.publish(roslibpy.Message(neg))
    done.wait(60)
    rate = count[0] / (time.perf_counter() - t0)
    a.close()
    b.close()
    server.stop()
    return out, rate


def closed_loop(duration: float, ranks: int, out: Path) -> dict:
    subprocess.run([sys.executable, "-m", "dtb", "closed-loop", str(CONFIG), "--duration", f"{duration} s",
                    "--ranks", str(ranks), "--out", str(out), "-q", "--no-plots"], check=True,
                   stdout=subprocess.DEVNULL)
    return json.loads((out / "closed_loop.json").read_text())


def brain_alone(cfg: Path, duration: float, ranks: int, out: Path) -> dict:
    subprocess.run([sys.executable, "-m", "dtb", "run", str(cfg), "--duration", f"{duration} s", "--ranks", str(ranks),
                    "--out", str(out), "-q", "--no-plots"], check=True, stdout=subprocess.DEVNULL)
    return json.loads((out / "summary.json").read_text())


def nest_with_cpg_drive(cfg: str, cpg_run: str) -> dict:
    """NEST (iaf_cond_exp, 2 threads) on the same network; each pool block gets the CPG drive its
    oscillator gave in the dtb run (inhomogeneous_poisson_generator, rate = cpg.rate x y(t))."""
    import h5py
    import nest
    from engine import nest_build, nest_simulate
    from dtb.spec import load_spec

    spec = load_spec(cfg)
    pops, n_syn, rss0 = nest_build(spec, threads=2)
    with h5py.File(cpg_run) as f:
        t_ms, y = f["cpg/t_ms"][()], f["cpg/y"][()]
    cpg = spec.cpg
    t_ms = np.maximum(t_ms, spec.simulation.dt * 1e3 * 2)
    first = 0
    for g in cpg.groups:
        for unit, name in enumerate((g.flexor, g.extensor)):
            ids = pops[name]
            size = len(ids)
            for k in range(g.count):
                block = ids[k * size // g.count:(k + 1) * size // g.count]
                gen = nest.Create("inhomogeneous_poisson_generator",
                                  params={"rate_times": list(np.round(t_ms, 1)),
                                          "rate_values": list(cpg.rate * y[:, first + k, unit])})
                nest.Connect(gen, block, syn_spec={"weight": cpg.weight * 1e9, "delay": spec.simulation.dt * 1e3})
        first += g.count
    return nest_simulate(spec, pops, n_syn, rss0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=8.0, help="biological seconds of the closed loop (default 8)")
    ap.add_argument("--messages", type=int, default=2000, help="round trips per latency test (default 2000)")
    ap.add_argument("--skip-nest", action="store_true")
    ap.add_argument("--nest", nargs=2, metavar=("CONFIG", "RUN_H5"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.nest:
        print(json.dumps(nest_with_cpg_drive(*args.nest)))
        return
    print(f"this machine: {os.cpu_count()} cores\n")
    print(f"bridge round trips ({args.messages} messages of 8 float64), one machine:")
    print(f"  bare websocket echo (websockets, no rosbridge)      {_stats(bare_websocket_echo(args.messages))}")
    print(f"  host -> roslibpy client -> host (the brain's view)  {_stats(host_to_roslibpy(args.messages))}")
    rt, rate = roslibpy_to_roslibpy(args.messages, 5 * args.messages)
    print(f"  roslibpy -> server -> roslibpy -> server -> back    {_stats(rt)}")
    print(f"  throughput roslibpy -> roslibpy: {rate:,.0f} messages/s\n")

    tmp = Path(tempfile.mkdtemp(prefix="dtb-loop-"))
    text = CONFIG.read_text()
    brain_cfg = tmp / "motor_brain.toml"
    brain_cfg.write_text(text[:text.index("[bridge]")])
    # warm the compile caches (1 and 2 ranks)
    closed_loop(0.2, 1, tmp / "warm")
    brain_alone(brain_cfg, 0.2, 2, tmp / "warm2")
    print(f"closed loop, {CONFIG.name} (10,400 neurons, 100 CPGs, dt 0.5 ms), {args.duration:g} s, rat in lockstep "
          f"(sensory delay 1 period):")
    print(f"  {'':<22}{'real-time factor':>17}{'brain s':>9}{'bridge wait s':>15}{'body physics s':>16}"
          f"{'walked cm':>11}{'stepping Hz':>13}{'CPG Hz':>8}")
    for ranks in (1, 2):
        s = closed_loop(args.duration, ranks, tmp / f"loop{ranks}")
        print(f"  {f'dtb, {ranks} rank(s)':<22}{s['realtime_factor']:>17.2f}{s['brain_wall_s'] - s['bridge_wait_s']:>9.2f}"
              f"{s['bridge_wait_s']:>15.2f}{s['body_step_wall_s']:>16.2f}{s['distance_forward_m'] * 100:>11.1f}"
              f"{s['stepping_frequency_mean_hz']:>13.2f}{s['cpg_frequency_hz']:>8.2f}")
    print("\nthe brain alone (no body, no bridge; S1 silent):")
    for ranks in (1, 2):
        s = brain_alone(brain_cfg, args.duration, ranks, tmp / f"brain{ranks}")
        print(f"  dtb, {ranks} rank(s): {s['wall_s'] / args.duration:.2f} s per biological second, "
              f"{s['spikes']:,} spikes, peak RSS {max(s['peak_rss_mb_per_rank']):.0f} MB per rank")
    if not args.skip_nest:
        try:
            out = subprocess.run([sys.executable, __file__, "--nest", str(brain_cfg), str(tmp / "brain1" / "run.h5")],
                                 check=True, capture_output=True, text=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            spikes = sum(r["rates"][p] * n for p, n in _sizes(brain_cfg).items()) * args.duration
            print(f"  NEST 3.10 iaf_cond_exp, 2 threads, same CPG drive: {r['wall'] / args.duration:.2f} s per biological "
                  f"second, {spikes:,.0f} spikes, peak RSS {r['rss_mb'][0]:.0f} MB")
        except (subprocess.CalledProcessError, ImportError) as e:
            print(f"  NEST: not run ({e}); pip install nest-simulator")


def _sizes(cfg: Path) -> dict[str, int]:
    from dtb.spec import load_spec
    return {p.name: p.size for p in load_spec(cfg).populations}


if __name__ == "__main__":
    main()

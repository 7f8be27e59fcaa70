"""Brain and body together: ``dtb run`` (hosting the rosbridge server) and ``dtb body`` as two
processes, the way ``dtb closed-loop`` and ``dtb experiment`` start them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dtb.errors import DtbError


def run_brain_and_body(config: str, spec, out: Path, port: int, body_args: list[str], brain_args: list[str],
                       quiet: bool) -> int:
    """Start the body (``dtb body`` + body_args) and the brain (``dtb run`` + brain_args, hosting
    the bridge) as two processes, wait for both; the brain's exit status (DtbError if the body
    failed). Writes OUT/run.h5 and OUT/body.h5."""
    import signal
    import socket
    if port == 0:
        with socket.socket() as sock:
            sock.bind((spec.bridge.host, 0))
            port = sock.getsockname()[1]
    py = [sys.executable, "-P", "-m", "dtb"]
    q = ["--quiet"] if quiet else []
    body = subprocess.Popen(py + ["body", "--host", spec.bridge.host, "--port", str(port), "--mode", spec.bridge.mode,
                                  "--period", f"{spec.bridge.period * 1e3:g} ms", "--connect-timeout", "600 s",
                                  "--out", str(out / "body.h5")] + body_args + q
                            + (["--auth-secret", spec.bridge.auth_secret] if spec.bridge.auth_secret else []))
    brain = subprocess.Popen(py + ["run", config, "--out", str(out), "--bridge-port", str(port), "--no-progress"]
                             + brain_args + q)
    try:
        code = brain.wait()
    except KeyboardInterrupt:
        brain.send_signal(signal.SIGINT)
        code = brain.wait()
    try:
        body_code = body.wait(timeout=60)
    except subprocess.TimeoutExpired:
        body.terminate()
        body_code = body.wait(timeout=30)
    if code != 0:
        if body.poll() is None:
            body.terminate()
        return code
    if body_code != 0 or not (out / "body.h5").exists():
        raise DtbError(f"the body process failed (exit {body_code}); the brain's results are in {out}")
    return 0

"""rosauth's message authentication code, as rosbridge's ``auth`` op carries it: the client gets
``mac = sha512_hex(secret + client + dest + rand + str(t) + level + str(end))`` from a trusted
source that knows the secret (t and end: whole seconds since the epoch; each may come as a number
or as ROS time ``{"secs": s, "nsecs": n}``), and the server accepts it while |now - t| < 5 s and
end is in the future (rosauth's ``allowed_time_delta`` default)."""

from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path

ALLOWED_TIME_DELTA_S = 5.0


def read_secret(path: str | Path) -> str:
    """The secret: the first line of ``path`` (rosauth's secret file)."""
    from dtb.errors import DtbError
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        raise DtbError(f"{path}: cannot read the authentication secret ({e.strerror})") from None
    secret = lines[0].strip() if lines else ""
    if len(secret) < 16:
        raise DtbError(f"{path}: the authentication secret must be at least 16 characters on its first line")
    return secret


def _seconds(v) -> int | None:
    if isinstance(v, dict) and isinstance(v.get("secs"), int):
        return v["secs"]
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return int(v)
    return None


def mac(secret: str, client: str, dest: str, rand: str, t: int, level: str, end: int) -> str:
    return hashlib.sha512(f"{secret}{client}{dest}{rand}{t}{level}{end}".encode()).hexdigest()


def verify(secret: str, msg: dict, now: float | None = None) -> str:
    """'' if ``msg`` (an auth op) is valid now, else what is wrong."""
    fields = {k: msg.get(k) for k in ("mac", "client", "dest", "rand", "level")}
    if not all(isinstance(v, str) for v in fields.values()):
        return "fields mac, client, dest, rand and level must be strings"
    t, end = _seconds(msg.get("t")), _seconds(msg.get("end"))
    if t is None or end is None:
        return "fields t and end must be times (seconds, or {secs, nsecs})"
    now = time.time() if now is None else now
    if abs(now - t) >= ALLOWED_TIME_DELTA_S or end <= now:
        return "expired or not yet valid (t must be within 5 s of the server's clock, end in the future)"
    expected = mac(secret, fields["client"], fields["dest"], fields["rand"], t, fields["level"], end)
    return "" if hmac.compare_digest(expected, fields["mac"]) else "wrong MAC"


def client_auth(secret: str, dest: str, level: str = "user", valid_s: int = 3600) -> dict:
    """The arguments of roslibpy's ``Ros.authenticate`` for a client that knows the secret itself."""
    import secrets
    t = int(time.time())
    rand = secrets.token_hex(8)
    return {"mac": mac(secret, "dtb", dest, rand, t, level, t + valid_s), "client": "dtb", "dest": dest,
            "rand": rand, "t": t, "level": level, "end": t + valid_s}

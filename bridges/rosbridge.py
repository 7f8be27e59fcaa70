"""The rosbridge v2 server's websocket transport, so that real ROS tooling (roslibjs, roslibpy,
ROS web tools) can publish sensory input to the twin and subscribe to its motor output. The
protocol itself (operations, limits, what a client may hold) is :mod:`bridges.protocol`.

Transport: one reader and one writer per connection; the writer drains the client's bounded
outbox (:mod:`bridges.outbox`), so a client that reads slowly or never costs at most the outbox's
caps and never slows the others. Frames above ``max_message_size`` close the connection (as
rosbridge_suite's ``max_message_size``); connections from a web page are refused unless its
origin is allowed (``allowed_origins``: a page on any site could otherwise drive the bridge
through the user's browser); with ``auth_secret`` every client must authenticate first (the
``auth`` op) or is disconnected. Binds 127.0.0.1 by default.

The process that hosts the server (dtb, a body model) talks to it in-process:
:meth:`RosbridgeServer.publish`, :meth:`RosbridgeServer.latest`, :meth:`RosbridgeServer.on`
and :meth:`RosbridgeServer.advertise_local_service`, thread-safe while the server runs in its own
thread (:meth:`start_in_thread`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, Callable

from bridges import messages
from bridges.protocol import BridgeProtocol, Limits, Refused, Session, Topic

log = logging.getLogger(__name__)

#: frames buffered per connection before its reader falls behind (each up to the message size)
INCOMING_FRAMES = 4


class RosbridgeServer:
    """Bind to ``host:port`` (port 0: any free port, see :attr:`port` after start)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 9090, limits: Limits | None = None,
                 auth_secret: str | None = None, allowed_origins: tuple[str, ...] = (),
                 allow_unknown_types: bool = False):
        self.host, self.port = host, port
        self.limits = limits or Limits()
        self.allowed_origins = tuple(allowed_origins)
        self.protocol = BridgeProtocol(self.limits, self._schedule, auth_secret, allow_unknown_types)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    # state, for the hosting process and the tests
    @property
    def clients(self) -> dict[int, Session]:
        return self.protocol.sessions

    @property
    def services(self) -> dict:
        return self.protocol.services

    @property
    def pending_calls(self) -> dict:
        return self.protocol.pending_calls

    @property
    def topics(self) -> dict[str, Topic]:
        return self.protocol.topics

    @property
    def stats(self) -> dict[str, int]:
        return self.protocol.stats

    def _schedule(self, delay: float, fn: Callable[[], None]) -> None:
        self._loop.call_later(delay, fn)

    # ------------------------------------------------------------------ running
    async def serve(self) -> None:
        """Serve until cancelled."""
        import websockets
        self._loop = asyncio.get_running_loop()
        origins = [None, *self.allowed_origins]        # None: no Origin header (not a browser)
        async with websockets.serve(self._connection, self.host, self.port, origins=origins,
                                    max_size=self.limits.max_message_size + 2**16, max_queue=INCOMING_FRAMES,
                                    ping_interval=20, ping_timeout=20, close_timeout=1) as server:
            self._server = server
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            while True:
                await asyncio.sleep(1.0)
                self.protocol.expire_fragments()

    def start_in_thread(self) -> "RosbridgeServer":
        """Run the server in a daemon thread; returns once it listens."""
        def _run():
            try:
                asyncio.run(self.serve())
            except asyncio.CancelledError:
                pass
        self._thread = threading.Thread(target=_run, name="rosbridge", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"the rosbridge server did not start on {self.host}:{self.port}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
            self._loop.call_soon_threadsafe(lambda: [t.cancel() for t in asyncio.all_tasks(self._loop)])
        if self._thread is not None:
            self._thread.join(5)

    # --------------------------------------------------------- in-process API
    def publish(self, topic: str, msg: dict, type_name: str | None = None) -> None:
        """Publish from the hosting process (thread-safe); the topic is watched from then on."""
        if type_name is not None:
            msg = messages.validate(type_name, msg)
        if self._loop is None:
            raise RuntimeError("the server is not running")
        self._loop.call_soon_threadsafe(self._publish_local, topic, msg, type_name)

    def _publish_local(self, topic: str, msg: dict, type_name: str | None) -> None:
        t = self.protocol.topics.setdefault(topic, Topic())
        t.watched = True
        if type_name is not None and t.type is None:
            t.type = type_name
        self.protocol.deliver(topic, msg, None)

    def latest(self, topic: str) -> Any:
        """The last message published on a topic the hosting process watches (:meth:`on`,
        :meth:`publish`), or None."""
        t = self.protocol.topics.get(topic)
        return None if t is None else t.latest

    def subscribers(self, topic: str) -> int:
        """How many clients subscribe to ``topic`` now."""
        return sum(1 for c in list(self.protocol.sessions.values()) if topic in c.subscriptions)

    def on(self, topic: str, fn: Callable[[dict], None]) -> None:
        """Call ``fn(msg)`` (in the server thread) for every message published on ``topic``."""
        self.protocol.local_handlers.setdefault(topic, []).append(fn)

    def advertise_local_service(self, name: str, type_name: str, fn: Callable[[dict], dict]) -> None:
        """Serve ``name`` from the hosting process: ``fn(args) -> values``."""
        self.protocol.services[name] = (type_name, None, fn)

    # ------------------------------------------------------------ connections
    async def _connection(self, ws) -> None:
        import websockets
        try:
            s = self.protocol.open()
        except Refused as e:
            log.warning("connection refused: %s", e)
            await ws.close(1013, str(e)[:100])
            return
        writer = asyncio.ensure_future(self._write(ws, s))
        try:
            async for frame in ws:
                self.protocol.handle_text(s, frame)
                await asyncio.sleep(0)          # let the other connections in: a flood must not starve them
        except Refused as e:
            log.warning("%s: disconnected", e)
            await ws.close(1008, "authenticate first (op auth)")
        except websockets.ConnectionClosed:
            pass
        except Exception:     # never let one client take the server down
            log.exception("client %d: unexpected error", s.cid)
        finally:
            self.protocol.close(s)
            await asyncio.wait([writer], timeout=1)
            writer.cancel()

    async def _write(self, ws, s: Session) -> None:
        """Send the client's outbox, one message at a time, as fast as the client reads."""
        import websockets
        while True:
            text = await s.outbox.get()
            if text is None:
                return
            try:
                await ws.send(text)
            except websockets.ConnectionClosed:
                return


def serve_forever(server: RosbridgeServer) -> None:
    """``dtb bridge``: run the server in the foreground until Ctrl-C."""
    try:
        asyncio.run(_announce(server))
    except KeyboardInterrupt:
        pass


async def _announce(server: RosbridgeServer) -> None:
    task = asyncio.ensure_future(server.serve())
    while not server._ready.is_set():
        await asyncio.sleep(0.01)
        if task.done():
            task.result()
    auth = "clients must authenticate (op auth)" if server.protocol.auth_secret else "no authentication"
    origins = ", ".join(server.allowed_origins) or "none"
    print(f"dtb bridge: rosbridge v2 server on ws://{server.host}:{server.port} ({auth}; browser origins allowed: "
          f"{origins}; messages up to {server.limits.max_message_size} bytes) — Ctrl-C to stop", flush=True)
    await task

"""A client's bounded outgoing queue: what the server holds for a client that reads slowly (or
never) is capped in messages and in bytes, the oldest dropped first; a subscription with a
``queue_length`` keeps at most that many of its own messages waiting (rosbridge_suite's
``queue_length``). Knows nothing of sockets: the transport takes messages out with :meth:`get`."""

from __future__ import annotations

import asyncio
import collections


class _Entry:
    __slots__ = ("text", "key", "alive")

    def __init__(self, text: str, key: str | None):
        self.text, self.key, self.alive = text, key, True


class Outbox:
    """At most ``max_messages`` messages and ``max_bytes`` bytes (of UTF-8 text, counted as its
    length) wait; :attr:`dropped` counts what was dropped to keep the caps."""

    def __init__(self, max_messages: int, max_bytes: int):
        self.max_messages, self.max_bytes = int(max_messages), int(max_bytes)
        self._queue: collections.deque[_Entry] = collections.deque()
        self._by_key: dict[str, collections.deque[_Entry]] = {}
        self._count = 0
        self.bytes = 0
        self.dropped = 0
        self._ready = asyncio.Event()
        self.closed = False

    def __len__(self) -> int:
        return self._count

    def put(self, text: str, key: str | None = None, limit: int = 0) -> int:
        """Queue ``text``; with ``key`` and ``limit`` > 0 at most ``limit`` messages of that key
        wait (its oldest go first). Returns how many messages were dropped to make room."""
        if self.closed:
            return 0
        before = self.dropped
        entry = _Entry(text, key)
        if key is not None:
            same = self._by_key.setdefault(key, collections.deque())
            while limit > 0 and len(same) >= limit:
                self._kill(same.popleft())
            same.append(entry)
        self._queue.append(entry)
        self._count += 1
        self.bytes += len(text)
        while self._count > 1 and (self._count > self.max_messages or self.bytes > self.max_bytes):
            self._kill(self._oldest(), from_key=True)
        self._ready.set()
        return self.dropped - before

    def _oldest(self) -> _Entry:
        while not self._queue[0].alive:
            self._queue.popleft()
        return self._queue[0]

    def _kill(self, entry: _Entry, from_key: bool = False) -> None:
        """Drop a waiting message (it stays in the main deque, dead, until it reaches the front)."""
        entry.alive = False
        self._count -= 1
        self.bytes -= len(entry.text)
        entry.text = ""                             # freed now, even while the entry waits to be skipped
        self.dropped += 1
        if from_key and entry.key is not None:
            self._by_key[entry.key].popleft()       # the oldest alive of all is the oldest of its key
        self._forget_key(entry.key)

    def _forget_key(self, key: str | None) -> None:
        if key is not None and not self._by_key.get(key, True):
            del self._by_key[key]

    async def get(self) -> str | None:
        """The oldest waiting message (waits for one); None once closed and empty."""
        while True:
            while self._queue and not self._queue[0].alive:
                self._queue.popleft()
            if self._queue:
                entry = self._queue.popleft()
                self._count -= 1
                self.bytes -= len(entry.text)
                if entry.key is not None:
                    self._by_key[entry.key].popleft()
                    self._forget_key(entry.key)
                return entry.text
            if self.closed:
                return None
            self._ready.clear()
            await self._ready.wait()

    def close(self) -> None:
        """No more messages: :meth:`get` returns None once the queue is empty; what waits is freed."""
        self.closed = True
        self._queue.clear()
        self._by_key.clear()
        self._count = self.bytes = 0
        self._ready.set()

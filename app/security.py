"""Who may call, and how often: API keys compared in constant time, and a token bucket per
client held in bounded memory. The ASGI side of both is `middleware.AccessMiddleware`."""

from __future__ import annotations

import hmac
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from pydantic import SecretStr

from app.routes import docs, playground

# Open with keys configured and never rate limited: orchestrators probe health without
# credentials, and the docs and the playground must load before a person can enter a key in
# them (the contract they show is public anyway). /metrics is not here: it takes the key like the API.
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json", "/docs", docs.OAUTH2_REDIRECT, "/redoc", "/"})
OPEN_PREFIXES = (docs.ASSETS + "/", playground.ASSETS + "/")


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


class KeyRing:
    """The accepted API keys. A key is named by its position ("key-1"), so that the rate limit
    and the logs can tell callers apart without holding or printing the secret."""

    def __init__(self, keys: Iterable[SecretStr]):
        self._keys = [key.get_secret_value().encode() for key in keys]

    def identify(self, presented: str) -> str | None:
        """The name of the key presented, or None. Every key is compared, each in constant
        time, so the time taken does not tell how much of a key was right."""
        candidate = presented.encode("utf-8", "surrogateescape")
        matches = [hmac.compare_digest(candidate, key) for key in self._keys]
        return f"key-{matches.index(True) + 1}" if any(matches) else None


class TokenBuckets:
    """A token bucket per client: `burst` requests at once, refilled at `rate` per second.

    At most `max_clients` buckets are kept; a new client past that evicts the least recently
    seen one, so made-up identities cannot grow memory. An evicted client comes back with a
    full bucket, which is what it would have had after a pause of burst / rate seconds."""

    def __init__(self, rate: float, burst: int, max_clients: int, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.burst = burst
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client: (tokens, when)

    def take(self, client: str) -> int:
        """Takes a token for `client`: 0 when it had one, else the whole seconds until it will."""
        now = self.clock()
        tokens, then = self._buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        taken = tokens >= 1
        self._buckets[client] = (tokens - 1 if taken else tokens, now)
        if len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return 0 if taken else math.ceil((1 - tokens) / self.rate)

    def __len__(self) -> int:
        return len(self._buckets)

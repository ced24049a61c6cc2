"""Live change events: one broker per process fans revisions out to its open streams.

- `broker`: the streams (bounded queues: a subscriber `events_queue_size` events behind is
  dropped, SLOW_CONSUMER), the total, per-key and per-organisation caps, the fan-out (after
  the keys are read again), where a new stream starts, the source's lifetime;
- `sources`: where revisions come from (PostgreSQL LISTEN/NOTIFY, sent by a trigger; SQLite
  polling);
- `keys`: the open streams' API keys re-checked (a revoked or expired key's streams close);
- `resume`: replay after an event id, then the live stream, for SSE and GraphQL alike.

Shutdown (refusing new streams, closing the open ones) is started by app/shutdown.py.
"""

from app.events.broker import (
    Broker,
    EventsUnavailable,
    ShuttingDown,
    SlowConsumer,
    Stream,
    TooManyStreams,
    TooManyStreamsForKey,
    TooManyStreamsForOrg,
)
from app.events.resume import Resume

__all__ = [
    "Broker",
    "EventsUnavailable",
    "Resume",
    "ShuttingDown",
    "SlowConsumer",
    "Stream",
    "TooManyStreams",
    "TooManyStreamsForKey",
    "TooManyStreamsForOrg",
]

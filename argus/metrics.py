"""Operational metrics, exposed by ``GET /metrics`` in the Prometheus text format.

Why plain integer counters behind a custom collector rather than ``prometheus_client``
``Counter`` objects on the hot path: the streaming path runs on one trio thread and counts
every batch a sender writes; an attribute increment costs a few nanoseconds, a
``Counter.inc()`` takes a lock. The collector turns the counters into Prometheus families
only when scraped, and reads the gauges (sessions, clients, replay bytes, queue depths,
nodes) from the live objects at that moment, so they cost nothing between scrapes.

Labels are bounded: kinds, outcomes and surfaces come from small fixed sets (anything else
is counted as ``other``); session ids are never labels.

Store transaction latency is a real ``prometheus_client.Histogram``: it is observed on the
store's worker thread (thread-safe by the library's lock), once per transaction.
"""

from __future__ import annotations

import collections
import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

SURFACES = ("ws", "remote", "nodes_ws", "mcp", "http")
TURN_KINDS = ("client", "user", "followup", "event", "heartbeat", "cron")
INVOKE_OUTCOMES = (
    "ok",
    "error",
    "not_connected",
    "unsupported",
    "busy",
    "bad_params",
    "unavailable",
    "timeout",
    "node_disconnected",
    "node_replaced",
)
CRON_OUTCOMES = ("ok", "failed")


class Bounded(collections.Counter[str]):
    """A counter keyed by one label whose values come from a fixed set (else ``other``)."""

    def __init__(self, allowed: Iterable[str]) -> None:
        super().__init__()
        self.allowed = frozenset(allowed)

    def add(self, key: str, n: int = 1) -> None:
        """Count ``n`` under ``key`` (``other`` when the key is not one of the allowed)."""
        self[key if key in self.allowed else "other"] += n


@dataclass
class Stats:
    """The daemon's counters; plain attributes, incremented on the trio thread."""

    frames_in: Bounded = field(default_factory=lambda: Bounded(SURFACES))
    bytes_in: Bounded = field(default_factory=lambda: Bounded(SURFACES))
    frames_out: int = 0
    bytes_out: int = 0
    clients_lagging_closed: int = 0
    coalesced_deltas: int = 0
    turns_started: Bounded = field(default_factory=lambda: Bounded(TURN_KINDS))
    turns_completed: Bounded = field(default_factory=lambda: Bounded(TURN_KINDS))
    cron_runs: Bounded = field(default_factory=lambda: Bounded(CRON_OUTCOMES))
    node_invokes: Bounded = field(default_factory=lambda: Bounded(INVOKE_OUTCOMES))
    auth_failures: Bounded = field(default_factory=lambda: Bounded(SURFACES))
    auth_rate_limited: Bounded = field(default_factory=lambda: Bounded(SURFACES))


#: The process's counters (one daemon per process).
STATS = Stats()

#: The registry /metrics serves. Not the library's global one: importing Argus in a test
#: process must not mix its metrics with anything else's.
REGISTRY = CollectorRegistry(auto_describe=True)

STORE_TXN_SECONDS = Histogram(
    "argus_store_transaction_seconds",
    "Time one store transaction took on the store thread (BEGIN to COMMIT).",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
    registry=REGISTRY,
)


async def _nothing() -> None:
    return None


@dataclass
class Sources:
    """Where the collector reads live gauges from (set by the daemon once it is built).

    ``refresh`` runs before each scrape (in the request's task) for what needs the store:
    it fills ``queue_depths`` from one read transaction.
    """

    sessions: Callable[[], Iterable[Any]] = lambda: ()
    nodes_connected: Callable[[], int] = lambda: 0
    refresh: Callable[[], Awaitable[None]] = _nothing
    queue_depths: dict[str, int] = field(default_factory=dict)


def queue_depths(conn: Any) -> dict[str, int]:
    """Store read (run by ``Store.run``): follow-ups and system events queued."""
    total, fullest = conn.execute(
        "SELECT COALESCE(SUM(c), 0), COALESCE(MAX(c), 0) FROM"
        " (SELECT COUNT(*) AS c FROM followups GROUP BY session_id, thread_id)"
    ).fetchone()
    (events,) = conn.execute("SELECT COUNT(*) FROM system_events").fetchone()
    return {"followups": total, "followups_max_lane": fullest, "events": events}


SOURCES = Sources()


def _counter(name: str, doc: str, value: int) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _labelled(name: str, doc: str, label: str, counts: Bounded) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=[label])
    for key in sorted(counts.allowed | set(counts)):
        family.add_metric([key], counts.get(key, 0))
    return family


class ArgusCollector(Collector):
    """Builds every Argus family at scrape time from ``STATS`` and ``SOURCES``."""

    def collect(self) -> Iterator[Any]:
        """The families, in a stable order."""
        s = STATS
        states: collections.Counter[str] = collections.Counter({"running": 0, "stopped": 0})
        clients = 0
        replay_bytes = 0
        for session in SOURCES.sessions():
            states[session.state] += 1
            clients += len(session.subscribers)
            replay_bytes += session.replay.retained_bytes
        family = GaugeMetricFamily("argus_sessions", "Sessions by state.", labels=["state"])
        for state, n in sorted(states.items()):
            family.add_metric([state], n)
        yield family
        yield GaugeMetricFamily("argus_clients", "Attached /ws clients.", value=clients)
        yield GaugeMetricFamily(
            "argus_replay_log_bytes", "Bytes retained in all replay logs.", value=replay_bytes
        )
        yield GaugeMetricFamily(
            "argus_python_heap_blocks",
            "Memory blocks the Python allocator has live (sys.getallocatedblocks).",
            value=sys.getallocatedblocks(),
        )
        yield GaugeMetricFamily(
            "argus_nodes_connected",
            "Nodes connected on /nodes/ws.",
            value=SOURCES.nodes_connected(),
        )
        depths = SOURCES.queue_depths
        yield GaugeMetricFamily(
            "argus_followups_queued",
            "Queued follow-up inputs, all lanes.",
            value=depths.get("followups", 0),
        )
        yield GaugeMetricFamily(
            "argus_followups_queued_max_lane",
            "Queued follow-up inputs of the fullest lane.",
            value=depths.get("followups_max_lane", 0),
        )
        yield GaugeMetricFamily(
            "argus_system_events_queued",
            "Queued system events, all threads.",
            value=depths.get("events", 0),
        )
        yield _labelled("argus_frames_in", "Client frames received.", "surface", s.frames_in)
        yield _labelled("argus_bytes_in", "Client frame bytes received.", "surface", s.bytes_in)
        yield _counter("argus_frames_out", "Frames sent to /ws clients.", s.frames_out)
        yield _counter("argus_bytes_out", "Characters sent to /ws clients.", s.bytes_out)
        yield _counter(
            "argus_clients_lagging_closed",
            "Clients closed with 1013 for falling behind.",
            s.clients_lagging_closed,
        )
        yield _counter(
            "argus_coalesced_deltas",
            "Deltas merged into a previous one for a lagging client.",
            s.coalesced_deltas,
        )
        yield _labelled("argus_turns_started", "Turns started, by kind.", "kind", s.turns_started)
        yield _labelled(
            "argus_turns_completed", "Turns completed, by kind.", "kind", s.turns_completed
        )
        yield _labelled("argus_cron_runs", "Cron runs, by outcome.", "outcome", s.cron_runs)
        yield _labelled(
            "argus_node_invokes", "Node invokes, by outcome.", "outcome", s.node_invokes
        )
        yield _labelled(
            "argus_auth_failures", "Refused credentials, by surface.", "surface", s.auth_failures
        )
        yield _labelled(
            "argus_auth_rate_limited",
            "Requests refused because their address failed authentication too often.",
            "surface",
            s.auth_rate_limited,
        )


REGISTRY.register(ArgusCollector())


def invoke_outcome(result: dict[str, Any]) -> str:
    """The outcome label of a node invoke result: ``ok``, a gateway error code, or ``error``."""
    if result.get("ok"):
        return "ok"
    err = result.get("error")
    code = err.get("code") if isinstance(err, dict) else None
    label = code.lower() if isinstance(code, str) else "error"
    return label if label in INVOKE_OUTCOMES else "error"


def render() -> bytes:
    """The current metrics in the Prometheus text exposition format."""
    return generate_latest(REGISTRY)

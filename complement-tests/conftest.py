"""Fixtures for the multi-server federation tests.

    ca              session: the test CA (harness.TestCA) every server's certificate comes from
    pool            session: ServerPool; owns every server, keeps at most MAX_ALIVE running
    servers         function, parametrized over PAIRS: a Pair(a, b) of running servers; `a` is
                    the "home" server (creates the rooms), `b` the remote one. Both belong to the
                    session (shared by every test of that pair), so tests make fresh users/rooms.
    synapse_server  function: factory, synapse_server(name=None) -> a new running SynapseServer,
                    stopped when the test ends
    trellis_server  function: factory, trellis_server(name=None) -> a new running TrellisServer,
                    stopped when the test ends; fails the test if Trellis has no federation listener

Pairs: synapse-synapse (the harness's own sanity check), synapse-trellis, trellis-synapse,
trellis-trellis. COMPLEMENT_PAIRS=synapse-synapse,... restricts the run to some of them.

A Trellis binary that starts but prints no "federation API listening" line fails its tests
("Trellis federation listener not available"), as does a missing binary or a crash.
"""

from __future__ import annotations

import atexit
import os
import signal
import time
from pathlib import Path
from typing import Callable, Optional

import pytest

from harness import FederationUnavailable, HomeServer, Pair, SynapseServer, TestCA, TrellisServer

MAX_ALIVE = int(os.environ.get("COMPLEMENT_MAX_SERVERS", "3"))
PAIRS = [("synapse", "synapse"), ("synapse", "trellis"), ("trellis", "synapse"), ("trellis", "trellis")]
NO_FEDERATION = "Trellis federation listener not available"


def pair_id(pair: tuple[str, str]) -> str:
    return f"{pair[0]}-{pair[1]}"


def selected_pairs() -> list[tuple[str, str]]:
    wanted = os.environ.get("COMPLEMENT_PAIRS", "").strip()
    if not wanted:
        return PAIRS
    names = {w.strip() for w in wanted.split(",") if w.strip()}
    unknown = names - {pair_id(p) for p in PAIRS}
    if unknown:
        raise pytest.UsageError(f"COMPLEMENT_PAIRS: unknown pair(s) {sorted(unknown)}; "
                                f"known: {[pair_id(p) for p in PAIRS]}")
    return [p for p in PAIRS if pair_id(p) in names]


class ServerPool:
    """Creates, starts, restarts and stops every server of the session. Shared servers are keyed
    "synapse1", "synapse2", "trellis1", "trellis2"; a shared server stopped to make room (least
    recently used first, never one in use) is restarted later with the same data and ports."""

    def __init__(self, ca: TestCA, root: Path) -> None:
        self.ca = ca
        self.root = root
        self.shared: dict[str, HomeServer] = {}
        self.in_use: set[str] = set()  # names of servers that must not be stopped to make room
        self.all: list[HomeServer] = []
        self.last_used: dict[str, float] = {}
        self.trellis_unavailable: Optional[str] = None

    def alive(self) -> list[HomeServer]:
        return [s for s in self.all if s.alive()]

    def create(self, kind: str, name: str) -> HomeServer:
        cls = {"synapse": SynapseServer, "trellis": TrellisServer}[kind]
        server = cls(name, self.root / name, self.ca)
        self.all.append(server)
        return server

    def _make_room(self, keep: set[str]) -> None:
        """Stop idle servers, least recently used first, until one more may start."""
        idle = sorted((s for s in self.alive() if s.name not in self.in_use | keep),
                      key=lambda s: self.last_used.get(s.name, 0))
        while len(self.alive()) >= MAX_ALIVE:
            if not idle:
                raise RuntimeError(f"more than {MAX_ALIVE} servers would be running: "
                                   f"{[s.name for s in self.alive()]} are all in use (COMPLEMENT_MAX_SERVERS)")
            idle.pop(0).stop()

    def start(self, server: HomeServer, keep: set[str] = frozenset()) -> HomeServer:
        self.last_used[server.name] = time.monotonic()
        if server.alive():
            return server
        if server.kind == "trellis" and self.trellis_unavailable:
            pytest.fail(f"{NO_FEDERATION}: {self.trellis_unavailable}")
        self._make_room(keep | {server.name})
        try:
            return server.start()
        except FederationUnavailable as e:
            self.trellis_unavailable = str(e)
            pytest.fail(f"{NO_FEDERATION}: {e}")

    def get_shared(self, kind: str, index: int) -> HomeServer:
        name = f"{kind}{index}"
        if name not in self.shared:
            self.shared[name] = self.create(kind, name)
        return self.start(self.shared[name])

    def close(self) -> None:
        for s in self.all:
            s.stop()


def pytest_configure(config):
    # `timeout` (CI) sends SIGTERM: turn it into KeyboardInterrupt so pytest tears the fixtures
    # down and every server is stopped. (The servers also get SIGTERM if this process dies.)
    def on_sigterm(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_sigterm)


@pytest.fixture(scope="session")
def ca(tmp_path_factory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="session")
def pool(ca, tmp_path_factory):
    p = ServerPool(ca, tmp_path_factory.mktemp("servers"))
    atexit.register(p.close)
    try:
        yield p
    finally:
        p.close()


def pytest_generate_tests(metafunc):
    if "servers" in metafunc.fixturenames:
        pairs = selected_pairs()
        metafunc.parametrize("_pair", pairs, ids=[pair_id(p) for p in pairs], indirect=True, scope="session")


@pytest.fixture(scope="session")
def _pair(request):
    """The pair's kinds and shared-server names; session-scoped and parametrized, so pytest
    runs the tests grouped by pair and each pair's servers are started once."""
    kind_a, kind_b = request.param
    return (kind_a, kind_b), (f"{kind_a}1", f"{kind_b}2" if kind_b == kind_a else f"{kind_b}1")


@pytest.fixture
def servers(_pair, pool, request):
    """The pair's two servers, started (or restarted) as needed, kept running for the test."""
    (kind_a, kind_b), (name_a, name_b) = _pair
    pool.in_use.update((name_a, name_b))
    try:
        a = pool.get_shared(kind_a, int(name_a[-1]))
        b = pool.get_shared(kind_b, int(name_b[-1]))
        request.node.complement_servers = [a, b]
        yield Pair(a, b, pair_id((kind_a, kind_b)))
    finally:
        pool.in_use.difference_update((name_a, name_b))


def _factory(kind: str, pool: ServerPool, request) -> Callable[..., HomeServer]:
    made: list[HomeServer] = []

    def make(name: Optional[str] = None) -> HomeServer:
        name = name or f"{kind}-{request.node.name}-{len(made) + 1}".replace("/", "_").replace("[", "_").replace("]", "")
        server = pool.create(kind, name)
        made.append(server)
        pool.in_use.add(server.name)
        pool.start(server)
        request.node.complement_servers = getattr(request.node, "complement_servers", []) + [server]
        return server

    def cleanup() -> None:
        for s in made:
            s.stop()
            pool.in_use.discard(s.name)

    request.addfinalizer(cleanup)
    return make


@pytest.fixture
def synapse_server(pool, request) -> Callable[..., HomeServer]:
    return _factory("synapse", pool, request)


@pytest.fixture
def trellis_server(pool, request) -> Callable[..., HomeServer]:
    return _factory("trellis", pool, request)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, add each involved server's log tail (and where the full log is)."""
    report = yield
    if report.failed:
        for s in getattr(item, "complement_servers", []):
            report.sections.append((f"{s.kind} {s.name} {s.server_name} ({s.log_path})", s.log_tail(30)))
    return report

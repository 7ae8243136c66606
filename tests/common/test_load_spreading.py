"""Replicas added behind one DNS name get traffic without restarting the client.

A real DNS server (dnslib) answers for `replicas.test.`: first with one loopback address, then with two
(127.0.0.2 and 127.0.0.3, the same port: any 127.x address binds on Linux). Two real server processes on
the project's scaffolding close connections after their `max_connection_age_s`; the orchestrator's
channel (round_robin over a `dns://` target, as it uses for the model servers) re-resolves when a
connection closes, and the second replica starts receiving calls within the connection age.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import grpc.aio
import pytest
from dnslib import QTYPE, RR, A
from dnslib.server import BaseResolver, DNSServer

from orchestrator.channels import ServerAddress, open_aio_channel
from servers.common.server import connection_age_options
from stack.process import free_port

REPO = Path(__file__).resolve().parents[2]
NAME = "replicas.test."
CONNECTION_AGE_S = 1.0


class SwitchableResolver(BaseResolver):  # type: ignore[misc]
    """Answers A queries for NAME with the current address list (TTL 0: no caching)."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses
        self.lock = threading.Lock()

    def resolve(self, request, handler):  # type: ignore[no-untyped-def]
        reply = request.reply()
        name = str(request.q.qname)
        if name == NAME and request.q.qtype == QTYPE.A:
            with self.lock:
                for address in self.addresses:
                    reply.add_answer(RR(name, QTYPE.A, rdata=A(address), ttl=0))
        return reply


@pytest.fixture()
def dns() -> Iterator[tuple[SwitchableResolver, int]]:
    resolver = SwitchableResolver(["127.0.0.2"])
    port = free_port()
    server = DNSServer(resolver, port=port, address="127.0.0.1")
    server.start_thread()
    try:
        yield resolver, port
    finally:
        server.stop()


def start_replica(name: str, host: str, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.common.replica_server", "--name", name, "--host", host, "--port", str(port),
         "--max-connection-age-s", str(CONNECTION_AGE_S)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def wait_serving(host: str, port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with grpc.insecure_channel(f"{host}:{port}") as channel:
            try:
                grpc.channel_ready_future(channel).result(timeout=1)
                return
            except grpc.FutureTimeoutError:
                continue
    raise AssertionError(f"replica on {host}:{port} never came up")


async def who_answers(target: str, resolver: SwitchableResolver, calls: int, switch_after: int) -> list[str]:
    """Calls Who through the orchestrator's channel; after `switch_after` calls DNS starts returning both."""
    channel = open_aio_channel(ServerAddress(target=target), [("grpc.dns_min_time_between_resolutions_ms", 200)])
    who: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary("/test.Replica/Who")
    answers = []
    try:
        for i in range(calls):
            if i == switch_after:
                with resolver.lock:
                    resolver.addresses = ["127.0.0.2", "127.0.0.3"]
            answers.append((await who(b"", timeout=10)).decode())
            await asyncio.sleep(0.05)
    finally:
        await channel.close()
    return answers


def test_a_replica_added_behind_the_name_receives_calls_within_the_connection_age(
    dns: tuple[SwitchableResolver, int],
) -> None:
    resolver, dns_port = dns
    port = free_port()
    replicas = [start_replica("r1", "127.0.0.2", port), start_replica("r2", "127.0.0.3", port)]
    try:
        wait_serving("127.0.0.2", port)
        wait_serving("127.0.0.3", port)
        # 20 calls (1 s) with one address, then 100 (5 s: several connection ages) with both.
        answers = asyncio.run(who_answers(f"dns://127.0.0.1:{dns_port}/replicas.test:{port}", resolver, 120, 20))
    finally:
        for process in replicas:
            process.terminate()
        for process in replicas:
            process.wait(timeout=30)
    assert set(answers[:20]) == {"r1"}, "before the second address exists, one replica serves"
    later = Counter(answers[60:])  # from 2 s after the switch: past one connection age and its grace
    assert later["r2"] > 0 and later["r1"] > 0, later
    assert min(later.values()) >= 0.25 * sum(later.values()), f"round_robin spreads the calls: {later}"


def test_servers_set_a_connection_age_unless_told_not_to() -> None:
    assert dict(connection_age_options(60.0, 30.0)) == {
        "grpc.max_connection_age_ms": 60000,
        "grpc.max_connection_age_grace_ms": 30000,
    }
    assert connection_age_options(0.0, 30.0) == []

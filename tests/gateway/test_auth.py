"""API keys (servers/common/auth.py): where they come from, how a caller sends one, and what is refused."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from servers.common.auth import AuthConfig, AuthConfigError, Authenticator, credential_of, read_keys


def test_keys_come_from_the_file_and_the_environment(tmp_path: Path) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text("# a comment\n\nfirst-key\n  second-key  \n")
    config = AuthConfig(mode="api_key", key_file=key_file, keys_env="MY_KEYS")
    assert read_keys(config, {"MY_KEYS": "third, fourth,"}) == ["first-key", "second-key", "third", "fourth"]


def test_an_unreadable_key_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(AuthConfigError, match=r"auth.key_file .*missing"):
        read_keys(AuthConfig(mode="api_key", key_file=tmp_path / "missing"), {})


def test_api_key_mode_without_any_key_is_refused_at_start_up() -> None:
    with pytest.raises(AuthConfigError, match="no key was found"):
        Authenticator.from_config(AuthConfig(mode="api_key"), {})
    with pytest.raises(ValueError, match="needs key_file or keys_env"):
        AuthConfig(mode="api_key", keys_env="")


@pytest.mark.parametrize(
    ("metadata", "key"),
    [
        ((("authorization", "Bearer abc"),), "abc"),
        ((("authorization", "bearer abc "),), "abc"),
        ((("x-api-key", "xyz"),), "xyz"),
        ((("x-api-key", "xyz"), ("authorization", "Bearer abc")), "abc"),
        ((("authorization", "Basic dXNlcg=="),), ""),
        ((), ""),
    ],
)
def test_the_credential_a_caller_sent(metadata: tuple[tuple[str, str], ...], key: str) -> None:
    assert credential_of(metadata) == key


def test_only_a_known_key_passes() -> None:
    auth = Authenticator("api_key", ["good"])
    assert auth.problem((("authorization", "Bearer good"),)) is None
    assert auth.problem((("authorization", "Bearer bad"),)) == ("the API key is not valid", "API_KEY_INVALID")
    missing = auth.problem(())
    assert missing is not None and missing[1] == "API_KEY_MISSING"


def test_mode_none_lets_every_call_through() -> None:
    auth = Authenticator.from_config(AuthConfig(), {})
    assert not auth.enabled and auth.problem(()) is None
    sentinel = object()
    assert auth.guard(sentinel) is sentinel  # type: ignore[arg-type]


async def _calls_through_a_guarded_server(metadata: tuple[tuple[str, str], ...]) -> tuple[grpc.StatusCode, ...]:
    """A real grpc.aio server whose (health) service is registered through `guard`: unary and stream codes."""
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(
        health_aio.HealthServicer(), Authenticator("api_key", ["good"]).guard(server)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    codes: list[grpc.StatusCode] = []
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub: Any = health_pb2_grpc.HealthStub(channel)  # typed for the blocking API
            try:
                await stub.Check(health_pb2.HealthCheckRequest(), timeout=10, metadata=metadata)
                codes.append(grpc.StatusCode.OK)
            except grpc.aio.AioRpcError as error:
                codes.append(error.code())
            stream = stub.Watch(health_pb2.HealthCheckRequest(), timeout=10, metadata=metadata)
            try:
                await stream.read()  # the first status of a Watch, when allowed
                codes.append(grpc.StatusCode.OK)
            except grpc.aio.AioRpcError as error:
                codes.append(error.code())
            stream.cancel()
    finally:
        await server.stop(None)
    return tuple(codes)


def test_a_guarded_service_refuses_unary_and_stream_calls_without_a_good_key() -> None:
    unauthenticated = grpc.StatusCode.UNAUTHENTICATED
    assert asyncio.run(_calls_through_a_guarded_server(())) == (unauthenticated, unauthenticated)
    wrong = (("authorization", "Bearer bad"),)
    assert asyncio.run(_calls_through_a_guarded_server(wrong)) == (unauthenticated, unauthenticated)
    good = (("x-api-key", "good"),)
    assert asyncio.run(_calls_through_a_guarded_server(good)) == (grpc.StatusCode.OK, grpc.StatusCode.OK)

"""The whole stack as real local processes with the HTTP/JSON gateway in front and API keys required on the
orchestrator's gRPC port: tritonserver (stand-ins), the Qwen-Edit and Moondream servers (tiny random-weight
models), a fake Gemini, the orchestrator and the gateway."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from orchestrator.client import MAX_RECEIVE_BYTES
from stack.local import Ports, Stack, StackConfig
from tests.fakes.fake_gemini import FakeGemini
from tests.orchestrator.conftest import SMALL_SEARCH, write_task

API_KEY = "console-test-key-0123456789"
OTHER_KEY = "ops-second-key-abcdef"
TASK_ID = "71680285"


@dataclass
class GatewayStack:
    stack: Stack
    gemini: FakeGemini
    task_store: Path

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.stack.config.ports.orchestrator}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.stack.config.ports.gateway}"

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(
            self.grpc_address, options=[("grpc.max_receive_message_length", MAX_RECEIVE_BYTES)]
        )


@dataclass
class HttpAnswer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http(
    method: str, url: str, body: object | None = None, key: str | None = API_KEY, headers: dict[str, str] | None = None
) -> HttpAnswer:
    """One HTTP call; errors are answers too (their status and body are what the tests look at)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return HttpAnswer(response.status, {k.lower(): v for k, v in response.headers.items()}, response.read())
    except urllib.error.HTTPError as error:
        return HttpAnswer(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())


@pytest.fixture(scope="session")
def gateway_stack(tmp_path_factory: pytest.TempPathFactory, standin_repository: Path) -> Iterator[GatewayStack]:
    store = tmp_path_factory.mktemp("tasks")
    write_task(store, TASK_ID)
    key_file = tmp_path_factory.mktemp("keys") / "api_keys"
    key_file.write_text(f"# one key per line\n{API_KEY}\n")
    with FakeGemini() as gemini:
        config = StackConfig(
            ports=Ports.free(),
            triton_repository=standin_repository,
            gateway=True,
            extra_orchestrator_args=(
                *SMALL_SEARCH,
                f"--gemini.base-url={gemini.base_url}",
                "--gemini.models=gemini-first",
                "--gemini.request-timeout-s=10",
                f"--task-store={store}",
                "--auth.mode=api_key",
                f"--auth.key-file={key_file}",
            ),
            # Keys from the file and from the environment are both accepted.
            orchestrator_env=(("GEMINI_API_KEY", "test-key-not-secret"), ("INPAINT_API_KEYS", OTHER_KEY)),
            ready_timeout_s=300,
        )
        stack = Stack(tmp_path_factory.mktemp("stack"), config).up(progress=False)
        try:
            yield GatewayStack(stack, gemini, store)
        finally:
            stack.down()

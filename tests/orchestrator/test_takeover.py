"""A task outlives the replica running it: the whole service as real processes, two replicas on one store.

tritonserver, the Qwen-Edit and Moondream servers (stand-ins; Qwen-Edit's denoising steps slowed by its
simulation mode, so that a task is still running when the test strikes), a fake Gemini, and two orchestrator
replicas sharing a PostgreSQL database and a blob directory. The client reaches both replicas through one
address (`ipv4:a,b`, as a Kubernetes Service's name reaches its pods), as a backend would.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from inpaint.v1 import inpaint_pb2, operations_pb2

from orchestrator.client import InpaintClient
from stack.local import REPO_ROOT, Ports, Stack, StackConfig, plan
from stack.process import free_port
from tests.fakes.fake_gemini import FakeGemini
from tests.operations.conftest import PostgresServer
from tests.orchestrator.conftest import SECOND_MODEL, SMALL_SEARCH, task_images
from tests.orchestrator.test_readiness import SERVING, wait_for

K_GLOBAL, K_LOCAL = 4, 2  # 3 Qwen-Edit images in the global stage's request; 2 in each local request
SEARCH = (
    *SMALL_SEARCH,
    f"--search.k-global={K_GLOBAL}",
    "--search.m-global=1",
    f"--search.k-local={K_LOCAL}",
)
# At the 64 px edit size a step takes 192 * (64/1024)^2 = 0.75 s an image: the global stage about 4.5 s.
QWEN_SLOW = ("--simulate-step-s=192",)


class Fleet:
    """The model servers (a stack without its orchestrator) and orchestrator replicas started and killed by name."""

    def __init__(self, stack: Stack, database_url: str, shared: Path) -> None:
        self.stack = stack
        self.database_url = database_url
        self.shared = shared
        self.replicas: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}
        self.generation = 0

    def start(self, name: str) -> None:
        """The replica `name`, with a new executor id each time (as a replacement pod gets a new name)."""
        self.generation += 1
        port = self.ports.get(name) or free_port()
        config = dataclasses.replace(
            self.stack.config,
            orchestrator=True,
            ports=dataclasses.replace(self.stack.config.ports, orchestrator=port, orchestrator_metrics=free_port()),
            extra_orchestrator_args=(
                *self.stack.config.extra_orchestrator_args,
                f"--operations.database-url={self.database_url}",
                f"--operations.blob-root={self.shared / 'blobs'}",
                f"--operations.executor-id={name}-{self.generation}",
                "--operations.heartbeat-s=0.3",
                "--operations.dead-after-s=1.5",
                "--operations.poll-s=0.05",
                "--drain-grace-s=1",
            ),
        )
        spec = next(s for s in plan(config, self.stack.run_dir) if s.name == "orchestrator")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **spec.env}
        env.pop("PYTHONPATH", None)
        with (self.stack.run_dir / f"orchestrator-{name}-{self.generation}.log").open("ab") as log:
            process = subprocess.Popen(spec.argv, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.replicas[name], self.ports[name] = process, port
        wait_for(f"127.0.0.1:{port}", SERVING, 300)

    def ensure_running(self) -> None:
        for name in ("a", "b"):
            if name not in self.replicas or self.replicas[name].poll() is not None:
                self.start(name)

    def name_of(self, executor_id: str) -> str:
        name = executor_id.rsplit("-", 1)[0]
        assert name in self.replicas, executor_id
        return name

    @property
    def address(self) -> str:
        """Both replicas behind one target, as a Service's name is."""
        return "ipv4:" + ",".join(f"127.0.0.1:{self.ports[n]}" for n in sorted(self.ports))

    def address_first(self, name: str) -> str:
        """Both replicas, `name`'s first: a pick_first channel connects to it while it is up."""
        order = [name, *(n for n in sorted(self.ports) if n != name)]
        return "ipv4:" + ",".join(f"127.0.0.1:{self.ports[n]}" for n in order)

    def qwen_edit_calls(self, request_id: str) -> list[str]:
        """The status code of each Edit call the Qwen-Edit server answered for `request_id`, in order (its log)."""
        log = next(Path(s.log) for s in self.stack.started if s.name == "qwen_edit")
        lines = (json.loads(line) for line in log.read_text().splitlines() if line.startswith("{"))
        return [
            line["code"]
            for line in lines
            if line.get("event") == "rpc" and line.get("request_id") == request_id and line["method"].endswith("/Edit")
        ]

    def close(self) -> None:
        for process in self.replicas.values():
            if process.poll() is None:
                process.kill()
            process.wait()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, standin_repository: Path) -> Iterator[Fleet]:
    # Not under pytest's temporary directory: that one is private to root, and the server runs as nobody.
    postgres_root = Path(tempfile.mkdtemp(prefix="inpaint-postgres-"))
    postgres = PostgresServer(postgres_root).start()
    try:
        with FakeGemini() as gemini:
            config = StackConfig(
                ports=Ports.free(),
                orchestrator=False,  # the replicas are the fleet's own
                triton_repository=standin_repository,
                extra_orchestrator_args=(
                    *SEARCH,
                    f"--gemini.base-url={gemini.base_url}",
                    f"--gemini.models=gemini-first,{SECOND_MODEL}",
                    "--gemini.request-timeout-s=10",
                ),
                extra_qwen_edit_args=QWEN_SLOW,
                orchestrator_env=(("GEMINI_API_KEY", "test-key-not-secret-but-never-logged"),),
                ready_timeout_s=300,
            )
            stack = Stack(tmp_path_factory.mktemp("takeover"), config).up(progress=False)
            group = Fleet(stack, postgres.new_database(), tmp_path_factory.mktemp("shared"))
            try:
                group.ensure_running()
                yield group
            finally:
                group.close()
                stack.down()
    finally:
        postgres.stop()
        shutil.rmtree(postgres_root, ignore_errors=True)


def task(request_id: str) -> inpaint_pb2.InpaintRequest:
    return inpaint_pb2.InpaintRequest(request_id=request_id, images=task_images())


def wait_until_running(client: InpaintClient, name: str) -> str:
    """The executor id of the replica that took the operation, once one has."""
    until = time.monotonic() + 120
    while time.monotonic() < until:
        operation = client.get(name)
        if operation.metadata.state == operations_pb2.OPERATION_STATE_RUNNING and operation.metadata.executor:
            return operation.metadata.executor
        time.sleep(0.05)
    raise AssertionError(f"{name} did not start")


def test_kill_9_of_the_running_replica_another_finishes_and_the_watch_reconnects(fleet: Fleet) -> None:
    fleet.ensure_running()
    with InpaintClient(fleet.address) as submitter:
        operation = submitter.submit(task("takeover-kill"))
        runner = fleet.name_of(wait_until_running(submitter, operation.name))
    scored_before_kill: list[str] = []
    # The watch goes to the running replica (pick_first takes the first address), so the kill cuts it.
    with InpaintClient(fleet.address_first(runner)) as client:

        def on_event(event: operations_pb2.OperationEvent) -> None:
            progress = event.progress
            if fleet.replicas[runner].poll() is not None or progress.kind != inpaint_pb2.PROGRESS_KIND_CANDIDATE_SCORED:
                return
            scored_before_kill.append(progress.candidate_id)
            if progress.stage == inpaint_pb2.STAGE_GLOBAL and len(scored_before_kill) == K_GLOBAL:
                # Every global candidate is scored: the replica dies (no drain, no hand-back).
                fleet.replicas[runner].send_signal(signal.SIGKILL)
                fleet.replicas[runner].wait()

        done = client.watch(operation.name, timeout_s=300, on_event=on_event)
        assert client.reconnects >= 1
    assert len(scored_before_kill) == K_GLOBAL, "the task finished before every global candidate was scored"
    assert done.metadata.state == operations_pb2.OPERATION_STATE_SUCCEEDED, done.error
    assert fleet.name_of(done.metadata.executor) != runner
    result = done.response
    assert result.best_candidate_id and len(result.candidates) == K_GLOBAL + K_LOCAL
    assert all(c.status == inpaint_pb2.CANDIDATE_STATUS_SCORED for c in result.candidates)
    # Nothing scored before the kill was generated again: one global call and one local call answered OK, the
    # killed replica's local call (in flight at the kill) cancelled. A global stage made again would be a third OK.
    calls = fleet.qwen_edit_calls("takeover-kill")
    assert calls.count("OK") == 2 and set(calls) <= {"OK", "CANCELLED"}, calls


def test_sigterm_during_a_watched_stream_the_caller_still_gets_the_result(fleet: Fleet) -> None:
    """A rollout with no spare replica: SIGTERM to the only one while a StreamInpaint (the README's client)
    watches its task. It hands the task back and exits; the stream, cut, reconnects until the replacement is up,
    which resumes the task; the caller gets the result."""
    fleet.ensure_running()
    fleet.replicas["b"].send_signal(signal.SIGTERM)
    assert fleet.replicas["b"].wait(60) == 0
    terminated = threading.Event()
    outcome: list[inpaint_pb2.InpaintResponse | BaseException] = []

    def on_progress(progress: inpaint_pb2.ProgressEvent) -> None:
        if progress.kind == inpaint_pb2.PROGRESS_KIND_CANDIDATE_SCORED and not terminated.is_set():
            fleet.replicas["a"].send_signal(signal.SIGTERM)
            terminated.set()

    client = InpaintClient(fleet.address_first("a"))

    def caller() -> None:
        try:
            outcome.append(client.stream(task("takeover-sigterm"), timeout_s=300, on_progress=on_progress))
        except BaseException as error:  # reported by the test thread
            outcome.append(error)

    thread = threading.Thread(target=caller, daemon=True)
    thread.start()
    try:
        assert terminated.wait(120), "no candidate was scored"
        assert fleet.replicas["a"].wait(60) == 0  # drained: the task handed back within the grace
        assert thread.is_alive(), "the stream ended while no replica was up"
        fleet.start("b")
        thread.join(300)
        assert outcome and isinstance(outcome[0], inpaint_pb2.InpaintResponse), outcome
        assert outcome[0].best_candidate_id and len(outcome[0].candidates) == K_GLOBAL + K_LOCAL
        assert client.reconnects >= 1
        finished = client.get("operations/takeover-sigterm")
        assert fleet.name_of(finished.metadata.executor) == "b"
    finally:
        client.close()

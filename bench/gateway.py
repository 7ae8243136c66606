"""Benchmark the HTTP/JSON gateway against the gRPC path: what it adds to a task's wall time.

    python -m bench.gateway --out bench/results/gateway.json [--tasks 4] [--replays 5]

Brings a stack up on free ports with the gateway (stand-ins unless `make models` ran) and runs the bundled
photo pair as whole tasks, alternately through gRPC (SubmitInpaint + WatchOperation) and through the
gateway (`POST /v1/operations:submit` with base64 JSON + `GET /v1/operations/{id}:watch` as server-sent
events), each with its own request id; the first pair warms the servers up and is not counted.

The search's own run-to-run spread on a shared CPU (tens of percent) hides a cost of milliseconds, so the
gateway's cost is also measured where it arises: the submission (the images' JSON and the extra hop) and
the whole stream of a task (every progress event and the finished operation with its result image),
replayed for each finished task through both paths. Their sum is the time the gateway adds to a task,
reported as a share of the median task wall time; the limit is 5 %.
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from inpaint.v1 import operations_pb2, operations_pb2_grpc

from orchestrator import sample_photos
from orchestrator.client import InpaintClient, search_settings, task_request
from stack.local import Ports, Stack, StackConfig

# A short search (8 candidates, 4 steps): the gateway's cost is per call, so a short task makes its share
# look larger than with the default search; the figure is an upper bound for longer tasks.
SEARCH = {"k_global": 4, "m_global": 2, "k_local": 2, "num_inference_steps": 4}


def http_post(base_url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    call = urllib.request.Request(f"{base_url}{path}", data=json.dumps(body).encode(), method="POST")
    call.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(call, timeout=120) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


def http_watch(base_url: str, name: str) -> dict[str, Any]:
    """Every event of the operation's stream; returns the finished operation."""
    done: dict[str, Any] = {}
    with urllib.request.urlopen(f"{base_url}/v1/{name}:watch", timeout=1800) as response:
        event = ""
        for raw in response:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: "):
                data = json.loads(line[len("data: ") :])
                if event == "done":
                    done = data["done"]
                elif event == "error":
                    raise RuntimeError(line)
    if not done:
        raise RuntimeError("the stream ended without the finished operation")
    return done


def grpc_watch(stub: operations_pb2_grpc.OperationsServiceStub, name: str) -> operations_pb2.Operation:
    for event in stub.WatchOperation(operations_pb2.WatchOperationRequest(name=name), timeout=1800):
        if event.HasField("done"):
            done: operations_pb2.Operation = event.done
            return done
    raise RuntimeError("the stream ended without the finished operation")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench/results/gateway.json"))
    parser.add_argument("--tasks", type=int, default=4, help="tasks per path (after one warm-up pair)")
    parser.add_argument("--replays", type=int, default=5, help="replays of each finished task's stream per path")
    args = parser.parse_args(argv)
    init, mask, character = (
        sample_photos.encode_png(a)
        for a in (sample_photos.astronaut(), sample_photos.astronaut_face_mask(), sample_photos.tom_hanks())
    )
    settings = search_settings(SEARCH)
    wall: dict[str, list[float]] = {"grpc": [], "http": []}
    submit: dict[str, list[float]] = {"grpc": [], "http": []}
    replay: dict[str, list[float]] = {"grpc": [], "http": []}
    names: list[str] = []
    run = f"{time.time_ns():x}"
    config = StackConfig(ports=Ports.free(), gateway=True)
    with Stack(Path(tempfile.mkdtemp(prefix="bench-gateway-")), config) as stack:
        base_url = f"http://127.0.0.1:{stack.config.ports.gateway}"
        with InpaintClient(f"127.0.0.1:{stack.config.ports.orchestrator}") as client:
            stub = operations_pb2_grpc.OperationsServiceStub(client.channel)
            for i in range(args.tasks + 1):
                # Alternate which path goes first, so that a drift over time does not favour either.
                for path in ("grpc", "http") if i % 2 == 0 else ("http", "grpc"):
                    request = task_request(
                        init, mask, character, request_id=f"bench-gw-{run}-{path}-{i}", settings=settings
                    )
                    started = time.perf_counter()
                    if path == "grpc":
                        name = stub.SubmitInpaint(
                            operations_pb2.SubmitInpaintRequest(request=request), timeout=120
                        ).name
                        submitted = time.perf_counter()
                        assert grpc_watch(stub, name).response.best_candidate_id
                    else:
                        body = {"request": json_format.MessageToDict(request, preserving_proto_field_name=True)}
                        name = http_post(base_url, "/v1/operations:submit", body)["name"]
                        submitted = time.perf_counter()
                        assert http_watch(base_url, name)["response"]["best_candidate_id"]
                    elapsed = time.perf_counter() - started
                    if i > 0:
                        wall[path].append(elapsed)
                        submit[path].append(submitted - started)
                        names.append(name)
                    print(f"task {i} {path}: {elapsed:.2f} s", flush=True)
            for _ in range(args.replays):
                for name in names:
                    started = time.perf_counter()
                    grpc_watch(stub, name)
                    replay["grpc"].append(time.perf_counter() - started)
                    started = time.perf_counter()
                    done = http_watch(base_url, name)
                    replay["http"].append(time.perf_counter() - started)
            image_bytes = len(base64.b64decode(done["response"]["image"]["data"]))

    median = statistics.median
    submit_added = median(submit["http"]) - median(submit["grpc"])
    stream_added = median(replay["http"]) - median(replay["grpc"])
    task_median = median(wall["grpc"] + wall["http"])
    added = submit_added + stream_added
    results = {
        "search": SEARCH,
        "tasks_per_path": args.tasks,
        "task_wall_s": wall,
        "task_median_s": {"grpc": median(wall["grpc"]), "http": median(wall["http"]), "both": task_median},
        "submit_median_ms": {path: 1000 * median(values) for path, values in submit.items()},
        "stream_replay_median_ms": {path: 1000 * median(values) for path, values in replay.items()},
        "result_image_bytes": image_bytes,
        "gateway_added_ms_per_task": 1000 * added,
        "gateway_added_share": added / task_median,
        "limit_share": 0.05,
    }
    results["within_limit"] = results["gateway_added_share"] < results["limit_share"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(
        f"gateway: adds {1000 * added:.1f} ms per task (submit {1000 * submit_added:+.1f} ms, stream "
        f"{1000 * stream_added:+.1f} ms) = {100 * added / task_median:.3f} % of the median task ({task_median:.1f} s); "
        f"task medians gRPC {median(wall['grpc']):.1f} s, HTTP {median(wall['http']):.1f} s"
    )
    return 0 if results["within_limit"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

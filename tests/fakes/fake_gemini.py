"""A local fake of the Gemini Developer API's `generateContent` endpoint.

It follows the REST shape that the pinned SDK, `google-genai` 3.6.1, sends and reads, so tests point the
real SDK at it with `HttpOptions(base_url=fake.base_url)` and exercise the real serialisation, error
mapping and transport. Upstream files it mirrors (google-genai 3.6.1, `google/genai/`):

- `models.py` / `_api_client.py`: the path `/{api_version}/models/{model}:generateContent` (the SDK
  inserts the API version after the base URL; 3.x defaults to `v1`), the key in the `x-goog-api-key`
  header, a JSON body with `contents`, `systemInstruction` and `generationConfig`;
- `errors.py`: `APIError` is built from Google's JSON error envelope
  `{"error": {"code", "message", "status", "details"}}` (kept whole in `APIError.details`, the HTTP
  response in `APIError.response`), as `ClientError` for 4xx and `ServerError` for 5xx.

The `details` entries follow google.rpc's error model (googleapis `google/rpc/error_details.proto`, in
the JSON form the Gemini API sends): a 429 carries `QuotaFailure` and `RetryInfo` (`retryDelay`, a
Duration in JSON form such as "7s"); a bad key is answered 400 INVALID_ARGUMENT "API key not valid.
Please pass a valid API key." with `ErrorInfo` reason `API_KEY_INVALID`; a body over the inline request
limit (20 MiB on the Developer API) is answered 400 INVALID_ARGUMENT "Request payload size exceeds the
limit".

Behaviour is controlled per instance (thread-safe):

- normal: a JSON answer that follows the realism rubric's response schema;
- `not_found_models`: 404 NOT_FOUND for those models (the model chain must move on);
- `fail_next(status, count, model=None)`: the next `count` requests (of that model) answer `status`
  (429 RESOURCE_EXHAUSTED, 500 INTERNAL, 503 UNAVAILABLE, ...), then normal answers resume;
- `always_fail_status`: every request answers that status;
- `retry_delay_s`, `retry_delay_in`: every 429 carries this retry delay, in a RetryInfo detail
  ("body") or a Retry-After header ("header");
- `invalid_key`: every request is answered as Google answers a bad key;
- `max_request_bytes`: a larger request body is refused as Google refuses it;
- `delay_s`: every answer waits this long first (a slow model; also the benchmark's answer time);
- `malformed`: the model's text is not the JSON the schema asked for;
- `echo_key_in_errors`: error messages quote the API key the request carried (as a careless proxy
  might), so tests can prove the client scrubs it.

Every request is recorded with its body size and arrival time (`requests`).

Run it as a process for end-to-end tests: `python -m tests.fakes.fake_gemini --port 0 --delay-ms 300`
prints `listening on http://127.0.0.1:PORT` once it accepts connections.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_PATH = re.compile(r"^/(?P<version>v[0-9a-z]+)/models/(?P<model>[^/:]+):generateContent$")

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


# Google's inline request limit on the Developer API: the whole JSON body, base64 images included.
INLINE_REQUEST_LIMIT_BYTES = 20 * 1024 * 1024


class _Keep(Enum):
    KEEP = "keep"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake saw it (the test inspects the SDK's real wire format through this)."""

    api_version: str
    model: str
    headers: dict[str, str]
    body: dict[str, Any]
    status: int
    size_bytes: int  # the request body as received (base64 images included)
    received_at: float  # time.monotonic() once the body was read


@dataclass
class _Failure:
    status: int
    remaining: int
    model: str | None


@dataclass
class FakeGeminiState:
    """What the fake answers; mutate through `FakeGemini`'s methods or attributes under its lock."""

    score: float = 7.5
    fatal_flaw: bool = False
    delay_s: float = 0.0
    malformed: bool = False
    echo_key_in_errors: bool = False
    not_found_models: set[str] = field(default_factory=set)
    always_fail_status: int | None = None
    retry_delay_s: float | None = None
    retry_delay_in: str = "body"  # or "header"
    invalid_key: bool = False
    max_request_bytes: int = INLINE_REQUEST_LIMIT_BYTES
    failures: list[_Failure] = field(default_factory=list)
    requests: list[RecordedRequest] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0


class _Server(ThreadingHTTPServer):
    # socketserver's default listen backlog is 5: a burst of concurrent clients (21 candidates scored at
    # once) would see connections reset, which is a property of the fake, not of the client under test.
    request_queue_size = 128
    daemon_threads = True


class FakeGemini:
    """The fake server on 127.0.0.1 (an ephemeral port unless given), served from a daemon thread."""

    def __init__(self, port: int = 0) -> None:
        self.state = FakeGeminiState()
        self.lock = threading.Lock()
        self._server = _Server(("127.0.0.1", port), _make_handler(self))
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> FakeGemini:
        # A short poll interval: shutdown() waits up to one interval, and tests stop a server each.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-gemini", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> FakeGemini:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Behaviour controls.

    def fail_next(self, status: int, count: int, model: str | None = None) -> None:
        with self.lock:
            self.state.failures.append(_Failure(status=status, remaining=count, model=model))

    def configure(
        self,
        *,
        score: float | None = None,
        fatal_flaw: bool | None = None,
        delay_s: float | None = None,
        malformed: bool | None = None,
        not_found_models: set[str] | None = None,
        always_fail_status: int | _Keep | None = _Keep.KEEP,
        echo_key_in_errors: bool | None = None,
        retry_delay_s: float | _Keep | None = _Keep.KEEP,
        retry_delay_in: str | None = None,
        invalid_key: bool | None = None,
        max_request_bytes: int | None = None,
    ) -> None:
        """Change what the fake answers; arguments left out keep their value (None turns failing off)."""
        with self.lock:
            s = self.state
            if score is not None:
                s.score = score
            if fatal_flaw is not None:
                s.fatal_flaw = fatal_flaw
            if delay_s is not None:
                s.delay_s = delay_s
            if malformed is not None:
                s.malformed = malformed
            if not_found_models is not None:
                s.not_found_models = set(not_found_models)
            if always_fail_status is not _Keep.KEEP:
                s.always_fail_status = always_fail_status
            if echo_key_in_errors is not None:
                s.echo_key_in_errors = echo_key_in_errors
            if retry_delay_s is not _Keep.KEEP:
                s.retry_delay_s = retry_delay_s
            if retry_delay_in is not None:
                if retry_delay_in not in ("body", "header"):
                    raise ValueError(f"retry_delay_in: 'body' or 'header', got {retry_delay_in!r}")
                s.retry_delay_in = retry_delay_in
            if invalid_key is not None:
                s.invalid_key = invalid_key
            if max_request_bytes is not None:
                s.max_request_bytes = max_request_bytes

    @property
    def requests(self) -> list[RecordedRequest]:
        with self.lock:
            return list(self.state.requests)

    @property
    def max_in_flight(self) -> int:
        with self.lock:
            return self.state.max_in_flight

    def models_called(self) -> list[str]:
        return [r.model for r in self.requests]

    def statuses(self) -> list[int]:
        return [r.status for r in self.requests]

    # Answering.

    def _decide(self, model: str, size: int) -> tuple[int, str]:
        """The HTTP status and why; consumes one scripted failure if one applies."""
        with self.lock:
            s = self.state
            if s.invalid_key:
                return 400, "invalid_key"  # the key is checked before anything else
            if size > s.max_request_bytes:
                return 400, "too_large"
            if model in s.not_found_models:
                return 404, "not_found"
            if s.always_fail_status is not None:
                return s.always_fail_status, "scripted"
            for failure in s.failures:
                if failure.remaining > 0 and failure.model in (None, model):
                    failure.remaining -= 1
                    return failure.status, "scripted"
            return 200, "ok"

    def _answer_text(self) -> str:
        with self.lock:
            score, fatal, malformed = self.state.score, self.state.fatal_flaw, self.state.malformed
        if malformed:
            # What a model that ignored the schema might say: prose, then truncated JSON.
            return 'Sure! Here is my assessment: {"score": 7.5, "fatal_fl'
        return json.dumps(
            {
                "cgi_look": 1,
                "painted_look": 0,
                "plastic_skin": 2,
                "artifacts": 1,
                "fatal_flaw": fatal,
                "fatal_flaw_description": "duplicated mouth" if fatal else "",
                "score": score,
                "summary": "fake assessment",
            }
        )


def _error_body(
    status: int, why: str, model: str, api_version: str, echoed_key: str | None, state: FakeGeminiState
) -> dict[str, Any]:
    details: list[dict[str, Any]] = []
    if why == "invalid_key":
        message = "API key not valid. Please pass a valid API key."
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
        )
    elif why == "too_large":
        message = f"Request payload size exceeds the limit: {state.max_request_bytes} bytes."
    elif status == 404:
        message = f"models/{model} is not found for API version {api_version}, or is not supported for generateContent."
    elif status == 429:
        message = "You exceeded your current quota, please check your plan and billing details."
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
                        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel",
                        "quotaDimensions": {"location": "global", "model": model},
                        "quotaValue": "10",
                    }
                ],
            }
        )
        if state.retry_delay_s is not None and state.retry_delay_in == "body":
            details.append(
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{state.retry_delay_s:g}s"}
            )
    else:
        message = f"fake failure {status}"
    if echoed_key is not None:
        message += f" (request carried key {echoed_key})"
    error: dict[str, Any] = {"code": status, "message": message, "status": _STATUS_NAMES.get(status, "UNKNOWN")}
    if details:
        error["details"] = details
    return {"error": error}


def _success_body(model: str, text: str) -> dict[str, Any]:
    return {
        "candidates": [
            {
                "content": {"parts": [{"text": text}], "role": "model"},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {"promptTokenCount": 300, "candidatesTokenCount": 60, "totalTokenCount": 360},
        "modelVersion": model,
        "responseId": "fake-response",
    }


def _make_handler(fake: FakeGemini) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's pooled client expects

        def log_message(self, format: str, *args: Any) -> None:
            # Silent: request lines would clutter test output (and the key is in a header, not the line).
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            received_at = time.monotonic()
            match = _PATH.match(self.path)
            if match is None:
                self._send(404, {"error": {"code": 404, "message": f"no route {self.path}", "status": "NOT_FOUND"}})
                return
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                self._send(
                    400, {"error": {"code": 400, "message": "request is not JSON", "status": "INVALID_ARGUMENT"}}
                )
                return
            version, model = match["version"], match["model"]
            with fake.lock:
                fake.state.in_flight += 1
                fake.state.max_in_flight = max(fake.state.max_in_flight, fake.state.in_flight)
                delay = fake.state.delay_s
            try:
                if delay > 0:
                    time.sleep(delay)
                status, why = fake._decide(model, len(raw))
                with fake.lock:
                    fake.state.requests.append(
                        RecordedRequest(
                            api_version=version,
                            model=model,
                            headers={k.lower(): v for k, v in self.headers.items()},
                            body=body,
                            status=status,
                            size_bytes=len(raw),
                            received_at=received_at,
                        )
                    )
                if status != 200:
                    with fake.lock:
                        state = fake.state
                        echoed = self.headers.get("x-goog-api-key") if state.echo_key_in_errors else None
                        payload = _error_body(status, why, model, version, echoed, state)
                        headers = {}
                        if status == 429 and state.retry_delay_s is not None and state.retry_delay_in == "header":
                            headers["Retry-After"] = f"{state.retry_delay_s:g}"
                    self._send(status, payload, headers)
                else:
                    self._send(200, _success_body(model, fake._answer_text()))
            finally:
                with fake.lock:
                    fake.state.in_flight -= 1

        def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status, HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "")
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up (its timeout fired while we were slow); nothing to answer.
                pass

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--score", type=float, default=7.5)
    parser.add_argument("--not-found-model", action="append", default=[], help="answer 404 for this model")
    parser.add_argument("--fail-status", type=int, default=None, help="answer every request with this status")
    parser.add_argument("--malformed", action="store_true")
    args = parser.parse_args(argv)
    fake = FakeGemini(port=args.port)
    fake.configure(
        score=args.score,
        delay_s=args.delay_ms / 1000.0,
        malformed=args.malformed,
        not_found_models=set(args.not_found_model),
        always_fail_status=args.fail_status,
    )
    # Announce only once the socket is bound (it is, since the constructor binds): callers wait on this line.
    print(f"listening on {fake.base_url.rstrip('/')}", flush=True)
    try:
        fake._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        fake._server.server_close()


if __name__ == "__main__":
    main()

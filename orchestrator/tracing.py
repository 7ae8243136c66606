"""OpenTelemetry spans for a task: the task, the face stage, each search stage, each candidate and each
scorer's model call; exported over OTLP when an endpoint is configured.

    configure_tracing(TracingConfig(otlp_endpoint="http://otel-collector:4317"))
    with task_span(request_id) as task:
        generate = traced_generate(generate, task)
        scorers = [traced_scorer(s, task) for s in scorers]
        on_event = traced_events(on_event, task)

Spans are started with an explicit parent (the task's), never made "current" inside the search's async
generators: a context variable set in a suspended generator would leak into whoever resumes it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from orchestrator.search import (
    CandidateImage,
    EventKind,
    GeneratedImage,
    GenerateFn,
    ProgressCallback,
    ProgressEvent,
    Scorer,
    SignalScore,
    StageRequest,
)
from orchestrator.search.contracts import ImageT

TRACER_NAME = "inpaint.orchestrator"


@dataclass(frozen=True)
class TracingConfig:
    """Where spans go. An empty endpoint exports nothing (spans are still made, and cost next to nothing)."""

    otlp_endpoint: str = ""
    service_name: str = "inpaint-orchestrator"


def configure_tracing(config: TracingConfig) -> None:
    """Install the process's tracer provider, exporting over OTLP/gRPC to `otlp_endpoint` when set."""
    if not config.otlp_endpoint:
        return
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": config.service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=config.otlp_endpoint)))
    trace.set_tracer_provider(provider)


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


@contextlib.contextmanager
def task_span(request_id: str) -> Iterator[trace.Span]:
    with tracer().start_as_current_span("inpaint.task", attributes={"inpaint.request_id": request_id}) as span:
        yield span


def _under(parent: trace.Span) -> otel_context.Context:
    return trace.set_span_in_context(parent)


def child_span(parent: trace.Span, name: str, **attributes: str | int | float | bool) -> trace.Span:
    return tracer().start_span(name, context=_under(parent), attributes=attributes)


def traced_generate(generate: GenerateFn[ImageT], parent: trace.Span) -> GenerateFn[ImageT]:
    """One span per stage's generation (the Qwen-Edit calls it makes), from the request to the last image."""

    async def traced(stage: StageRequest[ImageT]) -> AsyncIterator[GeneratedImage[ImageT]]:
        span = child_span(parent, f"inpaint.generate.{stage.stage}", **{"inpaint.candidates": len(stage.requests)})
        try:
            async for generated in generate(stage):
                span.add_event("generated", {"inpaint.candidate_id": generated.candidate_id})
                yield generated
        except Exception as error:
            span.record_exception(error)
            span.set_status(trace.StatusCode.ERROR, str(error))
            raise
        finally:
            span.end()

    return traced


def traced_scorer(scorer: Scorer[ImageT], parent: trace.Span) -> Scorer[ImageT]:
    """One span per model call of a scorer (Gemini, Moondream) or local measurement, per candidate."""

    async def score(candidate: CandidateImage[ImageT]) -> list[SignalScore]:
        span = child_span(
            parent,
            f"inpaint.score.{scorer.name}",
            **{"inpaint.candidate_id": candidate.candidate_id, "inpaint.scorer": scorer.name},
        )
        try:
            answer = list(await scorer.score(candidate))
            span.set_attribute("inpaint.fallbacks", sum(1 for s in answer if s.fallback))
            return answer
        except BaseException as error:
            if isinstance(error, Exception):
                span.record_exception(error)
            span.set_status(trace.StatusCode.ERROR, f"{type(error).__name__}: {error}")
            raise
        finally:
            span.end()

    return replace(scorer, score=score)


def traced_events(on_event: ProgressCallback | None, parent: trace.Span) -> ProgressCallback:
    """A candidate's span runs from its generation to its score (the raw swap's from planning); the stages
    the search skips or fails are events on the task's span."""
    open_spans: dict[str, trace.Span] = {}

    def handle(event: ProgressEvent) -> None:
        candidate = event.candidate_id
        if event.kind is EventKind.CANDIDATE_GENERATED and candidate:
            open_spans[candidate] = child_span(
                parent, "inpaint.candidate", **{"inpaint.candidate_id": candidate, "inpaint.stage": str(event.stage)}
            )
        elif event.kind is EventKind.CANDIDATE_SCORED and candidate:
            span = open_spans.pop(candidate, None) or child_span(
                parent, "inpaint.candidate", **{"inpaint.candidate_id": candidate, "inpaint.stage": str(event.stage)}
            )
            if event.potential is not None:
                span.set_attribute("inpaint.potential", event.potential)
            span.end()
        elif event.kind in (EventKind.STAGE_SKIPPED, EventKind.STAGE_FAILED):
            parent.add_event(str(event.kind), {"inpaint.stage": str(event.stage), "detail": event.detail or ""})
        elif event.kind is EventKind.DONE:
            for span in open_spans.values():  # generated, never scored (the deadline came first)
                span.set_attribute("inpaint.scored", False)
                span.end()
            open_spans.clear()
        if on_event is not None:
            on_event(event)

    return handle

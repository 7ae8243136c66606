"""OpenTelemetry spans for a task, tested with the SDK's in-memory exporter: the task, each stage's generation,
each candidate and each scorer's call, all children of the task's span."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from orchestrator.search import GenerationMode, SearchConfig, SearchRequest, run_search
from orchestrator.tracing import task_span, traced_events, traced_generate, traced_scorer
from tests.fakes.eacps import FakeGenerator, FakeImage, failing_scorer, table_scorer


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    yield exporter


def test_a_task_has_a_span_per_stage_candidate_and_scorer_call(exporter: InMemorySpanExporter) -> None:
    exporter.clear()

    async def run() -> None:
        with task_span("trace-1") as span:
            request: SearchRequest[FakeImage] = SearchRequest(
                request_seed=3, raw_swap=FakeImage("g0", GenerationMode.RAW_SWAP, 0), config=SearchConfig()
            )
            await run_search(
                request,
                generate=traced_generate(FakeGenerator(), span),
                scorers=[
                    traced_scorer(table_scorer({}), span),
                    traced_scorer(failing_scorer("gemini", ("realism_extra",), ValueError("model down")), span),
                ],
                on_event=traced_events(None, span),
            )

    asyncio.run(run())
    spans = exporter.get_finished_spans()
    (task,) = [s for s in spans if s.name == "inpaint.task"]
    assert task.attributes is not None and task.attributes["inpaint.request_id"] == "trace-1"
    children = [s for s in spans if s is not task]
    assert all(s.parent is not None and s.parent.span_id == task.context.span_id for s in children)
    names = [s.name for s in children]
    assert names.count("inpaint.generate.global") == 1 and names.count("inpaint.generate.local") == 1
    candidates = [s for s in children if s.name == "inpaint.candidate"]
    assert len(candidates) == 20 and all("inpaint.potential" in (s.attributes or {}) for s in candidates)
    scored = [s for s in children if s.name == "inpaint.score.fake-model"]
    assert len(scored) == 20
    failed = [s for s in children if s.name.startswith("inpaint.score.") and s.name != "inpaint.score.fake-model"]
    assert len(failed) == 20 and all(s.status.status_code == trace.StatusCode.ERROR for s in failed)

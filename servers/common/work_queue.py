"""One generation at a time per device, a bounded queue in front, RESOURCE_EXHAUSTED beyond it.

gRPC's `maximum_concurrent_rpcs` rejects instead of queueing, so the queue lives here. Blocking model
code runs in a worker thread; when the caller goes away the worker is told through its CancelToken and
the device stays reserved until the worker has actually stopped.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
from collections.abc import Callable
from typing import TypeVar

from servers.common.cancellation import CancelToken
from servers.common.errors import Cancelled, DeadlineExceeded, ResourceExhausted
from servers.common.metrics import ServerMetrics

T = TypeVar("T")


class WorkQueue:
    def __init__(self, max_concurrent: int, max_queue: int, metrics: ServerMetrics | None = None) -> None:
        if max_concurrent < 1 or max_queue < 0:
            raise ValueError("max_concurrent must be >= 1 and max_queue >= 0")
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        self._metrics = metrics
        self._slots = asyncio.Semaphore(max_concurrent)
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=max_concurrent, thread_name_prefix="device")
        self.waiting = 0
        self.running = 0

    def _publish(self) -> None:
        if self._metrics is not None:
            self._metrics.queue_depth.set(self.waiting)
            self._metrics.in_flight.set(self.running)

    async def _acquire(self) -> None:
        """Wait for a slot in the queue's order; RESOURCE_EXHAUSTED when the queue is full."""
        if self.waiting + self.running >= self.max_concurrent + self.max_queue:
            if self._metrics is not None:
                self._metrics.rejected.inc()
            raise ResourceExhausted(
                f"the server is busy: {self.running} running and {self.waiting} waiting (max queue {self.max_queue})"
            )
        self.waiting += 1
        self._publish()
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
            self._publish()

    async def run(self, work: Callable[[], T], token: CancelToken) -> T:
        """Run `work` on the device when a slot frees up. `work` should call `token.check()` between steps."""
        await self._acquire()
        try:
            token.check()  # the deadline may have passed while queued
        except BaseException:
            self._slots.release()
            raise
        self.running += 1
        self._publish()
        future = asyncio.get_running_loop().run_in_executor(self._executor, contextvars.copy_context().run, work)

        def release(done: asyncio.Future[T]) -> None:
            self.running -= 1
            self._slots.release()
            self._publish()
            # Retrieved here so that work stopped after its caller left is counted, not reported as lost.
            error = None if done.cancelled() else done.exception()
            if isinstance(error, Cancelled | DeadlineExceeded) and self._metrics is not None:
                self._metrics.stopped_work.inc()

        future.add_done_callback(release)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            token.cancel()
            raise

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=False)

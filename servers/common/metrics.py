"""Prometheus metrics of one model server, on their own registry and port."""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)


class ServerMetrics:
    """Requests, latency, batch sizes, queue depth and stopped work, prefixed with the server's name."""

    def __init__(self, namespace: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "requests",
            "Finished RPCs by method and status code",
            ["method", "code"],
            namespace=namespace,
            registry=self.registry,
        )
        self.latency = Histogram(
            "request_latency_seconds",
            "RPC latency",
            ["method"],
            namespace=namespace,
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "batch_size", "Images per model call", namespace=namespace, buckets=BATCH_BUCKETS, registry=self.registry
        )
        self.queue_depth = Gauge(
            "queue_depth", "Requests waiting for the device", namespace=namespace, registry=self.registry
        )
        self.in_flight = Gauge(
            "in_flight", "Requests running on the device", namespace=namespace, registry=self.registry
        )
        self.rejected = Counter(
            "rejected", "Requests refused because the queue was full", namespace=namespace, registry=self.registry
        )
        self.stopped_work = Counter(
            "stopped_work",
            "Model calls stopped early by a deadline or a cancellation",
            namespace=namespace,
            registry=self.registry,
        )
        self._http: WSGIServer | None = None

    def serve(self, host: str, port: int) -> None:
        """Expose /metrics on host:port (port 0: do nothing)."""
        if port:
            self._http, _ = start_http_server(port, addr=host, registry=self.registry)

    def close(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

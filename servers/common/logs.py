"""Structured logs: one JSON object per line, with the request id of the call being served (if any).

    log = get_logger("qwen_edit")
    log.info("generated", extra=fields(seeds=7, elapsed_s=3.2))

Never log a secret or image bytes.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import sys
import time
from typing import Any

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_FIELDS_KEY = "inpaint_fields"


def fields(**values: Any) -> dict[str, Any]:
    """Pass as `extra=` to a logging call to attach structured fields."""
    return {_FIELDS_KEY: values}


class JsonLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or REQUEST_ID.get(),
        }
        line.update(getattr(record, _FIELDS_KEY, {}))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class _DropShutdownCancellations(logging.Filter):
    """grpc.aio logs an ERROR with a traceback for every streaming call (a health Watch) that the drain
    ends; that is the drain working, not an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        cancelled = record.exc_info is not None and isinstance(record.exc_info[1], asyncio.CancelledError)
        return not (record.name.startswith("grpc.") and cancelled)


def configure_logging(level: str = "INFO") -> None:
    """Route every logger to stderr as JSON lines. Idempotent."""
    root = logging.getLogger()
    root.setLevel(level.upper())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLineFormatter())
    handler.addFilter(_DropShutdownCancellations())
    root.handlers[:] = [handler]


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(f"inpaint.{name}")

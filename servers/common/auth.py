"""API-key authentication of a gRPC server's services (and, through it, of the HTTP gateway in front).

    auth = Authenticator.from_config(config.auth)
    server.add_service(NAME, lambda s: add_MyServicer_to_server(servicer, auth.guard(s)))

A caller sends its key as `authorization: Bearer <key>` (or `x-api-key: <key>`); a missing or unknown key
ends the call with UNAUTHENTICATED before the servicer runs. Only the services registered through
`guard` are checked: health and reflection stay open, because Kubernetes probes carry no credentials.
Keys come from a key file (one per line, `#` comments; a mounted Secret in the cluster) and/or an
environment variable (comma-separated); only their SHA-256 digests are kept, and no key is ever logged.
The HTTP gateway forwards the caller's header unchanged, so both ports accept exactly the same keys.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import grpc
import grpc.aio
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]
from grpc_status import rpc_status  # type: ignore[import-untyped]

AUTHORIZATION_KEY = "authorization"
API_KEY_KEY = "x-api-key"
BEARER = "bearer "
DOMAIN = "inpaint.v1"
Context = grpc.aio.ServicerContext[Any, Any]


class AuthConfigError(ValueError):
    """The authentication settings cannot work (no key anywhere, an unreadable key file)."""


@dataclass(frozen=True)
class AuthConfig:
    """Who may call the public services.

    Attributes:
        mode: `none` (every caller; the local stack) or `api_key` (a key from `key_file` or `keys_env`).
        key_file: a file of keys, one per line (blank lines and `#` comments ignored).
        keys_env: an environment variable holding comma-separated keys, read at start-up.
    """

    mode: Literal["none", "api_key"] = "none"
    key_file: Path | None = None
    keys_env: str = "INPAINT_API_KEYS"

    def __post_init__(self) -> None:
        if self.mode == "api_key" and self.key_file is None and not self.keys_env:
            raise ValueError("mode api_key needs key_file or keys_env")


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def read_keys(config: AuthConfig, environ: Mapping[str, str] | None = None) -> list[str]:
    """The keys `config` names: the key file's lines, then the environment variable's entries."""
    environ = os.environ if environ is None else environ
    keys: list[str] = []
    if config.key_file is not None:
        try:
            text = config.key_file.read_text()
        except OSError as error:
            raise AuthConfigError(f"auth.key_file {config.key_file}: {error.strerror or error}") from error
        keys += [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if config.keys_env:
        keys += [key.strip() for key in environ.get(config.keys_env, "").split(",") if key.strip()]
    return keys


def credential_of(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    """The key a caller sent: `authorization: Bearer <key>`, else `x-api-key`; empty when none."""
    found = ""
    for key, value in metadata or ():
        text = value.decode(errors="replace") if isinstance(value, bytes) else value
        if key.lower() == AUTHORIZATION_KEY and text.lower().startswith(BEARER):
            return text[len(BEARER) :].strip()
        if key.lower() == API_KEY_KEY and not found:
            found = text.strip()
    return found


def unauthenticated_status(message: str, reason: str) -> Any:
    """UNAUTHENTICATED with an ErrorInfo detail, the way every other error of the API carries its reason."""
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN))
    code = grpc.StatusCode.UNAUTHENTICATED.value[0]
    return rpc_status.to_status(status_pb2.Status(code=code, message=message, details=[info]))


class Authenticator:
    """Checks each call's key against the configured ones (constant-time comparison of digests)."""

    def __init__(self, mode: Literal["none", "api_key"], keys: Sequence[str] = ()) -> None:
        if mode == "api_key" and not keys:
            raise AuthConfigError("auth.mode is api_key but no key was found (auth.key_file, auth.keys_env)")
        self.mode = mode
        self._digests = [_digest(key) for key in keys]

    @classmethod
    def from_config(cls, config: AuthConfig, environ: Mapping[str, str] | None = None) -> Authenticator:
        return cls(config.mode, read_keys(config, environ) if config.mode == "api_key" else ())

    @property
    def enabled(self) -> bool:
        return self.mode != "none"

    def problem(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> tuple[str, str] | None:
        """None when the call may go on; else (message, reason) for UNAUTHENTICATED."""
        if not self.enabled:
            return None
        key = credential_of(metadata)
        if not key:
            return "no API key: send `authorization: Bearer <key>` or `x-api-key`", "API_KEY_MISSING"
        digest = _digest(key)
        # Every digest compared, so the time taken does not say which key came close.
        matched = False
        for known in self._digests:
            matched |= hmac.compare_digest(digest, known)
        return None if matched else ("the API key is not valid", "API_KEY_INVALID")

    async def check(self, context: Context) -> None:
        """Ends the call with UNAUTHENTICATED (raising AbortError) unless its key is a known one."""
        problem = self.problem(context.invocation_metadata())
        if problem is not None:
            status = unauthenticated_status(*problem)
            await context.abort(status.code, status.details, status.trailing_metadata)

    def guard(self, server: grpc.aio.Server) -> grpc.aio.Server:
        """`server` as seen by a generated `add_*Servicer_to_server`: every handler it adds checks the key first."""
        if not self.enabled:
            return server
        return _GuardedServer(server, self)  # type: ignore[return-value]

    def wrap(self, handler: grpc.RpcMethodHandler[Any, Any]) -> grpc.RpcMethodHandler[Any, Any]:
        """One method's handler with the key checked before its behaviour runs."""
        if handler.unary_unary is not None:
            # grpc.aio behaviours are coroutines (the stubs type them as plain functions).
            unary: Any = handler.unary_unary

            async def checked_unary(request: Any, context: Context) -> Any:
                await self.check(context)
                result = unary(request, context)
                # grpc.aio accepts plain functions as behaviours too.
                return await result if inspect.isawaitable(result) else result

            return grpc.unary_unary_rpc_method_handler(
                checked_unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            stream: Any = handler.unary_stream
            behaviour: Any
            if inspect.isasyncgenfunction(stream):

                async def checked_stream(request: Any, context: Context) -> AsyncIterator[Any]:
                    await self.check(context)
                    async for message in stream(request, context):
                        yield message

                behaviour = checked_stream
            else:
                # A coroutine that sends with `context.write` (grpc.aio forbids mixing it with `yield`).
                async def checked_writer(request: Any, context: Context) -> Any:
                    await self.check(context)
                    result = stream(request, context)
                    return await result if inspect.isawaitable(result) else result

                behaviour = checked_writer
            return grpc.unary_stream_rpc_method_handler(
                behaviour,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        # The public API has no client-streaming methods; refuse to register one unchecked.
        raise AuthConfigError("only unary-unary and unary-stream methods can be guarded")


class _GuardedHandler(grpc.GenericRpcHandler):
    def __init__(self, inner: grpc.GenericRpcHandler, auth: Authenticator) -> None:
        self._inner = inner
        self._auth = auth

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = self._inner.service(handler_call_details)
        return None if handler is None else self._auth.wrap(handler)


class _GuardedServer:
    """The two registration calls generated code makes, with every handler wrapped; the rest unchanged."""

    def __init__(self, server: grpc.aio.Server, auth: Authenticator) -> None:
        self._server = server
        self._auth = auth

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers([_GuardedHandler(handler, self._auth) for handler in handlers])

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: dict[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        wrapped = {name: self._auth.wrap(handler) for name, handler in method_handlers.items()}
        self._server.add_registered_method_handlers(service_name, wrapped)

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]] | Any:
        return getattr(self._server, name)

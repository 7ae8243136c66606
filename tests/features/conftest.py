"""The whole stack for the face features' API tests: the orchestrator tests' live stack, reused."""

from tests.orchestrator.conftest import live

__all__ = ["live"]

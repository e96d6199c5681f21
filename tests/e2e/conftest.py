"""The e2e tests reuse the live-loop repo fixture."""

from tests.live.conftest import live_repo, start_gateway  # noqa: F401

"""minitrade: run trading strategies on schedule, GitOps style."""

from __future__ import annotations

__version__ = "0.1.0"

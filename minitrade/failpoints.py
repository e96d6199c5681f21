"""Named crash points for crash-safety tests: `MINITRADE_FAILPOINT=order-recorded` kills the process
there with SIGKILL, as a power cut would. Unset (always, outside tests) it costs one dict lookup.

Points: tick-started (tick recorded STARTED, nothing run yet), order-recorded (orders written
PENDING_SUBMIT, nothing sent), submit-sent (the broker accepted an order, our record not updated),
commit-loading (the daemon recorded a commit as loading, the load not started).

`MINITRADE_FAILPOINT=commit-loading:raise` raises a RuntimeError there instead, as a bug would.
"""

from __future__ import annotations

import os
import signal

ENV = "MINITRADE_FAILPOINT"


def hit(name: str) -> None:
    wanted = os.environ.get(ENV)
    if wanted == name:
        os.kill(os.getpid(), signal.SIGKILL)
    if wanted == f"{name}:raise":
        raise RuntimeError(f"failpoint {name}")

"""The one private BentoML API this project touches, kept in this module alone.

BentoML's adaptive batcher (``CorkDispatcher``, behind every ``batchable=True`` API) learns how
long to hold a request back in the hope of a bigger batch. tests/test_service.py fails loudly if
a BentoML upgrade renames what is patched here; pyproject.toml keeps BentoML below 1.5.
"""

from __future__ import annotations


def dispatch_when_idle() -> None:
    """Make BentoML's adaptive batcher run what is queued as soon as the model is free.

    By default it holds a request back for the mean wait of its last 50 batches, hoping for a
    bigger batch. After a burst that mean is large, and it feeds itself: at one client, after
    32 clients had come and gone, every request waited for company that never came (p50 +23 ms
    over the raw model, `make bench-serve`). On a CPU, waiting while the model is idle gains
    nothing: batches still form from what arrives while the model is busy."""
    from bentoml._internal.marshal.dispatcher import Optimizer

    if getattr(Optimizer.trigger_refresh, "never_waits", False):
        return
    refresh = Optimizer.trigger_refresh

    def trigger_refresh(self) -> None:
        refresh(self)
        self.wait = 0

    trigger_refresh.never_waits = True
    Optimizer.trigger_refresh = trigger_refresh

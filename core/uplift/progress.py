"""Progress of a long fit, reported to a callback from the calling thread."""

from __future__ import annotations

import threading
import time
from concurrent.futures import wait
from typing import Callable

Progress = Callable[[float, str], None]  # called with (share done, what is running · time left)


class ProgressTracker:
    """Progress of a fit: workers count steps, the calling thread reports them (Streamlit's
    widgets may only be touched from the script's own thread)."""

    def __init__(self, callback: Progress | None, start: float):
        self.callback = callback
        self.start = start
        self.total = 1
        self.done = 0
        self.message = ""
        self.lock = threading.Lock()
        self.owner = threading.get_ident()

    def plan(self, total: int) -> None:
        self.total, self.done = max(int(total), 1), 0

    def step(self, message: str) -> None:
        with self.lock:
            self.done += 1
            self.message = message
        if threading.get_ident() == self.owner:
            self.report()

    def report(self) -> None:
        if self.callback is None or self.done == 0:
            return
        with self.lock:
            done, message = min(self.done, self.total), self.message
        elapsed = time.perf_counter() - self.start
        left = elapsed / done * (self.total - done)
        self.callback(done / self.total, f"{message} · about {left:.0f} s left")

    def wait(self, pool, fn, tasks) -> list:
        """Run ``fn`` over ``tasks`` in ``pool``, reporting progress until all are done."""
        if pool is None:  # one worker: run inline
            return [fn(task) for task in tasks]
        futures = [pool.submit(fn, task) for task in tasks]
        pending = futures
        while pending:
            _, pending = wait(pending, timeout=0.25)
            self.report()
        return [f.result() for f in futures]

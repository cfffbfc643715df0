"""Thread pools whose tasks run in the context of the code that submits them.

A plain :class:`~concurrent.futures.ThreadPoolExecutor` runs each task in its
worker thread's own context, so context variables are lost there: above all
the principal a service's request acts as (:func:`aifdata.catalog.acting_as`),
and a read a worker makes for that request would be checked, and audited, as
the process's own user. Every pool in aifdata is a :class:`ThreadPool`.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class ThreadPool(ThreadPoolExecutor):
    """A thread pool whose every task (``submit`` and ``map``) runs in a copy of the
    submitter's context, as it was when the task was submitted."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)

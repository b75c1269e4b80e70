"""Cleanup that a signal cannot cut short: every stage runs, even when an earlier one failed or a stop
(KeyboardInterrupt, which dr turns SIGTERM and SIGHUP into) arrived during it.

A stop that arrived while a finished drill was cleaning up used to end the cleanup at the stage it hit
(waiting for the Kubernetes layer's engine): the rebuilt cluster's etcd members, API server and kwok were
never stopped and dr stayed alive. Now the interrupted stage is abandoned, the next ones still run, and
the interruption is raised again at the end (the first error, when nothing interrupted)."""

from __future__ import annotations

from collections.abc import Callable, Iterable


def run_every(stages: Iterable[Callable[[], object] | None]) -> None:
    interruption: BaseException | None = None
    error: Exception | None = None
    for stage in stages:
        if stage is None:
            continue
        try:
            stage()
        except KeyboardInterrupt as exc:
            interruption = interruption or exc
        except Exception as exc:  # the next stages still stop what they own
            error = error or exc
    if interruption is not None:
        raise interruption
    if error is not None:
        raise error

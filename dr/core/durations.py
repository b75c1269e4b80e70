"""Durations as people write them in a recovery graph ("90s", "8m", "1h30m", "2d") and back.

Pure helpers used by the spec loader and the plan/report writers.
"""

from __future__ import annotations

import re

_UNITS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
_DURATION = re.compile(r"(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?")


def parse_duration(text: str) -> int:
    """Seconds in a duration like '1h30m'; ValueError with a hint otherwise."""
    cleaned = text.strip().replace(" ", "")
    match = _DURATION.fullmatch(cleaned)
    if not cleaned or match is None or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration; write it like 90s, 8m, 1h30m or 2d")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return days * 86_400 + hours * 3_600 + minutes * 60 + seconds


def format_duration(seconds: float) -> str:
    """A compact human form: 0s, 45s, 8m, 1h05m, 2d03h."""
    total = round(seconds)
    if total < 60:
        return f"{total}s"
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if secs else f"{minutes}m"


# How long a step may run before dr calls it stuck: a multiple of its estimate, never less than a floor (a
# step estimated at seconds still needs time to start), and a fixed default for a step with no estimate.
STEP_TIMEOUT_FACTOR = 3
STEP_TIMEOUT_FLOOR_S = 120
STEP_TIMEOUT_DEFAULT_S = 900


def step_timeout_s(estimate_s: float, timeout_s: float = 0) -> int:
    """A step's timeout: its own (`timeout:`) when set, else 3 x its estimate, at least 2 minutes; 15 minutes
    when it has no estimate."""
    if timeout_s > 0:
        return round(timeout_s)
    if estimate_s <= 0:
        return STEP_TIMEOUT_DEFAULT_S
    return max(STEP_TIMEOUT_FLOOR_S, round(STEP_TIMEOUT_FACTOR * estimate_s))


def step_timeout_reason(estimate_s: float, timeout_s: float = 0) -> str:
    """Where a step's timeout came from, for the message that reports it."""
    if timeout_s > 0:
        return "its own timeout"
    if estimate_s <= 0:
        return f"the default for a step with no estimate ({format_duration(STEP_TIMEOUT_DEFAULT_S)})"
    if STEP_TIMEOUT_FACTOR * estimate_s < STEP_TIMEOUT_FLOOR_S:
        return (f"the floor of {format_duration(STEP_TIMEOUT_FLOOR_S)} ({STEP_TIMEOUT_FACTOR} x its estimate of "
                f"{format_duration(estimate_s)} is less)")
    return f"{STEP_TIMEOUT_FACTOR} x its estimate of {format_duration(estimate_s)}"


def engine_margin_s(timeout_s: float) -> int:
    """How much longer than its objects' own waits a Kubernetes-level step may run, so the engine's report of
    a timeout comes first: a quarter of the timeout, between 5 s and a minute."""
    return int(min(60, max(5, timeout_s // 4)))

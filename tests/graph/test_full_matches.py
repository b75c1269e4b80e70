"""Every validator matches the whole value: a pattern ending in `$` used with `re.match` also accepts the
value followed by a newline (`web\\n` beside `web`), and a Unicode digit is not an ASCII digit.

Each case is a graph with one value in it; the value as written is accepted, and the same value with a
newline or a space after it (or a look-alike digit in it) is a graph error on that value's line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml

from dr.core.spec import GraphSpec
from dr.errors import GraphError

Graph = Callable[[str], dict[str, Any]]


def _backup(**fields: Any) -> dict[str, Any]:
    return {"tool": "restic", "repo": "/srv/backups", "schedule": "0 3 * * *", "retention": {"daily": 7},
            "rpo": "1d", **fields}


def _kopiur_backup(repo: str) -> dict[str, Any]:
    return {"tool": "kopiur", "repo": repo, "schedule": "0 3 * * *", "retention": {"daily": 7}, "rpo": "1d"}


# (what, the valid value, the graph holding a value in that place)
GRAPHS: dict[str, tuple[str, Graph]] = {
    "component name": ("web", lambda v: {"components": {v: {"layer": "app"}}}),
    "backup name": ("nightly", lambda v: {"backups": {v: _backup()}}),
    "kubernetes version": ("1.30", lambda v: {"kubernetes": v}),
    "host address": ("10.0.0.10", lambda v: {"hosts": {"cp0": {"address": v}}}),
    "host name": ("cp0.example.com", lambda v: {"hosts": {"cp0": {"address": "10.0.0.10", "hostname": v}}}),
    "cron schedule": ("0 3 * * *", lambda v: {"backups": {"b": _backup(schedule=v)}}),
    "kopiur repository": ("kopiur:ClusterRepository/nas", lambda v: {"backups": {"b": _kopiur_backup(v)}}),
}


def _graph(part: dict[str, Any]) -> str:
    graph: dict[str, Any] = {"cluster": "lab", "components": {"os": {"layer": "os"}}}
    for key, value in part.items():
        graph[key] = {**graph[key], **value} if key == "components" else value
    return yaml.safe_dump(graph, sort_keys=False)


def _problems(text: str) -> list[str]:
    try:
        GraphSpec.from_yaml(text, path="g.yaml")
    except GraphError as exc:
        return [f"{d.line}: {d.message}" for d in exc.diagnostics]
    return []


@pytest.mark.parametrize("what", sorted(GRAPHS))
def test_the_valid_value_is_accepted(what: str) -> None:
    value, graph = GRAPHS[what]
    assert _problems(_graph(graph(value))) == []


@pytest.mark.parametrize("suffix", ["\n", " ", "\r", "\t"], ids=["newline", "space", "return", "tab"])
@pytest.mark.parametrize("what", sorted(GRAPHS))
def test_a_trailing_newline_or_space_is_refused(what: str, suffix: str) -> None:
    value, graph = GRAPHS[what]
    problems = _problems(_graph(graph(value + suffix)))
    assert problems, f"{what} {value + suffix!r} was accepted"
    assert any(repr(value + suffix) in p for p in problems), problems


@pytest.mark.parametrize("what", ["kubernetes version", "cron schedule"])
def test_a_digit_that_is_not_ascii_is_refused(what: str) -> None:
    value, graph = GRAPHS[what]
    unicode_digits = value.replace("3", "\u0663")  # ARABIC-INDIC DIGIT THREE: `\d` matches it
    assert unicode_digits != value
    assert _problems(_graph(graph(unicode_digits)))


def test_a_crd_label_value_with_a_trailing_newline_is_dropped() -> None:
    from dr.kube.crds import installable

    crd = {"metadata": {"name": "things.example.com", "labels": {"kept": "v1", "dropped": "v1\n"}}, "spec": {}}
    assert installable(crd)["metadata"]["labels"] == {"kept": "v1"}


@pytest.mark.parametrize("cron", ["\u0663 * * * *", "*/\u00b2 * * * *"])
def test_a_drill_schedule_with_a_digit_that_is_not_ascii_is_a_usage_error(cron: str) -> None:
    from dr.drill.schedule import on_calendar
    from dr.errors import UsageError

    with pytest.raises(UsageError):
        on_calendar(cron)

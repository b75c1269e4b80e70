"""Kubernetes and Helm names, checked as the API server and Helm check them (pure).

A namespace is a DNS-1123 label; most objects (a PersistentVolumeClaim, a Secret, a Flux Kustomization,
an Argo CD Application) are named by a DNS-1123 subdomain; a Helm release name is a subdomain Helm limits
to 53 characters (it adds suffixes of its own to the objects it names after the release). Each name
reaches the objects dr renders and the runbook's commands: a name the cluster would refuse is refused
where the graph is read, with its line, instead of on the night of the rebuild.
"""

from __future__ import annotations

import re

_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")  # always with fullmatch: `$` lets a newline through
LABEL_MAX = 63
SUBDOMAIN_MAX = 253
RELEASE_MAX = 53

_LABEL_RULE = "lower-case letters, digits and '-', starting and ending with a letter or digit"


def is_label(value: object) -> bool:
    """A DNS-1123 label: what a namespace (and a component of the graph) is named."""
    return isinstance(value, str) and len(value) <= LABEL_MAX and _LABEL.fullmatch(value) is not None


def _is_subdomain(value: str, limit: int) -> bool:
    return 0 < len(value) <= limit and all(
        len(part) <= LABEL_MAX and _LABEL.fullmatch(part) for part in value.split("."))


def namespace_problem(value: str) -> str | None:
    """Why `value` is not a namespace name, or None."""
    if is_label(value):
        return None
    return (f"{value!r} is not a Kubernetes namespace name: {_LABEL_RULE}, at most {LABEL_MAX} characters "
            "(a DNS-1123 label)")


def object_name_problem(value: str) -> str | None:
    """Why `value` is not a Kubernetes object name, or None."""
    if _is_subdomain(value, SUBDOMAIN_MAX):
        return None
    return (f"{value!r} is not a Kubernetes object name: {_LABEL_RULE}, in parts joined by '.', at most "
            f"{SUBDOMAIN_MAX} characters (a DNS-1123 subdomain)")


def release_name_problem(value: str) -> str | None:
    """Why Helm would refuse `value` as a release name, or None."""
    if _is_subdomain(value, RELEASE_MAX):
        return None
    return (f"{value!r} is not a Helm release name: {_LABEL_RULE}, in parts joined by '.', at most "
            f"{RELEASE_MAX} characters")

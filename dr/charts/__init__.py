"""Helm charts for rebuilds: a local mirror of the charts a graph pins, served as a Helm repository."""

"""dr: rebuild a Kubernetes cluster from one declared recovery graph.

The core (spec, graph, modes, plan) is pure: it takes data and returns data. Everything that
touches files, processes or the network lives in the adapters (cli, pulumi_program, later the
Ansible runner and restore drivers).
"""

__version__ = "0.1.0"

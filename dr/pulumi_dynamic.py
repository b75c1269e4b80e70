"""Old import path of the host-step dynamic provider, kept on purpose.

Pulumi pickles a dynamic provider by class reference into every stack's state. Stacks created before
the provider moved to `dr.stack.host_step` name `dr.pulumi_dynamic.HostStepProvider`; this alias keeps
their update and delete working. New stacks record the new path.
"""

from dr.stack.host_step import HostStep, HostStepProvider

__all__ = ["HostStep", "HostStepProvider"]

"""Restore drivers: one per host-level backup tool (etcd-snapshot, restic, pgbackrest).

Each driver lists the backups available, chooses one for a target time (`dr.core.backups`,
pure), restores it into a fresh target through its playbook (`dr.hosts.ansible`), and verifies the result.
"""

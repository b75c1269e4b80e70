"""A restore step (`restore:`): a backup brought back, on the hosts (restic, etcd snapshots, pgBackRest)
or in the cluster as the backup tool's own objects (CloudNativePG, Velero, Longhorn, VolSync, kopiur).

What differs per backup tool lives in `dr.core.restore_tools`; this module turns a restore step into
its children: a host restore, or the restore's namespace, a precheck of what the objects read, and the
objects themselves (annotated so `pulumi up` waits until each is done).
"""

from __future__ import annotations

import copy
import shlex
from collections.abc import Mapping
from typing import Any

from dr.core.docmodel import Block, Code, Para, code, text
from dr.core.invocations import (
    ChosenBackup,
    etcd_snapshot_dir,
    hosts_inventory,
    manual_restore_commands,
    pgbackrest_settings,
    restic_repository,
    restore_invocation,
    run_as,
)
from dr.core.kube_objects import KubeObject, kubectl_resource, need
from dr.core.plan import Step
from dr.core.repositories import pgbackrest_options, pgbackrest_problem
from dr.core.restore_tools import TOOLS, RestoreRequest, backup_waited_for, restore_done, secrets_read
from dr.core.spec import GraphSpec, RestoreAction, thaw
from dr.core.steps.base import (
    BACKUP_SET,
    CLUSTER_TOKEN,
    SNAPSHOT,
    SNAPSHOT_FILE,
    SNAPSHOT_PATH,
    BuildContext,
    Child,
    ChildKind,
    StepKind,
    yaml_text,
)
from dr.core.text import one_line


def children(step: Step, ctx: BuildContext) -> list[Child]:
    action = step.component.action
    assert isinstance(action, RestoreAction)
    spec = ctx.spec
    backup = spec.backups[action.backup]
    if backup.host_level:
        return [Child(kind="host-restore", name=f"{step.name}-restore", retain_on_delete=True, inputs={
            "playbook": TOOLS[backup.tool].playbook, "tool": backup.tool, "backup": backup.name,
            "repo": backup.repo, "target_time": action.target_time, "allow_collapsed": action.allow_collapsed,
            "hosts": list(action.hosts), "vars": thaw(action.vars),
            # A drill reads production backups and never writes them: a restored database must not
            # archive its new timeline into the production repository.
            "write_back": ctx.mode != "drill"})]
    values = thaw(action.vars)
    request = RestoreRequest(component=step.name, backup=backup, target_time=action.target_time, values=values,
                             namespace=str(need(values, "namespace", step.name,
                                                "the namespace the restored data lives in")), mode=ctx.mode)
    ancestors = spec.ancestors(step.name) if step.name in spec.components else set()
    objects = [_awaited(obj, step.timeout_s)
               for obj in (*_namespace(request.namespace, ctx.namespaces_created, step.name, ancestors),
                           *TOOLS[backup.tool].objects(request))]
    needs = restore_needs([obj.manifest for obj in objects])
    precheck = [Child(kind="restore-precheck", name=f"{step.name}-precheck",
                      inputs={"step": step.name, "precheck": needs,
                              "timeout_s": step.timeout_s})] if any(needs.values()) else []
    made = [Child(kind="kube-object", name=f"{step.name}-{obj.kind.lower()}", inputs={"manifest": obj.manifest},
                  protect=ctx.prod and obj.data_bearing, retain_on_delete=obj.data_bearing, objects=(obj,))
            for obj in objects]
    # After the namespace (the credentials live in it), before every object that reads them.
    namespaces = [c for c in made if c.inputs["manifest"].get("kind") == "Namespace"]
    return namespaces + precheck + [c for c in made if c not in namespaces]


def restore_needs(manifests: list[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """What must exist before these restore objects are created, read from the objects themselves:
    the credential Secrets they name (with the keys they read), and the backups they restore from —
    Longhorn's webhook rejects a `fromBackup` volume until the backup target has synced the backup, and
    a Velero Restore created before its backups synced fails validation and is never retried."""
    secrets: dict[tuple[str, str], set[str]] = {}
    backups: list[dict[str, Any]] = []
    for manifest in manifests:
        namespace = str(manifest.get("metadata", {}).get("namespace", ""))
        for name, keys in secrets_read(manifest):
            secrets.setdefault((namespace, name), set()).update(keys)
        backup = backup_waited_for(manifest)
        if backup is not None:
            backups.append(backup)
    return {"secrets": [{"namespace": ns, "name": name, "keys": sorted(keys)}
                        for (ns, name), keys in sorted(secrets.items())],
            "backups": backups}


def _namespace(name: str, created: dict[str, set[str]], component: str, ancestors: set[str]) -> list[KubeObject]:
    """The restore's namespace, unless a component it depends on creates it. Two restores that do not
    depend on each other both create it (the same object, applied twice): `pulumi up` may run them side
    by side, and a restore object must never be created before its namespace."""
    makers = created.setdefault(name, set())
    if makers & ancestors:
        return []
    makers.add(component)
    return [KubeObject(manifest={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
                       data_bearing=True)]


def _awaited(obj: KubeObject, timeout_s: int) -> KubeObject:
    """The object with the annotations that make `pulumi up` wait for it, as long as the step's timeout
    (`dr.core.durations.step_timeout_s`)."""
    condition = restore_done(obj.manifest)
    if condition is None:
        return obj
    manifest = copy.deepcopy(dict(obj.manifest))
    annotations = manifest.setdefault("metadata", {}).setdefault("annotations", {})
    annotations["pulumi.com/waitFor"] = condition
    annotations["pulumi.com/timeoutSeconds"] = str(timeout_s)
    return KubeObject(manifest=manifest, data_bearing=obj.data_bearing, restore_sources=obj.restore_sources)


# -- the runbook -----------------------------------------------------------------------------------------

def object_runbook(step: Step, child: Child, spec: GraphSpec) -> list[Block]:
    manifest = child.inputs["manifest"]
    protected = ("protected against deletion (`protect`) and kept on delete" if child.protect
                 else "kept on delete" if child.retain_on_delete else "")
    file_name = f"restore/{step.name}-{str(manifest['kind']).lower()}.yaml"
    blocks: list[Block] = [
        Para(f"Automation: creates {text(str(manifest['kind']))} {code(str(manifest['metadata']['name']))} through "
             "Pulumi" + (f", {protected}." if protected else ".") + f" By hand, save as {code(file_name)} and apply:"),
        Code(yaml_text(manifest), "yaml"),
        Code(shlex.join(["kubectl", "apply", "-f", file_name]) + "\n", "sh")]
    archive = manifest.get("spec", {}).get("backup", {}).get("barmanObjectStore", {})
    if manifest["kind"] == "Cluster" and archive.get("serverName"):
        source = manifest["spec"]["externalClusters"][0]["barmanObjectStore"]["serverName"]
        new = archive["serverName"]
        blocks.append(Para(f"The recovered cluster archives under the new server name {code(new)}, "
                           f"not {code(source)}: CloudNativePG refuses to write into the archive it recovers from. "
                           f"After this recovery, set {code(f'server_name: {new}')} in the graph so the "
                           "next recovery reads the new timeline."))
    return blocks


_EXPECTED = {"Cluster": "   # STATUS: Cluster in healthy state",
             "Restore": " -o jsonpath='{.status.phase}'   # Completed",
             "Volume": " -o jsonpath='{.status.state}'   # attached or detached, restoreRequired false",
             "PersistentVolumeClaim": "   # STATUS: Bound", "PersistentVolume": "   # STATUS: Bound",
             "Namespace": "   # STATUS: Active"}


def object_verify(child: Child) -> str:
    manifest = child.inputs["manifest"]
    namespace = manifest["metadata"].get("namespace")
    where = ["-n", str(namespace)] if namespace else []
    return (shlex.join(["kubectl", "get", str(manifest["kind"]).lower(), *where, str(manifest["metadata"]["name"])])
            + _EXPECTED.get(manifest["kind"], ""))


def precheck_runbook(step: Step, child: Child, spec: GraphSpec) -> list[Block]:
    needs = child.inputs["precheck"]
    lines = [shlex.join(["kubectl", "-n", str(s["namespace"]), "get", "secret", str(s["name"]), "-o",
                         "jsonpath={.data}"]) + f"  # keys: {one_line(', '.join(s['keys']))}"
             for s in needs.get("secrets", [])]
    for backup in needs.get("backups", []):
        resource = kubectl_resource(str(backup["apiVersion"]), str(backup["kind"]), plural=True)
        which = [str(backup["name"])] if backup.get("name") else ["-l", str(backup["selector"])]
        lines.append(shlex.join(["kubectl", "-n", str(backup["namespace"]), "get", resource, *which]))
    return [Para("Before the restore objects: the credentials they read must exist, and the backups they "
                 "restore from must have been synced from the backup target (dr waits for them; Longhorn "
                 "and Velero refuse a restore that comes too early, for good). By hand:"),
            Code("\n".join(lines) + "\n", "sh")]


def host_runbook(step: Step, child: Child, spec: GraphSpec) -> list[Block]:
    inputs = child.inputs
    variables = inputs.get("vars", {})
    tool = inputs["tool"]
    hosts = hosts_inventory(spec)
    placeholder = {"etcd-snapshot": SNAPSHOT_FILE, "pgbackrest": BACKUP_SET}.get(tool, SNAPSHOT)
    chosen = ChosenBackup(placeholder, SNAPSHOT_PATH if tool == "restic" else "")
    invocation = restore_invocation(inputs, hosts=hosts, chosen=chosen, cluster_token=CLUSTER_TOKEN)
    repo = restic_repository(inputs)
    direct = [shlex.join(argv) for argv in manual_restore_commands(invocation)]
    if tool == "restic":
        restore_path = str(invocation.extravars["restore_path"])
        find = [f"restic -r {shlex.quote(repo)} snapshots   # pick the newest good one: {SNAPSHOT}, "
                f"and its path: {SNAPSHOT_PATH}"]
        credentials = (" For an `s3:` repository it also reads `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`."
                       if repo.startswith("s3:") else "")
        note = (f"Restic needs the password in `RESTIC_PASSWORD`.{credentials} Never restore over a non-empty "
                f"{code(restore_path)}: move it aside first. If the newest snapshot is much smaller than the ones "
                "before it, a blank volume was backed up: restore the one before it.")
    elif tool == "etcd-snapshot":
        directory = etcd_snapshot_dir(inputs)
        fetch = []
        if str(inputs.get("repo", "")).startswith(("s3://", "s3:", "gs:", "azure:")) and "snapshot_dir" in variables:
            # The snapshots live in a bucket; the restore reads files on the member hosts.
            fetch = [f"# the snapshots are in {one_line(shlex.quote(str(inputs['repo'])))}: copy the newest to every "
                     "member first, e.g.",
                     f"aws s3 cp {shlex.quote(str(inputs['repo']).rstrip('/') + '/')}{SNAPSHOT_FILE} "
                     f"{shlex.quote(directory.rstrip('/') + '/')}   # or rclone copy; with the bucket's credentials"]
        find = [*fetch, f"ls -lt {shlex.quote(directory)}   # the newest snapshot file: {SNAPSHOT_FILE}",
                f"ETCDCTL_API=3 etcdctl snapshot status {SNAPSHOT_FILE} -w table   # refuse a damaged one"]
        members = invocation.extravars["etcd_members"]
        direct = [line for m, argv in zip(members, direct, strict=True)
                  for line in (f"# on {one_line(shlex.quote(str(m['host'])))}:", argv,
                               "systemctl start etcd   # or "
                               + one_line(shlex.join(["etcd", "--name", str(m["name"]), "--data-dir",
                                                      str(m["data_dir"])])) + " ...")]
        note = ("Use a new cluster token for every restore. Copy the snapshot file to every member first.")
    else:
        pg = pgbackrest_settings(variables)
        info = run_as(pg.os_user, ["pgbackrest", f"--config={pg.config}", f"--stanza={pg.stanza}", "info"],
                      am_root=True)
        find = [shlex.join(info) + f"   # the newest full/diff/incr set before the target: {BACKUP_SET}"]
        repository = str(inputs.get("repo", ""))
        options = pgbackrest_options(repository) if repository and not pgbackrest_problem(repository) else {}
        named = ""
        if options:
            listed = ", ".join(code(f"{key}={value}") for key, value in options.items())
            extra = (" with its endpoint, region and key (`repo1-s3-endpoint`, `repo1-s3-region`, "
                     "`repo1-s3-key`, `repo1-s3-key-secret`: pgBackRest speaks S3 over TLS only)"
                     if options["repo1-type"] == "s3" else "")
            named = f"{code(pg.config)} on the host must name the repository as {listed}{extra}. "
        note = (f"{named}The data directory {code(pg.pg_data)} must be empty (move an old one aside, never delete it). "
                "The server replays WAL up to the target and promotes itself; wait until "
                "`SELECT pg_is_in_recovery()` returns `f`.")
    return [Para(f"Automation: the {text(tool)} driver picks the backup and runs "
                 f"{code('playbooks/' + invocation.playbook)} through ansible-runner. By hand, find the backup:"),
            Code("\n".join(find) + "\n", "sh"),
            Para("then run the same playbook dr runs:"),
            Code(invocation.command_line() + "\n", "sh"),
            Para("or, if Ansible itself is broken, what the playbook does:"),
            Code("\n".join(direct) + "\n", "sh"),
            Para(note)]


KIND = StepKind(name="restore", claims=lambda component: isinstance(component.action, RestoreAction),
                children=children, child_kinds=(
                    ChildKind("host-restore", "hosts", host_runbook),
                    ChildKind("restore-precheck", "cluster", precheck_runbook, before_later_siblings=True),
                    ChildKind("kube-object", "objects", object_runbook, verify=object_verify),
                ))

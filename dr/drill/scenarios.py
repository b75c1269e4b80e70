"""Real incidents replayed on the sandbox (`dr drill --sandbox --scenario NAME`).

Each scenario does, on the sandbox's production, what happened in one of the incidents dr exists for,
asks dr's audit what it would have said before, lets the sandbox drill rebuild, then checks what came
back byte for byte. The hooks run inside `dr.drill.run.sandbox_drill`:

    before_disaster  after production is built and backed up: the audit, and what happens before
    disaster         the incident itself, then the sandbox destroys the rest of production
    after_rebuild    what came back, what was lost: a ScenarioResult and its checks

Each is replayed for real: restic repositories and the restore playbook (storage-wipe, blank-volume), the
garbage collector and the hostPath deleter of a real controller-manager (cascade-delete), a three-member
etcd losing two members (quorum-loss), a really failing archive command, the namespace controller and
pgBackRest point-in-time recovery (namespace-delete). docs/incidents.md says what is not real.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from dr.audit.checks import AuditInput, BackupState, Finding, audit
from dr.audit.sources import HOST_READERS, Bound, cascade_view, k8s_status_from_kubectl
from dr.core.backups import CollapsedBackup
from dr.core.drill_report import CheckResult, ScenarioResult, scenario_step
from dr.core.spec import GraphSpec, Retention
from dr.drill.executor import StepRecord
from dr.errors import DrError, RestoreError
from dr.restore import restic

if TYPE_CHECKING:
    from dr.drill.sandbox import Sandbox
    from dr.kube.sandbox_cluster import SandboxCluster

Manifest = dict[str, tuple[str, int]]  # relative path -> (sha256, size)


def manifest(root: Path) -> Manifest:
    """Every file under `root` with its digest and size."""
    found: Manifest = {}
    if root.is_dir():
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                found[str(path.relative_to(root))] = (hashlib.sha256(data).hexdigest(), len(data))
    return found


def compare(expected: Manifest, found: Manifest) -> tuple[int, list[str]]:
    """(bytes of files identical to `expected`, the files missing or different)."""
    same = [name for name, entry in expected.items() if found.get(name) == entry]
    return sum(expected[n][1] for n in same), sorted(set(expected) - set(same))


def changed_bytes(before: Manifest, after: Manifest) -> int:
    """Bytes of the files written or changed between two manifests: what a backup taken before misses."""
    return sum(size for name, (digest, size) in after.items() if before.get(name, ("", 0))[0] != digest)


class Scenario(abc.ABC):
    """One incident: what it does to production before and at the disaster, and what it checks after."""

    name = ""
    incident = ""

    def __init__(self) -> None:
        self.checks: list[CheckResult] = []
        self.struck_at: float | None = None  # when the incident struck, if not when production was destroyed

    def check(self, kind: str, ok: bool, detail: str) -> None:
        self.checks.append(CheckResult(scenario_step(self.name), kind, ok, " ".join(detail.split())))

    def prepare(self, sandbox: Sandbox) -> None:
        """Before production is built: what the scenario needs production to look like (by default,
        production as the graph makes it)."""
        return None

    @abc.abstractmethod
    def before_disaster(self, sandbox: Sandbox) -> None:
        """After production is built and backed up: the audit, and what happens before the incident."""

    @abc.abstractmethod
    def disaster(self, sandbox: Sandbox) -> None:
        """The incident itself; the sandbox then destroys the rest of production."""

    @abc.abstractmethod
    def after_rebuild(self, sandbox: Sandbox, records: Mapping[str, StepRecord]) -> ScenarioResult:
        """What came back and what was lost, with the scenario's checks."""

    def cleanup(self) -> None:
        """Remove what the scenario made outside the sandbox's directory (always called, also on failure);
        by default it made nothing there."""
        return None


def restic_backups(sandbox: Sandbox) -> list[tuple[str, Mapping[str, Any]]]:
    """(restore component, inputs) of every restic restore the sandbox built production for."""
    found = [(name, inputs) for name, inputs in sandbox.host_restores("restic")
             if str(inputs["backup"]) in sandbox.state.restic]
    if not found:
        raise DrError("this scenario replays a volume incident: the graph needs a restic backup restored on the "
                      "hosts (the example graph has two)")
    return found


def restic_state(sandbox: Sandbox, backup: str) -> BackupState:
    repo = sandbox.state.restic[backup]["repo"]
    return HOST_READERS["restic"]({"repo": repo, "vars": {}}, {"restic_password": sandbox.password}, Bound())


def timed_audit(spec: GraphSpec, read: Callable[[], Mapping[str, BackupState]]) -> tuple[list[Finding], float]:
    """The audit as `dr audit` runs it, timed: read what the backups hold, then judge."""
    started = time.monotonic()
    findings = audit(AuditInput(spec=spec, states=read()))
    return findings, time.monotonic() - started


class StorageWipe(Scenario):
    """A storage operator wiped its disks when the API server went quiet."""

    name = "storage-wipe"
    incident = ("a storage operator wiped the volumes it managed when it lost the API server: every volume's "
                "data was gone")

    def before_disaster(self, sandbox: Sandbox) -> None:
        self.volumes = restic_backups(sandbox)
        self.at_backup = {b: manifest(Path(sandbox.state.restic[b]["source"]))
                          for b in (str(i["backup"]) for _, i in self.volumes)}
        spec = sandbox.spec
        covered, _ = timed_audit(spec, lambda: {b: restic_state(sandbox, b) for b in self.at_backup})
        # The graph variant that lacks one backup: the audit must name what it leaves unprotected.
        self.dropped = str(self.volumes[-1][1]["backup"])
        self.owners = spec.backups[self.dropped].protects
        variant = dataclasses.replace(spec, backups={n: b for n, b in spec.backups.items() if n != self.dropped})
        findings, self.detect_s = timed_audit(variant, lambda: {b: restic_state(sandbox, b) for b in self.at_backup
                                                                 if b != self.dropped})
        self.named = [f for f in findings if f.check == "coverage" and f.subject in self.owners]
        unprotected = [f for f in covered if f.check == "coverage" and f.subject in self.owners]
        self.check("audit-names-unprotected", bool(self.named) and not unprotected,
                   f"without backup {self.dropped}: " + ("; ".join(f.message for f in self.named) or "nothing said")
                   + f"; with it: {len(unprotected)} coverage finding(s) for {', '.join(self.owners)}")
        # Production goes on after the last backup: these writes are what the wipe really loses.
        for backup in self.at_backup:
            sandbox.write_files(Path(sandbox.state.restic[backup]["source"]), count=80, round_=4)
        self.before_wipe = {b: manifest(Path(sandbox.state.restic[b]["source"])) for b in self.at_backup}

    def disaster(self, sandbox: Sandbox) -> None:
        sandbox.stop_production_cluster()  # the control plane goes quiet first
        self.wiped = 0
        for backup in self.at_backup:
            source = Path(sandbox.state.restic[backup]["source"])
            self.wiped += sum(size for _, size in self.before_wipe[backup].values())
            shutil.rmtree(source)
            source.mkdir()
        left = sum(len(manifest(Path(sandbox.state.restic[b]["source"]))) for b in self.at_backup)
        self.check("volumes-wiped", left == 0 and self.wiped > 0,
                   f"{self.wiped} bytes in {len(self.at_backup)} volume(s) deleted; {left} file(s) left")

    def after_rebuild(self, sandbox: Sandbox, records: Mapping[str, StepRecord]) -> ScenarioResult:
        recovered = lost = 0
        for component, inputs in self.volumes:
            backup = str(inputs["backup"])
            restored = manifest(sandbox.hostfs(str(inputs["vars"]["restore_path"])))
            same, differing = compare(self.at_backup[backup], restored)
            recovered += same
            lost += changed_bytes(self.at_backup[backup], self.before_wipe[backup])
            self.check(f"byte-identical {backup}", not differing and bool(self.at_backup[backup]),
                       f"{len(self.at_backup[backup]) - len(differing)} of {len(self.at_backup[backup])} files "
                       f"({same} bytes) identical to the last backup after {component}"
                       + (f"; missing or different: {', '.join(differing[:5])}" if differing else ""))
        return ScenarioResult(
            name=self.name, incident=self.incident,
            disaster=f"production's control plane stopped, then every restic volume emptied ({self.wiped} bytes)",
            detected=tuple(f.message for f in self.named), detect_s=self.detect_s,
            prevented=(f"a graph without backup {self.dropped} is named by the audit before anything is lost "
                       f"({', '.join(self.owners)})"),
            recovered=f"every volume, byte-identical to its last backup ({recovered} bytes)",
            lost=f"what was written after the last backup ({lost} bytes): the RPO", bytes_recovered=recovered,
            bytes_lost=lost)


def forget_to(repo: restic.ResticRepository, retention: Retention) -> None:
    """Apply a retention policy with restic itself (`forget --prune`)."""
    flags = {"last": "--keep-last", "hourly": "--keep-hourly", "daily": "--keep-daily", "weekly": "--keep-weekly",
             "monthly": "--keep-monthly", "yearly": "--keep-yearly"}
    args = [part for key, flag in flags.items() if getattr(retention, key)
            for part in (flag, str(getattr(retention, key)))]
    repo.run("forget", "--prune", *(args or ["--keep-last", "1"]))


class BlankVolume(Scenario):
    """Volumes came back blank after an upgrade, and the next backup replaced the only good one."""

    name = "blank-volume"
    incident = ("after an upgrade a volume came back blank, the app initialised it, and the nightly backup with "
                "retention 1 replaced the only good copy")

    def before_disaster(self, sandbox: Sandbox) -> None:
        self.restore_step, inputs = restic_backups(sandbox)[0]
        self.backup = str(inputs["backup"])
        places = sandbox.state.restic[self.backup]
        source, repo = Path(places["source"]), restic.ResticRepository(places["repo"], sandbox.password)
        self.good = manifest(source)
        # The volume comes back blank, the app initialises it, the next scheduled backup runs.
        shutil.rmtree(source)
        (source / "app").mkdir(parents=True)
        (source / "app" / "initialised.json").write_text('{"fresh": true}\n')
        repo.run("backup", str(source))
        blank = restic.list_snapshots(repo)[-1].point
        # The incident's retention (one restore point), on a copy: restic really forgets the good snapshots.
        incident_repo = Path(places["repo"] + "-retention-1")
        shutil.copytree(places["repo"], incident_repo)
        forget_to(restic.ResticRepository(str(incident_repo), sandbox.password), Retention(last=1))
        spec = sandbox.spec
        variant = dataclasses.replace(spec, backups={**spec.backups, self.backup: dataclasses.replace(
            spec.backups[self.backup], retention=Retention(last=1))})
        findings, self.detect_s = timed_audit(variant, lambda: {self.backup: restic_state(sandbox, self.backup)})
        self.said = [f for f in findings if f.subject == self.backup and f.check in ("collapse", "retention")]
        self.check("audit-flags-collapse-and-retention",
                   {f.check for f in self.said} == {"collapse", "retention"},
                   "; ".join(f"{f.check}: {f.message}" for f in self.said) or "nothing said")
        # The guard, through the same driver the restore step runs. With the graph's retention it has good
        # snapshots to compare with and refuses the blank one. With retention 1 restic really forgot every
        # good snapshot: the guard has nothing to compare with and cannot tell (only the audit's finding,
        # before the incident, stands between the app and an empty volume).
        self.refused_graph = _guard(Path(places["repo"]), inputs, sandbox.password)
        self.check("guard-refuses-blank-snapshot",
                   isinstance(self.refused_graph, CollapsedBackup) and self.refused_graph.last_good is not None,
                   str(self.refused_graph or "the blank snapshot was accepted"))
        left = restic.list_snapshots(restic.ResticRepository(str(incident_repo), sandbox.password))
        self.retention_one = _guard(incident_repo, inputs, sandbox.password)
        self.check("retention-1-forgets-the-good-copy",
                   [s.point.id for s in left] == [blank.id] and self.retention_one is None,
                   f"after restic forget --keep-last 1: {len(left)} snapshot(s) left ("
                   + ", ".join(f"{s.point.id}, {s.point.size_bytes} B" for s in left)
                   + f"; the blank one is {blank.id}); "
                   "the guard "
                   + ("accepts it: no earlier snapshot to compare with" if self.retention_one is None
                      else f"refuses: {self.retention_one}"))
        # The answer the refusal names: restore the last good backup (allow_collapsed: true).
        sandbox.input_overrides[self.backup] = {"allow_collapsed": True}

    def disaster(self, sandbox: Sandbox) -> None:
        """The blank volume was the disaster; the sandbox then loses the rest of production."""

    def after_rebuild(self, sandbox: Sandbox, records: Mapping[str, StepRecord]) -> ScenarioResult:
        _, inputs = next((n, i) for n, i in restic_backups(sandbox) if str(i["backup"]) == self.backup)
        restored = manifest(sandbox.hostfs(str(inputs["vars"]["restore_path"])))
        same, differing = compare(self.good, restored)
        self.check("last-good-data-restored", not differing and bool(self.good) and "app/initialised.json" not in
                   restored, f"{len(self.good) - len(differing)} of {len(self.good)} files ({same} bytes) identical "
                   "to the last good backup; the blank snapshot's files "
                   + ("were restored too" if "app/initialised.json" in restored else "were not restored"))
        owners = sandbox.spec.backups[self.backup].protects
        restore = records.get(self.restore_step)
        order = []
        for owner in owners:
            app = records.get(owner)
            ok = bool(restore and app and restore.finished and app.started and restore.finished <= app.started)
            order.append((owner, ok, app.started if app else None))
        self.check("restored-before-the-app-starts", bool(order) and all(ok for _, ok, _ in order),
                   "; ".join(f"{self.restore_step} finished at {_clock(restore.finished if restore else None)}, "
                             f"{owner} started at {_clock(started)}" for owner, _, started in order))
        return ScenarioResult(
            name=self.name, incident=self.incident,
            disaster="the volume emptied, the app wrote a fresh install into it, and a real restic backup of the "
                     "blank volume ran; with retention 1 (on a copy of the repository) restic forgot every good "
                     "snapshot",
            detected=tuple(f.message for f in self.said), detect_s=self.detect_s,
            prevented="with the graph's retention the restore refused to treat the blank snapshot as good, and no app "
                      "started on an empty volume; with retention 1 only the audit's finding, before the incident, "
                      "warns: the guard has no earlier snapshot to compare with",
            recovered=f"the last good snapshot, byte-identical ({same} bytes), restored before the app started",
            lost=("nothing with the graph's retention; with retention 1 (the incident's) every good snapshot was "
                  f"forgotten: {sum(s for _, s in self.good.values())} bytes gone for good"),
            bytes_recovered=same, bytes_lost=0)


CNPG_CLUSTER = ("postgresql.cnpg.io/v1", "Cluster")
INCIDENT_NAMESPACE = "production-db"


class NamespaceDelete(Scenario):
    """Namespace deletions destroyed database clusters while WAL archiving had silently been failing."""

    name = "namespace-delete"
    incident = ("a namespace holding a database cluster and its volumes was deleted, while WAL archiving had "
                "silently been failing for weeks")
    poll_s = 2.0

    def before_disaster(self, sandbox: Sandbox) -> None:
        restores = sandbox.host_restores("pgbackrest")
        if not restores or not sandbox.state.pg_base:
            raise DrError("scenario namespace-delete needs a pgBackRest backup restored on the hosts (the example "
                          "graph's host-postgres)")
        self.restore_step, inputs = restores[0]
        self.backup = sandbox.spec.backups[str(inputs["backup"])]
        if self.backup.rpo_s > 600:
            raise DrError(f"scenario namespace-delete waits, with archiving really failing, until the freshness "
                          f"audit sees it: backup {self.backup.name}'s RPO is over 10 minutes")
        self.production = sandbox.production_cluster()
        self._database_namespace()
        pg = sandbox.pg
        # The archive command really fails: pgBackRest pushes to a repository path that does not exist.
        broken = pg.base / "pgbackrest-broken.conf"
        broken.write_text(pg.config.read_text().replace(f"repo1-path={pg.base}/repo", "repo1-path=/nonexistent/repo"))
        shutil.chown(broken, "postgres", "postgres")
        pg.sql(f"ALTER SYSTEM SET archive_command = 'pgbackrest --config={broken} --stanza=main archive-push %p'")
        pg.sql("SELECT pg_reload_conf()")
        self.failing_since = time.time()
        stanza_inputs = {"repo": self.backup.repo, "vars": {"pgbackrest_config": str(pg.config)}}
        found: list[Finding] = []
        deadline = time.monotonic() + self.backup.rpo_s + 90
        while not found and time.monotonic() < deadline:
            time.sleep(self.poll_s)
            findings, _ = timed_audit(sandbox.spec, lambda: {self.backup.name: HOST_READERS["pgbackrest"](
                stanza_inputs, {}, Bound())})
            found = [f for f in findings if f.check == "freshness" and f.subject == self.backup.name]
        self.detect_s = time.time() - self.failing_since if found else None
        self.said = [f.message for f in found]
        failed = pg.sql("SELECT failed_count FROM pg_stat_archiver")
        self.check("archiving-really-failed", int(failed or 0) > 0,
                   f"pg_stat_archiver.failed_count {failed} while the archive command pointed at a missing repository")
        self.check("freshness-audit-saw-it", bool(found),
                   ("; ".join(self.said) + f" ({self.detect_s:.0f} s after archiving began to fail)") if found
                   else f"nothing said within {self.backup.rpo_s + 90} s")
        # What the finding asks for: fix archive_command; the backlog of WAL is archived, then production goes on.
        pg.sql("ALTER SYSTEM RESET archive_command")
        pg.sql("SELECT pg_reload_conf()")
        self.fixed_at = time.time()
        switched = pg.sql("SELECT pg_walfile_name(pg_switch_wal())")
        deadline = time.monotonic() + 120
        while pg.sql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") < switched:
            if time.monotonic() > deadline:
                raise DrError("WAL archiving did not catch up within 120 s after the fix")
            time.sleep(0.5)
        time.sleep(3)

    def _database_namespace(self) -> None:
        """A database cluster (CloudNativePG's real CRD) and the claims it owns, as its operator makes them."""
        cluster = self.production
        cluster.install_crds({CNPG_CLUSTER})
        cluster.kubectl("create", "namespace", INCIDENT_NAMESPACE)
        _database_owning_claims(cluster, INCIDENT_NAMESPACE, "db", {"db-1": None, "db-1-wal": None})
        self.objects_before = self._objects()

    def _objects(self) -> list[str]:
        done = self.production.kubectl("get", "clusters.postgresql.cnpg.io,persistentvolumeclaims", "-n",
                                       INCIDENT_NAMESPACE, "-o", "name", check=False)
        return sorted(done.stdout.split()) if done.returncode == 0 else []

    def disaster(self, sandbox: Sandbox) -> None:
        pg = sandbox.pg
        self.rows_before = int(pg.sql("SELECT count(*) FROM workload"))
        self.deleted_at = self.struck_at = time.time()
        self.production.kubectl("delete", "namespace", INCIDENT_NAMESPACE, "--wait=false")
        sandbox.stop_database()  # the database's instances go with their namespace
        deadline = time.monotonic() + 120
        while self.production.kubectl("get", "namespace", INCIDENT_NAMESPACE, check=False).returncode == 0:
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        gone = self.production.kubectl("get", "namespace", INCIDENT_NAMESPACE, check=False).returncode != 0
        self.check("namespace-deleted-by-the-namespace-controller", gone and not self._objects()
                   and len(self.objects_before) == 3,
                   f"before: {', '.join(self.objects_before)}; after: "
                   + ("namespace gone with every object in it" if gone else "the namespace is still there"))

    def after_rebuild(self, sandbox: Sandbox, records: Mapping[str, StepRecord]) -> ScenarioResult:
        pg = sandbox.pg
        rows, newest = pg.sql("SELECT count(*) || ' ' || extract(epoch FROM max(at)) FROM workload").split()
        during = int(pg.sql("SELECT count(*) FROM workload WHERE at BETWEEN "
                            f"to_timestamp({self.failing_since}) AND to_timestamp({self.fixed_at})"))
        gap = self.deleted_at - float(newest)
        size = int(pg.sql("SELECT pg_total_relation_size('workload')"))
        self.check("restored-to-just-before-the-deletion", 0 <= gap <= 15,
                   f"the newest restored row was written {gap:.1f} s before the namespace was deleted")
        self.check("wal-of-the-outage-recovered", during > 0,
                   f"{during} rows written while archiving was failing came back (archived after the fix)")
        lost = max(0, self.rows_before - int(rows))
        return ScenarioResult(
            name=self.name, incident=self.incident,
            disaster=f"WAL archiving really failed for {self.fixed_at - self.failing_since:.0f} s; then namespace "
                     f"{INCIDENT_NAMESPACE} (a CloudNativePG Cluster and its two claims) was deleted through the "
                     "real namespace controller, and the database's server stopped and its data deleted with it",
            detected=tuple(self.said), detect_s=self.detect_s,
            prevented="the freshness audit reported the stale archive before the deletion, so it was fixed while "
                      "the WAL was still on the server: nothing of the outage was lost",
            recovered=f"{rows} rows, up to {gap:.1f} s before the deletion (point-in-time restore with pgBackRest)",
            lost=f"about {lost} rows written in the last seconds before the deletion (the RPO)",
            bytes_recovered=size, bytes_lost=round(size * lost / max(1, int(rows))))


class CascadeDelete(Scenario):
    """An uninstall's cascade deleted every app, volume and database."""

    name = "cascade-delete"
    incident = ("Flux was reinstalled with a wrong chart: its custom resources were deleted, and the cascade "
                "deleted every app, volume and database; the restore tool itself had to be reinstalled first")
    namespace = "cascade-apps"

    def before_disaster(self, sandbox: Sandbox) -> None:
        self.production = sandbox.production_cluster()
        self.production.install_crds({CNPG_CLUSTER})
        self.production.kubectl("create", "namespace", self.namespace)
        # Two databases whose claims the operator's Cluster owns; one volume is guarded (reclaim Retain),
        # the other is not (Delete). The volumes are hostPath directories the controller-manager really
        # deletes when their claim goes (its hostPath deleter acts only under /tmp).
        self.volumes: dict[str, Path] = {}
        self.contents: dict[str, Manifest] = {}
        for name, policy in (("guarded", "Retain"), ("unguarded", "Delete")):
            directory = Path(tempfile.mkdtemp(prefix=f"dr-cascade-{name}-", dir="/tmp"))
            sandbox.write_files(directory, count=40, round_=0)
            self.volumes[name], self.contents[name] = directory, manifest(directory)
            self._database(name, policy, directory)
        kubectl = self.production.toolchain.path("kubectl")
        started = time.monotonic()
        view = cascade_view(k8s_status_from_kubectl(str(self.production.kubeconfig), kubectl=kubectl))
        findings = audit(AuditInput(spec=sandbox.spec, states={}, cascade=view))
        self.detect_s = time.monotonic() - started
        self.said = [f.message for f in findings if f.check == "cascade"]
        named = {f.subject for f in findings if f.check == "cascade"}
        self.check("audit-names-what-the-cascade-reaches",
                   "PersistentVolume cascade-unguarded" in named and "PersistentVolume cascade-guarded" not in named
                   and "CustomResourceDefinition clusters.postgresql.cnpg.io" in named,
                   "; ".join(sorted(named)) or "nothing said")

    def _database(self, name: str, policy: str, directory: Path) -> None:
        cluster = self.production
        cluster.kubectl("apply", "--server-side", "-f", "-", input_text=_yaml(
            {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"cascade-{name}"},
             "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                      "persistentVolumeReclaimPolicy": policy, "hostPath": {"path": str(directory)},
                      "storageClassName": "", "claimRef": {"namespace": self.namespace, "name": f"{name}-1"}}}))
        _database_owning_claims(cluster, self.namespace, name, {f"{name}-1": f"cascade-{name}"})

    def _phase(self, volume: str) -> str:
        done = self.production.kubectl("get", "pv", volume, "-o", "jsonpath={.status.phase}", check=False)
        return done.stdout.strip() if done.returncode == 0 else "deleted"

    def disaster(self, sandbox: Sandbox) -> None:
        """The uninstall deletes the operator's custom resources, then its CRD; the garbage collector deletes
        what they owned, and the volume controller reclaims the volumes."""
        cluster = self.production
        self.struck_at = time.time()
        cluster.kubectl("delete", "clusters.postgresql.cnpg.io", "--all", "-n", self.namespace, "--wait=false")
        # The CRD goes only after the garbage collector has acted: deleted at once, it leaves the claims
        # orphaned here (the collector can no longer resolve their owner's kind), which is not the incident.
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            claims = cluster.kubectl("get", "pvc", "-n", self.namespace, "-o", "name", check=False).stdout.split()
            if not claims and self._phase("cascade-unguarded") == "deleted":
                break
            time.sleep(1)
        cluster.kubectl("delete", "crd", "clusters.postgresql.cnpg.io", "--wait=false")
        claims = cluster.kubectl("get", "pvc", "-n", self.namespace, "-o", "name", check=False).stdout.split()
        self.phases = {name: self._phase(f"cascade-{name}") for name in self.volumes}
        self.check("cascade-really-happened", not claims and self.phases["unguarded"] == "deleted",
                   f"claims left: {len(claims)}; the unguarded volume: {self.phases['unguarded']}; its directory "
                   + ("deleted by the controller-manager" if not self.volumes["unguarded"].exists() else "still there"))

    def after_rebuild(self, sandbox: Sandbox, records: Mapping[str, StepRecord]) -> ScenarioResult:
        try:
            same, differing = compare(self.contents["guarded"], manifest(self.volumes["guarded"]))
            self.check("guarded-volume-survived", self.phases["guarded"] == "Released" and not differing,
                       f"the guarded volume is {self.phases['guarded']}; {same} bytes byte-identical"
                       + (f"; missing or different: {', '.join(differing[:5])}" if differing else ""))
            lost = sum(size for _, size in self.contents["unguarded"].values())
            self.check("tool-reinstalled-before-its-restores", *_tools_before_restores(sandbox, records))
        finally:
            self.cleanup()
        return ScenarioResult(
            name=self.name, incident=self.incident,
            disaster="the operator's custom resources and then its CRD were deleted on the sandbox's production; "
                     "the real garbage collector deleted the claims they owned and the volume controller deleted "
                     "the unguarded volume and its directory",
            detected=tuple(self.said), detect_s=self.detect_s,
            prevented=f"the volume the audit's guard covers (reclaim Retain) survived the cascade: {same} bytes",
            recovered="the rebuild installed each restore tool before the restores that need it",
            lost=f"the unguarded volume (reclaim Delete) and its {lost} bytes, as the audit said it would be",
            bytes_recovered=same, bytes_lost=lost)

    def cleanup(self) -> None:
        for directory in getattr(self, "volumes", {}).values():
            if directory.name.startswith("dr-cascade-") and directory.parent == Path("/tmp"):
                shutil.rmtree(directory, ignore_errors=True)


class QuorumLoss(Scenario):
    """A single control plane's etcd lost quorum; nobody knew the order to rebuild in."""

    name = "quorum-loss"
    incident = ("an upgrade reset the control plane and etcd lost quorum; the cluster was rebuilt by hand in an "
                "order nobody had written down")

    def prepare(self, sandbox: Sandbox) -> None:
        if not sandbox.host_restores("etcd-snapshot"):
            raise DrError("scenario quorum-loss needs an etcd snapshot restored on the hosts (the example graph's "
                          "etcd)")
        sandbox.production_members = 3

    def before_disaster(self, sandbox: Sandbox) -> None:
        members = sandbox.state.production_etcd
        self.production = sandbox.production_cluster()
        self.endpoints = [f"http://127.0.0.1:{m['client_port']}" for m in members]
        listed = _etcdctl(self.endpoints[0], "member", "list")
        self.check("production-has-three-members", len(members) == 3 and listed.count("started") == 3,
                   f"{listed.count('started')} started members: " + ", ".join(m["name"] for m in members))

    def disaster(self, sandbox: Sandbox) -> None:
        lost = [m["name"] for m in sandbox.state.production_etcd[1:]]
        self.struck_at = time.time()
        sandbox.stop_production_members(lost)
        # With one member of three left, etcd has no quorum: a write times out, and so does the API server.
        write = _etcdctl(self.endpoints[0], "--command-timeout=3s", "put", "/dr-quorum-probe", "x",
                         check=False)
        api = self.production.kubectl("create", "namespace", "dr-quorum-probe", "--request-timeout=8s", check=False)
        self.check("quorum-really-lost", "OK" not in write and api.returncode != 0,
                   f"members {', '.join(lost)} killed; etcdctl put: {write.strip()[-80:] or 'no answer'}; kubectl "
                   f"create: {(api.stderr.strip() or api.stdout.strip())[-80:]}")

    def after_rebuild(self, sandbox: Sandbox, records: Mapping[str, StepRecord]) -> ScenarioResult:
        restored = sandbox.drill_cluster.kubectl("get", "namespace", "production-workload", "-o", "name",
                                                 check=False)
        self.check("control-plane-restored-from-the-snapshot", restored.returncode == 0,
                   "production's namespace production-workload is served by the rebuilt control plane"
                   if restored.returncode == 0 else f"not found: {restored.stderr.strip()[-120:]}")
        ok, detail = _runbook_order_followed(sandbox, records)
        self.check("the-runbook-order-was-followed", ok, detail)
        newest = sandbox.newest_restored()
        etcd = [str(i["backup"]) for _, i in sandbox.host_restores("etcd-snapshot")]
        rpo = [f"{max(0.0, sandbox.state.disaster_at - newest[b]):.1f} s" for b in etcd if b in newest]
        return ScenarioResult(
            name=self.name, incident=self.incident,
            disaster="two of production's three etcd members were killed: a write to etcd and to the API server "
                     "timed out (quorum lost)",
            detected=(), detect_s=None,
            prevented="nothing to prevent: the order to rebuild in was written down (the generated runbook) and "
                      "followed step by step",
            recovered="a new three-member etcd from the newest snapshot and a control plane on it, serving "
                      "production's objects",
            lost=f"what was written after the newest snapshot ({', '.join(rpo) or 'not measured'} of etcd writes)",
            bytes_recovered=_newest_snapshot_size(sandbox))


def _newest_snapshot_size(sandbox: Sandbox) -> int:
    snapshots = sorted((sandbox.root / "backups" / "etcd-snapshots").glob("*.db"), key=lambda p: p.stat().st_mtime)
    return snapshots[-1].stat().st_size if snapshots else 0


class QuorumLossFromScratch(QuorumLoss):
    """The same lost quorum, with the snapshot declared unusable: the rebuild from scratch."""

    name = "quorum-loss-from-scratch"
    incident = QuorumLoss.incident + "; the snapshot could not be trusted, so the cluster was rebuilt from scratch"

    def before_disaster(self, sandbox: Sandbox) -> None:
        super().before_disaster(sandbox)
        self.backups = [str(i["backup"]) for _, i in sandbox.host_restores("etcd-snapshot")]
        for backup in self.backups:
            sandbox.declared_unusable[backup] = "the operator does not trust the newest snapshot"

    def after_rebuild(self, sandbox: Sandbox, records: Mapping[str, StepRecord]) -> ScenarioResult:
        restores = [name for name, i in sandbox.host_restores("etcd-snapshot")]
        not_run = all(records[name].state.value == "not-run" for name in restores if name in records)
        control = [records[s.name] for s in sandbox.plan.steps if s.name in records
                   and (records[s.name].outputs or {}).get("etcd")]
        empty = bool(control) and all(r.outputs.get("etcd") == "empty (from scratch)" for r in control)
        self.check("snapshot-not-restored", not_run and empty,
                   f"{', '.join(restores)}: not run; the control plane started on "
                   + (control[0].outputs.get("etcd", "?") if control else "nothing"))
        gone = sandbox.drill_cluster.kubectl("get", "namespace", "production-workload", check=False)
        kube = [s.name for s in sandbox.plan.steps if records.get(s.name) is not None
                and (records[s.name].outputs or {}).get("engine")]
        self.check("rebuilt-from-scratch", gone.returncode != 0,
                   f"production's objects are not there (namespace production-workload: "
                   f"{'absent' if gone.returncode else 'present'}); {len(kube)} Kubernetes-level steps created "
                   "everything anew through pulumi up")
        ok, detail = _runbook_order_followed(sandbox, records)
        self.check("the-runbook-order-was-followed", ok, detail)
        return ScenarioResult(
            name=self.name, incident=self.incident,
            disaster="two of production's three etcd members were killed (quorum lost), and the etcd snapshots "
                     "were declared unusable",
            detected=(), detect_s=None,
            prevented="nothing to prevent: the runbook's from-scratch recovery (dr:recovery scratch) was followed",
            recovered="a control plane on an empty etcd; every Kubernetes object created again by pulumi up, the "
                      "other backups restored as before",
            lost="every object that only etcd held (the snapshot was not used): production's namespace among them")


def _etcdctl(endpoint: str, *args: str, check: bool = True) -> str:
    from dr.kube.toolchain import Toolchain

    done = subprocess.run([Toolchain.find().path("etcdctl"), "--endpoints", endpoint, *args], capture_output=True,
                          text=True, timeout=30, env={**os.environ, "ETCDCTL_API": "3"}, check=False)
    if check and done.returncode != 0:
        raise DrError(f"etcdctl {args[0]}: {done.stderr.strip()}")
    return done.stdout + done.stderr


def _runbook_order_followed(sandbox: Sandbox, records: Mapping[str, StepRecord]) -> tuple[bool, str]:
    """Every step that ran started after every step the runbook says it needs had finished (the runbook's
    "Why here", generated from the same plan), by the executor's event times."""
    broken, ran = [], 0
    for step in sandbox.plan.steps:
        record = records.get(step.name)
        if record is None or record.started is None:
            continue
        ran += 1
        for dependency in step.depends_on:
            before = records.get(dependency)
            if before is not None and before.finished is not None and before.finished > record.started:
                broken.append(f"{step.name} started before {dependency} finished")
    return not broken and ran > 0, ("; ".join(broken) if broken else
                                    f"{ran} steps, each started after the steps its runbook entry names")


def _tools_before_restores(sandbox: Sandbox, records: Mapping[str, StepRecord]) -> tuple[bool, str]:
    """Every Kubernetes-level restore started after the Helm releases it depends on (the restore tools)
    finished, by the executor's event times."""
    from dr.core.spec import HelmAction, RestoreAction

    shown, ok = [], True
    for step in sandbox.plan.steps:
        action = step.component.action
        if not isinstance(action, RestoreAction) or sandbox.spec.backups[action.backup].host_level:
            continue
        restore = records.get(step.name)
        for dependency in step.depends_on:
            if not isinstance(sandbox.spec.components[dependency].action, HelmAction):
                continue
            tool = records.get(dependency)
            before = bool(restore and tool and tool.finished and restore.started and tool.finished <= restore.started)
            ok = ok and before
            shown.append(f"{dependency} finished {_clock(tool.finished if tool else None)}, {step.name} started "
                         f"{_clock(restore.started if restore else None)}")
    return ok and bool(shown), "; ".join(shown) or "no Kubernetes-level restore in this graph"


def _yaml(document: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(document))


def _database_owning_claims(cluster: SandboxCluster, namespace: str, name: str,
                            claims: Mapping[str, str | None]) -> None:
    """A CloudNativePG Cluster (its real CRD, installed first) and the claims it owns, as its operator makes
    them: each claim with an owner reference to the Cluster, bound to the named volume if one is given."""
    cluster.kubectl("apply", "--server-side", "-f", "-", input_text=_yaml(
        {"apiVersion": CNPG_CLUSTER[0], "kind": CNPG_CLUSTER[1], "metadata": {"name": name, "namespace": namespace},
         "spec": {"instances": 1, "storage": {"size": "1Gi"}}}))
    uid = cluster.kubectl("get", "clusters.postgresql.cnpg.io", name, "-n", namespace,
                          "-o", "jsonpath={.metadata.uid}").stdout.strip()
    for claim, volume in claims.items():
        bound = {"volumeName": volume, "storageClassName": ""} if volume else {}
        cluster.kubectl("apply", "--server-side", "-f", "-", input_text=_yaml(
            {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
             "metadata": {"name": claim, "namespace": namespace, "ownerReferences": [
                 {"apiVersion": CNPG_CLUSTER[0], "kind": CNPG_CLUSTER[1], "name": name, "uid": uid,
                  "controller": True}]},
             "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}, **bound}}))


def _guard(repo: Path, inputs: Mapping[str, Any], password: str) -> RestoreError | None:
    try:
        restic.choose({**inputs, "vars": {"repository": str(repo)}}, {"restic_password": password})
    except RestoreError as exc:
        return exc
    return None


def _clock(moment: float | None) -> str:
    return "never" if moment is None else time.strftime("%H:%M:%S", time.gmtime(moment)) + f".{int(moment % 1 * 10)}"


SCENARIOS: Mapping[str, Callable[[], Scenario]] = {
    StorageWipe.name: StorageWipe, BlankVolume.name: BlankVolume, CascadeDelete.name: CascadeDelete,
    QuorumLoss.name: QuorumLoss, QuorumLossFromScratch.name: QuorumLossFromScratch,
    NamespaceDelete.name: NamespaceDelete}


def scenario_named(name: str) -> Scenario:
    if name not in SCENARIOS:
        raise DrError(f"no scenario {name!r}: one of {', '.join(SCENARIOS)} or all")
    return SCENARIOS[name]()


__all__ = ["SCENARIOS", "Scenario", "scenario_named"]

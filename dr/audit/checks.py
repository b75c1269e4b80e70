"""`dr audit`: the backup mistakes behind real incidents, found while there is still time. Pure.

Takes the graph, what each backup actually holds (`BackupState`, read by `dr.audit.sources`), what
exists in the cluster and on the hosts, and the drill history; returns findings, each with a check,
a severity, the backup or component it is about, and a fix. Checks: coverage, freshness, retention,
collapse, drill recency, and cascade (what would let an uninstall, a deleted CRD or a GitOps prune
delete data on a live cluster).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from dr.core.backups import BackupPoint, collapse_reason
from dr.core.drill_report import prometheus_label
from dr.core.durations import format_duration
from dr.core.graph import unprotected_stateful
from dr.core.spec import GraphSpec, Retention

CHECKS = ("coverage", "freshness", "retention", "collapse", "drill-recency", "cascade")
# "unchecked": a check that could not run (no access, a damaged history) is reported, never a pass.
SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, "unchecked": 4}
CLOCK_SKEW_S = 300  # a backup dated further in the future than this is a finding


@dataclass(frozen=True)
class Finding:
    check: str
    severity: str  # critical | high | medium | low | unchecked
    subject: str   # the backup, component, PVC or path it is about
    message: str
    fix: str


@dataclass(frozen=True)
class BackupState:
    """What a backup really holds, as its tool reports it."""

    points: tuple[BackupPoint, ...] = ()
    newest_restorable: dt.datetime | None = None  # e.g. the newest archived WAL; defaults to the newest point
    error: str = ""  # the state could not be read


@dataclass(frozen=True)
class ClusterInventory:
    """What exists and holds data: PVCs and database clusters ("namespace/name"), host volume paths."""

    pvcs: tuple[str, ...] = ()
    databases: tuple[str, ...] = ()
    host_paths: tuple[str, ...] = ()
    known: bool = False  # False when nothing could be listed (no cluster access)


@dataclass(frozen=True)
class CascadeView:
    """What decides whether a cascade of deletions reaches data, read from a live cluster."""

    # (PersistentVolume, its claim "namespace/name", its reclaim policy) of every bound volume
    volumes: tuple[tuple[str, str, str], ...] = ()
    # (CRD name, kept on uninstall) of the CRDs whose objects hold or restore data
    data_crds: tuple[tuple[str, bool], ...] = ()
    # (the GitOps object that prunes, "Kind namespace/name" of a data object it would delete)
    pruned: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class AuditInput:
    spec: GraphSpec
    states: Mapping[str, BackupState]
    inventory: ClusterInventory = field(default_factory=ClusterInventory)
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    detection_delay_s: int = 48 * 3600
    last_successful_drill: dt.datetime | None = None
    successful_drills: tuple[dt.datetime, ...] = ()  # every passing drill; () means last_successful_drill only
    drills_recorded: int = 0
    drill_max_age_s: int = 14 * 86400
    sandbox_drills: int = 0  # recorded but not counted: they rehearse dr on stand-ins, not this cluster
    history_problem: str = ""  # the drill history could not be read
    # What could not be checked, by subject: (check, why). Each becomes an "unchecked" finding.
    not_checked: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    # The same for a server that did not answer within the audit's timeout (a different fix).
    not_answered: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    cascade: CascadeView | None = None  # None: not read (the check is then listed in not_checked)


def _interval_s(schedule: str) -> int:
    """Seconds between runs of a cron schedule (the common shapes; a day when unsure)."""
    macros = {"@hourly": 3600, "@daily": 86400, "@midnight": 86400, "@weekly": 7 * 86400, "@monthly": 30 * 86400,
              "@yearly": 365 * 86400, "@annually": 365 * 86400}
    if schedule in macros:
        return macros[schedule]
    fields = schedule.split()
    minute, hour, dom, _month, dow = fields[-5:]  # six fields: seconds come first
    if minute.startswith("*/"):
        return int(minute[2:]) * 60
    if hour == "*":
        return 3600
    if hour.startswith("*/"):
        return int(hour[2:]) * 3600
    if dow != "*" and dom == "*":
        return 7 * 86400
    if dom != "*":
        return 30 * 86400
    return 86400 // max(1, len(hour.split(",")))


def oldest_restore_point_s(retention: Retention, interval_s: int) -> int:
    """How far back the oldest kept restore point reaches, for a GFS policy on this schedule."""
    spans = [retention.last * interval_s, retention.hourly * max(3600, interval_s),
             retention.daily * max(86400, interval_s), retention.weekly * 7 * 86400,
             retention.monthly * 30 * 86400, retention.yearly * 365 * 86400, retention.within_s]
    return max(spans)


def audit(data: AuditInput) -> list[Finding]:
    findings = (_coverage(data) + _freshness(data) + _retention(data) + _collapse(data) + _drills(data)
                + _cascade(data) + _unchecked(data))
    return sorted(findings, key=lambda f: (SEVERITY_ORDER[f.severity], f.check, f.subject))


def _cnpg_instance_of(pvc: str, databases: Sequence[str]) -> str | None:
    """The CloudNativePG cluster whose instance volume `pvc` is (`ns/<cluster>-N`, `ns/<cluster>-N-wal`):
    backing up the cluster backs up its instances, so such a PVC is covered with it."""
    namespace, _, name = pvc.partition("/")
    for database in databases:
        db_namespace, _, cluster = database.partition("/")
        rest = name[len(cluster) + 1:] if name.startswith(cluster + "-") else ""
        if db_namespace == namespace and rest and rest.removesuffix("-wal").isdigit():
            return database
    return None


def _coverage(data: AuditInput) -> list[Finding]:
    spec = data.spec
    findings = []
    protected = {name for b in spec.backups.values() for name in b.protects}
    for name in unprotected_stateful(spec):
        findings.append(Finding("coverage", "critical", name, f"stateful component {name!r} has no backup",
                                f"add a backup with protects: {name}"))
    for component in spec.components.values():
        if component.layer == "data" and component.action is None and component.name not in protected:
            findings.append(Finding("coverage", "high", component.name,
                                    f"data component {component.name!r} has neither a restore nor a backup",
                                    "give it a backup and a restore step, or move it out of the data layer"))
    covered = {s for b in spec.backups.values() for s in b.source}
    if data.inventory.known:
        for kind, items in (("PersistentVolumeClaim", data.inventory.pvcs), ("database cluster",
                                                                              data.inventory.databases)):
            for item in items:
                if item not in covered and not (kind == "PersistentVolumeClaim" and
                                                _cnpg_instance_of(item, data.inventory.databases) in covered):
                    findings.append(Finding("coverage", "critical", item,
                                            f"{kind} {item} exists but no backup's source covers it",
                                            f"back it up and add {item} to that backup's source"))
    for path in data.inventory.host_paths:
        if not any(path == s or path.startswith(s.rstrip("/") + "/") for s in covered):
            findings.append(Finding("coverage", "critical", path, f"host volume {path} is not covered by any backup",
                                    f"back it up and add {path} to that backup's source"))
    return findings


def _freshness(data: AuditInput) -> list[Finding]:
    findings = []
    for backup in data.spec.backups.values():
        state = data.states.get(backup.name)
        if state is None:
            continue
        if state.error:
            findings.append(Finding("freshness", "high", backup.name,
                                    f"cannot read backup {backup.name!r}: {state.error}",
                                    "fix access to the repository; an unreadable backup is not a backup"))
            continue
        if not state.points:
            findings.append(Finding("freshness", "critical", backup.name, f"backup {backup.name!r} holds no backups",
                                    f"check the schedule {backup.schedule!r} and its job's logs"))
            continue
        newest_point = max(p.time for p in state.points)
        newest = max(newest_point, state.newest_restorable or newest_point)
        age = (data.now - newest).total_seconds()
        if -age > CLOCK_SKEW_S:
            findings.append(Finding("freshness", "high", backup.name,
                                    f"{backup.name}: the newest backup is dated {format_duration(-age)} in the future",
                                    "check the clocks of the backup job's host and of this machine (NTP); a "
                                    "future date hides how old the backup really is"))
            continue
        if age > backup.rpo_s:
            wal = state.newest_restorable is not None and backup.tool in ("pgbackrest", "cnpg-barman")
            what = ("WAL archiving stopped: the newest archived WAL" if wal else "the newest good backup")
            findings.append(Finding("freshness", "critical", backup.name,
                                    f"{backup.name}: {what} is {format_duration(age)} old, over its RPO of "
                                    f"{format_duration(backup.rpo_s)}",
                                    "check archive_command and the archiver's errors (pg_stat_archiver)" if wal
                                    else f"check the backup job ({backup.schedule!r}) and its logs"))
    return findings


def _cascade(data: AuditInput) -> list[Finding]:
    """An uninstall, a deleted CRD or a namespace deletion cascades through owner references and claims:
    what would let it reach the data (the incident where an uninstall deleted every app, volume and database)."""
    view = data.cascade
    if view is None:
        return []
    findings = [Finding("cascade", "high", f"PersistentVolume {pv}",
                        f"{pv} (claim {claim}) has reclaim policy {policy}: deleting the claim (an uninstall, a "
                        "namespace deletion, a cascade from its owner) deletes the volume and its data",
                        f"kubectl patch pv {pv} -p '{{\"spec\":{{\"persistentVolumeReclaimPolicy\":\"Retain\"}}}}'; "
                        "and reclaimPolicy: Retain on the StorageClass")
                for pv, claim, policy in view.volumes if policy == "Delete"]
    findings += [Finding("cascade", "high", f"CustomResourceDefinition {crd}",
                         f"{crd} is not kept on uninstall: deleting it (helm uninstall, a wrong chart, a prune) "
                         "deletes every object of the kind; an uninstall that deletes those objects first lets the "
                         "garbage collector delete what they own",
                         f"kubectl annotate crd {crd} helm.sh/resource-policy=keep (and set it in the chart's "
                         "values, e.g. crds.keep)")
                 for crd, kept in view.data_crds if not kept]
    findings += [Finding("cascade", "medium", obj,
                         f"{owner} prunes {obj}: removing it from git, or a wrong path, deletes it",
                         "annotate the object kustomize.toolkit.fluxcd.io/prune: disabled (Flux) or "
                         "argocd.argoproj.io/sync-options: Prune=false (Argo CD)")
                 for owner, obj in view.pruned]
    return findings


def _unchecked(data: AuditInput) -> list[Finding]:
    return [Finding(check, "unchecked", subject, f"not checked: {why}",
                    "give dr access (a reachable cluster for kubectl, or --k8s-status FILE; the repository's "
                    "credentials) and audit again")
            for subject, (check, why) in sorted(data.not_checked.items())] + [
        Finding(check, "unchecked", subject, f"not checked: {why}",
                "check that the server is up and answers from here (a proxy or firewall may hold connections "
                "open), or allow it longer with --timeout, and audit again")
        for subject, (check, why) in sorted(data.not_answered.items())]


def _retention(data: AuditInput) -> list[Finding]:
    findings = []
    for backup in data.spec.backups.values():
        retention = backup.retention
        if retention.restore_points <= 1:
            findings.append(Finding("retention", "critical", backup.name,
                                    f"{backup.name} keeps one restore point: the first bad backup replaces the "
                                    "only good one", "keep several: e.g. {hourly: 24, daily: 7, weekly: 4}"))
            continue
        reach = oldest_restore_point_s(retention, _interval_s(backup.schedule))
        if reach < data.detection_delay_s:
            findings.append(Finding("retention", "high", backup.name,
                                    f"{backup.name}: the oldest restore point kept is {format_duration(reach)} old; "
                                    f"a problem noticed after {format_duration(data.detection_delay_s)} leaves no "
                                    "good backup from before it",
                                    "keep daily or weekly restore points that reach past the detection delay"))
    return findings


def _collapse(data: AuditInput) -> list[Finding]:
    findings = []
    for name, state in data.states.items():
        ordered = sorted(state.points, key=lambda p: p.time)
        if len(ordered) < 2:
            continue
        reason = collapse_reason(ordered[-1], ordered[:-1])
        if reason:
            findings.append(Finding("collapse", "critical", name,
                                    f"{name}: the newest backup {ordered[-1].id} collapsed: {reason}",
                                    "check the volume before the next backup and retention replace the good ones; "
                                    "do not restore 'latest' blindly"))
    return findings


def _drills(data: AuditInput) -> list[Finding]:
    if data.history_problem:
        return [Finding("drill-recency", "unchecked", data.spec.cluster, f"not checked: {data.history_problem}",
                        "move the damaged history aside; dr starts a new one (the reports/ directory keeps every "
                        "drill's report)")]
    if data.drills_recorded == 0:
        seen = (f"only {data.sandbox_drills} sandbox drill(s) recorded, which rehearse dr on stand-ins and do not "
                "count" if data.sandbox_drills else "no drill has ever been recorded")
        return [Finding("drill-recency", "high", data.spec.cluster, f"no drill of this cluster's rebuild: {seen}",
                        "run `dr drill --stack` against a test cluster (or `dr drill --hosts` on drill hosts) and "
                        "schedule it with `dr schedule`")]
    passed = data.successful_drills or ((data.last_successful_drill,) if data.last_successful_drill else ())
    # A drill dated in the future (a wrong clock where it ran, or here) proves nothing about how recent the
    # last real drill is: like a backup, it is said, and only drills dated up to now (with skew) count.
    ahead = [t for t in passed if (t - data.now).total_seconds() > CLOCK_SKEW_S]
    dated = [t for t in passed if (t - data.now).total_seconds() <= CLOCK_SKEW_S]
    findings = []
    if ahead:
        findings.append(Finding(
            "drill-recency", "high", data.spec.cluster,
            f"{len(ahead)} successful drill(s) dated up to {format_duration((max(ahead) - data.now).total_seconds())} "
            "in the future: a drill from the future proves no recent drill, so it is not counted",
            "check the clocks of the machine that ran the drill and of this one (NTP); a future date hides how "
            "old the last real drill is"))
    if not dated:
        return findings or [Finding("drill-recency", "high", data.spec.cluster, "no drill has ever passed",
                                    "fix what the last drill reported and run it again")]
    age = (data.now - max(dated)).total_seconds()
    if age > data.drill_max_age_s:
        findings.append(Finding("drill-recency", "medium", data.spec.cluster,
                                f"the last successful drill is {format_duration(age)} old (limit "
                                f"{format_duration(data.drill_max_age_s)})",
                                "run a drill; schedule them with `dr schedule`"))
    return findings


def render_table(findings: Sequence[Finding]) -> str:
    if not findings:
        return "No findings.\n"
    lines = [f"{'severity':<9} {'check':<14} {'subject':<28} finding"]
    for f in findings:
        lines.append(f"{f.severity:<9} {f.check:<14} {f.subject:<28} {f.message}\n{'':<53}fix: {f.fix}")
    lines.append(f"\n{len(findings)} finding(s)")
    return "\n".join(lines) + "\n"


def to_json(findings: Sequence[Finding]) -> str:
    return json.dumps({"findings": [asdict(f) for f in findings], "count": len(findings)}, indent=2) + "\n"


def to_prometheus(findings: Sequence[Finding], cluster: str) -> str:
    lines = ["# HELP dr_audit_findings Findings of the last dr audit, by check and severity.",
             "# TYPE dr_audit_findings gauge"]
    counts: dict[tuple[str, str], int] = {(c, s): 0 for c in CHECKS for s in SEVERITY_ORDER}
    for f in findings:
        counts[(f.check, f.severity)] += 1
    for (check, severity), count in sorted(counts.items()):
        lines.append(f'dr_audit_findings{{cluster="{prometheus_label(cluster)}",check="{prometheus_label(check)}",'
                     f'severity="{prometheus_label(severity)}"}} {count}')
    return "\n".join(lines) + "\n"

"""What `drd policy check` says about a valid policy's backups: its sources, where they
go, what is kept, and the next five run times of each schedule, as the daemon will
compute them (the same cron, the same per-tenant jitter offset)."""

from datetime import datetime

from drd.domain.backup_policy import BackupJob, BackupPolicy, RestoreTestJob
from drd.domain.backup_schedule import Schedule, Timetable, format_run_time
from drd.domain.backup_sources import BackupSource
from drd.domain.durations import format_duration
from drd.domain.restic_values import format_bandwidth
from drd.domain.site_config import SiteConfig

NEXT_RUNS = 5
_JOB_NAMES = {BackupJob.BACKUP: "backup", BackupJob.PRUNE: "prune",
              BackupJob.CHECK: "check", BackupJob.RESTORE_TEST: "restore test"}


def backup_lines(tenant: str, backup: BackupPolicy, site_config: SiteConfig | None,
                 now: datetime) -> list[str]:
    """Lines (indented by two spaces) describing `backup`, with run times after `now`."""
    lines = [f"  backup source {_source(source)}" for source in backup.sources]
    lines.append(f"  backup repository: {_repository(tenant, backup, site_config)}")
    lines.append(f"  backup password file: {backup.password_file}")
    extras = []
    if backup.retention is not None:
        extras.append("retention " + ", ".join(
            f"{name} {format_duration(value) if not isinstance(value, int) else value}"
            for name, value in backup.retention.rules().items()))
    if backup.upload_limit is not None:
        extras.append(f"upload limit {format_bandwidth(backup.upload_limit)}")
    if backup.tags:
        extras.append(f"tags {', '.join(backup.tags)}")
    if extras:
        lines.append(f"  backup {'; '.join(extras)}")
    for job, schedule in backup.schedules().items():
        lines += _run_times(tenant, job, schedule, _detail(job, backup), now)
    return lines


def _source(source: BackupSource) -> str:
    if source.paths is not None:
        return f"{source.name}: paths [{', '.join(str(path) for path in source.paths)}]"
    return (f"{source.name}: {source.spec} [{', '.join(source.images or ())}] "
            f"from {source.site.value}")


def _repository(tenant: str, backup: BackupPolicy, site_config: SiteConfig | None) -> str:
    created = ("drd creates it if missing" if backup.initialise_repository
               else "drd never creates it")
    if backup.repository is not None:
        return f"{backup.repository} ({created})"
    if site_config is None:
        return f"the tenant's repository at the remote site, named by the site config ({created})"
    default = site_config.default_repository(tenant)
    return f"{default} (site {site_config.site.name}'s default for {tenant}; {created})"


def _detail(job: BackupJob, backup: BackupPolicy) -> str:
    if job is BackupJob.CHECK and backup.check and backup.check.read_data_subset:
        return f", reading {backup.check.read_data_subset} of the data"
    if job is BackupJob.RESTORE_TEST and backup.restore_test:
        return f", {_sample(backup.restore_test)}"
    return ""


def _sample(test: RestoreTestJob) -> str:
    count = test.sample.sources
    sources = ("every source" if count == "all"
               else f"{count} source{'' if count == 1 else 's'}")
    return f"{sources}, {test.sample.snapshot.value} snapshot"


def _run_times(tenant: str, job: BackupJob, schedule: Schedule, detail: str,
               now: datetime) -> list[str]:
    timetable = Timetable.of(schedule, tenant, job.value)
    jitter = (f" + {format_duration(timetable.offset)} ({tenant}'s fixed offset within "
              f"jitter {format_duration(schedule.jitter)})" if schedule.jitter else "")
    header = (f"  {_JOB_NAMES[job]} at '{schedule.cron}' UTC{jitter}{detail}; "
              f"next {NEXT_RUNS}:")
    return [header, *(f"    {format_run_time(run)}"
                      for run in timetable.next_runs(now, NEXT_RUNS))]

"""The backup part of a tenant policy: what it accepts, and how it says what is wrong."""

import os
from datetime import timedelta
from pathlib import Path

import pytest

from drd.config.policy_loader import load_policy
from drd.config.site_loader import load_site_config
from drd.domain.backup_policy import BackupJob, SnapshotPick
from drd.domain.backup_sources import SourceSite
from drd.domain.restic_values import keep_within_argument, limit_upload_kib
from drd.domain.site_config import SiteConfig
from tests.unit.test_tenant_policy import GRANTS, issues_of, write

MIRRORED = """\
    tenant: water
    protection:
      block:
        - name: databases
          pool: rbd
          namespace: water
          images: ["db-*"]
          remote: {mode: snapshot, interval: 1m, rpo_target: 2m}
"""

BACKUP = MIRRORED + """\
    backup:
      sources:
        - name: databases
          pool: rbd
          namespace: water
          images: ["db-*"]
          from: remote
        - name: scada-config
          paths: ["/srv/water/scada"]
      schedule: {cron: "0 18 * * *", jitter: 30m}
      repository: s3:http://127.0.3.1:8480/drd-backups/water
      password_file: PASSWORD
      initialise_repository: false
      retention: {keep_daily: 7, keep_weekly: 0, keep_within: 2d}
      prune: {schedule: {cron: "0 20 * * 0"}}
      check: {schedule: {cron: "0 22 * * 3", jitter: 1h}, read_data_subset: 1/7}
      restore_test:
        schedule: {cron: "0 21 * * 6"}
        sample: {sources: all, snapshot: random}
      upload_limit: 20MiB/s
      tags: [water, metering]
"""


@pytest.fixture
def password(tmp_path: Path) -> Path:
    """A password file as the platform operator leaves it: 0600."""
    path = tmp_path / "secrets" / "water.password"
    path.parent.mkdir()
    path.write_text("correct horse battery staple\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def site(tmp_path: Path) -> SiteConfig:
    """The shared test site config, with water allowed to back up files under /srv/water."""
    path = tmp_path / "site.yaml"
    path.write_text(GRANTS.read_text().replace(
        "        namespace: water  # one namespace of the pool\n",
        "        namespace: water  # one namespace of the pool\n"
        "    backup_paths: [/srv/water]\n"))
    return load_site_config(path)


def policy_text(password: Path, old: str = "", new: str = "") -> str:
    assert old in BACKUP
    return BACKUP.replace(old, new, 1).replace("PASSWORD", str(password))


def test_a_backup_policy_loads_with_typed_values(tmp_path: Path, password: Path,
                                                 site: SiteConfig) -> None:
    policy = load_policy(write(tmp_path, policy_text(password)), site)
    backup = policy.backup
    assert backup is not None
    databases, files = backup.sources
    assert (databases.spec, databases.site, databases.selects("db-meter")) == (
        "rbd/water", SourceSite.REMOTE, True)
    assert (files.spec, files.site, files.paths) == (
        None, SourceSite.PRODUCTION, (Path("/srv/water/scada"),))
    assert (backup.schedule.cron, backup.schedule.jitter) == ("0 18 * * *",
                                                              timedelta(minutes=30))
    assert backup.password_file == password and backup.initialise_repository is False
    assert backup.retention is not None
    assert backup.retention.rules() == {"keep_daily": 7, "keep_within": timedelta(days=2)}
    assert [keep_within_argument(timedelta(hours=h)) for h in (48, 36, 5)] == [
        "2d", "1d12h", "5h"]
    assert backup.check is not None and backup.check.read_data_subset == "1/7"
    assert backup.restore_test is not None
    assert (backup.restore_test.sample.sources, backup.restore_test.sample.snapshot) == (
        "all", SnapshotPick.RANDOM)
    assert limit_upload_kib(backup.upload_limit or 0) == 20 * 1024
    assert list(backup.schedules()) == [BackupJob.BACKUP, BackupJob.PRUNE, BackupJob.CHECK,
                                        BackupJob.RESTORE_TEST]
    dumped = policy.model_dump(mode="json")["backup"]
    assert dumped["sources"][0]["from"] == "remote"
    assert (dumped["upload_limit"], dumped["schedule"]["jitter"]) == ("20MiB/s", "30m")


def test_defaults_read_from_production_and_use_the_sites_repository(
        tmp_path: Path, password: Path, site: SiteConfig) -> None:
    text = policy_text(password, "          from: remote\n").replace(
        "      repository: s3:http://127.0.3.1:8480/drd-backups/water\n", "")
    policy = load_policy(write(tmp_path, text), site)
    assert policy.backup is not None
    assert policy.backup.sources[0].site is SourceSite.PRODUCTION
    assert policy.backup.repository is None
    assert site.backup_repository(policy) == "/var/lib/drd-lab/c/restic/water"


def test_every_bad_field_is_reported_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, MIRRORED + """\
    backup:
      sources:
        - name: Databases
          pool: rbd
          images: []
        - name: files
          paths: [relative, /srv/../etc]
          from: remote
        - name: both
          pool: rbd
          images: ["x"]
          paths: ["/srv"]
        - name: nothing
        - name: no-pool
          images: ["db-*"]
          frm: remote
      schedule: {cron: "0 18 * * *", jitter: soon}
      repository: "rest:https://water:hunter2@backup.example:8000/water"
      password_file: hunter2
      initialise_repository: "yes"
      retention: {keep_daily: -1, keep_hourly: true, keep_within: 90m}
      check: {schedule: {cron: "0 22 * * 3"}, read_data_subset: "0%"}
      restore_test: {schedule: {cron: "0 21 * * 6"}, sample: {sources: 0}}
      upload_limit: 20mb/s
      tags: ["a,b", "drd:tenant"]
      colour: blue
""")
    issues = issues_of(path)
    assert "hunter2" not in "\n".join(issues)  # a pasted secret is never echoed back
    assert issues == [
        f"{path}:11: backup.sources[0].name: 'Databases' is not a selection name: use a "
        f"lowercase letter followed by up to 62 lowercase letters, digits or '-'",
        f"{path}:13: backup.sources[0].images: must have at least 1 item, got 0",
        f"{path}:15: backup.sources[1].paths[0]: 'relative' must be an absolute path "
        f"(starting with /)",
        f"{path}:15: backup.sources[1].paths[1]: '/srv/../etc' must not contain '..'; give "
        f"the directory itself",
        f"{path}:20: backup.sources[2].paths: a source backs up RBD images (pool, "
        f"namespace, images) or files (paths), not both; make them two sources",
        f"{path}:21: backup.sources[3]: backs up nothing: give pool and images for RBD "
        f"images, or paths for files",
        f"{path}:23: backup.sources[4].images: needs pool: the Ceph pool these images "
        f"live in",
        f"{path}:24: backup.sources[4].frm: unknown key 'frm' is not allowed; allowed keys "
        f"here: name, pool, namespace, images, paths, from",
        f"{path}:25: backup.schedule.jitter: 'soon' is not a duration: must be a duration "
        f"such as 30s, 5m, 1h30m or 2d (units d, h, m, s, largest first), or a whole "
        f"number of seconds",
        f"{path}:26: backup.repository: carries a password (user:password@host); remove "
        f"it: drd hands restic its credentials through the environment and the password "
        f"file, never in the URL, which logs and process lists show",
        f"{path}:27: backup.password_file: must be the absolute path of a file that holds "
        f"the repository password, never the password itself",
        f"{path}:28: backup.initialise_repository: must be true or false, got text 'yes'",
        f"{path}:29: backup.retention.keep_daily: must be at least 0, got the number -1",
        f"{path}:29: backup.retention.keep_hourly: must be a whole number, got true (a "
        f"boolean)",
        f"{path}:29: backup.retention.keep_within: 1h30m is not whole hours: restic's "
        f"--keep-within counts in days and hours",
        f"{path}:30: backup.check.read_data_subset: '0%' must be more than 0% and at most "
        f"100%",
        f"{path}:31: backup.restore_test.sample.sources: must be a whole number of "
        f"sources, at least 1, or 'all'",
        f"{path}:32: backup.upload_limit: '20mb/s' is not a rate: write a number and one "
        f"of KiB, MiB, GiB, kB, MB, GB, kbit, Mbit, Gbit per second, e.g. 20MiB/s or "
        f"100Mbit/s; units are case-sensitive (MB is bytes, Mbit is bits)",
        f"{path}:33: backup.tags[0]: 'a,b' holds a comma, which restic reads as two tags; "
        f"list them separately",
        f"{path}:33: backup.tags[1]: 'drd:tenant' starts with 'drd:', which drd keeps for "
        f"the tags it sets itself",
        f"{path}:34: backup.colour: unknown key 'colour' is not allowed; allowed keys "
        f"here: sources, schedule, repository, password_file, initialise_repository, "
        f"retention, prune, check, restore_test, upload_limit, tags",
    ]


def test_a_cron_expression_is_checked_where_it_is_written(tmp_path: Path,
                                                           password: Path) -> None:
    path = write(tmp_path, policy_text(password, '"0 22 * * 3"', '"0 22 * * 3 2027"'))
    assert issues_of(path) == [
        f"{path}:24: backup.check.schedule.cron: '0 22 * * 3 2027' has 6 fields; write the "
        f"five of standard cron, minute hour day-of-month month day-of-week, e.g. "
        f"'0 18 * * *' (times are UTC); seconds and years fields are not taken"]


def test_retention_needs_a_keep_rule(tmp_path: Path, password: Path) -> None:
    path = write(tmp_path, policy_text(password, "{keep_daily: 7, keep_weekly: 0, "
                                                 "keep_within: 2d}", "{keep_last: 0}"))
    assert issues_of(path) == [
        f"{path}:22: backup.retention: keeps nothing: give at least one keep rule above "
        f"zero (keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, "
        f"keep_yearly, keep_within)"]


@pytest.mark.parametrize("repository", [
    "/srv/restic/water", "local:/srv/restic/water", "s3:127.0.3.1:8480/backups/water",
    "s3:https://rgw.c.example/backups/water", "rest:https://user@backup.example:8000/water",
    "sftp:backup@c.example:/srv/restic/water", "rclone:site-c:backups/water",
    "b2:backups:water",
])
def test_restic_repository_forms_are_accepted(tmp_path: Path, password: Path,
                                              repository: str) -> None:
    text = policy_text(password, "s3:http://127.0.3.1:8480/drd-backups/water", repository)
    policy = load_policy(write(tmp_path, text))
    assert policy.backup is not None and policy.backup.repository == repository


@pytest.mark.parametrize(("repository", "message"), [
    ("rest:https://water:s3cret@backup.example:8000/water", "carries a password"),
    ("s3:https://AKIAEXAMPLE:s3cret@rgw.example/backups", "carries a password"),
    ("sftp://backup:s3cret@c.example//srv/restic", "carries a password"),
    ("s3:https://rgw.example/backups?secret=s3cret", "must not carry a query"),
    ("rclone::s3,secret_access_key=s3cret:backups", "rclone's inline form"),
    ("ftp://c.example/backups", "is not a restic repository"),
    ("backups/water", "is not a restic repository"),
    ("local:backups/water", "must be an absolute path"),
    ("rest:backup.example:8000/water", "rest:http://host:port/path"),
    ("/srv/restic/my water", "must not contain spaces"),
])
def test_bad_or_secret_bearing_repositories_are_refused_without_echoing_them(
        tmp_path: Path, password: Path, repository: str, message: str) -> None:
    path = write(tmp_path, policy_text(password, "s3:http://127.0.3.1:8480/drd-backups/water",
                                       f'"{repository}"'))
    (issue,) = issues_of(path)
    assert issue.startswith(f"{path}:19: backup.repository: ")
    assert message in issue
    assert "s3cret" not in issue and repository not in issue


@pytest.mark.parametrize("subset", ["1/7", "7/7", "5%", "2.5%", "100%", "500M", "2G", "1t"])
def test_restic_read_data_subset_forms_are_accepted(tmp_path: Path, password: Path,
                                                    subset: str) -> None:
    text = policy_text(password, "read_data_subset: 1/7", f"read_data_subset: {subset}")
    policy = load_policy(write(tmp_path, text))
    assert policy.backup is not None and policy.backup.check is not None
    assert policy.backup.check.read_data_subset == subset


@pytest.mark.parametrize(("subset", "message"), [
    ("8/7", "'8/7' reads group 8 of 7; n/t needs 1 <= n <= t"),
    ("0/7", "n/t needs 1 <= n <= t"),
    ("101%", "must be more than 0% and at most 100%"),
    ("0G", "reads nothing"),
    ("500", "'500' has no unit"),
    ("half", "'half' is not a read-data subset"),
])
def test_bad_read_data_subsets_are_refused(tmp_path: Path, password: Path, subset: str,
                                           message: str) -> None:
    text = policy_text(password, "read_data_subset: 1/7", f'read_data_subset: "{subset}"')
    (issue,) = issues_of(write(tmp_path, text))
    assert ": backup.check.read_data_subset: " in issue and message in issue


@pytest.mark.parametrize(("limit", "kib"), [
    ("20MiB/s", 20480), ("1.5MiB/s", 1536), ("100Mbit/s", 12207), ("1GB/s", 976562),
    ("1KiB/s", 1),
])
def test_upload_limit_becomes_restics_kib_per_second_rounded_down(
        tmp_path: Path, password: Path, limit: str, kib: int) -> None:
    text = policy_text(password, "upload_limit: 20MiB/s", f"upload_limit: {limit}")
    policy = load_policy(write(tmp_path, text))
    assert policy.backup is not None and policy.backup.upload_limit is not None
    assert limit_upload_kib(policy.backup.upload_limit) == kib


def test_an_upload_limit_below_what_restic_can_hold_is_refused(tmp_path: Path,
                                                                password: Path) -> None:
    text = policy_text(password, "upload_limit: 20MiB/s", "upload_limit: 7kbit/s")
    assert issues_of(write(tmp_path, text)) == [
        f"{tmp_path}/water.yaml:28: backup.upload_limit: '7kbit/s' is below 1KiB/s, the "
        f"finest limit restic takes"]


def test_rules_between_backup_parts_are_reported_at_their_lines(tmp_path: Path,
                                                                 password: Path) -> None:
    text = policy_text(password, """        - name: scada-config
          paths: ["/srv/water/scada"]
""", """        - name: databases
          pool: rbd
          namespace: water
          images: ["db-meter", "cam-*"]
          from: remote
""").replace("      prune: {schedule: {cron: \"0 20 * * 0\"}}\n", "").replace(
        "sources: all", "sources: 3")
    path = write(tmp_path, text)
    assert issues_of(path) == [
        f"{path}:16: backup.sources[1].name: source 'databases' is already defined at "
        f"backup.sources[0]; names must be unique",
        f"{path}:19: backup.sources[1].images[0]: 'db-meter' selects images in rbd/water "
        f"that 'databases' (backup.sources[0]) also selects; back each image up in one "
        f"source only",
        f"{path}:19: backup.sources[1].images[1]: 'cam-*' is backed up from the remote "
        f"site's copy (from: remote), but no protection.block selection with a remote "
        f"destination covers it in rbd/water; mirror those images to the remote site, or "
        f"back them up from production",
        f"{path}:25: backup.retention: the prune job applies the retention (restic forget, "
        f"then prune), and it has no schedule; add prune: {{schedule: {{cron: ...}}}}",
        f"{path}:29: backup.restore_test.sample.sources: asks for 3 sources a run but the "
        f"policy has 2; lower it, or write 'all'",
    ]


@pytest.mark.parametrize("glob", ["db-*", "db-meter", "db-1*"])
def test_a_remote_copy_covered_by_a_mirrored_selection_may_be_backed_up(
        tmp_path: Path, password: Path, glob: str) -> None:
    text = policy_text(password, 'images: ["db-*"]\n          from',
                       f'images: ["{glob}"]\n          from')
    assert load_policy(write(tmp_path, text)).backup is not None


def test_platform_limits_and_grants_are_refused_with_their_lines(
        tmp_path: Path, password: Path, site: SiteConfig) -> None:
    text = policy_text(password, '"0 18 * * *", jitter: 30m', '"*/30 * * * *"').replace(
        '"0 20 * * 0"', '"0 8,20 * * *"').replace('"/srv/water/scada"', '"/etc/ssh"')
    text = text.replace(MIRRORED, MIRRORED + """        - name: sewage
          pool: rbd
          namespace: sewage
          images: ["*"]
          remote: {mode: snapshot, interval: 1m, rpo_target: 2m}
""").replace("""          from: remote
""", """          from: remote
        - name: sewage
          pool: rbd
          namespace: sewage
          images: ["*"]
""")
    path = write(tmp_path, text)
    issues = [issue for issue in issues_of(path, site) if "protection" not in issue]
    assert issues == [
        f"{path}:23: backup.sources[1].namespace: tenant 'water' may not select images in "
        f"rbd/sewage; the site config grants it: rbd/water",
        f"{path}:26: backup.sources[2].paths[0]: tenant 'water' may not back up /etc/ssh; "
        f"the site config grants it these directories: /srv/water "
        f"(tenants.water.backup_paths)",
        f"{path}:27: backup.schedule.cron: '*/30 * * * *' runs 48 backups a day; site 'a' "
        f"allows at most 24 (limits.max_backups_per_day in its site config)",
        f"{path}:32: backup.prune.schedule.cron: '0 8,20 * * *' runs 2 prunes a day; site "
        f"'a' allows at most 1 (limits.max_prunes_per_day in its site config)",
    ]


def test_a_site_without_repositories_needs_the_policy_to_name_one(
        tmp_path: Path, password: Path, site: SiteConfig) -> None:
    bare = tmp_path / "site.yaml"
    bare.write_text(bare.read_text().split("backup:")[0])
    text = policy_text(password).replace(
        "      repository: s3:http://127.0.3.1:8480/drd-backups/water\n", "")
    path = write(tmp_path, text)
    assert issues_of(path, load_site_config(bare)) == [
        f"{path}:9: backup.repository: required on site 'a': its site config names no "
        f"place for tenants' repositories (backup.repositories), so give this policy its "
        f"own"]


@pytest.mark.parametrize(("mode", "message"), [
    (0o644, "is mode 0644, so users other than its owner may read or change the "
            "repository password; make it 0600: chmod 600 {path}"),
    (0o660, "is mode 0660, so users other than its owner may read or change the "
            "repository password; make it 0600: chmod 600 {path}"),
    (0o200, "is mode 0200, so not even its owner may read it; make it 0600: "
            "chmod 600 {path}"),
])
def test_a_password_file_others_may_read_is_refused_at_its_line(
        tmp_path: Path, password: Path, site: SiteConfig, mode: int, message: str) -> None:
    path = write(tmp_path, policy_text(password))
    password.chmod(mode)
    assert issues_of(path, site) == [
        f"{path}:20: backup.password_file: {password} " + message.format(path=password)]


def test_a_password_file_0600_or_stricter_passes(tmp_path: Path, password: Path,
                                                 site: SiteConfig) -> None:
    path = write(tmp_path, policy_text(password))
    password.chmod(0o400)
    assert load_policy(path, site).backup is not None


def test_a_missing_password_file_or_a_directory_is_refused(
        tmp_path: Path, password: Path, site: SiteConfig) -> None:
    path = write(tmp_path, policy_text(password.parent / "nowhere"))
    assert issues_of(path, site) == [
        f"{path}:20: backup.password_file: {password.parent}/nowhere does not exist; the "
        f"platform operator puts it on every site that runs this tenant's backups, mode "
        f"0600"]
    path = write(tmp_path, policy_text(password.parent))
    assert issues_of(path, site) == [
        f"{path}:20: backup.password_file: {password.parent} is not a regular file"]


def test_the_password_file_is_checked_through_the_stat_it_is_given(
        tmp_path: Path, password: Path, site: SiteConfig) -> None:
    path = write(tmp_path, policy_text(Path("/var/lib/drd-lab/restic/water.password")))
    seen: list[Path] = []

    def stat(file: Path) -> os.stat_result:
        seen.append(file)
        return password.stat()

    assert load_policy(path, site, stat=stat).backup is not None
    assert seen == [Path("/var/lib/drd-lab/restic/water.password")]


def test_without_a_site_config_the_password_file_is_not_looked_at(tmp_path: Path) -> None:
    path = write(tmp_path, policy_text(tmp_path / "nowhere"))
    assert load_policy(path).backup is not None

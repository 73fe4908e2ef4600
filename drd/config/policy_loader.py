"""Read tenant policies (`<policies_dir>/<tenant>.yaml`), and publish their JSON Schema.

A policy is checked in three layers, all reported at once with lines: its fields, its
cross-field rules, and, when a site config is given, the platform's tenants, grants and
limits, and the mode of the backup password file on this host.
"""

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from drd.config.validation import ExtraRule, validate
from drd.config.yaml_document import ConfigError, ConfigIssue, parse_yaml, read_yaml_file
from drd.domain.policy_limits import password_file_issues, policy_platform_issues
from drd.domain.rules import RuleViolation, StatFile
from drd.domain.site_config import SiteConfig
from drd.domain.tenant_policy import TenantPolicy

POLICY_SUFFIX = ".yaml"


def load_policy(path: Path, site_config: SiteConfig | None = None,
                stat: StatFile = os.stat) -> TenantPolicy:
    """Read and validate one policy; raise ConfigError carrying every issue.

    The tenant must equal the file name's stem; with `site_config`, the tenant must be
    known to it and stay within its grants and limits, and the backup password file
    must be 0600 here, as `stat` sees it.
    """
    return validate(TenantPolicy, read_yaml_file(path),
                    extra_rules=_rules(path, site_config, stat))


def validate_policy_text(text: str, path: Path, site_config: SiteConfig,
                         more_rules: Sequence[ExtraRule[TenantPolicy]] = (),
                         stat: StatFile = os.stat) -> TenantPolicy:
    """Validate a policy that arrived as text (an API body) as if it were at `path`;
    `more_rules` are rules that needed the cluster, such as who owns a bucket."""
    return validate(TenantPolicy, parse_yaml(text, str(path)),
                    extra_rules=[*_rules(path, site_config, stat), *more_rules])


def _rules(path: Path, site_config: SiteConfig | None,
           stat: StatFile) -> list[ExtraRule[TenantPolicy]]:
    rules: list[ExtraRule[TenantPolicy]] = [lambda policy: _file_name_issues(policy, path)]
    if site_config is not None:
        # Only where a site config is at hand is this the host the jobs would run on.
        rules.append(lambda policy: policy_platform_issues(policy, site_config))
        rules.append(lambda policy: password_file_issues(policy, stat))
    return rules


def load_policies_keeping_good(
        directory: Path, site_config: SiteConfig,
        running: dict[str, TenantPolicy]) -> tuple[dict[str, TenantPolicy], list[ConfigIssue]]:
    """Every valid policy in `directory`; for a file that is now invalid, the tenant's
    running policy stays in force. One tenant's typo never unprotects another tenant,
    nor drops its own protection."""
    try:
        return load_policies(directory, site_config), []
    except ConfigError as error:
        issues = list(error.issues)
    policies: dict[str, TenantPolicy] = {}
    for file in sorted(directory.glob(f"*{POLICY_SUFFIX}")):
        if file.name.startswith("."):
            continue
        try:
            policy = load_policy(file, site_config)
        except ConfigError:
            if file.stem in running:
                policies[file.stem] = running[file.stem]
        else:
            policies[policy.tenant] = policy
    return policies, issues


def load_policies(directory: Path, site_config: SiteConfig | None) -> dict[str, TenantPolicy]:
    """Every `*.yaml` policy in `directory`, by tenant; ConfigError with ALL issues of ALL
    files if any one is invalid, so nothing is applied from a half-valid set."""
    try:
        files = sorted(entry for entry in directory.iterdir()
                       if entry.is_file() and not entry.name.startswith("."))
    except OSError as error:
        reason = error.strerror or str(error)
        raise ConfigError([ConfigIssue(str(directory), None, None,
                                       f"cannot read the policies directory: {reason}")]
                          ) from error
    policies: dict[str, TenantPolicy] = {}
    issues: list[ConfigIssue] = []
    for file in files:
        if file.suffix == ".yml":
            issues.append(ConfigIssue(str(file), None, None,
                                      f"policy files end in {POLICY_SUFFIX}; rename it to "
                                      f"{file.with_suffix(POLICY_SUFFIX).name}, or it is "
                                      f"never read"))
        if file.suffix != POLICY_SUFFIX:
            continue  # README.md, schema.json and the like live here too
        try:
            policy = load_policy(file, site_config)
        except ConfigError as error:
            issues += error.issues
        else:
            policies[policy.tenant] = policy
    if issues:
        raise ConfigError(issues)
    return policies


def policy_json_schema() -> dict[str, Any]:
    """The JSON Schema of a tenant policy, with every field's description and example."""
    schema = TenantPolicy.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def _file_name_issues(policy: TenantPolicy, path: Path) -> Sequence[RuleViolation]:
    if path.stem == policy.tenant:
        return []
    return [RuleViolation(("tenant",), f"tenant {policy.tenant!r} does not match the file "
                                       f"name {path.name!r}; a policy lives in the file "
                                       f"named after its tenant, "
                                       f"{policy.tenant}{POLICY_SUFFIX}")]

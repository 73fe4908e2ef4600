"""Read `/etc/drd/site.yaml` into a SiteConfig, and publish the schema editors use."""

import os
from pathlib import Path
from typing import Any

from drd.config.validation import validate
from drd.config.yaml_document import read_yaml_file
from drd.domain.rgw_settings import system_keys_file_issues
from drd.domain.rules import StatFile
from drd.domain.site_config import SiteConfig


def load_site_config(path: Path, stat: StatFile = os.stat) -> SiteConfig:
    """Read and validate a site config; raise ConfigError carrying every issue.

    The RGW system user's keys file, when named, must be 0600 here, as `stat` sees it."""
    return validate(SiteConfig, read_yaml_file(path),
                    extra_rules=[lambda config: system_keys_file_issues(config.rgw, stat)])


def export_site_config_schema() -> dict[str, Any]:
    """The JSON Schema of the site config, with every field's description and example."""
    schema = SiteConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema

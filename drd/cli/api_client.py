"""How the CLI reaches a daemon: URL from --url or the site config, token from a file or
the environment (never from argv); API failures become exit codes here, once."""

import os
import sys
from pathlib import Path
from typing import Any

from drd.api import client
from drd.api.client import ApiTarget
from drd.api.tokens import TokenFileError, read_secret_file
from drd.cli import exit_codes
from drd.cli.failures import CliFailure

DEFAULT_CONFIG = Path("/etc/drd/drd.yaml")


def resolve_target(url: str | None, config: Path | None, token_file: Path | None) -> ApiTarget:
    """--url, else $DRD_URL, else the API address in the site config."""
    resolved = url or os.environ.get("DRD_URL") or _url_from_config(config)
    return ApiTarget(url=resolved.rstrip("/"), token=_token(token_file))


def _url_from_config(config: Path | None) -> str:
    from drd.config.site_loader import load_site_config
    from drd.config.yaml_document import ConfigError

    path = config or Path(os.environ.get("DRD_CONFIG", str(DEFAULT_CONFIG)))
    try:
        site = load_site_config(path)
    except ConfigError as error:
        raise CliFailure(f"cannot find the daemon: {error}", exit_codes.FAILURE) from error
    return f"http://{site.api.listen}"


def _token(token_file: Path | None) -> str:
    from_env = os.environ.get("DRD_TOKEN")
    if from_env and token_file is None:
        return from_env.strip()
    path = token_file or (Path(os.environ["DRD_TOKEN_FILE"])
                          if os.environ.get("DRD_TOKEN_FILE") else None)
    if path is None:
        raise CliFailure("no API token: set DRD_TOKEN_FILE (or DRD_TOKEN), or pass "
                         "--token-file", exit_codes.USAGE)
    try:
        return read_secret_file(path)
    except TokenFileError as error:
        raise CliFailure(str(error), exit_codes.FAILURE) from error


def get_json(target: ApiTarget, path: str) -> Any:
    """GET `path` from the daemon, mapping every failure to its exit code."""
    try:
        return client.get_json(target, path)
    except client.DaemonUnreachable as error:
        raise CliFailure(str(error), exit_codes.UNREACHABLE) from error
    except client.ApiClientError as error:
        raise CliFailure(str(error), exit_codes.FAILURE) from error


def put_text(target: ApiTarget, path: str, text: str, content_type: str) -> Any:
    """PUT a text body; a refusal carrying problems prints each on its own line first."""
    try:
        return client.put_text(target, path, text, content_type)
    except client.DaemonRefused as error:
        problems = error.details.get("problems", []) if isinstance(error.details, dict) \
            else []
        for problem in problems:
            print(problem.get("text") or problem.get("message"), file=sys.stderr)
        raise CliFailure(str(error), exit_codes.FAILURE) from error
    except client.DaemonUnreachable as error:
        raise CliFailure(str(error), exit_codes.UNREACHABLE) from error
    except client.ApiClientError as error:
        raise CliFailure(str(error), exit_codes.FAILURE) from error


def fail_unhealthy() -> None:
    sys.exit(exit_codes.UNHEALTHY)

"""How the CLI reaches a daemon: URL from --url or the site config, token from a file or
the environment (never from argv); API failures become exit codes here, once."""

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drd.api import client
from drd.api.client import ApiTarget
from drd.api.tokens import TokenFileError, read_secret_file
from drd.cli import exit_codes
from drd.cli.failures import CliFailure

if TYPE_CHECKING:
    from drd.domain.site_config import SiteConfig

DEFAULT_CONFIG = Path("/etc/drd/drd.yaml")


def resolve_target(url: str | None, config: Path | None, token_file: Path | None,
                   site: str | None = None) -> ApiTarget:
    """--url, else $DRD_URL, else the API address in the site config; with `site`, that
    site's daemon as the site config names it (itself or a peer)."""
    resolved = (_url_of_site(config, site) if site is not None
                else url or os.environ.get("DRD_URL") or _url_from_config(config))
    return ApiTarget(url=resolved.rstrip("/"), token=_token(token_file))


def _url_of_site(config: Path | None, name: str) -> str:
    site = _site_config(config)
    if site.site.name == name:
        return f"http://{site.api.listen}"
    for peer in site.peers:
        if peer.name == name:
            return str(peer.url)
    known = ", ".join([site.site.name, *(peer.name for peer in site.peers)])
    raise CliFailure(f"--site {name}: the site config knows sites {known} only",
                     exit_codes.USAGE)


def _url_from_config(config: Path | None) -> str:
    return f"http://{_site_config(config).api.listen}"


def _site_config(config: Path | None) -> "SiteConfig":
    from drd.config.site_loader import load_site_config
    from drd.config.yaml_document import ConfigError

    path = config or Path(os.environ.get("DRD_CONFIG", str(DEFAULT_CONFIG)))
    try:
        return load_site_config(path)
    except ConfigError as error:
        raise CliFailure(f"cannot find the daemon: {error}", exit_codes.FAILURE) from error


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


def post_json(target: ApiTarget, path: str, body: dict[str, Any],
              timeout: float = client.REQUEST_TIMEOUT) -> Any:
    """POST a JSON body, mapping every failure to its exit code."""
    try:
        return client.post_json(target, path, body, timeout)
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

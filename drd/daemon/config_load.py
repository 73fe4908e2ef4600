"""Load a site config with the tokens it points at, for start-up and for SIGHUP reloads."""

from datetime import UTC, datetime
from pathlib import Path

from drd.api.tokens import TokenFileError, load_tokens, read_secret_file
from drd.config.site_loader import load_site_config
from drd.config.yaml_document import ConfigError
from drd.daemon.runtime import LoadedConfig
from drd.domain.site_config import SiteConfig


class ConfigLoadError(Exception):
    """The config or a file it names is unusable; `issues` lists every problem."""

    def __init__(self, issues: list[str]) -> None:
        super().__init__("; ".join(issues))
        self.issues = issues


def load_config_bundle(path: Path) -> LoadedConfig:
    """Blocking (file I/O): run it in a worker thread from the event loop."""
    try:
        config = load_site_config(path)
    except ConfigError as error:
        raise ConfigLoadError([issue.render() for issue in error.issues]) from error
    try:
        tokens = load_tokens(config.api.tokens_file)
        peer_tokens = {peer.name: read_secret_file(peer.token_file) for peer in config.peers}
    except TokenFileError as error:
        raise ConfigLoadError([str(error)]) from error
    return LoadedConfig(config=config, tokens=tokens, peer_tokens=peer_tokens,
                        loaded_at=datetime.now(UTC))


def reload_refusals(running: SiteConfig, proposed: SiteConfig) -> list[str]:
    """What a reload may not change without a restart; empty when the reload is fine."""
    refusals = []
    fixed = {
        "site.name": (running.site.name, proposed.site.name),
        "site.kind": (running.site.kind, proposed.site.kind),
        "api.listen": (running.api.listen, proposed.api.listen),
        "paths.state_dir": (running.paths.state_dir, proposed.paths.state_dir),
    }
    for field, (before, after) in fixed.items():
        if before != after:
            refusals.append(f"{field} changed from {before} to {after}; that needs a restart")
    return refusals

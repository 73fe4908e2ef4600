"""structlog JSON lines on stdout, for the journal; secrets are masked before rendering."""

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# Any field whose name contains one of these is masked, whatever logged it.
SECRET_MARKERS = ("token", "password", "secret", "key", "authorization")
MASK = "***"


def mask_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for name in list(event):
        if name != "event" and any(marker in name.lower() for marker in SECRET_MARKERS):
            event[name] = MASK
    return event


def configure_logging(level: str, site: str) -> None:
    """JSON to stdout at `level`, every line bound with the site's name."""
    numeric = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            mask_secrets,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(site=site)

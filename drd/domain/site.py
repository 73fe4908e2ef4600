"""What a site is, independent of how it is configured or deployed."""

from enum import StrEnum


class SiteKind(StrEnum):
    """The fixed role of a data centre; which site is primary is dynamic state, not a kind."""

    PRODUCTION = "production"
    SAME_CITY = "same-city"
    REMOTE = "remote"

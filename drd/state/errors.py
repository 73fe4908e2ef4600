"""Exceptions the state store raises; the API and CLI translate them, each in one place."""

from drd.state.records import EpochRecord, RunState


class StateStoreError(Exception):
    """The state store cannot do what was asked; the message is one sentence for an operator."""


class RecordNotFound(StateStoreError):
    """A run or job id that the database does not hold."""


class AlreadyFinished(StateStoreError):
    """A run or job was finished a second time; its recorded outcome stands."""

    def __init__(self, message: str, *, state: RunState) -> None:
        super().__init__(message)
        self.state = state


class EpochConflict(StateStoreError):
    """An epoch change lost a race or contradicts the stored epoch.

    `current` is what the database holds now (None when the group has no epoch yet), so the
    caller can re-read the situation and decide again instead of retrying blindly.
    """

    def __init__(self, message: str, *, current: EpochRecord | None) -> None:
        super().__init__(message)
        self.current = current

"""The one exception type lab commands raise; the CLI turns it into a message and exit code."""


class LabError(Exception):
    """A lab operation failed; `hint` tells the operator what to do next."""

    def __init__(self, message: str, *, hint: str = "", log_tail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.log_tail = log_tail

    def __str__(self) -> str:
        return self.message

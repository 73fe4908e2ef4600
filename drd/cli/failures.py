"""The one exception CLI commands raise to stop with a message and an exit code."""


class CliFailure(Exception):
    """A failure and the exit code it means; `drd`'s entry point prints and exits."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code

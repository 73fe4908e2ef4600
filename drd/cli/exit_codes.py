"""Exit codes of the `drd` command, one meaning each (documented in the README)."""

OK = 0
FAILURE = 1  # the command ran and failed, or the daemon refused it
USAGE = 2  # bad arguments (click's own code)
UNHEALTHY = 3  # the command worked, and what it reports is not healthy
UNREACHABLE = 4  # the daemon could not be reached

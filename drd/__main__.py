"""`python -m drd` is the `drd` command."""

from drd.cli.main import main

main()

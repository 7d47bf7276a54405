"""`python -m service.cli`: the same as the `account-deletion` command."""

from service.cli import console_script

console_script()

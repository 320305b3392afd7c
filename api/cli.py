"""The `keel` command line: assembles the commands, which live beside the code they drive."""

from __future__ import annotations

import sys

import click

from api import commands
from api.clinic.cli import commands as clinic_commands
from api.clinic.metrics_cli import refresh_metrics


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Keel: Clinic and CallMaster on one PostgreSQL-centric backend.

    With no DATABASE_URL, commands use a private PostgreSQL under KEEL_DATA_DIR.
    """


for command in (
    commands.serve,
    commands.worker,
    commands.migrate,
    commands.db_url,
    commands.token,
    *clinic_commands,
    refresh_metrics,
):
    main.add_command(command)

if __name__ == "__main__":
    sys.exit(main())

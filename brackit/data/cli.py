"""``brackit data ...``: inspect and convert offline datasets."""

import typer

app = typer.Typer(help="Offline datasets: inspect, convert, build.", no_args_is_help=True)

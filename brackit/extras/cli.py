"""``brackit extras ...``: one sub-command per companion paper (each module defines its own Typer app)."""

import typer

from brackit.extras import fedavg_cli, iht_cli, randomization_cli, simclr_cli

app = typer.Typer(help="Companion papers ported to JAX.", no_args_is_help=True)
app.add_typer(iht_cli.app, name="iht")
app.add_typer(fedavg_cli.app, name="fedavg")
app.add_typer(randomization_cli.app, name="randomization")
app.add_typer(simclr_cli.app, name="simclr")

"""``brackit extras ...``: one sub-command per companion paper (each module registers its own Typer app)."""

import typer

app = typer.Typer(help="Companion papers ported to JAX.", no_args_is_help=True)

# Each experiment module exposes ``app`` (a typer.Typer); add one line per module below.

from brackit.extras import fedavg_cli, iht_cli  # noqa: E402

app.add_typer(iht_cli.app, name="iht")
app.add_typer(fedavg_cli.app, name="fedavg")

from brackit.extras import randomization_cli  # noqa: E402

app.add_typer(randomization_cli.app, name="randomization")

from brackit.extras import simclr_cli  # noqa: E402

app.add_typer(simclr_cli.app, name="simclr")

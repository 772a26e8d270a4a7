"""The ``brackit`` command line: thin wrappers that parse arguments and call the library."""

from __future__ import annotations

import sys

import typer

from brackit.errors import BrackitError

app = typer.Typer(
    help="brackit: offline reinforcement learning in JAX.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    from brackit.data.cli import app as data_app
    from brackit.extras.cli import app as extras_app

    app.add_typer(data_app, name="data")
    app.add_typer(extras_app, name="extras")


_register()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; a ``BrackitError`` becomes one line on stderr and exit status 2."""
    try:
        app(args=argv, standalone_mode=False)
    except BrackitError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except typer.Exit as exit_:
        return exit_.exit_code
    except (typer.Abort, KeyboardInterrupt):
        print("aborted", file=sys.stderr)
        return 130
    except Exception as error:  # click usage errors carry their own exit code
        import click

        if isinstance(error, click.ClickException):
            error.show()
            return error.exit_code
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())

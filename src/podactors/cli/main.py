"""The ``podactors`` command: pods on the terminal, and a session store's maintenance.

``demo`` plays an offline pod session against a local model stand-in; ``run`` and ``chat``
drive the pod of a manifest, streaming its events; ``serve`` puts pods on a websocket and
``attach`` talks to one there; ``sessions`` inspects and maintains the store. Every command
takes ``--store DIR`` (default ``./.podactors``, or ``$PODACTORS_STORE``). Errors become one
``error: ...`` line on stderr and exit status 2; Ctrl-C exits 130.
"""

from __future__ import annotations

from typing import Any, NoReturn

import click
from rich.text import Text

from podactors.cli.demo_command import demo
from podactors.cli.options import INTERRUPTED_EXIT, USER_ERRORS
from podactors.cli.pods import attach, chat, run_cmd, serve
from podactors.cli.sessions import sessions
from podactors.cli.views import stderr
from podactors.errors import single_error

CLICK_OWN = (click.ClickException, click.exceptions.Exit, click.exceptions.Abort)
"""What click raises to end a command its own way (usage errors, exit codes)."""


def _fail(exc: BaseException) -> NoReturn:
    message = str(exc).replace("\n", " ") or type(exc).__name__
    if not isinstance(exc, USER_ERRORS):  # a bug: say what it was, still in one line
        message = f"internal error: {type(exc).__name__}: {message}"
    stderr().print(Text(f"error: {message}", style="red"))
    raise click.exceptions.Exit(2)


class _Cli(click.Group):
    """The top-level group: an error becomes one red ``error:`` line (exit 2); Ctrl-C, 130.

    Errors raised inside the commands' nurseries arrive in exception groups; the first
    user error in a group (else its first error) is reported the same way. Anything but a
    podactors, value or OS error is shown as an internal error, never as a traceback.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CLICK_OWN:
            raise
        except KeyboardInterrupt:
            _interrupted()
        except BaseExceptionGroup as group:  # before Exception: ExceptionGroup is one
            if group.subgroup(KeyboardInterrupt) is not None:
                _interrupted()
            errors = group.subgroup(USER_ERRORS) or group.subgroup(Exception)
            if errors is None:
                raise
            _fail(single_error(errors))
        except Exception as exc:
            _fail(exc)


def _interrupted() -> NoReturn:
    stderr().print(Text("interrupted", style="yellow"))
    raise click.exceptions.Exit(INTERRUPTED_EXIT)


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="podactors", prog_name="podactors")
def main() -> None:
    """podactors: trio-native actor framework for long-running LLM agent pods."""


main.add_command(sessions)
main.add_command(run_cmd)
main.add_command(chat)
main.add_command(serve)
main.add_command(attach)
main.add_command(demo)

if __name__ == "__main__":
    main()

"""The `headact` command line: a thin layer over the library's functions."""

from __future__ import annotations

import click

from headact import __version__
from headact.cli.common import configure_logging


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="headact")
@click.option("-v", "--verbose", count=True, help="More logging: -v for info, -vv for debug.")
def main(verbose: int) -> None:
    """Measure each attention head's activation strength before and after fine-tuning.

    \b
    Dump once (GPU when there is one), analyze anywhere on the CPU:
      headact dump --model ./base --data texts.json --out pre.zarr
      headact dump --model ./tuned --data texts.json --out fine.zarr
      headact analyze pre.zarr fine.zarr -o results/
    """
    configure_logging(verbose)


def _register() -> None:
    # Command modules import torch only inside the dump commands, so analyze stays torch-free.
    from headact.cli import analyze_cmd, compare_cmd, demo_cmd, dump_cmd, store_cmds

    main.add_command(dump_cmd.dump)
    main.add_command(analyze_cmd.analyze)
    main.add_command(demo_cmd.demo)
    main.add_command(compare_cmd.compare)
    for command in store_cmds.COMMANDS:
        main.add_command(command)


_register()

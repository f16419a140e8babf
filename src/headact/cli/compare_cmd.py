"""`headact compare`: the original one-shot command (dump both models, analyze, four files).

Takes the original script's flags (`--pre_tuned_model`, ...) and their dashed spellings, and
lists as the original wrote them (`--layers 0 1 2`) or as headact does (`--layers 0-2`).
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence

import click

from headact.cli.common import configure_logging, progress_enabled, reports_errors

LIST_OPTIONS = ("--layers", "--heads")


def join_list_values(args: Sequence[str], options: Sequence[str] = LIST_OPTIONS) -> list[str]:
    """['--layers', '0', '1', '2'] -> ['--layers', '0,1,2'] (the original's nargs='+')."""
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        out.append(arg)
        i += 1
        if arg == "--":
            out.extend(args[i:])
            break
        if arg in options:
            values = []
            while i < len(args) and not args[i].startswith("-"):
                values.append(args[i])
                i += 1
            if values:
                out.append(",".join(values))
    return out


class OriginalFlagsCommand(click.Command):
    """A command that also reads space-separated lists after --layers and --heads."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, join_list_values(args))


@click.command(cls=OriginalFlagsCommand,
               context_settings={"help_option_names": ["-h", "--help"],
                                 "max_content_width": 100})
@click.option("--pre_tuned_model", "--pre-tuned-model", "pre_tuned_model", required=True,
              help="The model before fine-tuning: a local directory or a hub id.")
@click.option("--fine_tuned_model", "--fine-tuned-model", "fine_tuned_model", required=True,
              help="The model after fine-tuning: a local directory or a hub id.")
@click.option("--data_path", "--data-path", "data_path", required=True, type=click.Path(),
              help="JSON array or JSON Lines file of texts or of records with "
                   "input/text/question.")
@click.option("--sample_num", "--sample-num", "sample_num", type=click.IntRange(min=1),
              default=None, help="Pick N records at random (reproducibly from --seed); "
                                 "default all.")
@click.option("--batch_size", "--batch-size", "batch_size", type=click.IntRange(min=1),
              default=8, show_default=True, help="Texts per forward pass.")
@click.option("--output_dir", "--output-dir", "output_dir", default="./results",
              show_default=True, type=click.Path(file_okay=False),
              help="Directory for the four files, the two stores and analysis/.")
@click.option("--layers", default=None,
              help="Layers to analyze: 0 1 2, 0,1,2 or 0-2 (default: all).")
@click.option("--heads", default=None,
              help="Heads to analyze: 0 1 2 3, 0,1,2,3 or 0-3 (default: all).")
@click.option("--seed", type=int, default=42, show_default=True,
              help="Seed of the --sample_num selection.")
@click.option("--device", default="auto", show_default=True,
              help="auto (CUDA when available, else CPU), cpu, cuda or cuda:N.")
@click.option("--n_boot", "--n-boot", "n_boot", type=click.IntRange(min=100), default=2000,
              show_default=True, help="Bootstrap resamples of the analysis.")
@click.option("--field", default=None,
              help="Text field of object records (default: the first of input, text, question).")
@click.option("--max_length", "--max-length", "max_length", type=click.IntRange(min=1),
              default=None, help="Truncate to this many tokens (default: the model's limit).")
@click.option("-q", "--quiet", is_flag=True, help="Print only where the files are.")
@reports_errors
def compare(pre_tuned_model: str, fine_tuned_model: str, data_path: str,
            sample_num: int | None, batch_size: int, output_dir: str, layers: str | None,
            heads: str | None, seed: int, device: str, n_boot: int, field: str | None,
            max_length: int | None, quiet: bool) -> None:
    """Compare every head's R_h before and after fine-tuning, in one go (the original tool).

    Dumps both models over the same samples into stores in OUTPUT_DIR
    (pre_tuned.zarr, fine_tuned.zarr), analyzes them into OUTPUT_DIR/analysis/ (heads.csv,
    summary.json, plots), and writes the original's files: pre_tuned_activations.json,
    fine_tuned_activations.json, comparison.json and comparison_heatmap.png.

    \b
    Example:
      headact compare --pre_tuned_model ./base --fine_tuned_model ./tuned \\
          --data_path data.json --sample_num 100 --batch_size 8 --output_dir ./results
    """
    from headact.original.oneshot import run_compare

    def say(message: str) -> None:
        if not quiet:
            click.echo(message, err=True)

    outputs = run_compare(
        pre_tuned_model, fine_tuned_model, data_path, output_dir, sample_num=sample_num,
        batch_size=batch_size, layers=layers, heads=heads, seed=seed, device=device,
        n_boot=n_boot, field=field, max_length=max_length,
        command_line=shlex.join([_program(), *sys.argv[1:]]),
        progress=progress_enabled(quiet), report=say,
    )
    if not quiet:
        from headact.analyze.report import terminal_summary

        click.echo(terminal_summary(outputs.result))
    click.echo(f"wrote {', '.join(p.name for p in outputs.original_files)} to "
               f"{outputs.output_dir}")


def _program() -> str:
    return "python -m activation_extract" if sys.argv and sys.argv[0].endswith(
        ("activation_extract", "__main__.py")) else "headact"


def main(prog_name: str = "python -m activation_extract") -> None:
    """Run `compare` as a program of its own (`python -m activation_extract`)."""
    configure_logging(0)
    compare(prog_name=prog_name)

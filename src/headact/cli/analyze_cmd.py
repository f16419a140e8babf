"""`headact analyze`: per-head strength of one model, or its change between two, on the CPU."""

from __future__ import annotations

import click

from headact.cli.common import progress_enabled, reports_errors

# Literal copies of the library's choices keep `headact --help` from importing scipy & co.;
# a test checks they match headact.analyze's constants.
SITE_CHOICES = ("z", "out")
REDUCTION_CHOICES = ("token-mean", "rms", "frobenius", "first", "last", "no-first")
CI_METHOD_CHOICES = ("percentile", "bca")
FORMAT_CHOICES = ("png", "svg")


@click.command()
@click.argument("stores", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=True, file_okay=True))
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for heads.csv, heads.parquet, summary.json and the plots "
                   "(created if missing; files of an earlier run are replaced).")
@click.option("--site", type=click.Choice(SITE_CHOICES), default="z", show_default=True,
              help="z: the head's output inside attention; out: what it writes to the "
                   "residual stream (comparable across heads).")
@click.option("--reduction", type=click.Choice(REDUCTION_CHOICES), default="token-mean",
              show_default=True,
              help="How a text's per-token norms become one value: token-mean, rms, frobenius "
                   "(whole-sequence norm, grows with length), first, last, or no-first (mean "
                   "without the first token, often an attention sink).")
@click.option("--n-boot", type=click.IntRange(min=100), default=2000, show_default=True,
              help="Bootstrap resamples of the texts (the same ones for both models).")
@click.option("--ci", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.95,
              show_default=True, help="Confidence level of every interval.")
@click.option("--ci-method", type=click.Choice(CI_METHOD_CHOICES), default="percentile",
              show_default=True, help="Bootstrap interval: percentile, or bias-corrected and "
                                      "accelerated (bca).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the resampling; the same seed gives the same intervals.")
@click.option("--fdr", type=click.FloatRange(0, 1, min_open=True), default=0.05,
              show_default=True,
              help="False discovery rate: a head can count as changed only with a "
                   "Benjamini-Hochberg q-value at or below it.")
@click.option("--min-effect", type=click.FloatRange(min=0), default=0.05, show_default=True,
              help="Smallest change that counts: 0.05 means the log-ratio's interval must lie "
                   "wholly beyond log(1.05) (|ratio - 1| of 5%) in one direction.")
@click.option("--align", is_flag=True,
              help="Pair only the samples both stores hold (same data index and text) instead "
                   "of refusing stores whose samples differ.")
@click.option("--allow-partial", is_flag=True,
              help="Analyze the done samples of a store whose dump is still in progress.")
@click.option("--top-k", type=click.IntRange(min=1), default=None,
              help="k of the top-k overlap between the strongest and the most changed heads "
                   "[default: 5% of the heads, at most 50].")
@click.option("--n-perm", type=click.IntRange(min=0), default=2000, show_default=True,
              help="Within-layer permutations for the hypothesis test's p-value (0: none).")
@click.option("--format", "plot_format", type=click.Choice(FORMAT_CHOICES), default="png",
              show_default=True, help="File format of the plots.")
@click.option("--no-plots", is_flag=True, help="Write the tables and summary only.")
@click.option("--from-raw", is_flag=True,
              help="Recompute the norm statistics from the raw vectors of stores dumped with "
              "--raw (their raw layers only) instead of reading the stored norms.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@reports_errors
def analyze(stores: tuple[str, ...], out_dir: str, site: str, reduction: str, n_boot: int,
            ci: float, ci_method: str, seed: int, fdr: float, min_effect: float, align: bool,
            allow_partial: bool, top_k: int | None, n_perm: int, plot_format: str,
            no_plots: bool, from_raw: bool, quiet: bool) -> None:
    """Per-head activation strength R_h of one STORE, or its change from PRE to FINE.

    With one store: R_h per head with its bootstrap interval, a table and a heatmap.
    With two stores (PRE FINE, dumped from the same texts): R_pre, R_fine, their difference,
    ratio and log-ratio per head with paired intervals, p- and q-values, which heads changed,
    and whether a head's strength before fine-tuning predicts how much it changed.

    \b
    Examples:
      headact analyze pre.zarr -o results/pre/
      headact analyze pre.zarr fine.zarr -o results/ --site out --ci-method bca
    """
    if len(stores) > 2:
        raise click.UsageError(f"give one store or two (PRE FINE), not {len(stores)}.")
    if align and len(stores) == 1:
        raise click.UsageError("--align pairs two stores; give PRE and FINE.")

    from headact.analyze import AnalysisOptions, analyze_stores
    from headact.analyze.report import terminal_summary

    options = AnalysisOptions(
        site=site, reduction=reduction, n_boot=n_boot, ci=ci, ci_method=ci_method, seed=seed,
        fdr=fdr, min_effect=min_effect, align=align, allow_partial=allow_partial, top_k=top_k,
        n_perm=n_perm, plots=not no_plots, plot_format=plot_format, from_raw=from_raw,
    )
    fine = stores[1] if len(stores) == 2 else None
    result = analyze_stores(stores[0], fine, out_dir, options,
                            progress=progress_enabled(quiet))
    click.echo(terminal_summary(result))


COMMANDS = [analyze]

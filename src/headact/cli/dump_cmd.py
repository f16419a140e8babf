"""`headact dump`: hook every attention head of a model and write a store."""

from __future__ import annotations

import shlex
import sys

import click

from headact.cli.common import progress_enabled, reports_errors
from headact.store.layout import SITES


@click.command()
@click.option("--model", "model_name", required=True,
              help="A local model directory (save_pretrained) or a hub id.")
@click.option("--data", "data_path", required=True, type=click.Path(),
              help="JSON array or JSON Lines file of texts, or of objects with "
              "input/text/question.")
@click.option("--out", required=True, type=click.Path(),
              help="Store to write: NAME.zarr (default choice) or NAME.h5.")
@click.option("--revision", default=None, help="Hub revision (branch, tag or commit).")
@click.option("--dtype", type=click.Choice(["auto", "float32", "float16", "bfloat16"]),
              default="auto", show_default=True, help="Weights' dtype; statistics are float32.")
@click.option("--device", default="auto", show_default=True,
              help="auto (CUDA when available), cpu, cuda or cuda:N.")
@click.option("--attn-implementation", default=None,
              help="eager, sdpa or flash_attention_2 (default: what transformers picks).")
@click.option("--trust-remote-code", is_flag=True, help="Allow the model's own modelling code.")
@click.option("--sites", default=",".join(SITES), show_default=True,
              help="z (head output inside attention), out (what it writes to the residual).")
@click.option("--layers", default=None, help="Layers to hook, e.g. 0,2,5-7 (default: all).")
@click.option("--heads", default=None, help="Heads to keep, e.g. 0-3 (default: all).")
@click.option("--hook-module", default=None,
              help="Projection path template, e.g. 'model.layers.{layer}.self_attn.o_proj', "
              "when headact cannot find the heads itself.")
@click.option("--field", default=None, help="Text field of object records (default: the first "
              "present of input, text, question).")
@click.option("--sample-num", type=int, default=None,
              help="Pick N records at random (reproducible from --seed); default all.")
@click.option("--seed", type=int, default=42, show_default=True, help="Seed for --sample-num.")
@click.option("--max-length", type=int, default=None,
              help="Truncate to this many tokens (default: the model's maximum positions).")
@click.option("--batch-size", type=int, default=8, show_default=True,
              help="Texts per forward pass (similar lengths are batched together).")
@click.option("--block-size", type=int, default=None,
              help="Samples per committed block (one chunk); default about 1 MiB per array.")
@click.option("--overwrite", is_flag=True, help="Replace an existing store at --out.")
@click.option("--resume", is_flag=True,
              help="Finish an interrupted store at --out: redo only the blocks not committed.")
@click.option("--raw", is_flag=True,
              help="Also store every counted token's head vectors y_h (raw/<site>).")
@click.option("--raw-sites", default="z", show_default=True,
              help="Sites of the raw vectors: z (d_head wide) and/or out (d_model wide per head).")
@click.option("--raw-layers", default=None,
              help="Layers whose raw vectors to store, e.g. 0,5-7 (default: every dumped layer).")
@click.option("--raw-dtype", type=click.Choice(["float16", "bfloat16", "float32"]),
              default="float16", show_default=True, help="Storage dtype of the raw vectors.")
@click.option("--force", is_flag=True,
              help="Write raw vectors even when they look larger than the free disk space.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@reports_errors
def dump(model_name: str, data_path: str, out: str, revision: str | None, dtype: str,
         device: str, attn_implementation: str | None, trust_remote_code: bool, sites: str,
         layers: str | None, heads: str | None, hook_module: str | None, field: str | None,
         sample_num: int | None, seed: int, max_length: int | None, batch_size: int,
         block_size: int | None, overwrite: bool, resume: bool, raw: bool, raw_sites: str,
         raw_layers: str | None, raw_dtype: str, force: bool, quiet: bool) -> None:
    """Write per-sample, per-head norm statistics of MODEL over DATA to a store.

    For every attention head h and every text, stores the sum, sum of squares, first, last
    and max of the per-token L2 norm of y_h (the head's output inside attention, site z,
    and what it writes to the residual stream, site out).

    \b
    Example:
      headact dump --model ./llama-base --data texts.jsonl --out pre.zarr
      headact dump --model gpt2 --data texts.json --out gpt2.h5 --layers 0-5 --sample-num 500
      headact dump --model ./base --data texts.json --out raw.zarr --raw --raw-layers 10-11
    """
    from headact.dump.files import dump_files
    from headact.dump.loading import ModelSpec
    from headact.dump.runner import DumpOptions

    spec = ModelSpec(model_name, revision, dtype, device, attn_implementation, trust_remote_code)
    site_list = tuple(s.strip() for s in sites.split(",") if s.strip())
    options = DumpOptions(
        sites=site_list,
        layers=layers,
        heads=heads,
        batch_size=batch_size,
        max_length=max_length,
        block_size=block_size,
        overwrite=overwrite,
        resume=resume,
        hook_module=hook_module,
        progress=progress_enabled(quiet),
        command_line=shlex.join(["headact", *sys.argv[1:]]),
        raw_sites=tuple(s.strip() for s in raw_sites.split(",") if s.strip()) if raw else (),
        raw_layers=raw_layers,
        raw_dtype=raw_dtype,
        force=force,
    )
    result = dump_files(spec, data_path, out, options, sample_num=sample_num, seed=seed,
                        field=field, report=lambda message: click.echo(message, err=True))
    click.echo(
        f"wrote {result.path}: {result.n_samples} samples, {result.n_tokens:,} tokens "
        f"({result.n_truncated} truncated) in {result.duration_s:.1f} s "
        f"({result.samples_per_s:.1f} samples/s, {result.tokens_per_s:,.0f} tokens/s)"
    )
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    for site, count in result.nonfinite.items():
        if count:
            click.echo(f"warning: {count} (sample, layer, head) cells at site {site} are not "
                       "finite; analyze excludes and reports them.", err=True)

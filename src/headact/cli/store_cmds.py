"""`headact inspect`, `validate` and `archive`: look at, check and pack a store."""

from __future__ import annotations

import click

from headact.cli.common import reports_errors

STORE_ARG = click.Path(exists=True, dir_okay=True, file_okay=True)


@click.command()
@click.argument("store", type=STORE_ARG)
@reports_errors
def inspect(store: str) -> None:
    """Print a short summary of STORE: model, data, heads, progress, size, dates, versions.

    \b
    Example:
      headact inspect pre.zarr
    """
    from headact.store.summary import describe_store

    click.echo(describe_store(store))


@click.command()
@click.argument("store", type=STORE_ARG)
@reports_errors
def validate(store: str) -> None:
    """Check STORE against format 1; exit 0 when sound, 1 with the list of problems.

    Checks the metadata against the schema, every array's presence, shape, dtype and
    dimension names, that done rows hold values and unwritten ones are not marked done, and
    that every chunk decodes (checksums catch corruption).

    \b
    Example:
      headact validate pre.zarr
    """
    from headact.store.validate import validate_store

    problems = validate_store(store)
    if problems:
        click.echo(f"{store}: {len(problems)} problem(s)", err=True)
        for problem in problems:
            click.echo(f"  - {problem}", err=True)
        raise SystemExit(1)
    click.echo(f"{store}: sound")


@click.command()
@click.argument("store", type=STORE_ARG)
@click.argument("out", required=False, type=click.Path(dir_okay=False))
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@reports_errors
def archive(store: str, out: str | None, overwrite: bool) -> None:
    """Pack a complete STORE (.zarr or .h5) into one .zarr.zip file to share or archive.

    Every headact command reads the archive in place. OUT defaults to STORE's name
    with the ending .zarr.zip.

    \b
    Example:
      headact archive pre.zarr            # writes pre.zarr.zip
      headact analyze pre.zarr.zip fine.zarr.zip -o results/
    """
    from headact.store.archive import archive_store

    target = archive_store(store, out, overwrite=overwrite)
    click.echo(f"wrote {target}")


@click.command("export-raw")
@click.argument("store", type=STORE_ARG)
@click.option("--layer", type=int, required=True, help="Model layer index.")
@click.option("--head", type=int, required=True, help="Head index.")
@click.option("--site", type=click.Choice(["z", "out"]), default="z", show_default=True,
              help="Which raw vectors: z (d_head wide) or out (d_model wide).")
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False),
              help="FILE.npy (float32 [token, dim]) or FILE.parquet (sample_index, position, "
              "token_id, vector).")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@reports_errors
def export_raw(store: str, layer: int, head: int, site: str, out: str, overwrite: bool) -> None:
    """Export one head's raw vectors from a STORE dumped with --raw.

    Reads only that layer and head's chunks.

    \b
    Example:
      headact export-raw raw.zarr --layer 5 --head 3 -o l5h3.parquet
    """
    from headact.store.export import export_head_raw

    target = export_head_raw(store, layer, head, out, site=site, overwrite=overwrite)
    click.echo(f"wrote {target}")


COMMANDS = [inspect, validate, archive, export_raw]

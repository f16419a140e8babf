"""Load a Hugging Face base model and its tokenizer from a directory or a hub id."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from headact.errors import ModelError

log = logging.getLogger("headact.dump")

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json",
                   "merges.txt", "tokenizer.model", "special_tokens_map.json", "spiece.model")


@dataclass(frozen=True)
class ModelSpec:
    """What the user asked to load and how."""

    name: str
    revision: str | None = None
    dtype: str = "auto"
    device: str = "auto"
    attn_implementation: str | None = None
    trust_remote_code: bool = False


def resolve_device(device: str) -> torch.device:
    """auto -> cuda when available, else cpu; check that a named CUDA device exists."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ModelError(f"--device {device!r} is not a device; use auto, cpu, cuda or cuda:N.") \
            from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ModelError(f"--device {device}: CUDA is not available here; use --device cpu.")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ModelError(
                f"--device {device}: only {torch.cuda.device_count()} CUDA devices are visible."
            )
    return resolved


def _check_local(name: str) -> None:
    looks_local = name.startswith((".", "/", "~")) or os.sep in name and Path(name).exists()
    path = Path(name).expanduser()
    if looks_local and not path.exists():
        raise ModelError(f"{name}: no such model directory; check the path.")
    if path.exists() and not (path / "config.json").exists():
        raise ModelError(
            f"{name} is not a Hugging Face model directory (no config.json); pass a directory "
            "saved with save_pretrained, or a hub id."
        )


def load_config(spec: ModelSpec):
    """The model's config, with a clear sentence when it cannot be had."""
    from transformers import AutoConfig

    _check_local(spec.name)
    try:
        return AutoConfig.from_pretrained(
            spec.name, revision=spec.revision, trust_remote_code=spec.trust_remote_code
        )
    except ValueError as exc:
        if "trust_remote_code" in str(exc):
            raise ModelError(
                f"{spec.name} needs its own modelling code; pass --trust-remote-code if you trust "
                "it."
            ) from None
        import transformers

        model_type = _declared_model_type(spec.name)
        raise ModelError(
            f"{spec.name}: unsupported or unknown architecture (model_type {model_type!r} is not "
            f"known to transformers {transformers.__version__}); upgrade transformers, or pass "
            "--trust-remote-code if the model ships its own code."
        ) from None
    except OSError as exc:
        raise ModelError(
            f"{spec.name}: cannot load its config ({str(exc).splitlines()[0]}); pass a local "
            "model directory or a reachable hub id."
        ) from None


def _declared_model_type(name: str) -> str | None:
    """The model_type a local config.json declares, if it can be read."""
    import json

    try:
        return json.loads((Path(name) / "config.json").read_text()).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None


def load_model(spec: ModelSpec):
    """(base model in eval mode on its device, tokenizer, device)."""
    import transformers
    from transformers import AutoModel, AutoTokenizer

    config = load_config(spec)
    if getattr(config, "is_encoder_decoder", False):
        raise ModelError(
            f"{spec.name} is an encoder-decoder model ({config.model_type}); headact hooks "
            "decoder-only and encoder-only models — pass one of those."
        )
    device = resolve_device(spec.device)
    kwargs: dict = {"revision": spec.revision, "trust_remote_code": spec.trust_remote_code}
    if spec.attn_implementation:
        kwargs["attn_implementation"] = spec.attn_implementation
    dtype = "auto" if spec.dtype == "auto" else DTYPES[spec.dtype]
    # transformers 5 renamed torch_dtype to dtype; 4.x only knows torch_dtype.
    major = int(transformers.__version__.split(".")[0])
    kwargs["dtype" if major >= 5 else "torch_dtype"] = dtype
    try:
        with quiet_transformers():
            model = _load_weights(AutoModel, spec.name, kwargs)
            if model is None:
                # Some versions cannot map a task checkpoint's keys onto the bare base class
                # (transformers 4.57 with Gemma 3): load the class that saved it instead.
                model = _load_weights(_saving_class(config), spec.name, kwargs, final=True)
    except ValueError as exc:
        raise ModelError(
            f"{spec.name}: cannot load the model ({str(exc).splitlines()[0]}); check "
            "--attn-implementation and --dtype, or that the architecture is supported."
        ) from None
    except OSError as exc:
        raise ModelError(
            f"{spec.name}: cannot load the weights ({str(exc).splitlines()[0]})."
        ) from None
    model.to(device)
    model.eval()
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            spec.name, revision=spec.revision, trust_remote_code=spec.trust_remote_code
        )
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"{spec.name}: cannot load its tokenizer ({str(exc).splitlines()[0]}); save one "
            "beside the model."
        ) from None
    return model, tokenizer, device


def _saving_class(config):
    """The transformers class named first in the config's `architectures`."""
    import transformers

    names = getattr(config, "architectures", None) or []
    cls = getattr(transformers, names[0], None) if names else None
    if cls is None:
        raise ModelError(
            "the checkpoint's weights do not fit the base model class and its config names no "
            "known architecture; load the model yourself and use headact.dump.dump_model."
        )
    return cls


def _load_weights(cls, name: str, kwargs: dict, final: bool = False):
    """The model, or None when weights were missing (they would be silently random)."""
    model, info = cls.from_pretrained(name, output_loading_info=True, **kwargs)
    missing = list(info.get("missing_keys") or [])
    if not missing:
        return model
    if not final:
        return None
    raise ModelError(
        f"{name}: {len(missing)} weights are missing from the checkpoint (e.g. {missing[0]}) "
        "and would be random; check that it was saved completely and for this architecture."
    )


@contextlib.contextmanager
def quiet_transformers():
    """Silence transformers' load reports and progress bars unless headact runs with -v."""
    from transformers.utils import logging as hf_logging

    if log.isEnabledFor(logging.INFO):
        yield
        return
    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def local_dir(model) -> Path | None:
    """The local directory the model was loaded from, if any."""
    name = getattr(getattr(model, "config", None), "_name_or_path", None) or getattr(
        model, "name_or_path", None)
    if name and Path(name).is_dir():
        return Path(name)
    return None


def files_digest(folder: Path, names_or_suffixes: tuple[str, ...], by_suffix: bool) -> str | None:
    """sha256 over the (name, bytes) of the matching files in `folder`, sorted by name."""
    files = sorted(
        f for f in folder.iterdir()
        if f.is_file() and (f.name.endswith(names_or_suffixes) if by_suffix
                            else f.name in names_or_suffixes)
    )
    if not files:
        return None
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.name.encode())
        with open(f, "rb") as handle:
            for piece in iter(lambda h=handle: h.read(1 << 22), b""):
                digest.update(piece)
    return digest.hexdigest()


def weights_fingerprint(model) -> tuple[str, str]:
    """(fingerprint, method): a hash of the weight files, else of the state dict."""
    folder = local_dir(model)
    if folder is not None and not getattr(model, "peft_config", None):
        digest = files_digest(folder, WEIGHT_SUFFIXES, by_suffix=True)
        if digest:
            return digest, "sha256 of weight files"
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        data = tensor.detach().contiguous().cpu()
        digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest(), "sha256 of state dict"


def tokenizer_fingerprint(tokenizer) -> str | None:
    """A hash of the tokenizer's files, or of its serialized fast tokenizer."""
    name = getattr(tokenizer, "name_or_path", None)
    if name and Path(name).is_dir():
        digest = files_digest(Path(name), TOKENIZER_FILES, by_suffix=False)
        if digest:
            return digest
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return hashlib.sha256(backend.to_str().encode()).hexdigest()
    return None

"""Load headact's JSON Schemas (shipped in the wheel, or from the source tree) and validate."""

from __future__ import annotations

import contextlib
import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

STORE_SCHEMA = "store-v1.schema.json"


def _schema_dirs() -> list[Path]:
    dirs = []
    with contextlib.suppress(ModuleNotFoundError, TypeError):  # odd importers
        dirs.append(Path(str(resources.files("headact") / "schemas")))
    # An editable install reads them from the repository root.
    dirs.append(Path(__file__).resolve().parents[3] / "schemas")
    return dirs


@cache
def load_schema(name: str) -> dict[str, Any]:
    """The parsed JSON Schema called `name` from headact's `schemas/` folder."""
    for folder in _schema_dirs():
        candidate = folder / name
        if candidate.is_file():
            return json.loads(candidate.read_text(encoding="utf-8"))
    raise FileNotFoundError(f"schema {name} is not installed with headact; reinstall headact.")


def schema_errors(instance: Any, name: str) -> list[str]:
    """Every way `instance` violates the schema `name`, as readable one-line messages."""
    schema = load_schema(name)
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    messages = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        messages.append(f"{where}: {error.message}")
    return messages

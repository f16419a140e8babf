"""The settings of one analysis, checked once before any work is done."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from headact.analyze.bootstrap import CI_METHODS
from headact.analyze.reductions import REDUCTIONS
from headact.errors import HeadactError
from headact.store import SITES

PLOT_FORMATS: tuple[str, ...] = ("png", "svg")


class AnalysisOptionError(HeadactError, ValueError):
    """An analysis setting is out of range; the message names the parameter."""


@dataclass(frozen=True)
class AnalysisOptions:
    """What to compute and how; the defaults are the CLI's."""

    site: str = "z"
    reduction: str = "token-mean"
    n_boot: int = 2000
    ci: float = 0.95
    ci_method: str = "percentile"
    seed: int = 0
    fdr: float = 0.05
    min_effect: float = 0.05
    align: bool = False
    allow_partial: bool = False
    top_k: int | None = None
    n_perm: int = 2000
    plots: bool = True
    plot_format: str = "png"
    from_raw: bool = False  # recompute the norm statistics from raw vectors (--raw dumps)
    chunk_rows: int | None = None  # samples per chunk; None picks one that bounds memory

    def __post_init__(self) -> None:
        checks = [
            (self.site in SITES, f"`site` must be one of {', '.join(SITES)}, not {self.site!r}."),
            (self.reduction in REDUCTIONS,
             f"`reduction` must be one of {', '.join(REDUCTIONS)}, not {self.reduction!r}."),
            (isinstance(self.n_boot, int) and self.n_boot >= 100,
             f"`n_boot` must be an integer of at least 100, not {self.n_boot!r}."),
            (0 < self.ci < 1, f"`ci` must lie strictly between 0 and 1, not {self.ci!r}."),
            (self.ci_method in CI_METHODS,
             f"`ci_method` must be one of {', '.join(CI_METHODS)}, not {self.ci_method!r}."),
            (isinstance(self.seed, int) and self.seed >= 0,
             f"`seed` must be a non-negative integer, not {self.seed!r}."),
            (0 < self.fdr <= 1, f"`fdr` must lie in (0, 1], not {self.fdr!r}."),
            (self.min_effect >= 0, f"`min_effect` must be 0 or more, not {self.min_effect!r}."),
            (self.top_k is None or (isinstance(self.top_k, int) and self.top_k >= 1),
             f"`top_k` must be a positive integer, not {self.top_k!r}."),
            (isinstance(self.n_perm, int) and self.n_perm >= 0,
             f"`n_perm` must be a non-negative integer, not {self.n_perm!r}."),
            (self.plot_format in PLOT_FORMATS,
             f"`plot_format` must be one of {', '.join(PLOT_FORMATS)}, not {self.plot_format!r}."),
            (self.chunk_rows is None or (isinstance(self.chunk_rows, int) and self.chunk_rows >= 1),
             f"`chunk_rows` must be a positive integer, not {self.chunk_rows!r}."),
        ]
        for ok, message in checks:
            if not ok:
                raise AnalysisOptionError(message)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

"""`headact analyze` runs where torch and transformers cannot even be imported."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
from store_factory import planted_pair, stats_from_values, write_store

# A finder that answers for torch and transformers with a loader that raises: `import torch`
# fails (and is recorded), while a mere availability probe (find_spec) sees a module.
BLOCKER = textwrap.dedent(
    """
    import importlib.abc
    import importlib.machinery
    import sys

    ATTEMPTS = []

    class Refuse(importlib.abc.Loader):
        def create_module(self, spec):
            ATTEMPTS.append(spec.name)
            raise ImportError(f"importing {spec.name} is forbidden in this test")

        def exec_module(self, module):
            raise ImportError("unreachable")

    class NoTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "transformers"):
                return importlib.machinery.ModuleSpec(name, Refuse())
            return None

    sys.meta_path.insert(0, NoTorch())
    from headact.cli import main

    try:
        main(sys.argv[1:], prog_name="headact")
    except SystemExit:
        print("ATTEMPTS", ATTEMPTS)
        raise
    """
)


def test_analyze_without_torch(tmp_path):
    x_pre, x_fine, _, _ = planted_pair(np.random.default_rng(0), 30, 2, 3)
    n_tok = np.full(30, 6)
    pre = write_store(tmp_path / "pre.zarr", stats_from_values(x_pre, n_tok), n_tokens=n_tok)
    fine = write_store(tmp_path / "fine.zarr", stats_from_values(x_fine, n_tok),
                       n_tokens=n_tok, name="fine-model")
    out = tmp_path / "out"
    # Prove the blocker works before trusting a pass.
    check = subprocess.run([sys.executable, "-c", BLOCKER.replace("from headact.cli import main",
                                                                 "import torch")],
                           capture_output=True, text=True)
    assert "importing torch is forbidden" in check.stderr
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKER, "analyze", str(pre), str(fine), "-o", str(out),
         "--n-boot", "200", "--n-perm", "50"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "ATTEMPTS []" in proc.stdout
    assert json.loads((out / "summary.json").read_text())["mode"] == "paired"
    assert (out / "heatmap_log_ratio.png").exists()

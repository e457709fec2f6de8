"""k8s.bootstrap on the plain reference image: it boots NestOS's recipe clean and SKIPs.

The reference image has no kubeadm/kubelet/kubectl, so every unit of the recipe is
skipped by ``only_if_installed()``'s conditions (the boot is not degraded) and the
test SKIPs naming what is missing.  The suite passing on the K8S variant is run by
hand (``--tag k8s``, docs/k8s.md): CI cannot afford the variant's Go build.

CI cost: one ``kolapy run`` of one test on one machine, ~70-90 s (the boot).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm


def test_bootstrap_skips_naming_missing_kubernetes(ref_image: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    # a typed name selects a test with a required tag, as `kola run isula.base` does
    proc = subprocess.run(
        [sys.executable, "-m", "kolapy.cli", "run", "k8s.bootstrap",
         f"--nestos-image={ref_image}", f"--output-dir={out}", "--live=plain"],
        cwd=tmp_path, capture_output=True, text=True, timeout=1800,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    report = json.loads((out / "reports" / "report.json").read_text())
    (result,) = [t for t in report["tests"] if t["name"] == "k8s.bootstrap"]
    assert result["result"] == "SKIP", result
    for binary in ("/usr/bin/kubeadm", "/usr/bin/kubelet", "/usr/bin/kubectl"):
        assert binary in result["output"], result["output"]
    assert "not in the image" in result["output"], result["output"]

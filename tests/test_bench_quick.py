"""The benchmark runs end to end (quick sizes, both stores) and reports every figure.

Whether the targets are met is the benchmark's finding, not this test's: it checks that
`python -m bench --quick --store both` exits 0 and that its JSON holds every figure with
numeric values.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench.results import GROUPS, expected_figures
from tests.environment import postgres_base_url, postgres_reachable, unavailable

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.integration


@pytest.mark.timeout(1200)
def test_quick_benchmark_reports_every_figure(tmp_path: Path) -> None:
    if not postgres_reachable(postgres_base_url()):
        unavailable(f"PostgreSQL at {postgres_base_url()}")
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--store", "both", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1080,  # 3 to 6 minutes on a quiet machine (346 s on 2026-12-04, 232 s on 12-06)
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]

    document = json.loads(out.read_text())
    assert document["error"] is None
    found = {(f["name"], f["store"]): f for f in document["figures"]}
    expected = expected_figures(list(GROUPS), ["sqlite", "postgresql"])
    assert sorted(found) == sorted(expected)
    for key, fig in found.items():
        for field in ("value", "baseline", "ratio"):
            value = fig[field]
            assert isinstance(value, int | float) and not isinstance(value, bool), (key, field)
            assert math.isfinite(value) and value > 0, (key, field, value)
        assert fig["rounds"] and fig["baseline_rounds"], key
        assert fig["met"] in (True, False, None), key
    assert "figure" in result.stdout  # the results table went to stdout

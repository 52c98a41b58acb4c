"""Every real clip in the shared data's manifest classifies without error through the CLI.

One batch run over the whole folder (as a user would), with ``--output``; then every manifest path
must appear exactly once in the results, with a full, normalised distribution over the labels.
"""

from __future__ import annotations

import csv
import json
import math

import pytest
from cli_support import run_cli

pytestmark = [pytest.mark.shared_data, pytest.mark.slow, pytest.mark.heavy]  # every real clip through the CLI


def test_every_manifest_clip_classifies(shared_data, ckpt, tmp_path):
    clips = shared_data / "clips"
    with open(clips / "manifest.csv", newline="", encoding="utf-8") as f:
        manifest = [row["path"] for row in csv.DictReader(f)]
    assert manifest, "empty manifest"
    labels = sorted({path.split("/")[0].replace("_", " ") for path in manifest})
    labels_file = tmp_path / "labels.txt"
    labels_file.write_text("\n".join(labels) + "\n")
    out = tmp_path / "results.jsonl"

    proc = run_cli("classify", clips, "--labels", labels_file, "--model", ckpt, "--output", out, "--json",
                   timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "error" not in proc.stderr

    records = [json.loads(line) for line in out.read_text().splitlines()]
    by_path: dict[str, int] = {}
    for record in records:
        by_path[record["path"]] = by_path.get(record["path"], 0) + 1
        assert len(record["results"]) == len(labels)
        assert math.isclose(sum(r["prob"] for r in record["results"]), 1.0, abs_tol=1e-4)
    expected = {str((clips / path).resolve()) for path in manifest}
    assert expected <= set(by_path), sorted(expected - set(by_path))
    assert all(by_path[path] == 1 for path in expected)
    # stdout carried the same records
    assert len(proc.stdout.splitlines()) == len(records)

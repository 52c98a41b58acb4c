"""``actionclip models``: the table and the JSON say, per registered model, what the registry holds
(published zero-shot and K400 figures, frames, source, licence, cached or not). The test reads the
command's real output and compares it with the registry entries, field by field."""

from __future__ import annotations

import json
import re

from cli_support import run_cli

from actionclip.cli import main
from actionclip.loading.download import cached_path
from actionclip.loading.registry import DEFAULT_MODEL, list_models


def parse_table(text: str) -> list[dict[str, str]]:
    """Rows of the left-aligned table, cut at the header's column starts."""
    lines = text.splitlines()
    header = next(line for line in lines if line.lstrip().startswith("name"))
    names = header.split()
    starts = [0] + [m.start() for m in re.finditer(r"\S+", header)]
    rows = []
    for line in lines[lines.index(header) + 1:]:
        if not line.strip():
            break
        cells = [line[a:b].strip() for a, b in zip(starts, starts[1:] + [None])]
        rows.append(dict(zip(["marker", *names], cells)))
    return rows


def _figure(value):
    return "-" if value is None else f"{value:.1f}"


def test_table_shows_every_entry_as_the_registry_holds_it():
    proc = run_cli("models", timeout=60)
    assert proc.returncode == 0, proc.stderr
    rows = parse_table(proc.stdout)
    specs = list_models()
    assert [r["name"] for r in rows] == [s.name for s in specs]
    for row, spec in zip(rows, specs):
        assert row["marker"] == ("*" if spec.name == DEFAULT_MODEL else "")
        assert (row["family"], row["arch"], row["frames"]) == (spec.family, spec.arch, str(spec.frames))
        assert [row["UCF101"], row["HMDB51"], row["K600"]] == [
            _figure(spec.zero_shot.get(k)) for k in ("ucf101", "hmdb51", "k600")]
        assert row["K400"] == _figure(spec.k400_top1)
        assert row["source"] == ("hub" if spec.hub_id else "download" if spec.url else "manual")
        assert spec.licence.startswith(row["licence"]) and row["cached"] == "no"
    published = [r for r in rows if r["UCF101"] != "-"]
    assert {"vificlip", "openvclip", "froster"} <= {r["family"] for r in published}
    assert "zero-shot top-1" in proc.stdout and "manual" in proc.stdout


def test_json_and_cached_state(capsys):
    spec = next(s for s in list_models() if s.manual)
    target = cached_path(spec)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"placed by hand")
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert list(rows) == [s.name for s in list_models()]
    for s in list_models():
        r = rows[s.name]
        assert r["zero_shot"] == {k: s.zero_shot.get(k) for k in ("ucf101", "hmdb51", "k600")}
        assert (r["k400_top1"], r["frames"], r["licence"], r["manual"], r["hub_id"], r["family"]) == (
            s.k400_top1, s.frames, s.licence, s.manual, s.hub_id, s.family)
        assert r["cached"] is (s.name == spec.name)
    assert rows[spec.name]["source"] == "manual" and rows[spec.name]["size_bytes"] == len(b"placed by hand")
    assert main(["models"]) == 0
    [row] = [r for r in parse_table(capsys.readouterr().out) if r["name"] == spec.name]
    assert row["cached"] == "yes"

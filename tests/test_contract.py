"""The model contract is the only way in: code outside the models (``actionclip/model/`` and the
family folders, ``actionclip/families/``) uses a model through
the public attributes of :class:`actionclip.model.base.VideoTextModel`, never a private one, and
never probes a model with ``getattr``/``hasattr`` (what a model provides is written down, typed).

Read from the source, like tests/test_layout.py, so that a path no test runs is checked too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from actionclip.model.base import VideoTextModel

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "actionclip"
MODELS = (PACKAGE / "model", PACKAGE / "families")  # the contract, the networks, the family folders


def _private_names_defined_in_model() -> set[str]:
    """Every private method or attribute a model class defines (``def _x``, ``self._x = ...``,
    ``_x = ...`` in a class body)."""
    names: set[str] = set()
    for path in (p for folder in MODELS for p in folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        names.add(item.name)
                    elif isinstance(item, (ast.Assign, ast.AnnAssign)):
                        targets = item.targets if isinstance(item, ast.Assign) else [item.target]
                        names.update(t.id for t in targets if isinstance(t, ast.Name))
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
                names.add(node.attr)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def _outside_model() -> list[Path]:
    paths = [p for p in PACKAGE.rglob("*.py") if not any(folder in p.parents for folder in MODELS)]
    return paths + sorted((ROOT / "benchmarks").glob("*.py")) + sorted((ROOT / "examples").glob("*.py"))


def _reaches(path: Path, private: set[str]) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (isinstance(node, ast.Attribute) and node.attr in private
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
            found.append(f"{path.name}:{node.lineno}: .{node.attr}")
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr")
                and node.args and "model" in ast.unparse(node.args[0]).lower()):
            found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)[:60]}")
    return found


def test_the_scan_finds_a_private_reach_and_a_probe(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f(model):\n    model._ops.l2(1)\n    self._ops = 1\n"
                      "    return getattr(self.model, 'device', None)\n")
    assert sorted(_reaches(sample, {"_ops"})) == ["sample.py:2: ._ops", "sample.py:4: getattr(self.model, 'device', None)"]


def test_nothing_outside_model_reaches_a_private_model_attribute_or_probes_a_model():
    private = _private_names_defined_in_model()
    assert {"_input", "_label_features"} <= private  # the scan sees model/'s private names
    found = [hit for path in _outside_model() for hit in _reaches(path, private)]
    assert found == []


def test_a_numpy_backend_answers_the_whole_contract_with_its_defaults():
    class Bare(VideoTextModel):
        pass

    model = Bare()
    assert (model.name, model.family, model.source, model.fingerprint) == (None, None, None, None)
    assert model.device == "cpu" and model.dtype_name == "fp32" and not model.on_gpu
    assert model.bulk_score_dtype() is None and model.onnx_export_error is None
    a = np.ones((2, 3), np.float32)
    assert model.from_numpy(a, on_device=True) is a and model.ops.name == "numpy"
    with model.inference():
        pass
    model.identify(name="m", source="/x.pt", fingerprint="sha256:0")
    model.identify(name=None)  # None leaves a field as it is
    assert (model.name, model.source, model.fingerprint) == ("m", "/x.pt", "sha256:0")
    with pytest.raises(NotImplementedError, match="Bare"):
        model.fuse(a)


def test_every_family_has_one_record_with_its_config_builder_and_test_weights():
    import importlib

    from actionclip.families import FAMILIES
    from actionclip.loading.registry import MODELS
    from actionclip.model.config import ModelConfig

    assert {spec.family for spec in MODELS.values()} <= set(FAMILIES)
    for name, record in FAMILIES.items():
        assert record.name == name and isinstance(record.default_config(), ModelConfig)
        module, function = record.test_weights.split(":")
        assert callable(getattr(importlib.import_module(module), function)), record.test_weights


def test_uncapped_temperature_is_one_value():
    from actionclip.families import FAMILIES
    from actionclip.model.config import MAX_LOGIT_SCALE, UNCAPPED_LOGIT_SCALE

    caps = {name: record.default_config().max_logit_scale for name, record in FAMILIES.items()}
    assert caps == {"actionclip": MAX_LOGIT_SCALE, "xclip": UNCAPPED_LOGIT_SCALE, "vificlip": UNCAPPED_LOGIT_SCALE,
                    "openvclip": UNCAPPED_LOGIT_SCALE, "froster": UNCAPPED_LOGIT_SCALE}


def test_labels_are_checked_once_at_the_boundary(monkeypatch):
    """The server, the label cache and the encoder all take labels; only the first check does work."""
    from actionclip.text import labels as labels_module

    calls = []
    real = labels_module.label_key
    monkeypatch.setattr(labels_module, "label_key", lambda label: calls.append(label) or real(label))
    checked = labels_module.check_labels([" running ", "Walking"])
    assert checked == ["running", "Walking"] and len(calls) == 2
    assert labels_module.check_labels(checked) is checked and len(calls) == 2  # passed on, not checked again
    with pytest.raises(labels_module.UsageError, match="duplicate"):
        labels_module.check_labels(["walking", "WALKING"])

"""``actionclip export MODEL --onnx DIR``: write the model as three ONNX graphs (ailia's layout).

The result runs without torch: ``actionclip classify --backend onnx -m DIR VIDEO ...`` or
``actionclip.onnx.backend.load(DIR)`` (``--onnx-precision int8`` / ``precision="int8"``: the graphs of
``--int8``).
"""

from __future__ import annotations

import argparse
import sys

from actionclip.cli import options

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export`` sub-command."""
    p = subparsers.add_parser(
        "export",
        help="export a model to ONNX (image encoder, text encoder, fusion) for ONNX Runtime / ailia",
        description="Write MODEL as three ONNX graphs with dynamic batch - {stem}-image_clip.onnx "
        "(B*T x 3 x R x R -> B*T x D), {stem}-text_clip.onnx (N x 77 -> N x D), {stem}-fusion.onnx "
        "(B x T x D -> B x D) - plus {stem}.json with frames, fusion, resolution and logit scale.",
    )
    p.add_argument("model", metavar="MODEL", help="registry name or checkpoint path (any supported format)")
    p.add_argument("--onnx", required=True, metavar="DIR", help="output directory (created if missing)")
    p.add_argument("--name", metavar="STEM", help="file name stem (default: the model's name)")
    options.add_frames(p)
    p.add_argument("--int8", action="store_true",
                   help="also write int8 dynamically quantised graphs and report their accuracy drift")
    p.add_argument("--no-check", action="store_true", help="skip onnx.checker on the written graphs")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from actionclip.extras import require

    # onnx writes and checks the graphs; ONNX Runtime quantises them to int8 and measures the drift.
    require("onnx", "export --onnx", modules=["onnx", "onnxruntime"] if args.int8 else ["onnx"])
    from actionclip.files import check_writable
    from actionclip.loading.load import load
    from actionclip.onnx.export import export_onnx

    check_writable(f"{args.onnx}/{args.name or 'model'}.json")
    model = load(args.model, device="cpu", dtype="fp32", frames=args.frames)  # graphs are traced in fp32
    print(f"exporting {model.name or args.model} ({model.fusion_type}, {model.num_frames} frames, "
          f"{model.input_resolution}px) to {args.onnx} ...", file=sys.stderr)
    result = export_onnx(model, args.onnx, stem=args.name, int8=args.int8, check=not args.no_check)
    for graph, path in result.files.items():
        print(f"{graph:>10}: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    if result.int8_files:
        for graph, path in result.int8_files.items():
            print(f"{graph:>10}: {path} ({path.stat().st_size / 1e6:.1f} MB, int8)")
        drift = result.int8_drift or {}
        print("int8 drift on random inputs (max abs diff of unit embeddings / probabilities): "
              + ", ".join(f"{k} {v:.2g}" for k, v in drift.items()))
    print(f"  metadata: {result.metadata_path}")
    print(f"done in {result.seconds:.1f} s; run it with: actionclip classify --backend onnx -m {result.directory} VIDEO -t LABEL ..."
          + (" (add --onnx-precision int8 for the int8 graphs)" if result.int8_files else ""))
    return 0

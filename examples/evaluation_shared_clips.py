"""Worked example of docs/evaluation.md: the three protocols on the shared clips.

The shared clips (``shared/data/clips``: 57 trimmed action clips, one label each, ``manifest.csv``)
become a small annotated set: ActivityNet ground truth with one instance per clip covering the whole
clip, and a captions CSV with one sentence per clip. Then:

1. ``actionclip eval-timeline``: timelines of every clip over the 57 labels, scored (detection mAP);
2. ``actionclip index`` + ``actionclip eval-retrieval``: text->video and video->text recall;
3. ``actionclip eval-open-vocab``: unseen-class accuracy over 10 seeded 75/25 and 50/50 splits.

Run: ``python examples/evaluation_shared_clips.py [--model NAME|PATH] [--out DIR]``. Without
``--model`` it writes a tiny random-weight checkpoint (no weights are needed, but the figures then
sit at chance level: they show the commands and files, not a model's quality).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_CLIPS = HERE.parent.parent / "shared" / "data" / "clips"


def annotated_set(clips: Path, out: Path) -> tuple[Path, Path, Path]:
    """ActivityNet ground truth, a captions CSV and a 'path,label' list, all from the manifest."""
    rows = list(csv.DictReader(open(clips / "manifest.csv", newline="", encoding="utf-8")))
    # ids are 'folder/name': two clips share the name 'test' (ids match files by name, or folder/name)
    ident = {r["path"]: str(Path(r["path"]).with_suffix("")) for r in rows}
    database = {ident[r["path"]]: {"subset": "validation", "duration": float(r["seconds"]),
                                       "annotations": [{"segment": [0.0, float(r["seconds"])], "label": r["label"]}]}
                for r in rows}
    gt = out / "shared_gt.json"
    gt.write_text(json.dumps({"version": "shared clips", "taxonomy": [], "database": database}, indent=1))
    captions = out / "shared_captions.csv"
    with open(captions, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["video_id", "sentence"])
        for r in rows:
            w.writerow([ident[r["path"]], f"a video of a person {r['label']}"])
    listing = out / "shared_list.csv"
    with open(listing, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        for r in rows:
            w.writerow([str(clips / r["path"]), r["label"]])
    return gt, captions, listing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=Path, default=DEFAULT_CLIPS)
    parser.add_argument("--model", help="model name or checkpoint (default: a tiny random-weight checkpoint)")
    parser.add_argument("--out", type=Path, default=Path("evaluation-example"))
    args = parser.parse_args()
    from actionclip.cli import main as cli

    args.out.mkdir(parents=True, exist_ok=True)
    model = args.model
    if model is None:
        from actionclip._dev.weights import write_checkpoint

        model = str(write_checkpoint(args.out / "random-tiny.pt", format="actionclip"))
    gt, captions, listing = annotated_set(args.clips, args.out)
    common = ["--model", model, "--dtype", "fp32"]
    steps = [
        ["eval-timeline", str(args.clips), "--ground-truth", str(gt), "-o", str(args.out / "detection"),
         "--window", "1", "--stride", "0.5", *common],
        ["index", str(args.clips), "--out", str(args.out / "clips.index"), *common],
        ["eval-retrieval", str(args.out / "clips.index"), str(captions)],
        ["eval-open-vocab", str(listing), "-o", str(args.out / "open-vocab"), *common],
    ]
    for step in steps:
        print("$ actionclip " + " ".join(step), flush=True)
        code = cli(step)
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())

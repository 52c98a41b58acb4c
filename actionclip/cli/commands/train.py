"""``actionclip train``: fine-tune a model on labeled videos with the ActionCLIP recipe.

Writes ``last_model.pt`` every epoch (original ActionCLIP format: loads with ``actionclip.load``,
``--model``, and the original code), ``model_best.pt`` when validation improves, ``train_log.jsonl``
and ``classes.txt`` into ``--out``. ``--resume`` continues from ``last_model.pt``. Several GPUs (or CPU
processes): ``torchrun --nproc_per_node N -m actionclip train ...`` (``--batch-size`` is per process).
"""

from __future__ import annotations

import argparse
import os

from actionclip.cli import options
from actionclip.cli.options import fraction, positive_float, positive_int

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` sub-command."""
    p = subparsers.add_parser(
        "train",
        help="fine-tune on labeled videos (ActionCLIP recipe; few-shot, DDP via torchrun)",
        description="Fine-tune a model on labeled videos: TSN sampling, augmentations, KL loss in both "
        "directions, AdamW with a 10x LR for the fusion head, warm-up + cosine schedule. Checkpoints are "
        "in the original ActionCLIP format.",
        epilog="example: actionclip train my_videos/ --model vit-b-32-8f --out runs/mine --epochs 10 --shots 8",
    )
    options.add_dataset(p)
    options.add_model(p, what="the starting model")
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="folder for checkpoints and logs")
    val = p.add_mutually_exclusive_group()
    val.add_argument("--val", metavar="DATA", help="a separate validation dataset (same class list)")
    val.add_argument("--val-list", metavar="FILE", help="clips named in this file are validation, the rest train")
    val.add_argument("--val-fraction", type=fraction, default=None, metavar="F",
                     help="seeded split by group (UCF101 _gNN_ etc.) so one actor never lands on both sides")
    p.add_argument("--epochs", type=positive_int, default=10)
    options.add_batch_size(p, default=16, what="clips per process and step")
    p.add_argument("--accum-steps", type=positive_int, default=1, metavar="N", help="gradient accumulation steps")
    p.add_argument("--lr", type=positive_float, default=5e-6, help="LR of the text encoder (default %(default)s)")
    p.add_argument("--visual-lr-ratio", type=positive_float, default=1.0, metavar="R",
                   help="image-encoder LR = lr x R (default %(default)s)")
    p.add_argument("--fusion-lr-ratio", type=positive_float, default=10.0, metavar="R",
                   help="fusion-head LR = lr x R (default %(default)s)")
    p.add_argument("--weight-decay", type=float, default=0.2)
    p.add_argument("--warmup-epochs", type=float, default=1.0)
    p.add_argument("--grad-clip", type=positive_float, metavar="NORM", help="clip the gradient norm")
    options.add_precision(p)
    options.add_frames(p)
    p.add_argument("--freeze-backbone", action="store_true", help="train only the fusion head")
    p.add_argument("--shots", type=positive_int, metavar="K", help="few-shot: K training clips per class")
    p.add_argument("--no-augment", action="store_true", help="no crop/flip/colour augmentation")
    p.add_argument("--no-flip", action="store_true",
                   help="no horizontal flip (labels naming left/right directions)")
    p.add_argument("--cache-frames", action="store_true",
                   help="decode every video once and keep its frames in memory (small datasets)")
    p.add_argument("--seed", type=int, default=0)
    options.add_decoding(p, default_workers=2, help_text="threads that read training clips ahead of the model, "
                         "and the decode processes of the validation pass (default: 2)")
    options.add_runtime(p, dtype=False)
    p.add_argument("--resume", action="store_true", help="continue from OUT/last_model.pt if present")
    p.add_argument("--eval-every", type=positive_int, default=1, metavar="E", help="validate every E epochs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from actionclip.training.datasets import few_shot, load_dataset, split_dataset
    from actionclip.training.train import TrainConfig, train

    # With a base/novel class split, fine-tune on the base classes only (evaluate novel ones with eval).
    data = options.dataset_from(args, "base" if options.has_class_split(args) else None)
    val = None
    if args.val:
        val = load_dataset(args.val, classes=data.class_names, root=args.root, group_pattern=args.group_pattern)
    elif args.val_list or args.val_fraction is not None:
        fraction = 0.2 if args.val_fraction is None else args.val_fraction
        data, val = split_dataset(data, val_list=args.val_list, val_fraction=fraction, seed=args.split_seed)
    if args.shots:
        data = few_shot(data, args.shots, seed=args.split_seed)
    config = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, visual_ratio=args.visual_lr_ratio,
        fusion_ratio=args.fusion_lr_ratio, weight_decay=args.weight_decay, warmup_epochs=args.warmup_epochs,
        accum_steps=args.accum_steps, precision=args.precision, frames=args.frames,
        freeze_backbone=args.freeze_backbone, augment=not args.no_augment, flip=not args.no_flip,
        grad_clip=args.grad_clip, seed=args.seed, workers=args.workers, cache_frames=args.cache_frames,
        device=args.device, eval_every=args.eval_every, progress=not args.quiet,
    )
    out_existed = os.path.lexists(args.out)
    try:
        result = train(args.model, data, args.out, config, val_set=val, resume=args.resume)
    except BaseException:
        from pathlib import Path

        from actionclip.training.train import LAST

        # The folder is this run's own: if it failed before its first checkpoint, nothing in it can
        # be resumed, so none of it is left behind.
        if not out_existed and not (Path(args.out) / LAST).exists():
            import shutil

            shutil.rmtree(args.out, ignore_errors=True)
        raise
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    if os.environ.get("RANK", "0") == "0":
        print(f"last checkpoint: {result.last}" + (f"\nbest checkpoint: {result.best}" if result.best else ""))
    return 0

"""Fine-tune ActionCLIP on labeled videos: the original recipe, on CPU or GPUs.

The recipe of the original ``train.py`` + configs:

* TSN sampling: the clip is cut into T equal segments and one random frame is taken from each
  (:func:`actionclip.video.sample_indices`, mode ``random``);
* augmentations (:mod:`actionclip.training.augment`): multi-scale crop, flip, colour jitter, grayscale;
* each clip is paired with its class name inside one of the 16 prompt templates, drawn at random;
* loss (:mod:`actionclip.training.losses`): KL between video<->text similarities and the multi-positive
  label distribution, both directions, averaged;
* AdamW (betas 0.9/0.98, eps 1e-8, weight decay 0.2) with three learning rates: text encoder ``lr``,
  image encoder ``lr * visual_ratio``, fusion head ``lr * fusion_ratio`` (10: the head is new);
* linear warm-up, then cosine decay to 0, updated every optimizer step.

Additions: gradient accumulation, mixed precision (bf16 autocast on CPU; fp16 with loss scaling or
bf16 on CUDA), ``freeze_backbone`` (train the fusion head only), few-shot subsets, resuming, and
DistributedDataParallel under ``torchrun`` (NCCL on GPUs, gloo on CPU). In DDP the embeddings of all
ranks are gathered before the loss, so the contrastive batch is the global batch and N processes
with batch B compute the same update as one process with batch N*B.

Every epoch writes ``last_model.pt`` in the ORIGINAL ActionCLIP checkpoint format (plus the optimizer
state and a ``train_state`` entry for resuming), atomically; ``model_best.pt`` when validation
improves. Both load with :func:`actionclip.load` and in the original code.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from actionclip.training.augment import TrainAugment
from actionclip.training.datasets import VideoDataset, read_sample_frames, sample_length
from actionclip.choices import PRECISIONS
from actionclip.errors import UsageError
from actionclip.files import write_text, write_with
from actionclip.training.losses import actionclip_loss
from actionclip.video.preprocess import Preprocessing, preprocess_frames, resize_short_side
from actionclip.video import sample_indices

__all__ = ["TrainConfig", "TrainResult", "train", "lr_factor", "build_optimizer", "LAST", "BEST"]

LAST = "last_model.pt"  # the original's names
BEST = "model_best.pt"
LOG = "train_log.jsonl"


@dataclasses.dataclass
class TrainConfig:
    """Options of :func:`train`. Defaults follow the original configs where they make sense."""

    epochs: int = 10
    batch_size: int = 16  # per process
    lr: float = 5e-6  # text encoder; the original's fine-tuning LR
    visual_ratio: float = 1.0  # image encoder LR = lr * visual_ratio
    fusion_ratio: float = 10.0  # fusion head LR = lr * fusion_ratio (the original's f_ratio)
    weight_decay: float = 0.2
    warmup_epochs: float = 1.0
    accum_steps: int = 1
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    frames: int | None = None  # default: the model's
    freeze_backbone: bool = False
    augment: bool = True
    flip: bool = True
    grad_clip: float | None = None
    seed: int = 0
    workers: int = 2
    cache_frames: bool = False  # decode each video once and keep its frames in memory
    templates: tuple[str, ...] | None = None  # default: the 16 ActionCLIP templates
    device: str = "auto"
    eval_every: int = 1
    progress: bool = True

    def check(self) -> None:
        for name in ("epochs", "batch_size", "accum_steps", "eval_every"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise UsageError(f"learning rate must be positive, got {self.lr}")
        if self.precision not in PRECISIONS:
            raise UsageError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")


@dataclasses.dataclass
class TrainResult:
    """What a run produced: checkpoint paths, per-epoch history, the trained model (rank 0)."""

    out_dir: Path
    last: Path
    best: Path | None
    history: list[dict[str, Any]]
    model: Any


# --- sampling and schedule ----------------------------------------------------------------------


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Multiplier of the base LRs at optimizer step ``step`` (0-based): linear warm-up over
    ``warmup_steps`` to 1, then cosine to 0 at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup_steps) / span)))


def _seed_of(*parts: int) -> int:
    """A 63-bit seed mixing several integers (splitmix-style), so (seed, epoch, index) streams differ."""
    x = 0x9E3779B97F4A7C15
    for p in parts:
        x = (x ^ (int(p) + 0x9E3779B97F4A7C15 + (x << 6) + (x >> 2))) & 0xFFFFFFFFFFFFFFFF
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    return x >> 1


# --- data ---------------------------------------------------------------------------------------


class ClipSource:
    """Prepares training clips: TSN sampling, decoding (optionally cached), augmentation.

    Every random choice for clip ``i`` in epoch ``e`` comes from a generator seeded by
    ``(seed, e, i)``, so a clip is prepared identically whatever the batch size, the number of
    processes or worker threads.
    """

    def __init__(self, dataset: VideoDataset, frames: int, preprocessing: Preprocessing, config: TrainConfig,
                 num_templates: int):
        self.dataset = dataset
        self.frames = frames
        self.preprocessing = preprocessing
        self.config = config
        self.num_templates = num_templates
        self.augment = TrainAugment(preprocessing, flip=config.flip)
        self._lengths: dict[int, int] = {}
        self._cache: dict[int, Tensor] = {}

    def _all_frames(self, index: int) -> Tensor:
        """All frames of clip ``index``, short side scaled to the augmentation's working size."""
        cached = self._cache.get(index)
        if cached is None:
            sample = self.dataset[index]
            n = sample_length(sample)
            raw = torch.as_tensor(read_sample_frames(sample, range(n))).permute(0, 3, 1, 2).float()
            scaled = resize_short_side(raw, self.augment.scale_size, self.preprocessing.interpolation)
            cached = scaled.to(torch.uint8).permute(0, 2, 3, 1).contiguous()
            self._cache[index] = cached
        return cached

    def _length(self, index: int) -> int:
        if index not in self._lengths:
            self._lengths[index] = sample_length(self.dataset[index])
        return self._lengths[index]

    def __call__(self, key: tuple[int, int]) -> tuple[Tensor, int, int]:
        """``(epoch, index)`` -> (normalised pixels [T, 3, R, R], label, template id)."""
        epoch, index = key
        seed = _seed_of(self.config.seed, epoch, index)
        g = torch.Generator().manual_seed(seed)
        rng = np.random.default_rng(seed)
        if self.config.cache_frames:
            every = self._all_frames(index)
            frames = every[sample_indices(len(every), self.frames, "random", rng=rng)]
        else:
            indices = sample_indices(self._length(index), self.frames, "random", rng=rng)
            frames = torch.as_tensor(read_sample_frames(self.dataset[index], indices))
        if self.config.augment:
            pixels = self.augment.colour(self.augment.geometry(frames, g)[None], g)[0]
        else:
            pixels = preprocess_frames(frames, self.preprocessing)
        template = int(torch.randint(self.num_templates, (1,), generator=g))
        return pixels, self.dataset[index].label, template


# --- distributed --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Dist:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device_choice: str) -> tuple[_Dist, torch.device]:
    """Join the process group torchrun describes in the environment (or run alone)."""
    from actionclip.runtime import resolve_device

    world = int(os.environ.get("WORLD_SIZE", "1"))
    want_cuda = resolve_device(device_choice).startswith("cuda")
    if world <= 1:
        return _Dist(), torch.device("cuda" if want_cuda else "cpu")
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if want_cuda else "gloo")
    if want_cuda:
        torch.cuda.set_device(local)
        return _Dist(rank, world), torch.device("cuda", local)
    return _Dist(rank, world), torch.device("cpu")


class _GatherWithGrad(torch.autograd.Function):
    """All-gather along dim 0 whose backward hands each rank the summed gradient of its own slice.

    Every rank computes the same global loss; summing the gradients of one rank's slice over all
    ranks and then DDP's mean over ranks gives exactly the single-process gradient.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rank, ctx.n = dist.get_rank(), x.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.n:(ctx.rank + 1) * ctx.n]


def _gather(x: Tensor, world: int) -> Tensor:
    return _GatherWithGrad.apply(x) if world > 1 else x


def _gather_plain(x: Tensor, world: int) -> Tensor:
    if world == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


class _TrainStep(nn.Module):
    """One forward for DDP: clips and prompt tokens -> (video emb, text emb, logit scale)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixels: Tensor, tokens: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.model.encode_video(pixels), self.model.encode_tokens(tokens), self.model.logit_scale


# --- optimisation -------------------------------------------------------------------------------


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW over three groups: text (rest of CLIP), image encoder, fusion head (the original's)."""
    visual = [p for p in model.clip.visual.parameters() if p.requires_grad]
    visual_ids = {id(p) for p in model.clip.visual.parameters()}
    text = [p for p in model.clip.parameters() if p.requires_grad and id(p) not in visual_ids]
    fusion = [p for p in model.fusion.parameters() if p.requires_grad]
    groups = [
        {"params": text, "lr": config.lr, "name": "text"},
        {"params": visual, "lr": config.lr * config.visual_ratio, "name": "visual"},
        {"params": fusion, "lr": config.lr * config.fusion_ratio, "name": "fusion"},
    ]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise UsageError(f"nothing to train: the {model.fusion_type} head has no parameters and the backbone is frozen")
    for g in groups:
        g["base_lr"] = g["lr"]
    # The fused kernel is several times faster than the per-tensor loop, on CPU as on CUDA.
    fused = all(p.dtype == torch.float32 for g in groups for p in g["params"])
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.98), eps=1e-8, weight_decay=config.weight_decay,
                             fused=fused or None)


def _precision(choice: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for plain fp32."""
    if choice == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if choice == "fp16" and device.type != "cuda":
        raise UsageError("precision fp16 needs a CUDA device; use bf16 on CPU")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[choice]


def _autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


# --- checkpoints --------------------------------------------------------------------------------


def _save(model, path: Path, *, epoch: int, optimizer, scaler, state: dict[str, Any]) -> None:
    from actionclip.loading.checkpoints import save_actionclip_checkpoint

    train_state = dict(state)
    if scaler is not None:
        train_state["scaler"] = scaler.state_dict()
    save_actionclip_checkpoint(model, path, epoch=epoch, optimizer_state_dict=optimizer.state_dict(),
                               train_state=train_state)


def _append_log(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


# --- the loop -----------------------------------------------------------------------------------


def _batches(n: int, global_batch: int, seed: int, epoch: int) -> list[list[int]]:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(_seed_of(seed, epoch, -1))).tolist()
    return [order[b * global_batch:(b + 1) * global_batch] for b in range(n // global_batch)]


def _prompt_tokens(classes: Sequence[str], templates: Sequence[str], context_length: int) -> Tensor:
    from actionclip.text.tokenizer import tokenize

    prompts = [t.format(c) for t in templates for c in classes]
    return tokenize(prompts, context_length=context_length).view(len(templates), len(classes), -1)


def train(
    model: str | os.PathLike | nn.Module,
    train_set: VideoDataset,
    out_dir: str | os.PathLike,
    config: TrainConfig | None = None,
    *,
    val_set: VideoDataset | None = None,
    resume: bool = False,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Fine-tune ``model`` (a registry name, checkpoint path or loaded ActionCLIP) on ``train_set``.

    Args:
        model: the starting point; a loaded model is trained in place.
        train_set: clips and class names (the label texts go into the prompts).
        out_dir: where ``last_model.pt`` (every epoch), ``model_best.pt`` (best val top-1),
            ``train_log.jsonl`` and ``classes.txt`` go.
        config: the recipe's options (:class:`TrainConfig`).
        val_set: evaluated every ``config.eval_every`` epochs with its own class list as candidates.
        resume: continue from ``out_dir/last_model.pt`` if it exists (weights, optimizer, epoch).
        log: where progress lines go (default: stderr on rank 0).

    Under ``torchrun`` each process calls this with the same arguments; ``batch_size`` is per process.
    """
    from actionclip.loading.load import load
    from actionclip.model.actionclip import ActionCLIP

    config = config or TrainConfig()
    config.check()
    ddp, device = _init_distributed(config.device)
    # The run's log (plan, epochs, checkpoints) is the command's output; only warnings go to stderr,
    # so a run that fails leaves its error as the one line there.
    say = log or ((lambda m: print(m, file=sys.stderr if m.startswith("warning:") else sys.stdout, flush=True))
                  if ddp.main else (lambda m: None))
    out = Path(out_dir)
    last_path = out / LAST
    resuming = resume and last_path.is_file()
    if ddp.main:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"{out}: cannot create the output folder ({exc.strerror or exc})") from None

    if resuming:
        model = load(last_path, device="cpu", frames=config.frames)
        say(f"resuming from {last_path}")
    elif not isinstance(model, nn.Module):
        model = load(model, device="cpu", frames=config.frames)
    if not isinstance(model, ActionCLIP):
        family = getattr(model, "family", type(model).__name__)
        raise UsageError(f"{getattr(model, 'name', None) or family}: fine-tuning supports ActionCLIP and CLIP "
                         f"models; {family} models cannot be trained here yet")
    model = model.to(device=device, dtype=torch.float32).train()
    if config.freeze_backbone:
        model.clip.requires_grad_(False)

    frames = config.frames or model.num_frames
    templates = list(config.templates) if config.templates else list(model.config.templates)
    token_table = _prompt_tokens(train_set.classes, templates, model.context_length)
    source = ClipSource(train_set, frames, model.config.preprocessing, config, len(templates))

    global_batch = config.batch_size * ddp.world
    if len(train_set) < global_batch:
        fitted = max(ddp.world, len(train_set) // ddp.world * ddp.world)
        if len(train_set) < 2 * ddp.world:
            raise UsageError(f"{train_set.source}: {len(train_set)} training clips; need at least {2 * ddp.world}")
        say(f"note: batch of {global_batch} > {len(train_set)} clips; using a global batch of {fitted}")
        global_batch = fitted
    local_batch = global_batch // ddp.world
    batches_per_epoch = len(train_set) // global_batch
    steps_per_epoch = math.ceil(batches_per_epoch / config.accum_steps)
    total_steps = steps_per_epoch * config.epochs
    warmup_steps = min(total_steps, round(config.warmup_epochs * steps_per_epoch))

    optimizer = build_optimizer(model, config)
    amp_dtype = _precision(config.precision, device)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    start_epoch, step, best, history = 0, 0, -1.0, []
    if resuming:
        saved = torch.load(last_path, map_location="cpu", weights_only=True)
        state = saved.get("train_state", {})
        if state.get("classes") and list(state["classes"]) != list(train_set.classes):
            raise UsageError(f"{last_path}: was trained on other classes; train into another output folder, or do not resume")
        if "train_state" not in saved or "optimizer_state_dict" not in saved:
            raise UsageError(f"{last_path}: not written by 'actionclip train' (no training state); "
                             "train into another output folder, or do not resume")
        try:
            optimizer.load_state_dict(saved["optimizer_state_dict"])
        except ValueError as exc:  # other parameter groups, e.g. --freeze-backbone changed
            raise UsageError(f"{last_path}: its optimizer state does not fit this run ({exc}); "
                             "resume with the same options, or use a new --out") from None
        if scaler is not None and "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        start_epoch, step = int(saved.get("epoch", 0)), int(state.get("step", 0))
        best, history = float(state.get("best", -1.0)), list(state.get("history", []))
        del saved

    step_module: nn.Module = _TrainStep(model)
    if ddp.world > 1:
        step_module = nn.parallel.DistributedDataParallel(
            step_module, device_ids=[device.index] if device.type == "cuda" else None)

    if ddp.main:
        classes_text = "".join(c + "\n" for c in train_set.classes)
        write_text(out / "classes.txt", classes_text)
        say(f"training {model.name or 'model'} on {len(train_set)} clips / {len(train_set.classes)} classes: "
            f"{config.epochs} epochs x {steps_per_epoch} steps, global batch {global_batch}"
            f"{f' x {config.accum_steps} accumulated' if config.accum_steps > 1 else ''}, "
            f"{ddp.world} process(es) on {device}, {'fp32' if amp_dtype is None else str(amp_dtype).split('.')[-1]}")

    from actionclip.pipeline import prefetch

    best_path: Path | None = out / BEST if (out / BEST).is_file() else None
    bad_paths: set[Path] = set()
    for epoch in range(start_epoch, config.epochs):
        model.train()
        t0 = time.perf_counter()
        batches = _batches(len(train_set), global_batch, config.seed, epoch)
        keys = [(epoch, i) for batch in batches for i in batch[ddp.rank * local_batch:(ddp.rank + 1) * local_batch]]
        prepared = prefetch(source, keys, workers=config.workers, ahead=2 * local_batch + config.workers)
        losses: list[float] = []
        bar = _progress(batches_per_epoch, f"epoch {epoch + 1}/{config.epochs}", config.progress and ddp.main)
        for b in range(batches_per_epoch):
            items = _usable([next(prepared) for _ in range(local_batch)], train_set, bad_paths, say)
            pixels = torch.stack([r[0] for _, r in items]).to(device)
            labels = torch.tensor([r[1] for _, r in items], device=device)
            tokens = token_table[torch.tensor([r[2] for _, r in items]), labels.cpu()]
            # Causal attention + end-of-text pooling: positions after the longest prompt's EOT never
            # reach the output, so cutting them is exact and makes the text encoder several times cheaper.
            tokens = tokens[:, : int(tokens.argmax(dim=-1).max()) + 1].to(device)
            group_start = b - b % config.accum_steps
            group_len = min(config.accum_steps, batches_per_epoch - group_start)
            boundary = b == group_start + group_len - 1
            sync = nullcontext() if boundary or ddp.world == 1 else step_module.no_sync()
            with sync:
                with _autocast(device, amp_dtype):
                    video, text, scale = step_module(pixels, tokens)
                loss, _, _ = actionclip_loss(_gather(video.float(), ddp.world), _gather(text.float(), ddp.world),
                                             _gather_plain(labels, ddp.world), scale.float())
                scaled = loss / group_len
                (scaler.scale(scaled) if scaler is not None else scaled).backward()
            losses.append(float(loss.detach()))
            if boundary:
                factor = lr_factor(step, warmup_steps, total_steps)
                for g in optimizer.param_groups:
                    g["lr"] = g["base_lr"] * factor
                if scaler is not None:
                    scaler.unscale_(optimizer)
                if config.grad_clip:
                    nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]],
                                             config.grad_clip)
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
            bar.update(1, loss=losses[-1])
        prepared.close()
        bar.close()
        seconds = time.perf_counter() - t0
        record: dict[str, Any] = {
            "epoch": epoch + 1, "step": step, "loss": sum(losses) / max(1, len(losses)),
            "lr": optimizer.param_groups[0]["lr"], "seconds": round(seconds, 3),
            "clips_per_s": round(batches_per_epoch * global_batch / max(seconds, 1e-9), 2),
        }
        if ddp.main and val_set is not None and ((epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs):
            from actionclip.training.evaluate import evaluate

            model.eval()
            report = evaluate(model, val_set, frames=frames, workers=config.workers, progress=False)
            record["val_top1"] = report.top1
            record["val_mean_class_accuracy"] = report.mean_class_accuracy
        history.append(record)
        if ddp.main:
            improved = "val_top1" in record and record["val_top1"] > best
            best = max(best, record.get("val_top1", -1.0))
            state = {"step": step, "classes": list(train_set.classes), "best": best, "history": history,
                     "config": {k: (list(v) if isinstance(v, tuple) else v)
                                for k, v in dataclasses.asdict(config).items()}}
            _save(model, last_path, epoch=epoch + 1, optimizer=optimizer, scaler=scaler, state=state)
            if improved:
                write_with(out / BEST, lambda tmp: shutil.copyfile(last_path, tmp))
                best_path = out / BEST
            _append_log(out / LOG, record)
            say(_format_record(record))
        if ddp.world > 1:
            dist.barrier()
    model.eval()
    return TrainResult(out, last_path, best_path, history, model)


def _usable(items: list, dataset: VideoDataset, bad: set[Path], say: Callable[[str], None]) -> list:
    """The prepared items of a batch, with clips that failed to decode replaced by copies of good ones
    (a batch keeps its size, which DDP needs); each bad file is reported once."""
    good = [item for item in items if not isinstance(item[1], Exception)]
    if not good:  # the error names the cause; no warning line per clip before it
        raise UsageError(f"{dataset.source}: every clip of a batch failed to decode (last: {items[-1][1]})")
    for (epoch, index), result in items:
        if isinstance(result, Exception) and dataset[index].path not in bad:
            bad.add(dataset[index].path)
            say(f"warning: skipping {dataset[index].path}: {result}")
    return [good[i % len(good)] for i in range(len(items))]


def _format_record(r: dict[str, Any]) -> str:
    text = f"epoch {r['epoch']}: loss {r['loss']:.4f}, lr {r['lr']:.2e}, {r['clips_per_s']:.1f} clips/s"
    if "val_top1" in r:
        text += f", val top-1 {100 * r['val_top1']:.1f}%"
    return text


class _progress:
    """A tqdm bar on stderr when enabled, else a no-op with the same calls."""

    def __init__(self, total: int, desc: str, enabled: bool):
        self.bar = None
        if enabled and sys.stderr.isatty():  # a log file gets the epoch lines, not bar redraws
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="batch", file=sys.stderr, leave=False)

    def update(self, n: int, **postfix: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.4f}" for k, v in postfix.items()}, refresh=False)
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

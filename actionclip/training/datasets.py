"""Labeled video datasets: where the clips are, what their labels say, and how to split them.

Three layouts are read:

* a folder per class: ``root/<label>/<video>`` (the folder name is the label);
* a CSV/TSV list: ``path,label`` (a header naming ``path`` and ``label`` columns may add any other
  columns; without a header the first two columns are used; ``label`` may be a class name or, when
  a class list is given, an index);
* the original ActionCLIP list: ``path num_frames label_index`` per line (space separated), with a
  class-name file (one name per line, or the original's ``id,name`` CSV). ``path`` may be a video
  or a folder of extracted frames.

Class names become label *texts* for the text encoder: ``ApplyEyeMakeup`` -> ``apply eye makeup``,
``brush_hair`` -> ``brush hair``; the original names are kept in :attr:`VideoDataset.class_names`.
Built-in class lists (``ucf101``, ``hmdb51``, ``k400``, ``k600``) ship with the package; both they
and the naming rule live in :mod:`actionclip.text.classes`, which every command shares.

Splits never leak one actor/scene into both sides when grouped: UCF101's ``_gNN_`` groups are
detected from file names (see :func:`group_of`).
"""

from __future__ import annotations

import csv
import dataclasses
import random
import re
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path

from actionclip.errors import UsageError
from actionclip.text.classes import BUILTIN_CLASS_LISTS, builtin_classes, builtin_key, humanize, not_a_list
from actionclip.video import VIDEO_EXTENSIONS

__all__ = [
    "VIDEO_EXTENSIONS",
    "BUILTIN_CLASS_LISTS",
    "Sample",
    "VideoDataset",
    "humanize",
    "builtin_classes",
    "load_classes",
    "load_dataset",
    "group_of",
    "split_dataset",
    "split_classes",
    "few_shot",
    "sample_length",
    "read_sample_frames",
]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
# UCF101 names clips v_<Class>_g<group>_c<clip>; one group is one actor/scene.
UCF_GROUP = re.compile(r"_g(\d+)_c\d+", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class Sample:
    """One labeled clip. ``path`` is a video file or a folder of frames; ``num_frames`` is known
    only when a list file gives it."""

    path: Path
    label: int
    group: str
    num_frames: int | None = None


@dataclasses.dataclass
class VideoDataset:
    """Clips with integer labels into ``classes`` (label texts) / ``class_names`` (original names)."""

    samples: list[Sample]
    classes: list[str]
    class_names: list[str]
    source: str = ""

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self):
        return iter(self.samples)

    def __getitem__(self, index: int) -> Sample:
        return self.samples[index]

    @property
    def labels(self) -> list[int]:
        return [s.label for s in self.samples]

    def counts(self) -> list[int]:
        """Number of clips per class, indexed like :attr:`classes`."""
        counts = [0] * len(self.classes)
        for s in self.samples:
            counts[s.label] += 1
        return counts

    def subset(self, indices: Iterable[int]) -> "VideoDataset":
        """The same classes with only the given samples."""
        return dataclasses.replace(self, samples=[self.samples[i] for i in indices])

    def restrict(self, classes: Sequence[str]) -> "VideoDataset":
        """Only the samples of ``classes`` (label texts or original names), relabelled 0..len-1.

        Used for base-to-novel evaluation: train on base classes, evaluate on the novel ones with
        only the novel label texts as candidates.
        """
        old = self._indices_of(classes)
        remap = {o: n for n, o in enumerate(old)}
        samples = [dataclasses.replace(s, label=remap[s.label]) for s in self.samples if s.label in remap]
        return VideoDataset(samples, [self.classes[o] for o in old],
                            [self.class_names[o] for o in old], self.source)

    def _indices_of(self, names: Sequence[str]) -> list[int]:
        """Class index of each name (label text or original name, any spelling)."""
        # One table for all names: a lookup per name against every class made a 600-class split slow.
        keys: dict[str, int] = {}
        for i, (text, original) in enumerate(zip(self.classes, self.class_names)):
            keys.setdefault(_norm(text), i)
            keys.setdefault(_norm(original), i)
        missing = next((n for n in names if _norm(n) not in keys), None)
        if missing is not None:
            raise UsageError(f"{self.source or 'dataset'}: no class named {missing!r}")
        return [keys[_norm(n)] for n in names]


def _norm(name: str) -> str:
    """Key that matches a class across spellings (``ApplyEyeMakeup`` == ``apply_eye_makeup``)."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def load_classes(spec: str | Path) -> list[str]:
    """Original class names from a built-in list name or a file.

    A file holds one name per line, or the original ActionCLIP ``id,name`` CSV (header optional).
    """
    if isinstance(spec, str) and builtin_key(spec) and not Path(spec).exists():
        return builtin_classes(spec)
    path = Path(spec)
    if not path.is_file():
        raise UsageError(f"{spec}: no such class list file, and {not_a_list(str(spec))}")
    lines = [ln.strip() for ln in path.read_text("utf-8-sig").splitlines() if ln.strip()]
    if lines and lines[0].replace(" ", "").lower() == "id,name":
        lines = lines[1:]
    if lines and all(re.match(r"^\d+\s*,", ln) for ln in lines):
        rows = sorted((int(i), n.strip()) for i, n in (ln.split(",", 1) for ln in lines))
        if [i for i, _ in rows] != list(range(len(rows))):
            raise UsageError(f"{path}: class ids must be 0..{len(rows) - 1}")
        lines = [n for _, n in rows]
    if not lines:
        raise UsageError(f"{path}: the class list is empty")
    if len({_norm(n) for n in lines}) != len(lines):
        raise UsageError(f"{path}: the class list has duplicate names")
    return lines


def group_of(path: str | Path, pattern: str | re.Pattern | None = None) -> str:
    """The group (actor/scene) a clip belongs to, so a split keeps a group on one side.

    With ``pattern`` the first capture group (or the whole match) of the file name; otherwise
    UCF101's ``_gNN_`` number, else the file stem (each clip its own group).
    """
    name = Path(path).name
    if pattern is not None:
        m = re.search(pattern, name)
        if m:
            return m.group(1) if m.groups() else m.group(0)
        return Path(path).stem
    m = UCF_GROUP.search(name)
    return f"g{int(m.group(1)):02d}" if m else Path(path).stem


def _is_video(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS and not path.name.startswith(".")


def _is_frame_dir(path: Path) -> bool:
    return path.is_dir() and any(p.suffix.lower() in IMAGE_EXTENSIONS for p in path.iterdir())


class _ClassIndex:
    """Maps label spellings to indices; grows when no fixed class list is given."""

    def __init__(self, names: list[str] | None, source: str):
        self.fixed = names is not None
        self.names: list[str] = list(names or [])
        self.keys = {_norm(n): i for i, n in enumerate(self.names)}
        for i, n in enumerate(self.names):
            self.keys.setdefault(_norm(humanize(n)), i)
        self.source = source

    def index(self, label: str, where: str) -> int:
        key = _norm(label)
        if key in self.keys:
            return self.keys[key]
        if label.strip().isdigit() and self.fixed:
            i = int(label)
            if 0 <= i < len(self.names):
                return i
            raise UsageError(f"{where}: label index {i} out of range for {len(self.names)} classes")
        if self.fixed:
            raise UsageError(f"{where}: label {label!r} is not in the class list")
        self.keys[key] = len(self.names)
        self.names.append(label.strip())
        return self.keys[key]


def _from_folders(root: Path, index: _ClassIndex, group_pattern) -> list[Sample]:
    samples = []
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for class_dir in class_dirs:
        items = sorted(p for p in class_dir.iterdir() if _is_video(p) or _is_frame_dir(p))
        if not items:
            continue
        label = index.index(class_dir.name, str(class_dir))
        samples += [Sample(p, label, group_of(p, group_pattern)) for p in items]
    return samples


def _resolve(path_text: str, base: Path) -> Path:
    path = Path(path_text.strip())
    if not path.is_absolute():
        path = base / path
    return path


def _from_csv(path: Path, index: _ClassIndex, group_pattern, root: Path) -> list[Sample]:
    text = path.read_text("utf-8-sig")
    delimiter = "\t" if path.suffix.lower() == ".tsv" or ("\t" in text.split("\n", 1)[0]) else ","
    rows = [r for r in csv.reader(text.splitlines(), delimiter=delimiter) if r and any(c.strip() for c in r)]
    if not rows:
        raise UsageError(f"{path}: the list is empty")
    header = [c.strip().lower() for c in rows[0]]
    path_col, label_col, first = 0, 1, 1
    if "path" in header and "label" in header:
        path_col, label_col, rows, first = header.index("path"), header.index("label"), rows[1:], 2
    samples = []
    for n, row in enumerate(rows, start=first):
        where = f"{path}:{n}"
        if len(row) <= max(path_col, label_col):
            raise UsageError(f"{where}: expected 'path,label', got {row!r}")
        p = _resolve(row[path_col], root)
        samples.append(Sample(p, index.index(row[label_col], where), group_of(p, group_pattern)))
    return samples


def _from_list(path: Path, index: _ClassIndex, group_pattern, root: Path) -> list[Sample]:
    """The original ``path num_frames label`` list (or mmaction's ``path label``)."""
    samples = []
    for n, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split()
        where = f"{path}:{n}"
        if len(parts) == 3 and parts[1].isdigit():
            num_frames, label = int(parts[1]), parts[2]
        elif len(parts) == 2:
            num_frames, label = None, parts[1]
        else:
            raise UsageError(f"{where}: expected 'path num_frames label_index', got {line.strip()!r}")
        if label.isdigit() and not index.fixed:
            raise UsageError(f"{where}: numeric labels need a list of class names (classes=..., or --labels on the command line)")
        p = _resolve(parts[0], root)
        samples.append(Sample(p, index.index(label, where), group_of(p, group_pattern), num_frames))
    return samples


def load_dataset(
    source: str | Path,
    *,
    classes: str | Path | Sequence[str] | None = None,
    root: str | Path | None = None,
    group_pattern: str | None = None,
    check_files: bool = True,
) -> VideoDataset:
    """Read a labeled dataset.

    Args:
        source: a folder per class, a ``.csv``/``.tsv`` (``path,label``) list, or the original
            ``path num_frames label_index`` list (any other extension).
        classes: the class list: a built-in name (``ucf101`` ...), a class-name file, or names.
            Fixes the label set and its order (classes without clips are kept: they remain
            candidates); without it the classes are the labels found, in sorted folder/first-seen order.
        root: base folder of relative paths in a list (default: the list's folder).
        group_pattern: regex whose first group names a clip's group (see :func:`group_of`).
        check_files: raise if a listed clip does not exist.

    Raises:
        UsageError: unreadable source, unknown label, missing clip, or no clips at all.
    """
    if classes is None:
        names = None
    elif isinstance(classes, (str, Path)):
        names = load_classes(classes)
    else:
        names = list(classes)
    index = _ClassIndex(names, str(source))
    src = Path(source)
    if src.is_dir():
        samples = _from_folders(src, index, group_pattern)
    elif src.is_file():
        base = Path(root) if root is not None else src.parent
        if src.suffix.lower() in (".csv", ".tsv"):
            samples = _from_csv(src, index, group_pattern, base)
        else:
            samples = _from_list(src, index, group_pattern, base)
    else:
        raise UsageError(f"{source}: no such dataset folder or list file")
    if not samples:
        raise UsageError(f"{source}: no labeled videos found")
    if check_files:
        missing = [s.path for s in samples if not s.path.exists()]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise UsageError(f"{source}: listed clip {missing[0]} does not exist{more}")
    if names is None:
        # Deterministic class order whatever the listing order: sorted by original name.
        order = sorted(range(len(index.names)), key=lambda i: index.names[i])
        remap = {old: new for new, old in enumerate(order)}
        samples = [dataclasses.replace(s, label=remap[s.label]) for s in samples]
        names = [index.names[i] for i in order]
    return VideoDataset(samples, [humanize(n) for n in names], names, str(source))


def _read_path_list(path: Path) -> set[str]:
    """Clip paths named in a split file, as path strings and bare file names (first column)."""
    keys = set()
    for line in Path(path).read_text("utf-8").splitlines():
        first = re.split(r"[\s,]+", line.strip(), maxsplit=1)[0] if line.strip() else ""
        if first and first.lower() != "path":
            keys.add(first.replace("\\", "/"))
    return keys


def split_dataset(
    dataset: VideoDataset,
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
    val_list: str | Path | None = None,
) -> tuple[VideoDataset, VideoDataset]:
    """Split into (train, val).

    With ``val_list`` (a file whose first column names clips, e.g. UCF101's ``testlist01.txt``), the
    named clips form val; a clip matches by its path's tail or its file name. Otherwise a seeded
    split by group: whole groups go to val until about ``val_fraction`` of the clips are there, so
    clips of one actor/scene never land on both sides. When every clip is its own group the split is
    stratified per class instead, so each class with 2+ clips appears on both sides.
    """
    if val_list is not None:
        keys = _read_path_list(Path(val_list))
        names = {k.rsplit("/", 1)[-1] for k in keys}

        def in_val(s: Sample) -> bool:
            posix = s.path.as_posix()
            return s.path.name in names and any(posix.endswith(k) or k.rsplit("/", 1)[-1] == s.path.name
                                                for k in keys)

        val_idx = [i for i, s in enumerate(dataset.samples) if in_val(s)]
        if not val_idx:
            raise UsageError(f"{val_list}: names none of the {len(dataset)} clips of {dataset.source}")
    else:
        if not 0.0 < val_fraction < 1.0:
            raise UsageError(f"val fraction must be between 0 and 1, got {val_fraction}")
        rng = random.Random(seed)
        groups: dict[str, list[int]] = {}
        for i, s in enumerate(dataset.samples):
            groups.setdefault(s.group, []).append(i)
        if len(groups) == len(dataset):
            val_idx = []
            by_class: dict[int, list[int]] = {}
            for i, s in enumerate(dataset.samples):
                by_class.setdefault(s.label, []).append(i)
            for label in sorted(by_class):
                idx = by_class[label]
                rng.shuffle(idx)
                if len(idx) >= 2:
                    val_idx += idx[: max(1, round(len(idx) * val_fraction))]
        else:
            keys = sorted(groups)
            rng.shuffle(keys)
            target, val_idx = val_fraction * len(dataset), []
            for key in keys:
                if len(val_idx) >= target:
                    break
                val_idx += groups[key]
    val_set = set(val_idx)
    train = dataset.subset(i for i in range(len(dataset)) if i not in val_set)
    val = dataset.subset(sorted(val_set))
    return train, val


def split_classes(
    dataset: VideoDataset,
    *,
    novel: Sequence[str] | None = None,
    novel_fraction: float = 0.5,
    seed: int = 0,
) -> tuple[VideoDataset, VideoDataset]:
    """Base-to-novel split: (base, novel) datasets over disjoint classes, each relabelled.

    ``novel`` names the novel classes; otherwise a seeded ``novel_fraction`` of the classes with
    clips. A model fine-tuned on base is then evaluated zero-shot on novel.
    """
    if novel is None and not 0.0 < novel_fraction < 1.0:
        raise UsageError(f"novel fraction must be between 0 and 1, got {novel_fraction}")
    present = sorted({s.label for s in dataset.samples})
    if novel is None:
        order = list(present)
        random.Random(seed).shuffle(order)
        k = max(1, min(len(order) - 1, round(len(order) * novel_fraction)))
        novel_idx = set(order[:k])
    else:
        novel_idx = set(dataset._indices_of(novel))
    base_idx = [i for i in present if i not in novel_idx]
    if not base_idx or not novel_idx:
        raise UsageError(f"{dataset.source}: a base-to-novel split needs classes on both sides")
    return (dataset.restrict([dataset.class_names[i] for i in base_idx]),
            dataset.restrict([dataset.class_names[i] for i in sorted(novel_idx)]))


def few_shot(dataset: VideoDataset, shots: int, *, seed: int = 0) -> VideoDataset:
    """At most ``shots`` clips per class, drawn with ``seed`` (few-shot fine-tuning)."""
    if shots < 1:
        raise UsageError(f"shots must be at least 1, got {shots}")
    rng = random.Random(seed)
    by_class: dict[int, list[int]] = {}
    for i, s in enumerate(dataset.samples):
        by_class.setdefault(s.label, []).append(i)
    keep = []
    for label in sorted(by_class):
        idx = by_class[label]
        keep += rng.sample(idx, min(shots, len(idx)))
    return dataset.subset(sorted(keep))


# --- reading a sample's frames -------------------------------------------------------------------


def _frame_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)


def sample_length(sample: Sample) -> int:
    """Number of frames of a sample (from its list entry, its frame folder or the video header)."""
    if sample.num_frames:
        return int(sample.num_frames)
    if sample.path.is_dir():
        return len(_frame_files(sample.path))
    from actionclip.video import probe

    return int(probe(sample.path).num_frames)


def read_sample_frames(sample: Sample, indices: Sequence[int]):
    """uint8 RGB frames ``[len(indices), H, W, 3]`` of a video file or a folder of frame images."""
    if sample.path.is_dir():
        import numpy as np
        from PIL import Image

        files = _frame_files(sample.path)
        if not files:
            from actionclip.errors import VideoError

            raise VideoError(f"{sample.path}: frame folder holds no images")
        frames = []
        for i in indices:
            with Image.open(files[min(int(i), len(files) - 1)]) as img:
                frames.append(np.asarray(img.convert("RGB")))
        return np.stack(frames)
    from actionclip.video import read_frames

    return read_frames(sample.path, list(indices))

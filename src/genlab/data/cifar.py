"""CIFAR-10 from its *binary* distribution: 32×32 color images, downloaded once and cached.

Only ``cifar-10-binary.tar.gz`` is read, never the Python version (``cifar-10-python.tar.gz``):
that one holds pickles, and genlab does not unpickle downloaded files. The binary archive holds
``cifar-10-batches-bin/`` with ``data_batch_1.bin`` … ``data_batch_5.bin`` (train, 10 000
records each), ``test_batch.bin`` (10 000) and ``batches.meta.txt`` (the class names). A record
is 3073 bytes: 1 label byte (0..9), then 1024 red, 1024 green and 1024 blue bytes, each plane a
row-major 32×32 image.

Where files are looked for, with ``root`` = ``$GENLAB_DATA`` or ``~/.cache/genlab``:

1. the extracted folder: ``root/cifar10/cifar-10-batches-bin/``, ``root/cifar-10-batches-bin/``,
   or the ``.bin`` files directly in ``root/cifar10/`` or ``root/`` (first folder holding all of the
   split's files wins);
2. the archive: ``root/cifar10/cifar-10-binary.tar.gz`` or ``root/cifar-10-binary.tar.gz``, which is
   extracted into ``root/cifar10/cifar-10-batches-bin/``;
3. otherwise the archive is downloaded to ``root/cifar10/`` (MD5-verified, atomic), extracted, and
   then deleted (the extracted ``.bin`` files are kept; an archive placed by hand is never deleted).

Extraction refuses archives with absolute paths, ``..``, links or device members, checks each
``.bin`` file's size before anything is moved into place, and moves each file in atomically, so an
interrupted extraction leaves no half-written file. Files placed by hand are checked by
structure: each batch must be exactly 10 000 × 3073 = 30 730 000 bytes with labels in 0..9
(``check_counts=False`` accepts any whole number of records, e.g. tiny files for tests).
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
import tempfile
import urllib.error
import zlib
from pathlib import Path

import numpy as np
import torch

from genlab.data import download as _download
from genlab.errors import DatasetNotFoundError, GenlabError

CIFAR10_SPLITS = ("train", "test")
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
#: The MD5 published on the CIFAR-10 page for the binary version.
CIFAR10_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
CIFAR10_ARCHIVE = "cifar-10-binary.tar.gz"
CIFAR10_FOLDER = "cifar10"  # sub-folder of the cache root
CIFAR10_BATCHES_DIR = "cifar-10-batches-bin"  # the folder inside the archive
CIFAR10_FILES = {
    "train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
    "test": ("test_batch.bin",),
}
CIFAR10_META = "batches.meta.txt"
CIFAR10_COUNTS = {"train": 50_000, "test": 10_000}

#: CIFAR-10 label i ↔ CIFAR10_CLASSES[i] (as in batches.meta.txt).
CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]

IMAGE_SHAPE = (3, 32, 32)
RECORD_BYTES = 1 + 3 * 32 * 32  # 3073
RECORDS_PER_BATCH = 10_000
BATCH_BYTES = RECORDS_PER_BATCH * RECORD_BYTES  # 30 730 000
_ALL_BATCHES = CIFAR10_FILES["train"] + CIFAR10_FILES["test"]


def _fix() -> str:
    return f"delete it and place or download it again from {CIFAR10_URL}"


def _missing_message(root: Path, missing: list[str], reason: str) -> str:
    return (
        f"CIFAR-10 file {CIFAR10_ARCHIVE} not found and no extracted {CIFAR10_BATCHES_DIR}/ with "
        f"{', '.join(missing)} ({reason}); download it from {CIFAR10_URL} (the binary version, not "
        f"the Python one) and place it, or its extracted {CIFAR10_BATCHES_DIR}/ folder, in "
        f"{root / CIFAR10_FOLDER} or directly in {root} (the folder is $GENLAB_DATA, default ~/.cache/genlab)"
    )


# ---------------------------------------------------------------------------- structural checks
def check_batch_size(path: Path, size: int, check_counts: bool = True) -> int:
    """Number of records in a batch file of ``size`` bytes; raises if it cannot be a CIFAR-10 batch."""
    if check_counts and size != BATCH_BYTES:
        raise DatasetNotFoundError(
            f"{path} has {size} bytes, not {BATCH_BYTES} ({RECORDS_PER_BATCH} records × {RECORD_BYTES} "
            f"bytes): truncated or not a CIFAR-10 binary batch; {_fix()} (or pass check_counts=False to use a subset)"
        )
    if size == 0 or size % RECORD_BYTES:
        raise DatasetNotFoundError(
            f"{path} has {size} bytes, not a whole number of {RECORD_BYTES}-byte CIFAR-10 records: "
            f"truncated or not a CIFAR-10 binary batch; {_fix()}"
        )
    return size // RECORD_BYTES


def _batches_folder(root: Path, names: tuple[str, ...]) -> Path | None:
    """The first candidate folder that holds all ``names``."""
    for folder in (root / CIFAR10_FOLDER / CIFAR10_BATCHES_DIR, root / CIFAR10_BATCHES_DIR,
                   root / CIFAR10_FOLDER, root):
        if all((folder / name).is_file() for name in names):
            return folder
    return None


def _member_problem(member: tarfile.TarInfo) -> str | None:
    """Why a tar member must not be extracted, or None if it is a plain file/folder inside."""
    name = member.name
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if ".." in name.replace("\\", "/").split("/"):
        return "path with '..'"
    if member.issym() or member.islnk():
        return f"link to {member.linkname!r}"
    if not (member.isfile() or member.isdir()):
        return "device, pipe or other special file"
    return None


def _wanted_members(archive: Path, tar: tarfile.TarFile, check_counts: bool) -> dict[str, tarfile.TarInfo]:
    """Check every member of the archive; map each batch (and the meta file) to its member."""
    found: dict[str, tarfile.TarInfo] = {}
    wanted = set(_ALL_BATCHES) | {CIFAR10_META}
    for member in tar.getmembers():
        problem = _member_problem(member)
        if problem:
            raise DatasetNotFoundError(
                f"{archive} has an unsafe member {member.name!r} ({problem}); refusing to extract it; {_fix()}"
            )
        name = posixpath.normpath(member.name)
        parent, base = posixpath.split(name)
        if member.isfile() and base in wanted and parent in ("", CIFAR10_BATCHES_DIR):
            found[base] = member
    missing = [name for name in _ALL_BATCHES if name not in found]
    if missing:
        names = {posixpath.basename(m.name) for m in tar.getmembers()}
        hint = (" (this is the pickled Python version, which genlab does not read; get the binary "
                "version)" if "data_batch_1" in names else "")
        raise DatasetNotFoundError(
            f"{archive} is not the CIFAR-10 binary archive: it lacks {', '.join(missing)}{hint}; {_fix()}"
        )
    for name in _ALL_BATCHES:
        check_batch_size(Path(f"{archive}:{found[name].name}"), found[name].size, check_counts)
    return found


def extract_archive(archive: Path, dest: Path, check_counts: bool = True) -> Path:
    """Safely extract the batches (and meta file) of ``archive`` into the folder ``dest``.

    Every member is checked first (no absolute paths, ``..``, links or special files); files
    are extracted to a temporary folder next to ``dest``, size-checked, and only then moved
    into ``dest`` one by one with :func:`os.replace`. On any failure nothing new is left behind.
    """
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = _wanted_members(archive, tar, check_counts)
            new_dirs = [d for d in (dest, *dest.parents) if not d.exists()]
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent))
            ok = False
            try:
                kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tar.extractall(tmp, members=list(members.values()), **kwargs)
                for name, member in members.items():
                    got = (tmp / member.name).stat().st_size
                    if name in _ALL_BATCHES:
                        check_batch_size(tmp / member.name, got, check_counts)
                dest.mkdir(parents=True, exist_ok=True)
                for name, member in members.items():
                    os.replace(tmp / member.name, dest / name)
                ok = True
            finally:  # also runs on KeyboardInterrupt
                shutil.rmtree(tmp, ignore_errors=True)
                if not ok:
                    for d in new_dirs:  # deepest first; only if still empty
                        try:
                            d.rmdir()
                        except FileNotFoundError:
                            continue
                        except OSError:
                            break
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise DatasetNotFoundError(f"{archive} is a damaged or truncated archive ({exc}); {_fix()}") from None
    return dest


# --------------------------------------------------------------------------------- find / fetch
def ensure_cifar10_files(split: str, root: Path, download: bool = True,
                         check_counts: bool = True) -> list[Path]:
    """Paths of the split's ``.bin`` files, extracting or downloading the archive when needed."""
    if split not in CIFAR10_FILES:
        raise GenlabError(f"unknown CIFAR-10 split {split!r}; use one of: {', '.join(CIFAR10_SPLITS)}")
    names = CIFAR10_FILES[split]
    folder = _batches_folder(root, names)
    if folder is not None:
        return [folder / name for name in names]
    dest = root / CIFAR10_FOLDER / CIFAR10_BATCHES_DIR
    missing = [name for name in names if not (dest / name).is_file()]
    for archive in (root / CIFAR10_FOLDER / CIFAR10_ARCHIVE, root / CIFAR10_ARCHIVE):
        if archive.is_file():  # placed by hand (or downloaded and kept): structural check only
            extract_archive(archive, dest, check_counts=check_counts)
            return [dest / name for name in names]
    if not download:
        raise DatasetNotFoundError(_missing_message(root, missing, "download=False"))
    archive = root / CIFAR10_FOLDER / CIFAR10_ARCHIVE
    try:
        _download.download_file(CIFAR10_URL, archive, CIFAR10_MD5)
    except (OSError, urllib.error.URLError, DatasetNotFoundError) as exc:
        reason = f"download failed: {CIFAR10_URL}: {getattr(exc, 'reason', exc)}"
        raise DatasetNotFoundError(_missing_message(root, missing, reason)) from None
    extract_archive(archive, dest, check_counts=check_counts)
    archive.unlink(missing_ok=True)  # verified and extracted: the .bin files are what we keep
    return [dest / name for name in names]


# ------------------------------------------------------------------------------------- reading
def read_cifar10_batches(paths: list[Path], check_counts: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Read binary batch files → uint8 images (N, 3, 32, 32) (a view) and uint8 labels (N,).

    All records go into one preallocated buffer (no per-image Python work, no intermediate copies).
    """
    counts = [check_batch_size(p, p.stat().st_size, check_counts) for p in paths]
    records = np.empty((sum(counts), RECORD_BYTES), dtype=np.uint8)
    flat = records.reshape(-1)
    start = 0
    for path, n in zip(paths, counts):
        nbytes = n * RECORD_BYTES
        with open(path, "rb") as f:
            got = f.readinto(memoryview(flat[start:start + nbytes]))
        if got != nbytes:  # the file changed under us
            raise DatasetNotFoundError(f"{path} was truncated while reading; {_fix()}")
        start += nbytes
    labels = records[:, 0]
    if labels.size and labels.max() >= len(CIFAR10_CLASSES):
        bad = int(np.argmax(labels >= len(CIFAR10_CLASSES)))
        raise DatasetNotFoundError(
            f"CIFAR-10 record {bad} of {', '.join(str(p) for p in paths)} has label {labels[bad]} "
            f"outside 0..9: not a CIFAR-10 binary batch; {_fix()}"
        )
    images = records[:, 1:].reshape(-1, *IMAGE_SHAPE)  # R plane, G plane, B plane; rows of 32
    return images, labels


def cifar10_to_tensors(images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, 3, 32, 32) pixels 0..255 → float32 in [-1, 1] (p / 127.5 − 1); labels → int64."""
    x = torch.empty(images.shape, dtype=torch.float32)
    x.copy_(torch.from_numpy(images)).div_(127.5).sub_(1.0)
    return x, torch.from_numpy(labels.astype(np.int64))


def load_cifar10(split: str = "train", root: str | os.PathLike | None = None, download: bool = True,
                 check_counts: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10: images float32 (N, 3, 32, 32) in [-1, 1] (RGB), labels int64 (N,).

    ``split`` is ``"train"`` (50 000) or ``"test"`` (10 000). Files are looked up under ``root``
    (default :func:`~genlab.data.data_root`) and downloaded there on first use (about 170 MB;
    see the module docstring). Label names: ``CIFAR10_CLASSES[label]``.
    """
    root = Path(root).expanduser() if root is not None else _download.data_root()
    paths = ensure_cifar10_files(split, root, download=download, check_counts=check_counts)
    return cifar10_to_tensors(*read_cifar10_batches(paths, check_counts=check_counts))

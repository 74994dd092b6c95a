"""genlab.data.cifar: CIFAR-10 from the binary distribution, offline, with tiny hand-made files."""

import hashlib
import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

import genlab.data as data
from genlab.data import cifar, download
from genlab.errors import DatasetNotFoundError, GenlabError

REPO = Path(__file__).resolve().parents[1]
SHARED_CIFAR = Path(os.environ.get("GENLAB_SHARED_CIFAR", REPO.parent / "shared" / "data" / "cifar10"))
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
BATCHES = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
META = b"airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n"


def records_by_hand(images: np.ndarray, labels) -> bytes:
    """CIFAR binary records built independently of genlab: label byte, then R, G, B planes."""
    out = b""
    for image, label in zip(images, labels):
        r, g, b = image  # each (32, 32), row-major
        out += bytes([int(label)]) + r.tobytes() + g.tobytes() + b.tobytes()
    return out


def fake_batch(n: int, seed: int):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    return records_by_hand(images, labels), images, labels


def fake_batches(n: int = 3) -> dict[str, tuple[bytes, np.ndarray, np.ndarray]]:
    """All six batch files with ``n`` records each (different content per file)."""
    return {name: fake_batch(n, seed) for seed, name in enumerate(BATCHES)}


def place_folder(folder: Path, n: int = 3) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    batches = fake_batches(n)
    for name, (raw, _, _) in batches.items():
        (folder / name).write_bytes(raw)
    (folder / "batches.meta.txt").write_bytes(META)
    return batches


def tar_bytes(batches: dict, extra=(), prefix: str = "cifar-10-batches-bin/") -> bytes:
    """A .tar.gz like the official one; ``extra`` is a list of TarInfo (+ optional payload)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        folder = tarfile.TarInfo(prefix.rstrip("/"))
        folder.type = tarfile.DIRTYPE
        folder.mode = 0o755
        tar.addfile(folder)
        files = {name: raw for name, (raw, _, _) in batches.items()} | {"batches.meta.txt": META}
        for name, raw in files.items():
            info = tarfile.TarInfo(prefix + name)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
        for info, payload in extra:
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return buf.getvalue()


def expected(batches: dict, split: str):
    names = BATCHES[:5] if split == "train" else BATCHES[5:]
    images = np.concatenate([batches[n][1] for n in names])
    labels = np.concatenate([batches[n][2] for n in names])
    return images / 127.5 - 1.0, labels


@pytest.fixture
def offline(monkeypatch):
    """Every download attempt fails as with no network; records the URLs tried."""
    tried = []

    def no_network(url, dest, **kwargs):
        tried.append(url)
        raise OSError("no network (test)")

    monkeypatch.setattr(download, "fetch_url", no_network)
    return tried


def serve(monkeypatch, payload: bytes, patch_md5: bool = True):
    """Make 'downloads' deliver ``payload``; patch the expected MD5 to match it unless told not to."""
    tried = []

    def fake_fetch(url, dest, **kwargs):
        tried.append(url)
        Path(dest).write_bytes(payload)

    monkeypatch.setattr(download, "fetch_url", fake_fetch)
    if patch_md5:
        monkeypatch.setattr(cifar, "CIFAR10_MD5", hashlib.md5(payload).hexdigest())
    return tried


def all_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# ----------------------------------------------------------------------------------- decoding
def test_decoding_pixels_labels_channel_order_and_range(tmp_path, offline):
    """Record = label, R plane, G plane, B plane (row-major); pixel p ↦ p / 127.5 − 1."""
    ramp = (np.arange(1024) % 256).astype(np.uint8).reshape(32, 32)  # pixel (r, c) = (32 r + c) % 256
    known = np.stack([ramp, np.zeros_like(ramp), np.full_like(ramp, 255)])[None]  # R ramp, G 0, B 255
    raw = records_by_hand(known, [7]) + records_by_hand(known[:, ::-1], [0])  # 2nd: B, G, R swapped
    assert raw[0] == 7 and raw[1:4] == b"\x00\x01\x02" and raw[1 + 1024] == 0 and raw[1 + 2048] == 255
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    (folder / "test_batch.bin").write_bytes(raw)
    x, y = data.load_cifar10("test", root=tmp_path, check_counts=False)
    assert x.shape == (2, 3, 32, 32) and x.dtype == torch.float32 and x.is_contiguous()
    assert y.dtype == torch.int64 and y.tolist() == [7, 0]
    assert x[0, 0, 0, 1] == 1 / 127.5 - 1 and x[0, 0, 1, 0] == 32 / 127.5 - 1  # row-major planes
    assert x[0, 0, 7, 31] == 255 / 127.5 - 1 == 1.0 and x[0, 0, 0, 0] == -1.0
    assert torch.all(x[0, 1] == -1.0) and torch.all(x[0, 2] == 1.0)  # G then B
    assert torch.all(x[1, 0] == 1.0) and torch.all(x[1, 1] == -1.0)  # swapped record
    np.testing.assert_allclose(x.numpy(), np.concatenate([known, known[:, ::-1]]) / 127.5 - 1.0, atol=1e-6)
    assert offline == []


@pytest.mark.parametrize("where", ["cifar10/cifar-10-batches-bin", "cifar-10-batches-bin", "cifar10", "."])
def test_hand_placed_folder_via_genlab_data_and_registry(tmp_path, monkeypatch, offline, where):
    batches = place_folder(tmp_path / where, n=4)
    monkeypatch.setenv("GENLAB_DATA", str(tmp_path))
    for split, n in (("train", 20), ("test", 4)):
        x, y = data.load_cifar10(split, check_counts=False)
        want_x, want_y = expected(batches, split)
        assert x.shape == (n, 3, 32, 32)
        np.testing.assert_allclose(x.numpy(), want_x, atol=1e-6)  # train = batches 1..5 in order
        np.testing.assert_array_equal(y.numpy(), want_y)
    assert offline == []
    # The registry passes check_counts=True: tiny files are refused there, with the fix.
    with pytest.raises(DatasetNotFoundError, match="check_counts=False"):
        data.load_image_dataset("cifar10", split="test")


def test_official_size_batch_loads_through_registry(tmp_path, monkeypatch, offline):
    """A full-size (10 000-record) test batch passes the default structural check."""
    records = np.zeros((10_000, 3073), np.uint8)
    records[:, 0] = np.arange(10_000) % 10
    records[:, 1:1025] = 255  # every image pure red
    (tmp_path / "test_batch.bin").write_bytes(records.tobytes())
    monkeypatch.setenv("GENLAB_DATA", str(tmp_path))
    x, y = data.load_image_dataset("cifar10", split="test")
    assert x.shape == (10_000, 3, 32, 32) and torch.bincount(y).tolist() == [1000] * 10
    assert torch.all(x[:, 0] == 1.0) and torch.all(x[:, 1:] == -1.0)


# ------------------------------------------------------------------------- structural refusal
@pytest.mark.parametrize("cut", [1, 3072, 3074])
def test_truncated_file_is_refused_with_one_clear_line(tmp_path, offline, cut):
    raw, _, _ = fake_batch(2, 0)
    (tmp_path / "test_batch.bin").write_bytes(raw[:-cut])
    with pytest.raises(DatasetNotFoundError, match="truncated or not a CIFAR-10 binary batch") as err:
        data.load_cifar10("test", root=tmp_path, check_counts=False)
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path / "test_batch.bin") in msg and URL in msg


def test_default_check_wants_official_size(tmp_path, offline):
    place_folder(tmp_path, n=2)
    with pytest.raises(DatasetNotFoundError, match="has 6146 bytes, not 30730000 .10000 records × 3073"):
        data.load_cifar10("train", root=tmp_path)


def test_label_outside_0_to_9_is_refused(tmp_path, offline):
    raw, _, _ = fake_batch(3, 0)
    raw = raw[:3073] + bytes([10]) + raw[3074:]
    (tmp_path / "test_batch.bin").write_bytes(raw)
    with pytest.raises(DatasetNotFoundError, match="record 1 .* has label 10 outside 0..9"):
        data.load_cifar10("test", root=tmp_path, check_counts=False)


# --------------------------------------------------------------------------------- archives
@pytest.mark.parametrize("where", ["cifar10", "."])
def test_hand_placed_archive_is_extracted_and_kept(tmp_path, offline, where):
    batches = fake_batches(2)
    archive = tmp_path / where / "cifar-10-binary.tar.gz"
    archive.parent.mkdir(exist_ok=True)
    archive.write_bytes(tar_bytes(batches))
    x, y = data.load_cifar10("test", root=tmp_path, check_counts=False)
    want_x, want_y = expected(batches, "test")
    np.testing.assert_allclose(x.numpy(), want_x, atol=1e-6)
    np.testing.assert_array_equal(y.numpy(), want_y)
    extracted = tmp_path / "cifar10" / "cifar-10-batches-bin"
    assert sorted(p.name for p in extracted.iterdir()) == sorted(BATCHES + ["batches.meta.txt"])
    assert archive.is_file()  # placed by hand: never deleted
    assert not [p for p in tmp_path.rglob("*") if ".part" in p.name]
    x2, _ = data.load_cifar10("train", root=tmp_path, check_counts=False)  # from the extracted folder
    np.testing.assert_allclose(x2.numpy(), expected(batches, "train")[0], atol=1e-6)
    assert offline == []


def test_verified_download_is_extracted_then_archive_removed(tmp_path, monkeypatch):
    batches = fake_batches(2)
    tried = serve(monkeypatch, tar_bytes(batches))  # the MD5 patched to this fake archive
    x, y = data.load_cifar10("train", root=tmp_path, check_counts=False)
    np.testing.assert_allclose(x.numpy(), expected(batches, "train")[0], atol=1e-6)
    np.testing.assert_array_equal(y.numpy(), expected(batches, "train")[1])
    assert tried == [URL]
    assert all_files(tmp_path) == ["cifar10", "cifar10/cifar-10-batches-bin"] + sorted(
        f"cifar10/cifar-10-batches-bin/{n}" for n in BATCHES + ["batches.meta.txt"])
    _, y_test = data.load_cifar10("test", root=tmp_path, check_counts=False)  # no second download
    np.testing.assert_array_equal(y_test.numpy(), expected(batches, "test")[1])
    assert tried == [URL]


def test_wrong_md5_is_refused_and_leaves_nothing(tmp_path, monkeypatch):
    tried = serve(monkeypatch, tar_bytes(fake_batches(2)), patch_md5=False)  # real MD5 ≠ fake archive
    with pytest.raises(DatasetNotFoundError, match=f"corrupt .md5 [0-9a-f]{{32}}, expected {cifar.CIFAR10_MD5}") as err:
        data.load_cifar10("test", root=tmp_path, check_counts=False)
    assert "\n" not in str(err.value) and cifar.CIFAR10_MD5 == "c32a1d4ab5d03f1284b67883e8d87530"
    assert tried == [URL] and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("exc", [KeyboardInterrupt, ConnectionResetError])
def test_interrupted_download_leaves_no_partial_file(tmp_path, monkeypatch, exc):
    def half_then_fail(url, dest, **kwargs):
        Path(dest).write_bytes(b"\x1f\x8b half an archive")
        raise exc("interrupted (test)")

    monkeypatch.setattr(download, "fetch_url", half_then_fail)
    expect = KeyboardInterrupt if exc is KeyboardInterrupt else DatasetNotFoundError
    with pytest.raises(expect):
        data.load_cifar10("train", root=tmp_path)
    assert list(tmp_path.iterdir()) == []  # no archive, no .part file, no empty cifar10/ folder


def test_interrupted_extraction_leaves_no_partial_file(tmp_path, monkeypatch):
    archive = tmp_path / "cifar-10-binary.tar.gz"
    archive.write_bytes(tar_bytes(fake_batches(2)))

    def half_extract(self, path, members=None, **kwargs):
        (Path(path) / "cifar-10-batches-bin").mkdir()
        (Path(path) / "cifar-10-batches-bin" / "data_batch_1.bin").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(tarfile.TarFile, "extractall", half_extract)
    with pytest.raises(KeyboardInterrupt):
        data.load_cifar10("test", root=tmp_path, check_counts=False)
    assert list(tmp_path.iterdir()) == [archive]


def _link(name: str, target: str, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def _file(name: str, payload: bytes = b"evil"):
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    return info, payload


@pytest.mark.parametrize(
    "member,needle",
    [
        (_file("../evil"), r"'\.\./evil' \(path with '\.\.'\)"),
        (_file("cifar-10-batches-bin/../../evil"), "path with '..'"),
        (_file("/tmp/evil"), "absolute path"),
        (_link("cifar-10-batches-bin/evil", "/etc/passwd"), "link to '/etc/passwd'"),
        (_link("cifar-10-batches-bin/evil", "data_batch_1.bin"), "link to 'data_batch_1.bin'"),
        (_link("cifar-10-batches-bin/evil", "cifar-10-batches-bin/data_batch_1.bin", tarfile.LNKTYPE), "link to"),
    ],
)
def test_unsafe_archive_members_are_refused(tmp_path, offline, member, needle):
    root = tmp_path / "root"
    root.mkdir()
    archive = root / "cifar-10-binary.tar.gz"
    archive.write_bytes(tar_bytes(fake_batches(2), extra=[member]))  # the bad member comes last
    with pytest.raises(DatasetNotFoundError, match="unsafe member .*" + needle) as err:
        data.load_cifar10("test", root=root, check_counts=False)
    assert "\n" not in str(err.value) and str(archive) in str(err.value)
    assert list(root.iterdir()) == [archive]  # nothing extracted, not even the good members
    assert not (tmp_path / "evil").exists()


def test_unsafe_archive_from_download_is_refused(tmp_path, monkeypatch):
    serve(monkeypatch, tar_bytes(fake_batches(2), extra=[_file("../evil")]))
    with pytest.raises(DatasetNotFoundError, match="unsafe member"):
        data.load_cifar10("test", root=tmp_path, check_counts=False)
    assert not (tmp_path / "evil").exists() and not (tmp_path / "cifar10" / "cifar-10-batches-bin").exists()


def test_archive_with_truncated_batch_is_refused(tmp_path, offline):
    batches = fake_batches(2)
    raw, images, labels = batches["data_batch_3.bin"]
    batches["data_batch_3.bin"] = (raw[:-100], images, labels)
    (tmp_path / "cifar-10-binary.tar.gz").write_bytes(tar_bytes(batches))
    with pytest.raises(DatasetNotFoundError, match="data_batch_3.bin has 6046 bytes.*truncated"):
        data.load_cifar10("test", root=tmp_path, check_counts=False)
    assert list(tmp_path.iterdir()) == [tmp_path / "cifar-10-binary.tar.gz"]


def test_python_version_archive_is_refused_with_a_hint(tmp_path, offline):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in ["data_batch_1", "test_batch", "batches.meta"]:
            info, payload = _file(f"cifar-10-batches-py/{name}", b"\x80\x04pickle")
            tar.addfile(info, io.BytesIO(payload))
    (tmp_path / "cifar-10-binary.tar.gz").write_bytes(buf.getvalue())
    with pytest.raises(DatasetNotFoundError, match="lacks data_batch_1.bin.*pickled Python version"):
        data.load_cifar10("test", root=tmp_path)


@pytest.mark.parametrize("cut", [20, None])
def test_damaged_archive_is_refused(tmp_path, offline, cut):
    raw = tar_bytes(fake_batches(2))
    (tmp_path / "cifar-10-binary.tar.gz").write_bytes(raw[:cut] if cut else raw[: len(raw) // 2])
    with pytest.raises(DatasetNotFoundError, match="damaged or truncated archive") as err:
        data.load_cifar10("test", root=tmp_path, check_counts=False)
    assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------------- offline
def test_offline_message_names_file_folder_and_url(tmp_path, offline):
    with pytest.raises(DatasetNotFoundError) as err:
        data.load_cifar10("train", root=tmp_path)
    msg = str(err.value)
    assert "\n" not in msg
    for part in ("cifar-10-binary.tar.gz", "cifar-10-batches-bin", str(tmp_path / "cifar10"), URL,
                 "data_batch_1.bin", "no network (test)"):
        assert part in msg
    assert offline == [URL] and list(tmp_path.iterdir()) == []


def test_download_false_does_not_touch_the_network(tmp_path, offline):
    with pytest.raises(DatasetNotFoundError, match="test_batch.bin .download=False.") as err:
        data.load_cifar10("test", root=tmp_path, download=False)
    assert URL in str(err.value) and offline == []


def test_unknown_split_and_classes(offline):
    with pytest.raises(GenlabError, match="unknown CIFAR-10 split 'val'; use one of: train, test"):
        data.load_cifar10("val")
    assert data.CIFAR10_CLASSES == [line for line in META.decode().split("\n") if line]
    assert "cifar10" in data.IMAGE_DATASETS


@pytest.mark.skipif(not any((SHARED_CIFAR / d / "test_batch.bin").is_file() for d in ("", "cifar-10-batches-bin")),
                    reason="shared CIFAR-10 binary test batch not present")
def test_real_cifar10_test_split_from_shared_folder(monkeypatch, offline):
    monkeypatch.setenv("GENLAB_DATA", str(SHARED_CIFAR))
    x, y = data.load_image_dataset("cifar10", "test")
    assert x.shape == (10000, 3, 32, 32) and x.min() == -1.0 and x.max() == 1.0
    assert torch.bincount(y).tolist() == [1000] * 10
    assert y[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]  # cat, ship, ship, airplane, frog, …

"""genlab.data: IDX parsing, MNIST-family loading (offline), digits, toy 2-D, the registry."""

import dataclasses
import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import genlab.data as data
from genlab.data import download, idx, mnist
from genlab.errors import DatasetNotFoundError, GenlabError

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = Path(os.environ.get("GENLAB_SHARED_MNIST", REPO.parent / "shared" / "data" / "mnist"))


def idx_by_hand(array: np.ndarray, code: int) -> bytes:
    """IDX bytes built independently of genlab: header fields with struct-like big-endian ints."""
    header = b"\x00\x00" + bytes([code, array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


# ----------------------------------------------------------------------------------- IDX format
@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_parses_handmade_file(tmp_path, compress):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = idx_by_hand(images, 0x08)
    assert raw[:4] == b"\x00\x00\x08\x03"  # the MNIST images magic number 0x00000803
    path = tmp_path / ("x.gz" if compress else "x")
    path.write_bytes(gzip.compress(raw) if compress else raw)
    out = data.read_idx(path)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, images)


@pytest.mark.parametrize("dtype,code", [("u1", 8), ("i1", 9), ("i2", 11), ("i4", 12), ("f4", 13), ("f8", 14)])
def test_idx_round_trip_every_dtype(tmp_path, dtype, code):
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((3, 5)) * 50).astype(dtype)
    for name in ("a.idx", "a.idx.gz"):
        path = data.write_idx(tmp_path / name, array)
        back = data.read_idx(path)
        assert back.dtype == np.dtype(dtype).newbyteorder("=") and back.shape == (3, 5)
        np.testing.assert_array_equal(back, array)
    # Big-endian on disk, exactly as an independent encoder writes it.
    assert idx.idx_bytes(array) == idx_by_hand(array, code)


def test_read_idx_accepts_gzip_without_gz_suffix_and_raw_with_it(tmp_path):
    labels = np.array([7, 2, 1], dtype=np.uint8)
    (tmp_path / "plain.gz").write_bytes(idx_by_hand(labels, 8))
    (tmp_path / "packed").write_bytes(gzip.compress(idx_by_hand(labels, 8)))
    np.testing.assert_array_equal(data.read_idx(tmp_path / "plain.gz"), labels)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "packed"), labels)


@pytest.mark.parametrize(
    "payload,needle",
    [
        (b"\x00\x00", "not an IDX file"),  # too short
        (b"PK\x03\x04" + bytes(10), "magic number 0x504b0304"),  # a zip file
        (b"\x00\x00\x07\x01" + bytes(8), "magic number"),  # unknown dtype code
        (b"\x00\x00\x08\x03\x00\x00", "truncated inside its IDX header"),
        (idx_by_hand(np.zeros((2, 3), np.uint8), 8)[:-1], "truncated or damaged"),
        (idx_by_hand(np.zeros((2, 3), np.uint8), 8) + b"\x00", "truncated or damaged"),
        (gzip.compress(idx_by_hand(np.zeros(100, np.uint8), 8), mtime=0)[:-12], "damaged gzip"),
    ],
)
def test_read_idx_rejects_bad_files_with_one_line(tmp_path, payload, needle):
    path = tmp_path / "bad.gz"
    path.write_bytes(payload)
    with pytest.raises(GenlabError, match=needle) as err:
        data.read_idx(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_write_idx_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(GenlabError, match="cannot store dtype"):
        data.write_idx(tmp_path / "x", np.zeros(3, dtype=np.uint16))


# ------------------------------------------------------------------------------ MNIST family
def place_split(folder: Path, split: str, n: int, seed: int = 0, shape=(28, 28), labels=None):
    """Hand-place a tiny split (gz) like a learner would; returns the uint8 arrays."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8) if labels is None else labels
    prefix = "train" if split == "train" else "t10k"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_by_hand(images, 8)))
    (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_by_hand(labels, 8)))
    return images, labels


@pytest.fixture
def offline(monkeypatch):
    """Every download attempt fails as with no network; records the URLs tried."""
    tried = []

    def no_network(url, dest, **kwargs):
        tried.append(url)
        raise OSError("no network (test)")

    monkeypatch.setattr(download, "fetch_url", no_network)
    return tried


@pytest.mark.parametrize("subfolder", ["mnist", None])
def test_load_mnist_hand_placed_files_via_genlab_data(tmp_path, monkeypatch, offline, subfolder):
    folder = tmp_path / subfolder if subfolder else tmp_path
    images, labels = place_split(folder, "test", n=5)
    monkeypatch.setenv("GENLAB_DATA", str(tmp_path))
    assert data.data_root() == tmp_path
    x, y = data.load_mnist("test", check_counts=False)
    assert x.shape == (5, 1, 28, 28) and x.dtype == torch.float32
    assert y.dtype == torch.int64
    np.testing.assert_array_equal(y.numpy(), labels)
    # Pixel p ↦ p / 127.5 − 1: 0 → −1, 255 → +1.
    np.testing.assert_allclose(x[:, 0].numpy(), images / 127.5 - 1.0, atol=1e-6)
    assert offline == []  # nothing was downloaded


def test_files_directly_in_root_are_mnist_never_fashion_mnist(tmp_path, monkeypatch, offline):
    """Both data sets use the same file names: a loose file must not pass for Fashion-MNIST."""
    place_split(tmp_path, "test", n=5)
    monkeypatch.setenv("GENLAB_DATA", str(tmp_path))
    assert len(data.load_mnist("test", check_counts=False, download=False)[0]) == 5
    with pytest.raises(DatasetNotFoundError, match=f"place them in {tmp_path / 'fashion_mnist'} "):
        data.load_fashion_mnist("test", check_counts=False, download=False)
    _, labels = place_split(tmp_path / "fashion_mnist", "test", n=3, seed=1)
    np.testing.assert_array_equal(data.load_fashion_mnist("test", check_counts=False)[1].numpy(), labels)


def test_a_loose_file_that_is_fashion_mnist_is_not_taken_for_mnist(tmp_path, monkeypatch, offline):
    place_split(tmp_path, "test", n=5)
    loose = tmp_path / "t10k-images-idx3-ubyte.gz"
    md5 = download.md5sum(loose)
    # Pretend the loose file is Fashion-MNIST's published test-images file (same MD5).
    files = dict(mnist.FASHION_MNIST.files, test=(("t10k-images-idx3-ubyte.gz", md5), mnist.FASHION_MNIST.files["test"][1]))
    monkeypatch.setattr(mnist, "FASHION_MNIST", dataclasses.replace(mnist.FASHION_MNIST, files=files))
    with pytest.raises(DatasetNotFoundError, match="MNIST files t10k-images-idx3-ubyte.gz not found"):
        data.load_mnist("test", root=tmp_path, check_counts=False, download=False)


def test_load_mnist_checks_official_counts_by_default(tmp_path, offline):
    place_split(tmp_path, "train", n=4)
    with pytest.raises(DatasetNotFoundError, match="has 4 images, but the MNIST train split has 60000"):
        data.load_mnist("train", root=tmp_path)
    x, _ = data.load_mnist("train", root=tmp_path, check_counts=False)
    assert len(x) == 4


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        (dict(shape=(8, 8)), r"not MNIST images \(N, 28, 28\)"),
        (dict(labels=np.array([1, 2, 3], np.uint8)), "has 4 images but t10k-labels-idx1-ubyte.gz has 3"),
        (dict(labels=np.array([1, 2, 3, 10], np.uint8)), "label 10 outside 0..9"),
    ],
)
def test_load_mnist_validates_structure(tmp_path, offline, kwargs, needle):
    place_split(tmp_path, "test", n=4, **kwargs)
    with pytest.raises(DatasetNotFoundError, match=needle):
        data.load_mnist("test", root=tmp_path, check_counts=False)


def test_missing_files_offline_names_folder_files_and_url(tmp_path, offline):
    with pytest.raises(DatasetNotFoundError) as err:
        data.load_fashion_mnist("train", root=tmp_path)
    msg = str(err.value)
    assert "\n" not in msg
    for part in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 str(tmp_path / "fashion_mnist"), "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"):
        assert part in msg
    # One failed file stops the attempt (fast failure offline); nothing is left behind.
    assert offline == ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-images-idx3-ubyte.gz"]
    assert list(tmp_path.iterdir()) == []


def test_mnist_tries_both_mirrors_in_order(tmp_path, offline):
    with pytest.raises(DatasetNotFoundError, match="t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz"):
        data.load_mnist("test", root=tmp_path)
    assert offline == [
        "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-images-idx3-ubyte.gz",
        "https://storage.googleapis.com/cvdf-datasets/mnist/t10k-images-idx3-ubyte.gz",
    ]


def test_download_false_does_not_touch_the_network(tmp_path, offline):
    with pytest.raises(DatasetNotFoundError, match="download=False"):
        data.load_mnist("test", root=tmp_path, download=False)
    assert offline == []


def test_download_with_wrong_checksum_leaves_nothing(tmp_path, monkeypatch):
    def bad_bytes(url, dest, **kwargs):
        Path(dest).write_bytes(b"not the file you are looking for")

    monkeypatch.setattr(download, "fetch_url", bad_bytes)
    with pytest.raises(DatasetNotFoundError, match="corrupt"):
        download.download_file("https://example.invalid/x.gz", tmp_path / "sub" / "x.gz", md5="0" * 32)
    assert list(tmp_path.iterdir()) == []  # no file, no temp file, no empty folder
    # Through the loader: both mirrors deliver garbage → error, still nothing on disk.
    with pytest.raises(DatasetNotFoundError, match="corrupt"):
        data.load_mnist("test", root=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_download_leaves_nothing(tmp_path, monkeypatch):
    def interrupted(url, dest, **kwargs):
        Path(dest).write_bytes(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(download, "fetch_url", interrupted)
    with pytest.raises(KeyboardInterrupt):
        download.download_file("https://example.invalid/x.gz", tmp_path / "x.gz", md5="0" * 32)
    assert list(tmp_path.iterdir()) == []


def test_verified_download_is_moved_into_place_and_loads(tmp_path, monkeypatch):
    """A 'download' with the right MD5 lands in root/<dataset>/ and is then used from there."""
    images = np.full((3, 28, 28), 255, np.uint8)
    labels = np.array([0, 1, 2], np.uint8)
    payloads = {"t10k-images-idx3-ubyte.gz": gzip.compress(idx_by_hand(images, 8)),
                "t10k-labels-idx1-ubyte.gz": gzip.compress(idx_by_hand(labels, 8))}
    fake = mnist.IdxImageDataset(
        name="Fake", folder="fake", mirrors=("https://example.invalid/",),
        files={"test": tuple((n, hashlib.md5(b).hexdigest()) for n, b in payloads.items()),
               "train": mnist.MNIST.files["train"]},
        counts={"train": 60_000, "test": 3},
    )

    def serve(url, dest, **kwargs):
        Path(dest).write_bytes(payloads[url.rsplit("/", 1)[-1]])

    monkeypatch.setattr(download, "fetch_url", serve)
    x, y = mnist.load_idx_dataset(fake, "test", root=tmp_path)
    assert torch.equal(x, torch.ones(3, 1, 28, 28)) and y.tolist() == [0, 1, 2]
    assert sorted(p.name for p in (tmp_path / "fake").iterdir()) == sorted(payloads)


def test_md5sum_matches_hashlib(tmp_path):
    blob = os.urandom(200_000)
    (tmp_path / "b").write_bytes(blob)
    assert download.md5sum(tmp_path / "b") == hashlib.md5(blob).hexdigest()


def test_data_root_default_and_env(monkeypatch, tmp_path):
    monkeypatch.delenv("GENLAB_DATA", raising=False)
    assert data.data_root() == Path.home() / ".cache" / "genlab"
    monkeypatch.setenv("GENLAB_DATA", str(tmp_path))
    assert data.data_root() == tmp_path


def test_unknown_split():
    with pytest.raises(GenlabError, match="unknown MNIST split 'val'; use one of: train, test"):
        data.load_mnist("val")


def test_fashion_classes():
    assert len(data.FASHION_MNIST_CLASSES) == 10 and data.FASHION_MNIST_CLASSES[9] == "Ankle boot"


@pytest.mark.skipif(not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").is_file(),
                    reason="shared MNIST test split not present")
def test_real_mnist_test_split_from_shared_folder(monkeypatch, offline):
    monkeypatch.setenv("GENLAB_DATA", str(SHARED_MNIST))
    x, y = data.load_image_dataset("mnist", "test")
    assert x.shape == (10000, 1, 28, 28) and x.dtype == torch.float32
    assert x.min() == -1.0 and x.max() == 1.0
    assert y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # the well-known first test labels
    assert torch.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


# ------------------------------------------------------------------------------------ digits
def test_load_digits_matches_scikit_learn():
    from sklearn.datasets import load_digits as sk

    ref = sk()
    x, y = data.load_digits()
    assert x.shape == (1797, 1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.min() == -1.0 and x.max() == 1.0
    np.testing.assert_allclose(x[:, 0].numpy(), ref.images / 8.0 - 1.0, atol=1e-6)
    np.testing.assert_array_equal(y.numpy(), ref.target)


def test_digits_split_is_fixed_and_disjoint():
    x, y = data.load_digits()
    xtr, ytr = data.load_image_dataset("digits", "train")
    xte, yte = data.load_image_dataset("digits", "test")
    assert (len(xtr), len(xte)) == (1437, 360)
    assert torch.equal(xte, x[::5]) and torch.equal(yte, y[::5])
    assert torch.equal(torch.cat([xtr, xte]).sum(0), x.sum(0))


# ------------------------------------------------------------------------------------ toy 2-D
@pytest.mark.parametrize("name", data.TOY2D)
def test_toy2d_shape_dtype_scale_and_seed(name):
    a = data.toy2d(name, 2000, seed=1)
    assert a.shape == (2000, 2) and a.dtype == np.float32
    assert np.all(np.abs(a) < 3.0) and 0.3 < a.std() < 1.5  # roughly unit scale
    np.testing.assert_array_equal(a, data.toy2d(name, 2000, seed=1))
    assert not np.array_equal(a, data.toy2d(name, 2000, seed=2))
    np.testing.assert_array_equal(a, data.toy2d(name, 2000, seed=np.random.default_rng(1)))


def test_toy2d_shapes_are_what_they_claim():
    g = data.toy2d("gaussian_mixture", 4000)
    angles = np.round(np.arctan2(g[:, 1], g[:, 0]) / (2 * np.pi / 8)) % 8
    assert np.bincount(angles.astype(int), minlength=8).min() > 350  # 8 populated modes
    np.testing.assert_allclose(np.linalg.norm(g, axis=1).mean(), np.sqrt(2), atol=0.02)
    # The 5×5 grid: each point's nearest mode (brute force over a grid built here) is within 4σ,
    # all 25 are used about equally (K-S-free check: each count within 5 binomial SDs of n/25).
    pts = data.toy2d("grid", 10_000)
    axis = np.array([-1.5, -0.75, 0.0, 0.75, 1.5])
    mine = np.array([(a, b) for a in axis for b in axis])
    means, std = data.toy2d_modes("grid")
    np.testing.assert_allclose(means, mine)
    d = np.linalg.norm(pts[:, None] - mine[None], axis=2)
    assert std == 0.05 and d.min(axis=1).max() < 4 * 0.05 * 1.5  # a 2-D radius beyond 6σ has probability e^-18
    counts = np.bincount(d.argmin(axis=1), minlength=25)
    assert np.all(np.abs(counts - 400) < 5 * np.sqrt(10_000 * (1 / 25) * (24 / 25)))
    ring, ring_std = data.toy2d_modes("gaussian_mixture")
    assert ring.shape == (8, 2) and ring_std == 0.1
    np.testing.assert_allclose(np.linalg.norm(ring, axis=1), np.sqrt(2))
    r = np.linalg.norm(data.toy2d("rings", 4000), axis=1)
    nearest = np.abs(r[:, None] - np.array([0.5, 1.0, 1.5])).min(axis=1)
    assert np.quantile(nearest, 0.99) < 0.12  # every point sits on one of the three rings
    # Moons: same shape as scikit-learn's make_moons, shifted by (0.5, 0.25).
    from sklearn.datasets import make_moons

    ours = data.toy2d("moons", 1000) + np.array([0.5, 0.25], np.float32)
    ref, _ = make_moons(1000, noise=0.05, random_state=0)
    d = np.linalg.norm(ours[:, None] - ref[None], axis=2).min(axis=1)
    assert np.quantile(d, 0.95) < 0.15


def test_toy2d_errors():
    with pytest.raises(GenlabError, match="use one of: gaussian_mixture, moons, swiss_roll, rings, grid"):
        data.toy2d("spiral", 10)
    with pytest.raises(GenlabError, match="known modes"):
        data.toy2d_modes("moons")
    with pytest.raises(GenlabError, match="positive integer"):
        data.toy2d("moons", 0)


# ----------------------------------------------------------------------------------- registry
def test_image_registry_unknown_name_lists_valid_names():
    assert data.IMAGE_DATASETS == ("digits", "mnist", "fashion_mnist", "cifar10")
    with pytest.raises(GenlabError, match="use one of: digits, mnist, fashion_mnist, cifar10"):
        data.load_image_dataset("svhn")


def test_image_registry_dispatches_to_mnist(tmp_path, monkeypatch, offline):
    monkeypatch.setenv("GENLAB_DATA", str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match="Fashion-MNIST"):
        data.load_image_dataset("fashion_mnist", "test")
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path / "mnist")):
        data.load_image_dataset("mnist", "train")

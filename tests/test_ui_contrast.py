"""Colour contrast of the gallery's text, computed from the values in its stylesheet: every
text colour on every background it can sit on passes WCAG 2.1 AA (4.5:1 for normal text)."""

from __future__ import annotations

import re
from importlib import resources

import pytest

AA = 4.5
CSS = resources.files("engine.ui").joinpath("static/ui.css").read_text()


def _rules() -> dict[str, dict[str, str]]:
    """Each selector's declarations, `var(--x)` resolved from `:root`, comments dropped."""
    text = re.sub(r"/\*.*?\*/", "", CSS, flags=re.S)
    rules: dict[str, dict[str, str]] = {}
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", text):
        declarations = dict(
            (name.strip(), value.strip())
            for name, value in (d.split(":", 1) for d in body.split(";") if ":" in d)
        )
        for selector in selectors.split(","):
            rules.setdefault(" ".join(selector.split()), {}).update(declarations)
    variables = rules[":root"]

    def resolve(value: str) -> str:
        return re.sub(r"var\((--[\w-]+)\)", lambda m: variables[m.group(1)], value)

    return {s: {k: resolve(v) for k, v in d.items()} for s, d in rules.items()}


RULES = _rules()


def _rgb(value: str) -> tuple[int, int, int]:
    match = re.fullmatch(r"#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})", value.split()[0])
    assert match, f"not a hex colour: {value!r} (the test reads hex colours only)"
    digits = match.group(1)
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


def _luminance(value: str) -> float:
    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in _rgb(value))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(text: str, ground: str) -> float:
    lighter, darker = sorted((_luminance(text), _luminance(ground)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def _background(selector: str) -> str | None:
    """The selector's own background, else that of the nearest ancestor selector (".top a"
    sits on ".top")."""
    parts = selector.split()
    while parts:
        declarations = RULES.get(" ".join(parts), {})
        for name in ("background", "background-color"):
            if name in declarations and declarations[name].startswith("#"):
                return declarations[name]
        parts.pop()
    return None


def _pairs() -> list[tuple[str, str, str]]:
    """(selector, text colour, background) of every text colour in the stylesheet. Text without
    a background of its own may sit on the page or on a panel (the sidebar, code): both."""
    grounds = [RULES[":root"]["--ground"], RULES[":root"]["--panel"]]
    ink = RULES["body"]["color"]
    pairs = []
    for selector, declarations in RULES.items():
        if selector == ":root":
            continue
        background = _background(selector)
        color = declarations.get("color")
        if color is None and "background" not in declarations:
            continue
        if color is None:  # a background only: the inherited ink sits on it
            color = ink
        for ground in [background] if background else grounds:
            pairs.append((selector, color, ground))
    return pairs


def test_the_formula_matches_known_ratios() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#ffffff", "#ffffff") == pytest.approx(1.0)
    assert contrast("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)  # the AA grey
    assert contrast("#777777", "#ffffff") < AA


def test_the_stylesheet_is_read_whole() -> None:
    selectors = {selector for selector, _, _ in _pairs()}
    # text on the page, on the header bar, on buttons, muted text, errors, the marked query
    assert {"body", ".top a", "button", ".count", ".error", ".query-error mark"} <= selectors
    assert _background(".top a") == "#17324d"


@pytest.mark.parametrize(("selector", "color", "ground"), _pairs())
def test_text_contrast_passes_wcag_aa(selector: str, color: str, ground: str) -> None:
    ratio = contrast(color, ground)
    assert ratio >= AA, f"{selector}: {color} on {ground} is {ratio:.2f}:1, under {AA}:1"

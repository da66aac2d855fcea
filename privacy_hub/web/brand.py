"""The shop's colour as CSS: readable whatever colour an operator configures.

WCAG 2.1 AA asks for a contrast of 4.5:1 for text. The configured colour is darkened
until links on white reach it, and the text on buttons of that colour is white or black,
whichever contrasts more.
"""

from __future__ import annotations

AA_TEXT = 4.5


def _channels(hex_colour: str) -> tuple[int, int, int]:
    value = hex_colour.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#" + "".join(f"{max(0, min(255, c)):02x}" for c in rgb)


def luminance(hex_colour: str) -> float:
    """Relative luminance (WCAG 2.1)."""
    def linear(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.03928 else float(((s + 0.055) / 1.055) ** 2.4)
    r, g, b = (linear(c) for c in _channels(hex_colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def darken(hex_colour: str, factor: float) -> str:
    return _hex(tuple(round(c * factor) for c in _channels(hex_colour)))  # type: ignore[arg-type]


def readable_on_white(hex_colour: str) -> str:
    """The colour, darkened just enough for AA text contrast on white."""
    colour = hex_colour
    while contrast(colour, "#ffffff") < AA_TEXT:
        colour = darken(colour, 0.9)
    return colour


def stylesheet(hex_colour: str) -> str:
    """CSS custom properties for Pico and the hub's own styles."""
    primary = readable_on_white(hex_colour)
    inverse = "#ffffff" if contrast(primary, "#ffffff") >= contrast(primary, "#000000") else "#000000"
    hover = darken(primary, 0.82)
    return (
        ":root{"
        f"--brand:{primary};--brand-hover:{hover};--brand-ink:{inverse};"
        f"--pico-primary:{primary};--pico-primary-background:{primary};"
        f"--pico-primary-border:{primary};--pico-primary-underline:{primary}80;"
        f"--pico-primary-hover:{hover};--pico-primary-hover-background:{hover};"
        f"--pico-primary-hover-border:{hover};--pico-primary-inverse:{inverse};"
        f"--pico-primary-focus:{primary}40;"
        "}\n"
    )

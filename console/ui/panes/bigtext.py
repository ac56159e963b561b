"""Large letters for the decision banner: a 5-pixel bitmap font drawn with
half blocks, three terminal rows tall, so ROLLBACK NOW reads from across a
war room. Text the font cannot draw, or that does not fit, falls back to
letter-spaced capitals."""

from __future__ import annotations

# Each glyph is five rows of pixels, '#' set; glyphs may differ in width.
_FONT_SOURCE = {
    "A": (".##.", "#..#", "####", "#..#", "#..#"),
    "B": ("###.", "#..#", "###.", "#..#", "###."),
    "C": (".###", "#...", "#...", "#...", ".###"),
    "D": ("###.", "#..#", "#..#", "#..#", "###."),
    "E": ("####", "#...", "###.", "#...", "####"),
    "F": ("####", "#...", "###.", "#...", "#..."),
    "G": (".###", "#...", "#.##", "#..#", ".###"),
    "H": ("#..#", "#..#", "####", "#..#", "#..#"),
    "I": ("###", ".#.", ".#.", ".#.", "###"),
    "J": ("..##", "...#", "...#", "#..#", ".##."),
    "K": ("#..#", "#.#.", "##..", "#.#.", "#..#"),
    "L": ("#...", "#...", "#...", "#...", "####"),
    "M": ("#...#", "##.##", "#.#.#", "#...#", "#...#"),
    "N": ("#...#", "##..#", "#.#.#", "#..##", "#...#"),
    "O": (".##.", "#..#", "#..#", "#..#", ".##."),
    "P": ("###.", "#..#", "###.", "#...", "#..."),
    "Q": (".##.", "#..#", "#..#", "#.##", ".###"),
    "R": ("###.", "#..#", "###.", "#.#.", "#..#"),
    "S": (".###", "#...", ".##.", "...#", "###."),
    "T": ("#####", "..#..", "..#..", "..#..", "..#.."),
    "U": ("#..#", "#..#", "#..#", "#..#", ".##."),
    "V": ("#...#", "#...#", "#...#", ".#.#.", "..#.."),
    "W": ("#...#", "#...#", "#.#.#", "##.##", "#...#"),
    "X": ("#...#", ".#.#.", "..#..", ".#.#.", "#...#"),
    "Y": ("#...#", ".#.#.", "..#..", "..#..", "..#.."),
    "Z": ("####", "...#", ".##.", "#...", "####"),
    ":": (".", "#", ".", "#", "."),
    "+": ("...", ".#.", "###", ".#.", "..."),
    "-": ("...", "...", "###", "...", "..."),
    " ": ("..", "..", "..", "..", ".."),
    "(": (".#", "#.", "#.", "#.", ".#"),
    ")": ("#.", ".#", ".#", ".#", "#."),
}

_HALF_BLOCKS = {(False, False): " ", (True, False): "▀", (False, True): "▄", (True, True): "█"}


def can_draw(text: str) -> bool:
    """True when every character of `text` has a glyph."""
    return all(ch in _FONT_SOURCE for ch in text.upper())


def big_width(text: str, scale: int = 1) -> int:
    """Columns `big_lines(text, scale)` takes (glyphs plus one column between
    them); a character without a glyph counts as a space."""
    glyphs = [_FONT_SOURCE.get(ch, _FONT_SOURCE[" "]) for ch in text.upper()]
    return (sum(len(g[0]) for g in glyphs) + max(0, len(glyphs) - 1)) * scale


def big_lines(text: str, scale: int = 1) -> list[str]:
    """Lines drawing `text` (which `can_draw`): three rows of half blocks, or
    at `scale` 2 five rows of full blocks two columns per pixel (for a big screen)."""
    if scale > 1:
        rows = ["", "", "", "", ""]
        for index, ch in enumerate(text.upper()):
            glyph = _FONT_SOURCE[ch]
            for row in range(5):
                rows[row] += (" " * scale if index else "") + "".join(
                    ("█" if px == "#" else " ") * scale for px in glyph[row])
        return rows
    pixels = ["", "", "", "", "", ""]
    for index, ch in enumerate(text.upper()):
        glyph = _FONT_SOURCE[ch]
        gap = "." if index else ""
        for row in range(5):
            pixels[row] += gap + glyph[row]
        pixels[5] += gap + "." * len(glyph[0])
    lines = []
    for top, bottom in ((0, 1), (2, 3), (4, 5)):
        lines.append(
            "".join(_HALF_BLOCKS[(a == "#", b == "#")] for a, b in zip(pixels[top], pixels[bottom]))
        )
    return lines


def spaced(text: str) -> str:
    """Letter-spaced capitals: "ROLLBACK NOW" -> "R O L L B A C K   N O W"."""
    return "   ".join(" ".join(word) for word in text.split(" "))

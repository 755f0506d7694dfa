"""Draws examples/image.png, the picture the README's curl examples upload (made here, owned by the project)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

WIDTH, HEIGHT = 960, 640


def draw() -> Image.Image:
    image = Image.new("RGB", (WIDTH, HEIGHT))
    pen = ImageDraw.Draw(image)
    for y in range(HEIGHT):  # dusk sky fading into warm light at the horizon
        t = y / HEIGHT
        pen.line([(0, y), (WIDTH, y)], fill=(int(40 + 200 * t), int(60 + 90 * t), int(140 - 60 * t)))
    pen.ellipse([600, 330, 760, 490], fill=(255, 214, 120))
    pen.polygon([(0, 640), (0, 420), (220, 300), (420, 460), (620, 340), (960, 520), (960, 640)], fill=(32, 44, 60))
    pen.polygon([(0, 640), (0, 540), (300, 470), (560, 560), (960, 500), (960, 640)], fill=(18, 26, 36))
    return image


if __name__ == "__main__":
    draw().save(Path(__file__).with_name("image.png"), optimize=True)

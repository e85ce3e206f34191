"""Procedural scenes of the world: images, depth maps, captions and their true attributes.

Every image is a pure function of ``(seed, image id)``: it is drawn from
``numpy.random.default_rng([seed, id])``, so any subset of the world can be made
in any order, by any process, and comes out the same.

A scene is a background of one of :data:`PLACES` with one to three objects of
:data:`CATEGORIES`, each with a colour, a size, a horizontal position and a depth
(0 near, 1 far; nearer objects sit lower and look bigger, and hide farther ones).
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["PLACES", "CATEGORIES", "COLORS", "SIZES", "MAX_OBJECTS", "Scenes", "render_scenes",
           "sample_layout"]

PLACES = ("beach", "forest", "city", "room")
CATEGORIES = ("face", "body", "house", "tool", "animal")
COLORS = {
    "red": (215, 40, 40),
    "green": (40, 165, 60),
    "blue": (45, 85, 225),
    "yellow": (240, 215, 40),
    "purple": (145, 60, 175),
    "orange": (245, 135, 30),
}
COLOR_NAMES = tuple(COLORS)
SIZES = ("small", "medium", "large")
SIZE_SCALE = (0.22, 0.32, 0.42)  # object height as a fraction of the image, at depth 0
MAX_OBJECTS = 3
SUPERSAMPLE = 2

_SYNONYMS = {
    "face": ("face", "human face", "portrait face"),
    "body": ("person", "human figure", "body"),
    "house": ("house", "building", "little house"),
    "tool": ("hammer", "tool", "hand tool"),
    "animal": ("animal", "four-legged animal", "creature"),
}
_PLACE_WORDS = {
    "beach": ("beach", "seaside", "sandy shore"),
    "forest": ("forest", "wood", "grove of trees"),
    "city": ("city street", "town", "urban street"),
    "room": ("room", "indoor room", "living room"),
}


@dataclass
class Scenes:
    """A batch of rendered scenes.

    Attributes
    ----------
    ids : int array of shape (n,)
    images : uint8 array of shape (n, H, W, 3)
    depth : float32 array of shape (n, H, W)
        0 is nearest, 1 farthest (the sky).
    captions : list of n lists of str
        Paraphrases of the same description (at least three).
    place : int array of shape (n,)
        Index into :data:`PLACES`.
    n_objects : int array of shape (n,)
    category, color, size : int arrays of shape (n, MAX_OBJECTS)
        Index into :data:`CATEGORIES`, :data:`COLOR_NAMES`, :data:`SIZES`; -1 where absent.
        Object 0 is the main object (the largest on screen).
    x, depth_of, height : float arrays of shape (n, MAX_OBJECTS)
        Centre in [0, 1] (left to right), depth in [0, 1], apparent height in image
        fractions; NaN where absent.
    """

    ids: np.ndarray
    images: np.ndarray
    depth: np.ndarray
    captions: list
    place: np.ndarray
    n_objects: np.ndarray
    category: np.ndarray
    color: np.ndarray
    size: np.ndarray
    x: np.ndarray
    depth_of: np.ndarray
    height: np.ndarray


def sample_layout(rng):
    """Draw one scene's attributes from ``rng``; object 0 is the one that appears largest."""
    place = int(rng.integers(len(PLACES)))
    n = int(rng.choice([1, 2, 3], p=[0.5, 0.3, 0.2]))
    objs = []
    for _ in range(n):
        depth = float(rng.uniform(0.05, 0.8))
        size = int(rng.integers(len(SIZES)))
        objs.append({
            "category": int(rng.integers(len(CATEGORIES))),
            "color": int(rng.integers(len(COLORS))),
            "size": size,
            "x": float(rng.uniform(0.18, 0.82)),
            "depth": depth,
            "height": SIZE_SCALE[size] * (1.0 - 0.5 * depth),
        })
    objs.sort(key=lambda o: -o["height"])
    return place, objs


def _grid(size):
    s = size * SUPERSAMPLE
    v, u = np.mgrid[0:s, 0:s].astype(np.float32)
    return (u + 0.5) / s, (v + 0.5) / s


def _ellipse(u, v, cx, cy, rx, ry):
    return ((u - cx) / rx) ** 2 + ((v - cy) / ry) ** 2 <= 1.0


def _rect(u, v, x0, y0, x1, y1):
    return (u >= x0) & (u <= x1) & (v >= y0) & (v <= y1)


def _segment(u, v, x0, y0, x1, y1, width):
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((u - x0) * dx + (v - y0) * dy) / (dx * dx + dy * dy + 1e-12), 0, 1)
    return (u - x0 - t * dx) ** 2 + (v - y0 - t * dy) ** 2 <= (width / 2) ** 2


def _triangle(u, v, p0, p1, p2):
    def side(a, b):
        return (u - b[0]) * (a[1] - b[1]) - (a[0] - b[0]) * (v - b[1])
    d0, d1, d2 = side(p0, p1), side(p1, p2), side(p2, p0)
    neg = (d0 < 0) | (d1 < 0) | (d2 < 0)
    pos = (d0 > 0) | (d1 > 0) | (d2 > 0)
    return ~(neg & pos)


def _paint(canvas, depth, mask, colour, d):
    canvas[mask] = colour
    depth[mask] = d


def _background(u, v, place, rng):
    """Paint the place; returns the canvas (float RGB), depth map and horizon height."""
    canvas = np.zeros(u.shape + (3,), np.float32)
    depth = np.ones(u.shape, np.float32)
    horizon = float(rng.uniform(0.35, 0.5))
    ground = v >= horizon
    # ground depth rises from 0.2 at the bottom edge to 0.95 at the horizon
    ground_depth = 0.95 - 0.75 * (v - horizon) / (1.0 - horizon)
    if place == "beach":
        canvas[:] = (150, 200, 245)
        sea = (v >= horizon) & (v < horizon + 0.08)
        canvas[ground] = (225, 205, 150)
        canvas[sea] = (40, 110, 170)
        depth[ground] = ground_depth[ground]
        sun = _ellipse(u, v, rng.uniform(0.1, 0.9), horizon * 0.4, 0.06, 0.06)
        canvas[sun] = (255, 245, 200)
    elif place == "forest":
        canvas[:] = (200, 220, 200)
        canvas[ground] = (70, 120, 50)
        depth[ground] = ground_depth[ground]
        for _ in range(int(rng.integers(4, 8))):
            cx, w = rng.uniform(0, 1), rng.uniform(0.02, 0.05)
            trunk = _rect(u, v, cx - w / 2, horizon - 0.15, cx + w / 2, horizon + 0.02)
            crown = _ellipse(u, v, cx, horizon - 0.18, 0.08, 0.1)
            _paint(canvas, depth, trunk, (100, 70, 40), 0.9)
            _paint(canvas, depth, crown, (30, 90, 40), 0.9)
    elif place == "city":
        canvas[:] = (175, 180, 190)
        canvas[ground] = (80, 80, 85)
        depth[ground] = ground_depth[ground]
        for _ in range(int(rng.integers(3, 6))):
            x0, w, h = rng.uniform(-0.1, 0.9), rng.uniform(0.12, 0.25), rng.uniform(0.15, 0.3)
            block = _rect(u, v, x0, horizon - h, x0 + w, horizon)
            shade = float(rng.uniform(110, 150))
            _paint(canvas, depth, block, (shade, shade, shade + 10), 0.92)
            windows = block & (np.mod(u * 40, 2) < 0.8) & (np.mod(v * 40, 2) < 0.8)
            canvas[windows] = (230, 225, 150)
    else:  # room
        canvas[:] = (225, 210, 185)
        depth[:] = 0.8
        canvas[ground] = (140, 95, 60)
        depth[ground] = np.minimum(ground_depth[ground], 0.8)
        cx = rng.uniform(0.2, 0.8)
        window = _rect(u, v, cx - 0.12, horizon - 0.28, cx + 0.12, horizon - 0.08)
        canvas[window] = (170, 210, 240)
        canvas[_rect(u, v, cx - 0.005, horizon - 0.28, cx + 0.005, horizon - 0.08)] = (250, 250, 250)
    return canvas, depth, horizon


def _draw_object(canvas, depth, u, v, obj, horizon):
    """Draw one object standing on the ground at its depth."""
    h = obj["height"]
    # nearer objects stand lower: the base runs from the horizon (far) to the bottom (near)
    base = horizon + (0.97 - horizon) * (1.0 - obj["depth"])
    cx, top, d = obj["x"], base - h, obj["depth"]
    colour = np.array(COLORS[COLOR_NAMES[obj["color"]]], np.float32)
    dark = colour * 0.35
    cat = CATEGORIES[obj["category"]]
    if cat == "face":
        r = h / 2
        cy = top + r
        _paint(canvas, depth, _ellipse(u, v, cx, cy, r * 0.85, r), colour, d)
        for ex in (-0.35, 0.35):
            canvas[_ellipse(u, v, cx + ex * r, cy - 0.2 * r, 0.14 * r, 0.14 * r)] = (20, 20, 20)
        mouth = _ellipse(u, v, cx, cy + 0.35 * r, 0.45 * r, 0.18 * r) & (v > cy + 0.35 * r)
        canvas[mouth] = (20, 20, 20)
    elif cat == "body":
        w = max(h * 0.08, 0.012)
        head_r = h * 0.13
        _paint(canvas, depth, _ellipse(u, v, cx, top + head_r, head_r, head_r), colour, d)
        hip = top + h * 0.62
        parts = [
            _segment(u, v, cx, top + 2 * head_r, cx, hip, w * 1.8),
            _segment(u, v, cx, top + h * 0.35, cx - h * 0.22, top + h * 0.55, w),
            _segment(u, v, cx, top + h * 0.35, cx + h * 0.22, top + h * 0.55, w),
            _segment(u, v, cx, hip, cx - h * 0.15, base, w),
            _segment(u, v, cx, hip, cx + h * 0.15, base, w),
        ]
        for part in parts:
            _paint(canvas, depth, part, colour, d)
    elif cat == "house":
        w = h * 0.9
        wall_top = top + h * 0.4
        _paint(canvas, depth, _rect(u, v, cx - w / 2, wall_top, cx + w / 2, base), colour, d)
        roof = _triangle(u, v, (cx - w * 0.6, wall_top), (cx + w * 0.6, wall_top), (cx, top))
        _paint(canvas, depth, roof, dark, d)
        canvas[_rect(u, v, cx - w * 0.1, base - h * 0.3, cx + w * 0.1, base)] = (60, 40, 30)
    elif cat == "tool":
        w = max(h * 0.1, 0.012)
        handle = _segment(u, v, cx - h * 0.25, base, cx + h * 0.15, top + h * 0.2, w)
        _paint(canvas, depth, handle, colour, d)
        head = _segment(u, v, cx - h * 0.05, top + h * 0.02, cx + h * 0.35, top + h * 0.38, w * 2.5)
        _paint(canvas, depth, head, (90, 90, 95), d)
    else:  # animal
        bw, bh = h * 0.55, h * 0.25
        cy = base - h * 0.45
        w = max(h * 0.07, 0.01)
        _paint(canvas, depth, _ellipse(u, v, cx, cy, bw, bh), colour, d)
        for lx in (-0.7, -0.35, 0.35, 0.7):
            _paint(canvas, depth, _segment(u, v, cx + lx * bw, cy, cx + lx * bw, base, w), colour, d)
        _paint(canvas, depth, _ellipse(u, v, cx + bw * 1.05, cy - bh * 1.1, bh * 0.8, bh * 0.7),
               colour, d)
        _paint(canvas, depth, _segment(u, v, cx - bw, cy - bh * 0.3, cx - bw * 1.4, cy - bh * 1.2, w),
               dark, d)
        canvas[_ellipse(u, v, cx + bw * 1.2, cy - bh * 1.25, bh * 0.15, bh * 0.15)] = (20, 20, 20)


def _a(phrase):
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _captions(place, objs, rng):
    """Five paraphrases of the scene, like COCO's five captions.

    They name what COCO's captions name — the place, the objects, their colours, and
    at times a size — but never where an object is in the picture: COCO's captions
    rarely do, and a caption that places the object tells the text conditioning ``c``
    where the edges are, which early visual cortex responds to (chapter 14 measures it).
    """
    def name(o, k):
        return _SYNONYMS[CATEGORIES[o["category"]]][k]

    def colour(o):
        return COLOR_NAMES[o["color"]]

    main, others = objs[0], objs[1:]
    pw = _PLACE_WORDS[PLACES[place]]
    also = "".join(f" and {_a(colour(o))} {name(o, 0)}" for o in others)
    with_others = "".join(f", {_a(colour(o))} {name(o, 1)}" for o in others)
    count = ("one object", "two objects", "three objects")[len(objs) - 1]
    caps = [
        f"A {SIZES[main['size']]} {colour(main)} {name(main, 0)} at the {pw[0]}{also}.",
        f"{_a(pw[1]).capitalize()} scene with {_a(colour(main))} {name(main, 1)}{with_others}.",
        f"{count.capitalize()} in {_a(pw[2])}: {_a(colour(main))} {name(main, 2)} is the biggest.",
        f"There is {_a(colour(main))} {name(main, 0)} in this {pw[0]} picture.",
        f"Picture of {_a(pw[1])} showing a {SIZES[main['size']]} {name(main, 1)} that is "
        f"{colour(main)}{also}.",
    ]
    order = rng.permutation(len(caps))
    return [caps[i] for i in order]


def render_scenes(ids, seed=0, size=64):
    """Render the scenes ``ids`` of the world with ``seed`` at ``size`` × ``size`` pixels.

    Parameters
    ----------
    ids : array of shape (n,)
        Non-negative integer image ids.
    seed : int
        World seed; the same ``(seed, id)`` always gives the same scene.
    size : int
        Image height and width in pixels.

    Returns
    -------
    scenes : Scenes
    """
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    n = ids.size
    images = np.empty((n, size, size, 3), np.uint8)
    depth = np.empty((n, size, size), np.float32)
    ints = {k: np.full((n, MAX_OBJECTS), -1, np.int64) for k in ("category", "color", "size")}
    floats = {k: np.full((n, MAX_OBJECTS), np.nan, np.float32) for k in ("x", "depth_of", "height")}
    place = np.empty(n, np.int64)
    n_objects = np.empty(n, np.int64)
    captions = []
    u, v = _grid(size)
    for i, image_id in enumerate(ids):
        rng = np.random.default_rng([seed, int(image_id)])
        p, objs = sample_layout(rng)
        canvas, dmap, horizon = _background(u, v, PLACES[p], rng)
        for obj in sorted(objs, key=lambda o: -o["depth"]):  # far to near
            _draw_object(canvas, dmap, u, v, obj, horizon)
        canvas += rng.normal(0, 3.0, canvas.shape).astype(np.float32)  # sensor noise
        pooled = canvas.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE, 3).mean((1, 3))
        images[i] = np.clip(np.rint(pooled), 0, 255).astype(np.uint8)
        depth[i] = dmap.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).mean((1, 3))
        place[i], n_objects[i] = p, len(objs)
        for j, o in enumerate(objs):
            ints["category"][i, j], ints["color"][i, j], ints["size"][i, j] = (
                o["category"], o["color"], o["size"])
            floats["x"][i, j], floats["depth_of"][i, j], floats["height"][i, j] = (
                o["x"], o["depth"], o["height"])
        captions.append(_captions(p, objs, rng))
    return Scenes(ids=ids, images=images, depth=depth, captions=captions, place=place,
                  n_objects=n_objects, **ints, **floats)

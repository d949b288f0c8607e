"""What a set of landmarks is: its names, which ones swap under a horizontal flip, which two are the
eyes (the NME's reference length), and the mean shape (the baseline). Shared by datasets, heads,
losses, metrics and the task.

Points travel as (x, y) pixels of the image they belong to; the model sees and predicts them as
(x, y) in 0..1 of its own (letterboxed) input, and each point has a visibility: a point that is not
labelled, or lies outside the image, is masked out of the loss and the metrics, never trained on as
(0, 0)."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from zoo_core import ZooError

from . import KEYPOINTS  # noqa: F401  (the output kind, declared with the registration, which imports no torch)
# Not "regression/*" on purpose: zoo-core's plain l1/mse would train on missing points as zeros.
FIT = "pad"  # letterbox: the whole image is seen and its aspect ratio kept (points near the edge survive)

# The iBUG 300-W 68-point face layout (the source's 68 facial keypoints), 0-based: the pairs that swap
# under a horizontal flip, and the outer eye corners whose distance is the standard NME reference.
IBUG68_FLIP_PAIRS = [(0, 16), (1, 15), (2, 14), (3, 13), (4, 12), (5, 11), (6, 10), (7, 9),  # jaw
                     (17, 26), (18, 25), (19, 24), (20, 23), (21, 22),  # brows
                     (31, 35), (32, 34),  # nostrils
                     (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46),  # eyes
                     (48, 54), (49, 53), (50, 52), (55, 59), (56, 58), (60, 64), (61, 63), (65, 67)]  # mouth
IBUG68_EYES = (36, 45)


def layout(names: Sequence[str], flip_pairs: Sequence[Sequence[int]] | str | None = None,
           eyes: Sequence[int] | str | None = None, skeleton: Sequence[Sequence[int]] = (),
           where: str = "dataset") -> dict[str, Any]:
    """The info every keypoint dataset gives: names, flip pairs and eyes, checked; pairs and eyes are
    taken from the names when not given ("left_eye" / "right_eye", "left_x" <-> "right_x"), and from
    the iBUG layout for 68 unnamed points."""
    names = [str(n) for n in names]
    k = len(names)
    if k < 1:
        raise ZooError(f"{where}: no keypoints")
    if len(set(names)) != k:
        raise ZooError(f"{where}: keypoint names repeat: {', '.join(sorted({n for n in names if names.count(n) > 1}))}")
    unnamed = names == [str(i) for i in range(k)]
    if isinstance(flip_pairs, str):
        flip_pairs = parse_pairs(flip_pairs, "flip_pairs", where)
    if flip_pairs is None or (not flip_pairs and flip_pairs != []):
        flip_pairs = IBUG68_FLIP_PAIRS if unnamed and k == 68 else pairs_from_names(names)
    if isinstance(eyes, str):
        eyes = parse_indices(eyes, "eyes", where) if eyes.strip() else None
    if eyes is None:
        eyes = IBUG68_EYES if unnamed and k == 68 else eyes_from_names(names)
    for i, j in flip_pairs:
        if not (0 <= i < k and 0 <= j < k) or i == j:
            raise ZooError(f"{where}: flip pair ({i}, {j}) must name two different points of 0..{k - 1}")
    if len({p for pair in flip_pairs for p in pair}) != 2 * len(flip_pairs):
        raise ZooError(f"{where}: a point appears in two flip pairs: {list(map(list, flip_pairs))}")
    if eyes is not None and (len(eyes) != 2 or not all(0 <= e < k for e in eyes) or eyes[0] == eyes[1]):
        raise ZooError(f"{where}: eyes must be two different point indices of 0..{k - 1}, got {list(eyes)}")
    return {"keypoints": names, "flip_pairs": [[int(i), int(j)] for i, j in flip_pairs],
            "eyes": [int(e) for e in eyes] if eyes is not None else None,
            "skeleton": [[int(i), int(j)] for i, j in skeleton if 0 <= i < k and 0 <= j < k]}


def parse_indices(text: str, option: str, where: str) -> list[int]:
    try:
        return [int(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise ZooError(f"{where}: option {option} must be point indices like '36,45', got {text!r}") from None


def parse_pairs(text: str, option: str, where: str) -> list[tuple[int, int]]:
    """'0:16,1:15' (or '0-16 1-15') -> [(0, 16), (1, 15)]; '' -> [] (nothing swaps: flips stay off)."""
    pairs = []
    for chunk in text.replace(";", ",").replace(" ", ",").split(","):
        if not chunk.strip():
            continue
        parts = chunk.replace("-", ":").split(":")
        try:
            i, j = (int(p) for p in parts)
        except ValueError:
            raise ZooError(f"{where}: option {option} must be index pairs like '0:16,1:15', got {text!r}") from None
        pairs.append((i, j))
    return pairs


def _sides(name: str) -> tuple[str, str] | None:
    """('left', rest) or ('right', rest) for names like left_eye, eye_left, l_eye, LeftEye."""
    low = name.lower()
    for side, other in (("left", "right"), ("right", "left")):
        if side in low:
            return side, low.replace(side, "#")
    for side, prefix in (("left", "l_"), ("right", "r_")):
        if low.startswith(prefix):
            return side, "#_" + low[2:]
    return None


def pairs_from_names(names: Sequence[str]) -> list[tuple[int, int]]:
    """left_X <-> right_X, by name."""
    keyed = {}
    for i, n in enumerate(names):
        s = _sides(n)
        if s:
            keyed[s] = i
    return [(i, keyed[("right", rest)]) for (side, rest), i in keyed.items() if side == "left" and ("right", rest) in keyed]


def eyes_from_names(names: Sequence[str]) -> list[int] | None:
    """The two eye points (centres or pupils preferred, outer corners next), by name; None if absent."""
    low = [n.lower() for n in names]
    for words in (("eye",), ("pupil",), ("eye", "outer")):
        found = {}
        for i, n in enumerate(low):
            s = _sides(n)
            if s and all(w in n for w in words) and s[0] not in found and (len(words) > 1 or "corner" not in n):
                found[s[0]] = i
        if len(found) == 2:
            return [found["left"], found["right"]]
    return None


def flip_permutation(k: int, flip_pairs: Sequence[Sequence[int]]) -> list[int]:
    perm = list(range(k))
    for i, j in flip_pairs:
        perm[i], perm[j] = j, i
    return perm


def mean_shape(points: Sequence[torch.Tensor], visible: Sequence[torch.Tensor], sizes: Sequence[tuple[int, int]],
               data_config) -> list[list[float]]:
    """Each point's mean over the training images, as the model sees it after the evaluation fit
    (letterbox), normalised to its input: what a model that learned nothing but the average shape
    predicts for every image (the metrics' baseline, and where the heads start). The geometry of
    each image size is taken from zoo's own Preprocess."""
    from zoo_core import Preprocess

    k = len(points[0]) if points else 0
    fit = Preprocess(data_config, FIT)
    c, H, W = data_config.input_size
    geometries = {}
    total, count = torch.zeros(k, 2, dtype=torch.float64), torch.zeros(k, 1, dtype=torch.float64)
    for xy, vis, (h, w) in zip(points, visible, sizes):
        if (h, w) not in geometries:
            geometries[(h, w)] = fit({"image": torch.zeros(c, h, w, dtype=torch.uint8)})["geometry"]
        g = geometries[(h, w)]
        scaled = (torch.as_tensor(xy, dtype=torch.float64) * torch.tensor(g.scale, dtype=torch.float64)
                  + torch.tensor(g.offset, dtype=torch.float64)) / torch.tensor([W, H], dtype=torch.float64)
        v = torch.as_tensor(vis, dtype=torch.float64).reshape(k, 1)
        total += scaled * v
        count += v
    mean = torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, 0.5))
    return [[round(float(x), 6), round(float(y), 6)] for x, y in mean.clamp(0, 1)]

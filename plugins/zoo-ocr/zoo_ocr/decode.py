"""From per-time-step scores to text: greedy (best path) and CTC prefix beam search, the beam optionally
held to a regular expression or a lexicon. Each reading carries its confidence: P(text | image) under CTC
(all alignments of the text summed), and each character the largest probability it was read with.

Greedy decoding is also what a deployed file needs, in a few lines (README, "Reading text"):

    ids = scores[:steps].argmax(-1)                       # (T,) best class per time step
    text = "".join(alphabet[i - 1] for j, i in enumerate(ids) if i != 0 and (j == 0 or i != ids[j - 1]))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from zoo_core import ZooError

from .model import BLANK, sequence_log_prob


@dataclass
class Reading:
    text: str
    confidence: float  # P(text | image) under CTC
    characters: list[tuple[str, float]] = field(default_factory=list)  # (character, its best probability)


def greedy_labels(log_probs: torch.Tensor) -> tuple[list[int], list[float]]:
    """Best class per step, repeats collapsed, blanks dropped: (labels, each one's best probability)."""
    best_p, best = log_probs.exp().max(-1)
    labels: list[int] = []
    probs: list[float] = []
    previous = BLANK
    for t, k in enumerate(best.tolist()):
        if k != BLANK and k != previous:
            labels.append(k)
            probs.append(float(best_p[t]))
        elif k != BLANK and k == previous:  # the same character held over several steps: its best step
            probs[-1] = max(probs[-1], float(best_p[t]))
        previous = k
    return labels, probs


def _characters(log_probs: torch.Tensor, labels: list[int], alphabet: str) -> list[tuple[str, float]]:
    """Each character with the largest probability any step gives it (for a beam's reading)."""
    p = log_probs.exp()
    return [(alphabet[k - 1], round(float(p[:, k].max()), 4)) for k in labels]


def read_greedy(log_probs: torch.Tensor, alphabet: str) -> Reading:
    labels, probs = greedy_labels(log_probs)
    return Reading("".join(alphabet[k - 1] for k in labels), math.exp(sequence_log_prob(log_probs, labels)),
                   [(alphabet[k - 1], round(p, 4)) for k, p in zip(labels, probs)])


def _logaddexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    m = max(a, b)
    return m + math.log(math.exp(a - m) + math.exp(b - m))


def constraint(pattern: str = "", lexicon: str | Path = "") -> tuple[Callable[[str], bool], Callable[[str], bool]] | None:
    """(may a text start with this, is this a whole allowed text) for a regular expression (the `regex`
    package's partial matching answers the first) or a lexicon file (one allowed text per line)."""
    if pattern and lexicon:
        raise ZooError("--pattern and --lexicon: give one or the other")
    if pattern:
        import regex

        try:
            compiled = regex.compile(pattern)
        except regex.error as e:
            raise ZooError(f"--pattern {pattern!r}: not a regular expression ({e})") from None
        return (lambda s: compiled.fullmatch(s, partial=True) is not None), (lambda s: compiled.fullmatch(s) is not None)
    if lexicon:
        path = Path(lexicon)
        if not path.is_file():
            raise ZooError(f"--lexicon {lexicon}: no such file (one allowed text per line)")
        words = {w.strip() for w in path.read_text(encoding="utf-8", errors="replace").splitlines() if w.strip()}
        if not words:
            raise ZooError(f"--lexicon {lexicon}: no words in it (one allowed text per line)")
        prefixes = {w[:i] for w in words for i in range(len(w) + 1)}
        return prefixes.__contains__, words.__contains__
    return None


def read_beam(log_probs: torch.Tensor, alphabet: str, width: int = 10,
              allowed: tuple[Callable[[str], bool], Callable[[str], bool]] | None = None) -> Reading:
    """CTC prefix beam search: the `width` most probable prefixes are kept at each step, each with the
    summed probability of its alignments ending in a blank and not; with `allowed`, a prefix no allowed
    text starts with is dropped, and the reading is the most probable whole allowed text (empty, with
    confidence 0, when none survives)."""
    may_start, is_whole = allowed if allowed is not None else (lambda s: True, lambda s: True)
    lp = log_probs.float()
    top = min(lp.shape[1], max(width, 8))  # characters worth extending by, per step
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, -math.inf)}  # prefix -> (log p blank, log p non-blank)
    for t in range(lp.shape[0]):
        row = lp[t]
        candidates = [k for k in row.topk(top).indices.tolist() if k != BLANK]
        nxt: dict[tuple[int, ...], list[float]] = {}

        def add(prefix, b, nb):
            cur = nxt.setdefault(prefix, [-math.inf, -math.inf])
            cur[0], cur[1] = _logaddexp(cur[0], b), _logaddexp(cur[1], nb)

        blank = float(row[BLANK])
        for prefix, (pb, pnb) in beams.items():
            total = _logaddexp(pb, pnb)
            add(prefix, total + blank, -math.inf)  # a blank keeps the prefix
            if prefix:  # the last character repeated without a blank between: the same prefix
                add(prefix, -math.inf, pnb + float(row[prefix[-1]]))
            for k in candidates:
                extended = prefix + (k,)
                if not may_start("".join(alphabet[i - 1] for i in extended)):
                    continue
                p = float(row[k])
                # after the same character, only a path that ended in a blank starts a new one
                add(extended, -math.inf, (pb if prefix and k == prefix[-1] else total) + p)
        beams = dict(sorted(((p, (v[0], v[1])) for p, v in nxt.items()), key=lambda kv: -_logaddexp(*kv[1]))[:width])
    ranked = sorted(beams.items(), key=lambda kv: -_logaddexp(*kv[1]))
    for prefix, (pb, pnb) in ranked:
        text = "".join(alphabet[i - 1] for i in prefix)
        if is_whole(text):
            return Reading(text, math.exp(sequence_log_prob(log_probs, list(prefix))),
                           _characters(log_probs, list(prefix), alphabet))
    return Reading("", 0.0, [])

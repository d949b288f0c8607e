"""Targets: what each head learns, declared once, checked against the data, and turned into tensors.

A declaration names each head and says how to read its column:

    [dataset.targets.gender]        # in the --config TOML file
    type = "binary"                 # binary | multiclass | regression
    [dataset.targets.age]
    type = "regression"             # range strings such as 20-29 become their midpoint, 25
    loss = "l1"                     # regression: l1 (default), mse, smooth-l1
    scale = 80                      # learn age / 80 (default: standardised with the training mean and std)
    weight = 1.0                    # its share of the summed loss
    unit = "years"                  # shown with predictions

or, on the command line, `--set dataset.targets="gender:binary,age:regression"` (names and types only).
Without a declaration, every column but the image and split columns is a target, its type inferred
from its values. Every problem is a one-line ZooError naming the key, or the file, line and column.

What a declaration becomes, after reading the training split, is a JSON-able dict per head (the
model's info, saved with the run): classes in the order the head indexes them, the regression
scaling, and the training split's baseline (majority class, mean value) that the metrics compare to.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any, Iterable, Sequence

import torch
from zoo_core import ZooError

TYPES = ("binary", "multiclass", "regression")
LOSSES = {"binary": ("bce",), "multiclass": ("cross-entropy",), "regression": ("l1", "mse", "smooth-l1")}
KEYS = ("column", "type", "loss", "weight", "scale", "classes", "positive", "unit")
RESERVED = ("image",)  # `zoo predict --json` gives {"image": path, <head>: ...}
MAX_INFERRED_CLASSES = 50  # a text column with more distinct values is more likely an id than a label
TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "y", "t"), ("0", "false", "no", "n", "f")

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
_RANGE = re.compile(rf"^\s*({_NUMBER})\s*(?:-|–|to)\s*({_NUMBER})\s*$")
_OPEN = re.compile(rf"^\s*(?:(?:more than|over|above|>=?)\s*({_NUMBER})|({_NUMBER})\s*(?:\+|or more|and over|and above))\s*$",
                   re.IGNORECASE)
RANGE_HELP = "a number or a range such as 20-29 ('70+' and 'more than 70' for open ones)"


# ----------------------------------------------------------------------------------- numbers, ranges

def parse_number(text: str) -> tuple[float, float, bool] | None:
    """(low, high, open) for '27', '20-29' (low 20, high 29) or 'more than 70' (low 70, open); None when
    the text is neither. Inclusive integer ranges cover [low, high + 1): '20-29' holds everyone aged 20
    to just under 30, so its midpoint is 25."""
    try:
        v = float(text)
        return (v, v, False) if math.isfinite(v) else None
    except ValueError:
        pass
    m = _RANGE.match(text)
    if m:
        low, high = float(m.group(1)), float(m.group(2))
        return (low, high, False) if high >= low else None
    m = _OPEN.match(text)
    if m:
        return float(m.group(1) or m.group(2)), math.inf, True
    return None


def looks_like_a_range(text: str) -> bool:
    """Text someone meant as a number or range ('20-', '30-20', '20 - 29 - 39'): digits and dashes."""
    return bool(re.search(r"\d", text)) and bool(re.fullmatch(r"[\d\s.+\-–<>=a-zA-Z]*", text)) and any(
        c in text for c in "-–+<>")


def midpoints(values: Iterable[str]) -> dict[str, float]:
    """Each distinct number or range string of a column -> the number it stands for: a range its
    midpoint, an open range ('70+') its low end plus half the column's usual range width."""
    parsed = {v: parse_number(v) for v in set(values)}
    widths = sorted(_width(p) for p in parsed.values() if p is not None and not p[2] and p[1] > p[0])
    half = widths[len(widths) // 2] / 2 if widths else 0.0
    out = {}
    for text, p in parsed.items():
        if p is None:
            continue
        low, high, is_open = p
        out[text] = low + half if is_open else (low if high == low else low + _width(p) / 2)
    return out


def _width(p: tuple[float, float, bool]) -> float:
    low, high, _ = p
    return high - low + 1 if low.is_integer() and high.is_integer() else high - low


# ---------------------------------------------------------------------------------------- declaration

def parse_declaration(targets: Any, where: str = "dataset.targets") -> dict[str, dict[str, Any]]:
    """The user's declaration as {head: {key: value}}, shape-checked (columns and values come later):
    a TOML table of tables, or the compact "name[:type],name[:type]" string."""
    if targets is None:
        return {}
    if isinstance(targets, str):
        out: dict[str, dict[str, Any]] = {}
        for item in (s.strip() for s in targets.split(",")):
            if not item:
                continue
            name, _, kind = (s.strip() for s in item.partition(":"))
            if not name:
                raise ZooError(f"{where}: empty head name in {targets!r}; write name:type, e.g. age:regression")
            out[name] = {"type": kind} if kind else {}
        targets = out
    if isinstance(targets, (list, tuple)):
        targets = {str(name): {} for name in targets}
    if not isinstance(targets, dict) or not targets:
        raise ZooError(f"{where} must name at least one target: a table per head ([{where}.age] type = \"regression\") "
                       f"or \"age:regression,gender:binary\", got {targets!r}")
    out = {}
    for name, table in targets.items():
        key = f"{where}.{name}"
        if isinstance(table, str):  # age = "regression"
            table = {"type": table}
        if not isinstance(table, dict):
            raise ZooError(f"{key} must be a table (type, loss, weight, scale, ...) or a type name, got {table!r}")
        for k in table:
            if k not in KEYS:
                from difflib import get_close_matches

                close = get_close_matches(k, KEYS, n=1)
                raise ZooError(f"{key}: unknown key '{k}'{f' (did you mean {close[0]}?)' if close else ''}; "
                               f"keys: {', '.join(KEYS)}")
        spec = dict(table)
        if "type" in spec and spec["type"] not in TYPES:
            raise ZooError(f"{key}.type must be one of {', '.join(TYPES)}, got {spec['type']!r}")
        if "weight" in spec:
            spec["weight"] = _positive(spec["weight"], f"{key}.weight", allow_zero=True)
        if "scale" in spec:
            spec["scale"] = _positive(spec["scale"], f"{key}.scale")
        if "column" in spec and not isinstance(spec["column"], str):
            raise ZooError(f"{key}.column must be a column name, got {spec['column']!r}")
        if "classes" in spec and (not isinstance(spec["classes"], list) or len(spec["classes"]) < 2):
            raise ZooError(f"{key}.classes must be a list of at least 2 values, got {spec['classes']!r}")
        out[str(name)] = spec
    return out


def _positive(value: Any, key: str, allow_zero: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and (
        value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ZooError(f"{key} must be a {'non-negative' if allow_zero else 'positive'} number, got {value!r}")
    return float(value)


# ------------------------------------------------------------------------------------ resolved targets

def resolve_targets(declared: dict[str, dict[str, Any]], columns: dict[str, list[str]], where: str,
                    lines: Sequence[int] | None = None, train_rows: Sequence[int] | None = None,
                    where_key: str = "dataset.targets") -> list[dict[str, Any]]:
    """Declarations (or, when empty, every column) checked against the data's columns of raw strings:
    one dict per head with its type, classes or scaling, loss, weight and baseline. `lines` gives each
    row's line in the file for errors; `train_rows` the rows the scaling and baselines come from."""
    if not declared:
        declared = {name: {} for name in columns}
        if not declared:
            raise ZooError(f"{where}: no target columns besides the images; add one, e.g. age or label")
    lines = list(lines) if lines is not None else [i + 1 for i in range(len(next(iter(columns.values()), [])))]
    specs = []
    for name, decl in declared.items():
        key = f"{where_key}.{name}"
        if name in RESERVED:
            raise ZooError(f"{key}: '{name}' is reserved (predictions name the image with it); declare the head under "
                           f"another name with column = \"{name}\"")
        column = decl.get("column", name)
        if column not in columns:
            raise ZooError(f"{key}: {where} has no column '{column}' (its target columns: {', '.join(columns) or 'none'})")
        values = columns[column]
        kind = decl.get("type") or infer_type(values, column, where, lines)
        spec = {"name": name, "column": column, "type": kind, "weight": decl.get("weight", 1.0)}
        loss = decl.get("loss", LOSSES[kind][0])
        if loss not in LOSSES[kind]:
            raise ZooError(f"{key}.loss must be one of {', '.join(LOSSES[kind])} for a {kind} target, got {loss!r}")
        spec["loss"] = loss
        if "unit" in decl:
            spec["unit"] = str(decl["unit"])
        train = [values[i] for i in (train_rows if train_rows is not None else range(len(values)))]
        if kind == "regression":
            for k in ("classes", "positive"):
                if k in decl:
                    raise ZooError(f"{key}.{k} is for binary and multiclass targets, not regression")
            numbers = to_numbers(values, column, where, lines, f"declared regression in {key}")
            known = [numbers[i] for i in (train_rows if train_rows is not None else range(len(values)))
                     if not math.isnan(numbers[i])] or [v for v in numbers if not math.isnan(v)]
            if not known:
                raise ZooError(f"{key}: column '{column}' of {where} has no values")
            mean = sum(known) / len(known)
            std = math.sqrt(sum((v - mean) ** 2 for v in known) / len(known)) or 1.0
            scale = decl.get("scale")
            spec.update(shift=0.0 if scale else mean, scale=scale or std, baseline=mean)
        else:
            if "scale" in decl:
                raise ZooError(f"{key}.scale is for regression targets, not {kind}")
            spec["classes"] = class_list(values, kind, decl, column, where, key)
            counts = Counter(v for v in train if v)
            majority = max(spec["classes"], key=lambda c: (counts.get(c, 0), -spec["classes"].index(c)))
            spec["baseline"] = majority
            if kind == "multiclass" and all(parse_number(c) is not None for c in spec["classes"]):
                spec["midpoints"] = midpoints(spec["classes"])  # ordered classes (age ranges): MAE in their units
        specs.append(spec)
    return specs


def infer_type(values: Sequence[str], column: str, where: str, lines: Sequence[int]) -> str:
    """regression for numbers and ranges, binary for two distinct values, multiclass for a few more."""
    present = [v for v in values if v]
    distinct = set(present)
    if not present:
        raise ZooError(f"{where}: column '{column}' is empty; declare the targets to train on with "
                       "--set dataset.targets=NAME:TYPE,... or leave the column out")
    numeric = [v for v in present if parse_number(v) is not None]
    if len(distinct) == 2 and (len(numeric) < len(present) or distinct <= {"0", "1"}):
        return "binary"
    if len(numeric) * 2 > len(present):  # mostly numbers: the rest are typos to report, not classes
        to_numbers(values, column, where, lines, "regression, inferred from its other values")
        return "regression"
    if len(distinct) > MAX_INFERRED_CLASSES:
        raise ZooError(f"{where}: column '{column}' has {len(distinct)} distinct values, too many to guess it is a "
                       f"class label; declare it (--set dataset.targets=...) or declare only the columns to train on")
    return "binary" if len(distinct) == 2 else "multiclass"


def to_numbers(values: Sequence[str], column: str, where: str, lines: Sequence[int], why: str) -> list[float]:
    """Each cell as a number (a range as its midpoint); empty cells are NaN (missing, not learned)."""
    mids = midpoints(v for v in values if v)
    out = []
    for v, line in zip(values, lines):
        if not v:
            out.append(math.nan)
        elif v in mids:
            out.append(mids[v])
        else:
            hint = "" if looks_like_a_range(v) else "; declare the column binary or multiclass if it holds labels"
            raise ZooError(f"{where}:{line}: column '{column}' ({why}): {v!r} is not {RANGE_HELP}{hint}")
    return out


def class_list(values: Sequence[str], kind: str, decl: dict[str, Any], column: str, where: str, key: str) -> list[str]:
    """The classes in the order the head indexes them: as declared, else ranges and numbers by value
    (an ordered age-group column stays ordered), else sorted; binary: [negative, positive]."""
    present = sorted({v for v in values if v})
    if "classes" in decl:
        classes = [str(c) for c in decl["classes"]]
        unknown = [v for v in present if v not in classes]
        if unknown:
            raise ZooError(f"{key}.classes lacks {', '.join(map(repr, unknown[:5]))}, found in column '{column}' of {where}")
    elif all(parse_number(v) is not None for v in present):
        classes = sorted(present, key=lambda v: parse_number(v)[0])
    else:
        classes = present
    if kind == "binary":
        if len(classes) != 2:
            raise ZooError(f"{key} is binary but column '{column}' of {where} has {len(classes)} distinct value(s) "
                           f"({', '.join(classes[:6])}{', ...' if len(classes) > 6 else ''}); declare it multiclass")
        positive = decl.get("positive")
        if positive is None:
            positive = next((c for c in classes if c.lower() in TRUE_WORDS), classes[1])
        if str(positive) not in classes:
            raise ZooError(f"{key}.positive is {positive!r}, not one of the column's values {', '.join(classes)}")
        classes = [c for c in classes if c != str(positive)] + [str(positive)]
    elif "positive" in decl:
        raise ZooError(f"{key}.positive is for binary targets, not {kind}")
    elif len(classes) < 2:
        raise ZooError(f"{key}: column '{column}' of {where} has only {len(classes)} distinct value(s); a class "
                       "target needs at least 2")
    return classes


def check_against(reference: list[dict[str, Any]], columns: dict[str, list[str]], where: str) -> list[dict[str, Any]]:
    """At evaluation the trained model's heads win (classes indexed as learned, the same scaling and
    baselines); the data must hold each head's column."""
    missing = [r for r in reference if r["column"] not in columns]
    if missing:
        raise ZooError(f"{where}: no column {', '.join(repr(r['column']) for r in missing)} for the model's head(s) "
                       f"{', '.join(r['name'] for r in missing)} (its columns: {', '.join(columns) or 'none'})")
    return reference


# ----------------------------------------------------------------------------------------- encoding

def encode_class(spec: dict[str, Any], value: str, where: str) -> torch.Tensor:
    """One cell as the head's class index (-1: missing). A value the model's classes lack is an error
    naming where it is."""
    if not value:
        return torch.tensor(-1)
    if value not in spec["classes"]:
        raise ZooError(f"{where}: column '{spec['column']}': {value!r} is not one of the model's classes "
                       f"({', '.join(spec['classes'][:8])}{', ...' if len(spec['classes']) > 8 else ''})")
    return torch.tensor(spec["classes"].index(value))


def encode_rows(specs: list[dict[str, Any]], columns: dict[str, list[str]], where: str,
                lines: Sequence[int]) -> list[dict[str, torch.Tensor]]:
    """Every row's targets, {head: tensor}: class indices (-1: missing) and scaled numbers (NaN:
    missing), ranges read by the midpoints of the whole column."""
    numeric = {}
    for s in specs:
        if s["type"] == "regression":
            numeric[s["name"]] = to_numbers(columns[s["column"]], s["column"], where, lines, f"head {s['name']}, regression")
    rows = []
    for i, line in enumerate(lines):
        row = {}
        for s in specs:
            if s["type"] == "regression":
                v = numeric[s["name"]][i]
                row[s["name"]] = torch.tensor(v if math.isnan(v) else (v - s["shift"]) / s["scale"], dtype=torch.float32)
            else:
                row[s["name"]] = encode_class(s, columns[s["column"]][i], f"{where}:{line}")
        rows.append(row)
    return rows


def describe(specs: list[dict[str, Any]]) -> str:
    """'shape (multiclass, 4 classes), size (regression, l1)' for the log."""
    parts = []
    for s in specs:
        detail = f"{len(s['classes'])} classes" if s["type"] == "multiclass" else (
            f"positive {s['classes'][1]}" if s["type"] == "binary" else f"{s['loss']}, scale {s['scale']:.3g}")
        weight = "" if s["weight"] == 1 else f", weight {s['weight']:g}"
        parts.append(f"{s['name']} ({s['type']}, {detail}{weight})")
    return ", ".join(parts)

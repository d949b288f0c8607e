"""A search index: the embeddings of a gallery of images, their paths and the fingerprint of the model that
made them, in one safetensors file. Search is exact: one matrix product and torch.topk, which on a CPU
answers a gallery of 100,000 128-d embeddings in milliseconds; an approximate library (faiss, usearch) pays
off only for millions, and would be one more compiled dependency for everyone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import torch
from torch.nn import functional as F
from zoo_core import ZooError, atomic_write

FORMAT = "zoo-embed-index/1"


class Index:
    def __init__(self, embeddings: torch.Tensor, paths: list[str], fingerprint: str, model: str):
        self.embeddings, self.paths, self.fingerprint, self.model = embeddings.float(), list(paths), fingerprint, model

    def __len__(self) -> int:
        return len(self.paths)

    def search(self, queries: torch.Tensor, k: int) -> list[list[dict[str, Any]]]:
        """The k most similar gallery images of each query (cosine similarity), most similar first."""
        if not len(self):
            return [[] for _ in range(len(queries))]
        sims = F.normalize(queries.float(), dim=1) @ self.embeddings.T
        values, indices = sims.topk(min(k, len(self)), dim=1)
        return [[{"path": self.paths[i], "similarity": round(float(v), 6)} for v, i in zip(vs.tolist(), ix.tolist())]
                for vs, ix in zip(values, indices)]

    def add(self, embeddings: torch.Tensor, paths: list[str]) -> int:
        """Add images not in the index yet (by path); return how many were added."""
        known = set(self.paths)
        new = [i for i, p in enumerate(paths) if p not in known]
        if new:
            self.embeddings = torch.cat([self.embeddings, embeddings[new].float()])
            self.paths += [paths[i] for i in new]
        return len(new)

    def save(self, path: str | Path) -> Path:
        from safetensors.torch import save_file

        metadata = {"format": FORMAT, "fingerprint": self.fingerprint, "model": self.model, "paths": json.dumps(self.paths)}
        return atomic_write(Path(path), lambda p: save_file({"embeddings": self.embeddings.contiguous()}, str(p), metadata))

    @classmethod
    def load(cls, path: str | Path) -> "Index":
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise ZooError(f"{path}: no such index file (make one with: zoo index build RUN DIR -o {path})")
        try:
            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
                if meta.get("format") != FORMAT:
                    raise ValueError("not an index")
                embeddings = f.get_tensor("embeddings")
            paths = json.loads(meta["paths"])
        except (ValueError, KeyError, OSError, RuntimeError) as e:
            raise ZooError(f"{path}: not a zoo search index ({FORMAT}); make one with: zoo index build RUN DIR -o INDEX") from None
        if len(paths) != len(embeddings):
            raise ZooError(f"{path}: damaged index ({len(paths)} paths for {len(embeddings)} embeddings); build it again")
        return cls(embeddings, paths, meta.get("fingerprint", ""), meta.get("model", ""))

    def check_model(self, fingerprint: str | None, where: str) -> None:
        if not fingerprint or fingerprint != self.fingerprint:
            raise ZooError(f"{where}: built by another model ({self.model or 'unknown'}, weights {self.fingerprint[:8]}) than "
                           f"this one (weights {(fingerprint or 'unknown')[:8]}); rebuild it: zoo index build RUN DIR -o {where}")


_OPEN: dict[tuple[str, float], Index] = {}


def open_index(path: str | Path, info: dict[str, Any]) -> Index:
    """An index for the model whose `info` is given (its weights' fingerprint must match), read once."""
    p = Path(path)
    key = (str(p.resolve()), p.stat().st_mtime if p.is_file() else 0.0)
    if key not in _OPEN:
        _OPEN.clear()  # one index at a time: a server holds the one it was started with
        _OPEN[key] = Index.load(p)
    index = _OPEN[key]
    index.check_model(info.get("model_fingerprint"), str(path))
    return index


def embed_images(predictor, sources: Iterable[str | Path]) -> tuple[torch.Tensor, list[str], list[tuple[str, str]]]:
    """(embeddings, their absolute paths, skipped (path, reason)) of image files, folders (recursively) and
    globs, with a progress bar."""
    predictions, skipped = predictor.predict_paths(list(sources), progress=True)
    dim = int(predictor.info.get("embedding_dim", 0))
    embeddings = torch.tensor([p.embedding for p in predictions]) if predictions else torch.zeros(0, dim)
    return embeddings, [str(Path(p.source).resolve()) for p in predictions], skipped

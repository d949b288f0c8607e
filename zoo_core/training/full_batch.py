"""A linear head on cached features, fitted as the convex problem it is: full-batch L-BFGS with a strong
Wolfe line search on the mean loss plus an L2 penalty (weight_decay / 2 * |W|^2), the linear probe of the
literature (scikit-learn's LogisticRegression solves the same problem with the same method).

Why: a frozen backbone's features are a fixed design matrix and a linear head on them with cross-entropy
is a convex problem. Ten AdamW epochs of minibatches on unscaled features stop short of its optimum
(issue 23: 0.894 against 0.933 for scikit-learn's fit of the same features); L-BFGS reaches it in a few
dozen full-batch iterations, each a forward and backward of one linear layer. An epoch is one
`LBFGS.step` of up to ITERATIONS iterations over every cached feature (one batch), so validation,
checkpoints and --resume work per epoch as before; the optimizer's state (its curvature pairs) is in
the checkpoint like any other.

`--optimizer lbfgs` needs the head trained on features held in memory (--mode frozen --cache-features)
in one process; the CPU recipe (features.apply_cpu_recipe) chooses it when the head is one linear layer,
else it keeps AdamW (`resolve_optimizer`).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from ..base.errors import ZooError

ITERATIONS = 25  # L-BFGS iterations per epoch (10 epochs: 250, scikit-learn's default is 100 in all)
HISTORY = 20


def make_lbfgs(groups: list[dict[str, Any]], weight_decay: float) -> torch.optim.LBFGS:
    """One parameter group (L-BFGS has no per-group options); lr 1: the line search chooses each step.
    The group keeps the L2 weight as "weight_decay", as torch's other optimizers do (`step` reads it), so it
    is in the checkpoint with the rest of the optimizer's state."""
    params = [p for g in groups for p in g["params"]]
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=ITERATIONS, history_size=HISTORY, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-6, tolerance_change=1e-10)
    opt.param_groups[0]["weight_decay"] = weight_decay
    return opt


def is_linear(head: nn.Module) -> bool:
    """Whether the head is affine in its input: one weight matrix and at most one bias, and no layer
    that mixes them non-linearly (dropout is left out while fitting: the problem is deterministic)."""
    params = [p for p in head.parameters()]
    matrices = [p for p in params if p.dim() == 2]
    others = [p for p in params if p.dim() != 2]
    allowed = (nn.Linear, nn.Dropout, nn.Identity, nn.Flatten, nn.Sequential)
    return (len(matrices) == 1 and len(others) <= 1 and all(p.dim() == 1 for p in others)
            and all(isinstance(m, allowed) for m in head.modules()))


def resolve_optimizer(cfg: dict[str, Any], chosen_by_user: bool, head: nn.Module, processes: int) -> str | None:
    """Checks --optimizer lbfgs against the run; returns a note when the recipe's choice falls back to AdamW."""
    if cfg["optimizer"] != "lbfgs":
        return None
    problem = ("needs the head trained on cached features: --mode frozen --cache-features"
               if not (cfg["mode"] == "frozen" and cfg["cache_features"]) else
               "fits one linear head; this head is not one linear layer" if not is_linear(head) else
               "runs in one process (its line search would differ between processes)" if processes > 1 else "")
    if not problem:
        return None
    if chosen_by_user:
        raise ZooError(f"--optimizer lbfgs {problem}; use --optimizer adamw")
    cfg["optimizer"] = "adamw"
    return f"optimizer: AdamW (the CPU recipe's full-batch L-BFGS {problem})"


def step(opt: torch.optim.LBFGS, model: nn.Module, loss_of_batch: Callable[[], Any]):
    """One epoch's L-BFGS step on the full batch; returns the StepOutput of the last evaluation. The head
    runs in eval mode (no dropout: L-BFGS needs the same loss for the same weights)."""
    penalised = [p for g in opt.param_groups for p in g["params"] if p.dim() > 1]
    weight_decay = opt.param_groups[0].get("weight_decay", 0.0)
    last: list[Any] = []
    was_training = model.training
    model.eval()

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        out = loss_of_batch()
        loss = out.loss + 0.5 * weight_decay * sum((p * p).sum() for p in penalised)
        loss.backward()
        last[:] = [out]
        return loss.detach()

    try:
        opt.step(closure)
    finally:
        model.train(was_training)
    return last[0]

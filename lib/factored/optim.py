"""Optimizers and learning-rate schedules: which parameters each optimizer updates, at which lr, on which schedule.

Two recipes, named by the run config's `optimizer` field:

    adamw  AdamW on every parameter at `lr` (the authors' choice).
    muon   torch.optim.Muon on the hidden layers' 2-D weight matrices at `muon_lr` (default: `lr`), AdamW on
           everything else at `lr`.

The Muon rule: a parameter goes to Muon when it is a 2-D weight matrix that maps one hidden vector to another (a
transformer block's attention and MLP matrices, a recurrent layer's input and recurrent weights). Muon replaces
the update of such a matrix by its nearest semi-orthogonal matrix, which is meaningful for a linear map. The
embeddings stay on AdamW (a lookup table: each step touches only the rows of the tokens seen), as does the
unembedding (one row per output token, the same lookup seen from the other side), and so do biases and LayerNorm
gains (vectors, which Muon does not accept). `adjust_lr_fn="match_rms_adamw"` scales each matrix's step to the
RMS of a typical AdamW step, so `muon_lr` reads on AdamW's scale and the same schedule drives both.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# Top-level modules of every model (models.py) that read tokens in or write logits out: never Muon.
INPUT_OUTPUT = ("embed", "pos_embed", "unembed")


def muon_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(hidden 2-D weight matrices for Muon, every other parameter for AdamW), each in model order."""
    matrices, others = [], []
    for name, p in model.named_parameters():
        hidden = name.split(".")[0] not in INPUT_OUTPUT
        (matrices if hidden and p.ndim == 2 else others).append(p)
    return matrices, others


def make_optimizers(model: nn.Module, train) -> list[torch.optim.Optimizer]:
    """The optimizers of a `config.TrainConfig`: [AdamW] or [AdamW, Muon] (AdamW first, then Muon)."""
    adamw = dict(lr=train.lr, betas=(0.9, train.adam_beta2), weight_decay=train.weight_decay)
    if train.optimizer == "adamw":
        return [torch.optim.AdamW(model.parameters(), **adamw)]
    matrices, others = muon_parameters(model)
    muon = torch.optim.Muon(
        matrices,
        lr=train.lr if train.muon_lr is None else train.muon_lr,
        momentum=train.muon_momentum,
        weight_decay=train.weight_decay,
        adjust_lr_fn="match_rms_adamw",
    )
    return [torch.optim.AdamW(others, **adamw), muon]


def make_scheduler(optimizer: torch.optim.Optimizer, train):
    """The lr schedule of one optimizer: reduce-on-plateau of the windowed training loss (the authors'), or a
    linear warmup over `warmup_steps` followed by a cosine decay to 0 at the last step (cosine) or by the
    constant lr (constant); the last two are stepped once per step. Each lr is its optimizer's own times the same
    factor, so AdamW and Muon follow one schedule."""
    if train.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=train.plateau_factor, patience=train.plateau_patience
        )
    if train.schedule == "constant":
        warmup = max(1, train.warmup_steps)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: cosine_factor(step, train.warmup_steps, train.steps)
    )


def cosine_factor(step: int, warmup: int, total: int) -> float:
    """lr multiplier after `step` optimizer steps: (step + 1) / warmup during warmup, then cosine from 1 to 0."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

"""Sequence models with named activation sites: a GPT-2-style transformer and RNN/LSTM/GRU baselines.

One interface for every architecture (nanoGPT shape, TransformerLens names):

    model = build_model(ModelConfig(arch="transformer", d_model=120, n_layers=4), vocab_size=433, n_ctx=9)
    logits, acts = model(tokens, capture=["blocks.3.hook_resid_post"])   # tokens [B, T] -> logits [B, T, V]

`acts` maps each requested site to its activations [B, T, d]. Sites are identity `HookPoint` modules named by
where they sit in the model: for the transformer TransformerLens' names (`blocks.{l}.hook_resid_post`,
`ln_final.hook_normalized`), each holding what TransformerLens holds there (`lens` converts a trained
transformer to and from a `HookedTransformer`), and `rnn.{l}.hidden` (output of recurrent layer l) for the
recurrent nets. The requested sites travel down the forward pass in a plain dict, so capturing keeps no
global state, and the no-capture path costs one `is None` check per hook and traces cleanly under
`torch.compile(fullgraph=True)`. Captured tensors are the live activations (not detached, not copied).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, replace
from dataclasses import fields as dataclass_fields

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ARCHS, ModelConfig

# Sequences per forward pass where no gradient is kept (evaluation, probing): on a CPU a pass over 4,096 sequences of
# the canonical transformer runs about 30% slower per sequence than passes over 1,024 (its activations outgrow the
# cache; benchmarks/results.md), and smaller chunks gain nothing more.
INFERENCE_BATCH = 1024

# A capture request: site name -> None until that site's hook fills it in with its activations.
Cache = dict[str, Tensor | None]


class HookPoint(nn.Module):
    """Identity module marking a named activation site; stores its input when the site was requested."""

    def __init__(self) -> None:
        super().__init__()
        self.name = ""  # set by SiteModel._name_hooks from the module tree, e.g. "blocks.3.hook_resid_post"

    def forward(self, x: Tensor, cache: Cache | None = None) -> Tensor:
        if cache is not None and self.name in cache:
            cache[self.name] = x
        return x


class SiteModel(nn.Module):
    """Shared front end: names the hook points, validates inputs and capture requests, returns the cache."""

    uses_bos: bool
    default_site: str

    def __init__(self, config: ModelConfig, vocab_size: int, n_ctx: int) -> None:
        super().__init__()
        self.config = config
        self.vocab_size = vocab_size
        self.n_ctx = n_ctx

    def _name_hooks(self) -> None:
        self.sites: list[str] = []
        for name, module in self.named_modules():
            if isinstance(module, HookPoint):
                module.name = name
                self.sites.append(name)

    def forward(self, tokens: Tensor, capture: Sequence[str] = ()) -> tuple[Tensor, dict[str, Tensor]]:
        """tokens: [B, T] int64 with T <= n_ctx -> (logits [B, T, vocab], {site: activations [B, T, d]})."""
        if tokens.dim() != 2:
            raise ValueError(f"tokens: must be [batch, seq] (2-D), got shape {tuple(tokens.shape)}")
        if tokens.shape[1] > self.n_ctx:
            raise ValueError(f"tokens: sequence length must be <= n_ctx={self.n_ctx}, got {tokens.shape[1]}")
        if isinstance(capture, str):
            capture = (capture,)
        cache: Cache | None = None
        if capture:
            unknown = [s for s in capture if s not in self.sites]
            if unknown:
                raise ValueError(f"capture: unknown site(s) {unknown}; valid sites are {self.sites}")
            cache = dict.fromkeys(capture)
        logits = self._forward(tokens, cache)
        return logits, ({} if cache is None else cache)

    def _forward(self, tokens: Tensor, cache: Cache | None) -> Tensor:
        raise NotImplementedError


# ----------------------------------------------------------------------------------------------------------
# Transformer


class LayerNorm(nn.LayerNorm):
    """nn.LayerNorm with the site `<name>.hook_normalized` where TransformerLens has it: the centred input divided
    by its scale sqrt(mean(x_centred^2) + eps), before the affine map; the output is that times weight plus bias.

    x: [B, T, D] -> [B, T, D]. The same parameters (weight, bias) and the same output as nn.LayerNorm."""

    def __init__(self, d_model: int) -> None:
        super().__init__(d_model)
        self.hook_normalized = HookPoint()

    def forward(self, x: Tensor, cache: Cache | None = None) -> Tensor:
        normalized = self.hook_normalized(F.layer_norm(x, self.normalized_shape, eps=self.eps), cache)
        return normalized * self.weight + self.bias


class CausalSelfAttention(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)  # fused: one matmul for q, k and v
        self.proj = nn.Linear(config.d_model, config.d_model)

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, T, D] -> [B, T, D]."""
        B, T, D = x.shape
        # [B, T, 3, H, Dh] -> three [B, H, T, Dh] views, no copies before SDPA
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4).unbind(0)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(B, T, D))


class MLP(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(config.d_model, config.d_mlp)
        self.proj = nn.Linear(config.d_mlp, config.d_model)
        self.relu = config.act == "relu"

    def forward(self, x: Tensor) -> Tensor:
        h = self.fc(x)
        # in place: relu on a fresh [B, T, d_mlp] buffer costs ~10x more on CPU (allocation), and autograd
        # needs only relu's output here (addmm does not keep its own)
        return self.proj(F.relu(h, inplace=True) if self.relu else F.gelu(h))


class Block(nn.Module):
    """Pre-LN block: mid = pre + attn(ln1(pre)); post = mid + mlp(ln2(mid))."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(config.d_model)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.d_model)
        self.mlp = MLP(config)
        self.hook_resid_pre = HookPoint()
        self.hook_resid_mid = HookPoint()
        self.hook_resid_post = HookPoint()

    def forward(self, x: Tensor, cache: Cache | None = None) -> Tensor:
        x = self.hook_resid_pre(x, cache)
        x = self.hook_resid_mid(x + self.attn(self.ln1(x)), cache)
        return self.hook_resid_post(x + self.mlp(self.ln2(x)), cache)


class Transformer(SiteModel):
    """GPT-2-style decoder: token + learned position embeddings, pre-LN blocks, final LN, untied unembed."""

    uses_bos = True

    def __init__(self, config: ModelConfig, vocab_size: int, n_ctx: int) -> None:
        super().__init__(config, vocab_size, n_ctx)
        self.embed = nn.Embedding(vocab_size, config.d_model)
        self.pos_embed = nn.Embedding(n_ctx, config.d_model)
        self.hook_embed = HookPoint()
        self.hook_pos_embed = HookPoint()
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_final = LayerNorm(config.d_model)
        self.unembed = nn.Linear(config.d_model, vocab_size)
        self.default_site = f"blocks.{config.n_layers - 1}.hook_resid_post"
        if config.init != "torch":  # torch: keep the defaults the modules were built with
            std = INIT_STD[config.init](config.d_model)
            self.apply(lambda module: _init_normal(module, std))
        _init_embeddings((self.embed, self.pos_embed), config.embed_std)
        self._name_hooks()

    def _forward(self, tokens: Tensor, cache: Cache | None) -> Tensor:
        B, T = tokens.shape
        embed = self.hook_embed(self.embed(tokens), cache)
        pos = self.pos_embed(torch.arange(T, device=tokens.device)).expand(B, T, -1)  # a view: [B, T, D]
        x = embed + self.hook_pos_embed(pos, cache)
        for block in self.blocks:
            x = block(x, cache)
        return self.unembed(self.ln_final(x, cache))


# The weight std of each normal init scheme, as a function of d_model (see config.ModelConfig).
INIT_STD = {"tl": lambda d_model: 0.8 / math.sqrt(d_model), "gpt2": lambda d_model: 0.02}


def _init_normal(module: nn.Module, std: float) -> None:
    # every weight matrix and embedding ~ N(0, std), biases 0; LayerNorm keeps (1, 0).
    if isinstance(module, nn.Linear | nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=std)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def _init_embeddings(embeddings: Sequence[nn.Embedding], std: float | None) -> None:
    """embed_std: the embeddings' own scale, independent of the rest of the init (None: leave them)."""
    if std is not None:
        for embedding in embeddings:
            nn.init.normal_(embedding.weight, mean=0.0, std=std)


# ----------------------------------------------------------------------------------------------------------
# Recurrent nets

_CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
_GATES = {"rnn": 1, "lstm": 4, "gru": 3}  # gate blocks stacked in weight_hh_l0 ([gates * H, H])


class RecurrentLayer(nn.Module):
    """One single-layer torch RNN/LSTM/GRU, so each layer's output sequence is the site `rnn.{l}.hidden`."""

    def __init__(self, arch: str, d_in: int, d_hidden: int) -> None:
        super().__init__()
        self.cell = _CELLS[arch](d_in, d_hidden, batch_first=True)  # nn.RNN is tanh by default
        self.hidden = HookPoint()
        _init_recurrent(self.cell, _GATES[arch], d_hidden, forget_bias=arch == "lstm")

    def forward(self, x: Tensor, cache: Cache | None = None) -> Tensor:
        """x: [B, T, d_in] -> hidden states [B, T, d_hidden], from a zero initial state."""
        return self.hidden(self.cell(x)[0], cache)


def _init_recurrent(cell: nn.RNNBase, n_gates: int, d_hidden: int, forget_bias: bool) -> None:
    """The authors' init: xavier-uniform input weights, orthogonal recurrent weights, zero biases.

    weight_hh stacks one [H, H] matrix per gate (LSTM i, f, g, o; GRU r, z, n): each is made orthogonal on
    its own. LSTM forget bias 1 goes in bias_ih only, so the effective forget bias (bias_ih + bias_hh) is 1.
    """
    with torch.no_grad():
        nn.init.xavier_uniform_(cell.weight_ih_l0)
        for gate in cell.weight_hh_l0.split(d_hidden, dim=0):
            nn.init.orthogonal_(gate)
        nn.init.zeros_(cell.bias_ih_l0)
        nn.init.zeros_(cell.bias_hh_l0)
        if forget_bias:
            cell.bias_ih_l0[d_hidden : 2 * d_hidden] = 1.0


class RecurrentNet(SiteModel):
    """Token embedding -> n_layers stacked recurrent layers (width d_model) -> linear readout. No BOS."""

    uses_bos = False

    def __init__(self, config: ModelConfig, vocab_size: int, n_ctx: int) -> None:
        super().__init__(config, vocab_size, n_ctx)
        self.embed = nn.Embedding(vocab_size, config.d_model)  # torch default init N(0, 1) unless embed_std
        self.rnn = nn.ModuleList(
            RecurrentLayer(config.arch, config.d_model, config.d_model) for _ in range(config.n_layers)
        )
        self.unembed = nn.Linear(config.d_model, vocab_size)  # torch default init
        _init_embeddings((self.embed,), config.embed_std)
        self.default_site = f"rnn.{config.n_layers - 1}.hidden"
        self._name_hooks()

    def _forward(self, tokens: Tensor, cache: Cache | None) -> Tensor:
        x = self.embed(tokens)
        for layer in self.rnn:
            x = layer(x, cache)
        return self.unembed(x)


# ----------------------------------------------------------------------------------------------------------


def build_model(config: ModelConfig | None = None, vocab_size: int = 433, n_ctx: int = 9, **fields) -> SiteModel:
    """Build the model a `config.ModelConfig` describes (default: the paper's transformer and init), with any of
    its fields overridden by name (`build_model(arch="lstm", d_model=32)`); `vocab_size` and `n_ctx` come from
    the data. `build_model(**model_config(model))` rebuilds a model. Raises ValueError naming the bad parameter.
    """
    for name, value in (("vocab_size", vocab_size), ("n_ctx", n_ctx)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int (>= 1), got {value!r}")
    unknown = sorted(set(fields) - {f.name for f in dataclass_fields(ModelConfig)})
    if unknown:
        raise ValueError(
            f"unknown model field {unknown[0]!r}; valid: {[f.name for f in dataclass_fields(ModelConfig)]}"
        )
    config = replace(config or ModelConfig(), **fields)  # checks every field
    return (Transformer if config.arch == "transformer" else RecurrentNet)(config, vocab_size, n_ctx)


# ----------------------------------------------------------------------------------------------------------
# Where a model runs and what it reads: both depend on the model alone, so training and analysis share them.


def pick_device(requested: str = "auto") -> torch.device:
    """cuda > mps > cpu for "auto"; an explicit request that this machine cannot honour is an error."""
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available(),
    }
    if requested == "auto":
        return torch.device(next(d for d in ("cuda", "mps", "cpu") if available[d]))
    if not available.get(requested, False):
        raise ValueError(f"device {requested!r} is not available here; choose 'auto' or 'cpu'")
    return torch.device(requested)


def model_config(model: SiteModel) -> dict:
    """The keyword arguments of build_model that made `model` (for self-describing checkpoints)."""
    return {**asdict(model.config), "vocab_size": model.vocab_size, "n_ctx": model.n_ctx}


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = [
    "ARCHS",
    "HookPoint",
    "ModelConfig",
    "RecurrentNet",
    "SiteModel",
    "Transformer",
    "build_model",
    "model_config",
    "n_params",
    "pick_device",
]


def __getattr__(name: str):
    """The framing of token sequences into inputs and targets lives beside the token codec, in `products`; it is
    still found here, where older callers look for it."""
    if name in ("inputs_and_targets", "target_positions"):
        from . import products

        return getattr(products, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

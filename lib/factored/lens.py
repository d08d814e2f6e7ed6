"""TransformerLens interop: a trained transformer of ours becomes a `transformer_lens.HookedTransformer`, and back.

    hooked = lens.to_hooked(run.load_model())        # logits and every shared site equal within float32 error
    logits, cache = hooked.run_with_cache(inputs)    # inputs: [B, T] with our BOS first, as the model was trained
    model = lens.from_hooked(hooked)                 # a HookedTransformer of our shape -> our Transformer

Our transformer and a `HookedTransformer` built from `hooked_config` compute the same function: pre-LN blocks
(mid = pre + attn(ln1(pre)), post = mid + mlp(ln2(mid))), learned absolute positions, LayerNorm with eps 1e-5,
causal attention scaled by 1/sqrt(d_head), biases everywhere, an untied unembedding with a bias. The conversion
only renames, reshapes and transposes weights; TransformerLens' weight processing (fold_ln,
center_writing_weights, center_unembed, which `from_pretrained` applies) is never applied, so the sites
`hook_embed`, `hook_pos_embed`, `blocks.{l}.hook_resid_pre/mid/post` and `ln_final.hook_normalized` hold the same
values in both (the last is x_centred / scale, before the LayerNorm's affine map, in both). BOS is our own token
(the last id of the vocabulary), already in the inputs: the config sets `default_prepend_bos=False` and no
tokenizer. Activation "gelu" is torch's exact (erf) GELU in both (TransformerLens' tanh approximations are
"gelu_new" and "gelu_pytorch_tanh", which have no counterpart here and are refused).

Only the transformer converts: the recurrent nets (rnn, lstm, gru) have no TransformerLens counterpart.
Weights: ours qkv.weight [3 D, D] (rows ordered as view(3, H, Dh)) <-> W_Q, W_K, W_V [H, D, Dh] and b_Q, b_K, b_V
[H, Dh]; attn.proj.weight [D, D] <-> W_O [H, Dh, D]; mlp.fc / mlp.proj <-> W_in [D, d_mlp] / W_out [d_mlp, D];
embed <-> W_E [V, D]; pos_embed <-> W_pos [n_ctx, D]; unembed <-> W_U [D, V], b_U [V].
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import fields

import numpy as np
import torch
from torch import Tensor
from transformer_lens import HookedTransformer, HookedTransformerConfig

from .config import ModelConfig
from .models import SiteModel, Transformer, build_model
from .products import add_bos

# Our activations by the name TransformerLens gives the same function (both "gelu": torch's exact erf GELU).
ACT_FNS = {"relu": "relu", "gelu": "gelu"}

# HookedTransformerConfig fields that do not change what the model computes (names, devices, init, bookkeeping,
# which optional hooks exist), so a HookedTransformer may set them as it likes and still convert.
_BOOKKEEPING = frozenset(
    {
        "model_name",
        "device",
        "n_devices",
        "seed",
        "init_weights",
        "init_mode",
        "initializer_range",
        "tokenizer_name",
        "tokenizer_prepends_bos",
        "default_prepend_bos",
        "trust_remote_code",
        "n_params",
        "dtype",
        "from_checkpoint",
        "checkpoint_index",
        "checkpoint_label_type",
        "checkpoint_value",
        "use_attn_result",
        "use_split_qkv_input",
        "use_attn_in",
        "use_hook_mlp_in",
        "use_hook_tokens",
        "original_architecture",
    }
)


def _transformer(model: SiteModel) -> Transformer:
    if not isinstance(model, Transformer):
        raise ValueError(
            f"only the transformer converts to a HookedTransformer; got {type(model).__name__} "
            f"(arch {model.config.arch!r}): recurrent nets have no TransformerLens counterpart"
        )
    return model


def hooked_config(model: SiteModel) -> HookedTransformerConfig:
    """The HookedTransformerConfig of our transformer's shape: d_model, n_layers, n_heads, d_head, d_mlp, d_vocab,
    n_ctx, act_fn, LayerNorm (eps 1e-5), standard positions, no BOS prepended, on the model's device."""
    c = _transformer(model).config
    return HookedTransformerConfig(
        d_model=c.d_model,
        n_layers=c.n_layers,
        n_heads=c.n_heads,
        d_head=c.d_model // c.n_heads,
        d_mlp=c.d_mlp,
        d_vocab=model.vocab_size,
        n_ctx=model.n_ctx,
        act_fn=ACT_FNS[c.act],
        normalization_type="LN",
        positional_embedding_type="standard",
        eps=model.ln_final.eps,
        default_prepend_bos=False,
        init_weights=False,  # every weight is loaded next
        device=str(next(model.parameters()).device),
    )


def hooked_state_dict(model: SiteModel) -> dict[str, Tensor]:
    """Our transformer's weights under TransformerLens' names and shapes (copies, float32)."""
    m = _transformer(model)
    H, D = m.config.n_heads, m.config.d_model
    out = {
        "embed.W_E": m.embed.weight,
        "pos_embed.W_pos": m.pos_embed.weight,
        "ln_final.w": m.ln_final.weight,
        "ln_final.b": m.ln_final.bias,
        "unembed.W_U": m.unembed.weight.T,
        "unembed.b_U": m.unembed.bias,
    }
    for i, block in enumerate(m.blocks):
        p = f"blocks.{i}."
        w = block.attn.qkv.weight.view(3, H, D // H, D).transpose(2, 3)  # [3, H, D, Dh]
        b = block.attn.qkv.bias.view(3, H, D // H)
        for j, name in enumerate("QKV"):
            out[f"{p}attn.W_{name}"], out[f"{p}attn.b_{name}"] = w[j], b[j]
        out[f"{p}attn.W_O"] = block.attn.proj.weight.T.reshape(H, D // H, D)
        out[f"{p}attn.b_O"] = block.attn.proj.bias
        out[f"{p}mlp.W_in"], out[f"{p}mlp.b_in"] = block.mlp.fc.weight.T, block.mlp.fc.bias
        out[f"{p}mlp.W_out"], out[f"{p}mlp.b_out"] = block.mlp.proj.weight.T, block.mlp.proj.bias
        for ln in ("ln1", "ln2"):
            out[f"{p}{ln}.w"], out[f"{p}{ln}.b"] = getattr(block, ln).weight, getattr(block, ln).bias
    return {k: v.detach().float().contiguous().clone() for k, v in out.items()}


def to_hooked(model: SiteModel) -> HookedTransformer:
    """Our trained transformer as a HookedTransformer (eval mode, float32, on the model's device). Raises
    ValueError for a recurrent net."""
    with warnings.catch_warnings():  # 3.x deprecates it for 4.0 (which removes it): requirements pin < 4
        warnings.filterwarnings("ignore", "HookedTransformer is deprecated", DeprecationWarning)
        hooked = HookedTransformer(hooked_config(model))
    state = hooked.state_dict()  # buffers (masks) as TransformerLens made them
    weights = hooked_state_dict(model)
    missing = sorted(k for k, _ in hooked.named_parameters() if k not in weights)
    if missing:  # a TransformerLens version with parameters we do not know: refuse rather than keep random ones
        raise ValueError(f"this TransformerLens has parameters with no counterpart in our transformer: {missing}")
    hooked.load_state_dict(state | weights, strict=True)
    return hooked.eval()


def check_hooked(hooked: HookedTransformer) -> None:
    """Raise one ValueError naming every config field of `hooked` that makes it compute something our transformer
    cannot (another normalisation, positional scheme, activation, attention variant...); return None if it can."""
    cfg = hooked.cfg
    if cfg.act_fn not in ACT_FNS.values():
        raise ValueError(f"act_fn must be one of {sorted(set(ACT_FNS.values()))} to convert, got {cfg.act_fn!r}")
    if cfg.d_mlp is None or cfg.n_heads * cfg.d_head != cfg.d_model:
        raise ValueError(
            f"need an MLP and n_heads * d_head == d_model to convert, got d_mlp={cfg.d_mlp}, "
            f"n_heads={cfg.n_heads}, d_head={cfg.d_head}, d_model={cfg.d_model}"
        )
    expected = HookedTransformerConfig(
        d_model=cfg.d_model,
        n_layers=cfg.n_layers,
        n_heads=cfg.n_heads,
        d_head=cfg.d_head,
        d_mlp=cfg.d_mlp,
        d_vocab=cfg.d_vocab,
        n_ctx=cfg.n_ctx,
        act_fn=cfg.act_fn,
        normalization_type="LN",
        positional_embedding_type="standard",
        eps=1e-5,
    )
    differ = [
        f"{f.name}={getattr(cfg, f.name)!r} (need {getattr(expected, f.name)!r})"
        for f in fields(expected)
        if f.name not in _BOOKKEEPING and getattr(cfg, f.name) != getattr(expected, f.name)
    ]
    if differ:
        raise ValueError(f"this HookedTransformer computes what our transformer cannot: {', '.join(differ)}")


def from_hooked(hooked: HookedTransformer, init: str = "tl") -> Transformer:
    """A HookedTransformer of our shape (see `check_hooked`) as our Transformer, on its device, in eval mode.

    `init` is only recorded in the model's config (how a run of ours would have started it); the weights are
    hooked's. Raises ValueError, naming the fields, when hooked computes something ours cannot."""
    check_hooked(hooked)
    cfg = hooked.cfg
    model_cfg = ModelConfig("transformer", cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.d_mlp, cfg.act_fn, init)
    model = build_model(model_cfg, vocab_size=cfg.d_vocab, n_ctx=cfg.n_ctx)
    device = next(hooked.parameters()).device
    model.to(device).load_state_dict(our_state_dict(hooked), strict=True)
    return model.eval()


def our_state_dict(hooked: HookedTransformer) -> dict[str, Tensor]:
    """The inverse of `hooked_state_dict`: hooked's weights under our names and shapes (copies, float32)."""
    p = {k: v.detach().float() for k, v in hooked.named_parameters()}
    D = p["embed.W_E"].shape[1]
    out = {
        "embed.weight": p["embed.W_E"],
        "pos_embed.weight": p["pos_embed.W_pos"],
        "ln_final.weight": p["ln_final.w"],
        "ln_final.bias": p["ln_final.b"],
        "unembed.weight": p["unembed.W_U"].T,
        "unembed.bias": p["unembed.b_U"],
    }
    for i in range(hooked.cfg.n_layers):
        h = o = f"blocks.{i}."
        qkv = torch.stack([p[f"{h}attn.W_{n}"] for n in "QKV"])  # [3, H, D, Dh]
        out[f"{o}attn.qkv.weight"] = qkv.transpose(2, 3).reshape(3 * D, D)
        out[f"{o}attn.qkv.bias"] = torch.stack([p[f"{h}attn.b_{n}"] for n in "QKV"]).reshape(3 * D)
        out[f"{o}attn.proj.weight"] = p[f"{h}attn.W_O"].reshape(D, D).T
        out[f"{o}attn.proj.bias"] = p[f"{h}attn.b_O"]
        out[f"{o}mlp.fc.weight"], out[f"{o}mlp.fc.bias"] = p[f"{h}mlp.W_in"].T, p[f"{h}mlp.b_in"]
        out[f"{o}mlp.proj.weight"], out[f"{o}mlp.proj.bias"] = p[f"{h}mlp.W_out"].T, p[f"{h}mlp.b_out"]
        for ln in ("ln1", "ln2"):
            out[f"{o}{ln}.weight"], out[f"{o}{ln}.bias"] = p[f"{h}{ln}.w"], p[f"{h}{ln}.b"]
    return {k: v.contiguous().clone() for k, v in out.items()}


def shared_sites(model: SiteModel, hooked: HookedTransformer) -> list[str]:
    """Our sites that the HookedTransformer has under the same name (all of ours, for a converted model)."""
    return [s for s in model.sites if s in hooked.hook_dict]


@torch.no_grad()
def site_differences(
    model: SiteModel, hooked: HookedTransformer, inputs: Tensor, sites: Sequence[str] | None = None
) -> dict[str, float]:
    """Largest |ours - TransformerLens'| of the logits and of each site (default: every shared site) on the same
    inputs [B, T] (BOS included where the model reads it), hooked's through `run_with_cache`. {name: max abs}."""
    sites = shared_sites(model, hooked) if sites is None else list(sites)
    logits, ours = model(inputs, capture=sites)
    theirs_logits, cache = hooked.run_with_cache(inputs, names_filter=sites)
    out = {"logits": (logits - theirs_logits).abs().max().item()}
    return out | {s: (ours[s] - cache[s]).abs().max().item() for s in sites}


@torch.no_grad()
def activations(hooked: HookedTransformer, process, tokens: Tensor, site: str, batch_size: int = 4096) -> np.ndarray:
    """`probing.activations` through TransformerLens: activations at `site` from `run_with_cache`, BOS dropped.

    tokens [B, L] (a process's tokens, no BOS) -> float32 [B, L-1, d]; position p pairs with beliefs[:, p + 1]."""
    if site not in hooked.hook_dict:
        raise ValueError(f"site must be one of this HookedTransformer's hook names, got {site!r}")
    device = next(hooked.parameters()).device
    out = []
    for start in range(0, len(tokens), batch_size):
        inputs = add_bos(process, tokens[start : start + batch_size].to(device))[:, :-1]
        _, cache = hooked.run_with_cache(inputs, names_filter=[site])
        out.append(cache[site][:, 1:].float().cpu().numpy())
    return np.concatenate(out)

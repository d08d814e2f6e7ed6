"""Run configuration: the dataclasses for data, model and training, each checking its own fields; the rules
between fields; the stable hash that names a run's folder; and building a config from a profile.

A run is fully described by a `RunConfig`; its stable hash names the run folder, so the same config always
maps to the same folder (and resumes there) while any change of a field that affects results starts a new one.
Profiles (`profiles.py`) are named starting points; notebooks and papermill override single fields on top of
them (`make_config`; a notebook's parameters through `parameters.from_parameters`). Every field is converted to
its declared type (an int given for a float field becomes a float: `noise=0` and `noise=0.0` are one run) and
checked when a part is built, so a config that exists is valid; one ValueError names the first bad field and its
allowed range.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from . import structures
from .profiles import PROFILE_RECORDS, resolve_profile

ARCHS = ("transformer", "rnn", "lstm", "gru")
STRUCTURES = tuple(structures.STRUCTURES)
ACTIVATIONS = ("relu", "gelu")
DEVICES = ("auto", "cpu", "cuda", "mps")
INITS = ("tl", "gpt2", "torch")
SCHEDULES = ("plateau", "cosine", "constant")
OPTIMIZERS = ("adamw", "muon")
TARGETS = ("tokens", "law")
NOT_HASHED = ("device", "compile", "checkpoint_every", "log_every")  # TrainConfig fields: speed, bookkeeping
TRANSFORMER_ONLY = ("n_heads", "d_mlp", "act", "init")  # ModelConfig fields a recurrent net does not use
RECURRENT_DEFAULTS = {"d_model": 32, "n_layers": 2}  # the authors' recurrent nets


# ------------------------------------------------------------------------------------------- field rules
def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _number_in(low: float, high: float, closed: str = "[]") -> tuple[Callable[[Any], bool], str]:
    """A rule for a number in an interval, closed on the sides `closed` names ("[]", "(]", "[)", "()")."""
    above = (lambda v: v >= low) if closed[0] == "[" else (lambda v: v > low)
    below = (lambda v: v <= high) if closed[1] == "]" else (lambda v: v < high)
    return (lambda v: is_number(v) and above(v) and below(v)), f"a number in {closed[0]}{low:g}, {high:g}{closed[1]}"


def _int_in(low: int, high: int, text: str = "") -> tuple[Callable[[Any], bool], str]:
    return (lambda v: is_int(v) and low <= v <= high), f"an integer in [{text or f'{low}, {high}'}]"


def _one_of(options: tuple) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v in options), f"one of {options}"


def _optional(rule: tuple[Callable[[Any], bool], str]) -> tuple[Callable[[Any], bool], str]:
    ok, text = rule
    return (lambda v: v is None or ok(v)), f"None or {text}"


# Every field's own rule: (is it allowed?, what is allowed). Rules between fields are in `cross_field_rules`.
FIELD_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    # data
    "structure": _one_of(STRUCTURES),
    "noise": _number_in(0, 1),
    "seq_len": _int_in(1, 512),
    "n_mess3": ((lambda v: is_int(v) and 0 <= v <= 8), "an integer in [0, 8] (0: the paper's five factors)"),
    "mess3_x": _number_in(0, 0.5, "(]"),
    "mess3_a": _number_in(0, 1),
    # model
    "arch": _one_of(ARCHS),
    "act": _one_of(ACTIVATIONS),
    **{name: _int_in(1, 65536) for name in ("d_model", "n_layers", "n_heads", "d_mlp")},
    "init": _one_of(INITS),
    "embed_std": _optional(_number_in(0, 100, "(]")),
    # training
    "steps": _int_in(0, 10**8, "0, 1e8"),
    "batch_size": _int_in(1, 10**7, "1, 1e7"),
    "eval_batch_size": _int_in(1, 10**7, "1, 1e7"),
    "lr": _number_in(0, 1, "(]"),
    "weight_decay": _number_in(0, 1),
    "schedule": _one_of(SCHEDULES),
    "warmup_steps": _int_in(0, 10**8, "0, steps"),
    "adam_beta2": _number_in(0, 1, "()"),
    "optimizer": _one_of(OPTIMIZERS),
    "target": _one_of(TARGETS),
    "muon_lr": _optional(_number_in(0, 1, "(]")),
    "muon_momentum": _number_in(0, 1, "[)"),
    "plateau_factor": _number_in(0, 1, "()"),
    "plateau_patience": ((lambda v: is_int(v) and v >= 0), "an integer >= 0"),
    "plateau_window": ((lambda v: is_int(v) and v >= 1), "an integer >= 1"),
    "seed": ((lambda v: is_int(v) and 0 <= v < 2**63), "an integer in [0, 2**63)"),
    "device": _one_of(DEVICES),
    "compile": ((lambda v: isinstance(v, bool)), "True or False"),
    "checkpoint_every": ((lambda v: is_int(v) and v >= 0), "an integer >= 0"),
    "log_every": ((lambda v: is_int(v) and v >= 0), "an integer >= 0"),
}


def require(ok: bool, param: str, allowed: str, value: Any) -> None:
    """Raise the one error every bad value gets: `<param> must be <allowed>, got <value>`."""
    if not ok:
        raise ValueError(f"{param} must be {allowed}, got {value!r}")


def check_field(name: str, value: Any) -> None:
    """Check one run field's value by its own rule (FIELD_RULES), alone."""
    ok, allowed = FIELD_RULES[name]
    require(ok(value), name, allowed, value)


class _Part:
    """Shared by the three parts: convert ints given for float fields, then check every field's own rule."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if str(f.type).startswith("float") and is_int(value):
                object.__setattr__(self, f.name, float(value))
            check_field(f.name, getattr(self, f.name))


@dataclass(frozen=True)
class DataConfig(_Part):
    """The five-factor process and the sequences drawn from it."""

    structure: str = "independent"  # independent | chain (hidden dependencies)
    noise: float = 0.0  # eps: probability that a joint token is replaced by a uniform one
    seq_len: int = 8  # tokens per sequence after BOS
    n_mess3: int = 0  # 0: the paper's five factors; N in [1, 8]: N independent Mess3(mess3_x, mess3_a) factors
    mess3_x: float = 0.15  # the n_mess3 factors' Mess3 parameters (the paper's 0.15, 0.6 by default); a sharper
    mess3_a: float = 0.6  # process (small x, large a) makes the noisy law further from a product (notebook 01)


@dataclass(frozen=True)
class ModelConfig(_Part):
    """Architecture and initialisation: the one description of a model, used by runs and by `models.build_model`.

    Defaults are the paper's transformer with the authors' init. Recurrent nets use d_model as their hidden
    width and ignore n_heads, d_mlp, act and init (they keep the authors' recurrent init), but not embed_std.
    Vocabulary size and context length come from the data, so they are arguments of build_model, not fields.

    init: how weights start (biases 0, LayerNorm (1, 0) for tl and gpt2):
      tl     every weight matrix and embedding N(0, 0.8/sqrt(d_model)): TransformerLens' default, the authors'
      gpt2   every weight matrix and embedding N(0, 0.02)
      torch  PyTorch's defaults: embeddings N(0, 1), Linear weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    embed_std: if set, the token and position embeddings are N(0, embed_std) whatever `init` says, so the
      embedding scale can be studied apart from the rest.
    A transformer's heads divide its width (checked here: a model config is valid on its own).
    """

    arch: str = "transformer"
    d_model: int = 120
    n_layers: int = 4
    n_heads: int = 3
    d_mlp: int = 480
    act: str = "relu"
    init: str = "tl"
    embed_std: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.arch == "transformer":
            require(self.d_model % self.n_heads == 0, "n_heads", f"a divisor of d_model={self.d_model}", self.n_heads)


@dataclass(frozen=True)
class TrainConfig(_Part):
    """Optimisation. `device`, `compile`, `checkpoint_every` and `log_every` change speed or bookkeeping, not the
    model, so they do not enter the run hash."""

    steps: int = 5000
    batch_size: int = 512
    lr: float = 5e-4
    weight_decay: float = 0.0
    schedule: str = "plateau"  # plateau: reduce-on-plateau (the authors'); cosine: warmup, cosine to 0; constant
    warmup_steps: int = 0  # cosine and constant: steps of linear warmup from 0 to lr
    adam_beta2: float = 0.999  # AdamW's second-moment decay (0.95: a shorter memory, common for transformers)
    optimizer: str = "adamw"  # adamw: AdamW on everything; muon: Muon on hidden matrices, AdamW on the rest (optim.py)
    muon_lr: float | None = None  # muon: the hidden matrices' lr on AdamW's scale (None: the same as lr)
    muon_momentum: float = 0.95  # muon: its momentum (Nesterov)
    target: str = "tokens"  # what the loss compares the prediction with: the sampled next tokens (one-hot, the
    # authors'), or `law`, the exact next-token law of each training context (same expected loss and gradient,
    # without the noise of sampling the target; train.py)
    plateau_factor: float = 0.7  # lr multiplier when the windowed loss stops improving
    plateau_patience: int = 10  # windows without improvement before the lr drops
    plateau_window: int = 50  # steps averaged into one windowed loss
    eval_batch_size: int = 2048
    seed: int = 0
    device: str = "auto"
    compile: bool = False
    checkpoint_every: int = 0  # also checkpoint every N steps, on top of the log-spaced schedule (0: only that)
    log_every: int = 0  # evaluate and log every N steps (0: every plateau_window steps), and at every checkpoint


PARTS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}  # a run config's parts, by name


def cross_field_rules(cfg: RunConfig) -> None:
    """The rules that tie fields together (each field's own range is its part's to check)."""
    d, t = cfg.data, cfg.train
    require(
        d.n_mess3 == 0 or d.structure == structures.INDEPENDENT.name,
        "n_mess3",
        "an integer in [0, 8] (0: the paper's five factors), and 0 unless structure is 'independent'",
        d.n_mess3,
    )
    default_mess3 = (d.mess3_x, d.mess3_a) == (DataConfig.mess3_x, DataConfig.mess3_a)
    require(d.n_mess3 > 0 or default_mess3, "mess3_x", "left at 0.15 (and mess3_a at 0.6) unless n_mess3 > 0",
            d.mess3_x)  # fmt: skip
    require(t.warmup_steps <= t.steps, "warmup_steps", f"an integer in [0, steps={t.steps}]", t.warmup_steps)
    for name in ("muon_lr", "muon_momentum"):  # Muon's settings on an AdamW run would only split run folders
        value, default = getattr(t, name), getattr(TrainConfig, name)
        require(t.optimizer == "muon" or value == default, name, f"left at {default} unless optimizer is 'muon'", value)


@dataclass(frozen=True)
class RunConfig:
    name: str = "canonical"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        name = self.name
        require(
            isinstance(name, str) and name.replace("_", "").replace("-", "").replace(".", "").isalnum(),
            "name",
            "a non-empty string of letters, digits, '-', '_' and '.'",
            name,
        )
        cross_field_rules(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> RunConfig:
        """The config that `to_dict` gave (a run folder's config.json); one ValueError saying what is missing or
        wrong in a mapping edited by hand or written by an incompatible version. A field missing from a part takes
        its default (as in a folder written before that field existed)."""
        keys = ["name", *PARTS]
        if not isinstance(d, dict):
            raise ValueError(f"a run config is a mapping with the keys {keys}, got a {type(d).__name__}")
        unknown = sorted(set(d) - set(keys))
        missing = [k for k in keys if k not in d]
        if unknown or missing:
            problem = f"{missing[0]!r} is missing" if missing else f"{unknown[0]!r} is not one of them"
            raise ValueError(f"a run config has the keys {keys}: {problem}")
        for part, kind in PARTS.items():
            values = d[part]
            if not isinstance(values, dict):
                raise ValueError(f"{part!r} must be a mapping of its fields, got a {type(values).__name__}")
            names = [f.name for f in fields(kind)]
            strange = sorted(set(values) - set(names))
            if strange:
                raise ValueError(f"unknown field {strange[0]!r} in {part!r}; its fields are {names}")
        return cls(name=d["name"], **{part: kind(**d[part]) for part, kind in PARTS.items()})

    def hash(self) -> str:
        """8 hex digits over the fields that change results (not the name, device, compile, checkpoint_every).

        Only fields that differ from their dataclass default enter, so adding a field whose default keeps the
        old behaviour leaves every existing run's hash, and so its folder, unchanged."""
        d = {}
        for part in ("data", "model", "train"):
            value, default = asdict(getattr(self, part)), asdict(type(getattr(self, part))())
            d[part] = {k: v for k, v in value.items() if k not in NOT_HASHED and v != default[k]}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:8]

    @property
    def run_id(self) -> str:
        return f"{self.name}-{self.hash()}"

    def describe(self) -> str:
        """A few readable lines: the run folder, then each part's fields (a recurrent net's without the transformer's
        fields it does not use, training without those that only change speed)."""
        skip = set(TRANSFORMER_ONLY) if self.model.arch != "transformer" else set()
        lines = [f"run {self.run_id}"]
        for part in ("data", "model", "train"):
            values = asdict(getattr(self, part))
            shown = {k: v for k, v in values.items() if k not in skip and k not in NOT_HASHED}
            if part == "data" and not self.data.n_mess3:
                shown = {k: v for k, v in shown.items() if not k.startswith("mess3_")}
            if part == "train":  # the schedule's and the optimizer's own settings only
                unused = ("warmup_steps",) if self.train.schedule == "plateau" else ("plateau_",)
                unused += ("muon_",) if self.train.optimizer != "muon" else ()
                shown = {k: v for k, v in shown.items() if not k.startswith(unused)}
            lines.append(f"  {part}: " + ", ".join(f"{k}={v}" for k, v in shown.items()))
        return "\n".join(lines)


def field_owners() -> dict[str, str]:
    """{field name: "data" | "model" | "train"} over the run config's parts."""
    return {f.name: part for part, cls in (("data", DataConfig), ("model", ModelConfig), ("train", TrainConfig))
            for f in fields(cls)}  # fmt: skip


def make_config(profile: str | None = None, name: str | None = None, **overrides: Any) -> RunConfig:
    """The profile's config with single fields overridden by name, e.g. make_config("laptop", noise=0.1, arch="lstm").

    Every field name of DataConfig, ModelConfig and TrainConfig is accepted; the result is validated. A recurrent
    net starts from its own recipe in the profile (`Profile.recurrent`), a noisy process from its own budget
    (`Profile.noise_steps`); fields given here override both. The name
    (which starts the run folder's) defaults to the run's condition, `condition_name`, against the profile's own
    transformer.
    """
    profile = resolve_profile(profile)
    parts = {"data": DataConfig(), "model": ModelConfig(), "train": TrainConfig()}
    for part, values in PROFILE_RECORDS[profile].run.items():
        parts[part] = replace(parts[part], **values)
    canonical = (parts["data"].seq_len, parts["model"])  # the profile's transformer, for `condition_name`
    owners = field_owners()
    unknown = sorted(set(overrides) - set(owners))
    if unknown:
        raise ValueError(f"unknown config field {unknown[0]!r}; valid fields: {sorted(owners)}")
    record = PROFILE_RECORDS[profile]
    arch, width = overrides.get("arch", parts["model"].arch), overrides.get("d_model", parts["model"].d_model)
    parts["train"] = replace(parts["train"], **record.recurrent.get(f"{arch}{width}", record.recurrent.get(arch, {})))
    noisy_steps = record.steps_at(overrides.get("noise", parts["data"].noise))
    if noisy_steps is not None:  # a noisy process trains longer to learn its beliefs (`Profile.noise_steps`)
        parts["train"] = replace(parts["train"], steps=noisy_steps)
    for part in parts:
        parts[part] = replace(parts[part], **{k: v for k, v in overrides.items() if owners[k] == part})
    if parts["model"].arch != "transformer":
        # A recurrent net ignores the transformer's fields: asking for one is a mistake, and the profile's values
        # are reset to the defaults, so that they never enter the run hash (one LSTM, one run folder).
        given = sorted(set(overrides) & set(TRANSFORMER_ONLY))
        require(not given, given[0] if given else "", f"left unset for arch={parts['model'].arch!r} (transformer "
                "only)", overrides.get(given[0]) if given else None)  # fmt: skip
        parts["model"] = replace(parts["model"], **{k: getattr(ModelConfig(), k) for k in TRANSFORMER_ONLY})
    return RunConfig(name=name or condition_name(parts["data"], parts["model"], canonical), **parts)


def condition_name(data: DataConfig, model: ModelConfig, canonical: tuple[int, ModelConfig] | None = None) -> str:
    """What a run is, for its folder name (the one rule every notebook and sweep names runs by): `canonical` for
    the paper's transformer on the five independent noiseless factors, else its process, architecture and noise
    joined by '-': `eps0.2`, `chain`, `mess3x4`, `lstm32x2`, `chain-eps0.5`. With `canonical` (the profile's
    (seq_len, ModelConfig)), another transformer on that process is named by its sizes and context,
    `transformer480x4-ctx9`. (Other sizes and training settings are in the hash part of the folder name.)"""
    independent = data.structure == structures.INDEPENDENT.name
    parts = [f"mess3x{data.n_mess3}" if data.n_mess3 else "" if independent else data.structure]
    if (data.mess3_x, data.mess3_a) != (DataConfig.mess3_x, DataConfig.mess3_a):
        parts.append(f"x{data.mess3_x:g}-a{data.mess3_a:g}")
    parts.append("" if model.arch == "transformer" else f"{model.arch}{model.d_model}x{model.n_layers}")
    parts.append(f"eps{data.noise:g}" if data.noise else "")
    name = "-".join(p for p in parts if p) or "canonical"
    if name == "canonical" and canonical is not None and (data.seq_len, model) != canonical:
        return f"transformer{model.d_model}x{model.n_layers}-ctx{data.seq_len + 1}"
    return name


# Notebook parameters for which 0 (a number) or "" (a name) means "keep the profile's value".
PROFILE_DEFAULTED = ("steps", "d_model", "n_layers", "n_heads", "d_mlp", "n_ctx", "target")


def profile_defaulted(name: str, value: Any) -> bool:
    """Whether a notebook parameter's value means "the profile's" (0 for a size or budget, "" for the target)."""
    return name in PROFILE_DEFAULTED and (value == "" if name == "target" else is_number(value) and value == 0)

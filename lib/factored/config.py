"""Run configuration: dataclasses for data, model and training, the three profiles, validation, hashing.

A run is fully described by a `RunConfig`; its stable hash names the run folder, so the same config always
maps to the same folder (and resumes there) while any change of a field that affects results starts a new one.
Profiles are named starting points (`smoke` for CI, `laptop` for a 2-core CPU, `paper` for a GPU); notebooks and
papermill override single fields on top of them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from . import structures

PROFILES = ("smoke", "laptop", "paper")
ARCHS = ("transformer", "rnn", "lstm", "gru")
STRUCTURES = tuple(structures.STRUCTURES)
ACTIVATIONS = ("relu", "gelu")
DEVICES = ("auto", "cpu", "cuda", "mps")
INITS = ("tl", "gpt2", "torch")
SCHEDULES = ("plateau", "cosine", "constant")
OPTIMIZERS = ("adamw", "muon")
NOT_HASHED = ("device", "compile", "checkpoint_every")  # TrainConfig fields that change speed, not results
TRANSFORMER_ONLY = ("n_heads", "d_mlp", "act", "init")  # ModelConfig fields a recurrent net does not use
RECURRENT_DEFAULTS = {"d_model": 32, "n_layers": 2}  # the authors' recurrent nets


@dataclass(frozen=True)
class DataConfig:
    """The five-factor process and the sequences drawn from it."""

    structure: str = "independent"  # independent | chain (hidden dependencies)
    noise: float = 0.0  # eps: probability that a joint token is replaced by a uniform one
    seq_len: int = 8  # tokens per sequence after BOS
    n_mess3: int = 0  # 0: the paper's five factors; N in [1, 8]: N independent Mess3(mess3_x, mess3_a) factors
    mess3_x: float = 0.15  # the n_mess3 factors' Mess3 parameters (the paper's 0.15, 0.6 by default); a sharper
    mess3_a: float = 0.6  # process (small x, large a) makes the noisy law further from a product (notebook 01)


@dataclass(frozen=True)
class ModelConfig:
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
    """

    arch: str = "transformer"
    d_model: int = 120
    n_layers: int = 4
    n_heads: int = 3
    d_mlp: int = 480
    act: str = "relu"
    init: str = "tl"
    embed_std: float | None = None


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation. `device`, `compile` and `checkpoint_every` change speed or bookkeeping, not the model, so they
    do not enter the run hash."""

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
    plateau_factor: float = 0.7  # lr multiplier when the windowed loss stops improving
    plateau_patience: int = 10  # windows without improvement before the lr drops
    plateau_window: int = 50  # steps averaged into one windowed loss
    eval_batch_size: int = 2048
    seed: int = 0
    device: str = "auto"
    compile: bool = False
    checkpoint_every: int = 0  # also checkpoint every N steps, on top of the log-spaced schedule (0: only that)


@dataclass(frozen=True)
class RunConfig:
    name: str = "canonical"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        return validate(
            cls(
                name=d["name"],
                data=DataConfig(**d["data"]),
                model=ModelConfig(**d["model"]),
                train=TrainConfig(**d["train"]),
            )
        )

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
            if part == "train":  # the schedule's own settings only
                unused = "warmup_steps" if self.train.schedule == "plateau" else "plateau_"
                shown = {k: v for k, v in shown.items() if not k.startswith(unused)}
            lines.append(f"  {part}: " + ", ".join(f"{k}={v}" for k, v in shown.items()))
        return "\n".join(lines)


@dataclass(frozen=True)
class Profile:
    """A named scale for everything a notebook does: what a run trains, how large its analyses are, how many
    Monte-Carlo contexts the theory averages.

    run: field overrides of the run config by part ({"model": {...}, "train": {...}}); analysis: field
    overrides of `probing.AnalysisConfig`; mc_samples: contexts for one process's optimal loss and fidelity cost
    (notebooks 04, 06); mc_samples_curves: contexts per point of the theory curves over eps (notebook 01);
    trains_demo_grid: notebook 07 trains a tiny grid of its own (the smoke profile, where no sweep has run).
    """

    name: str
    run: dict[str, dict[str, Any]]
    analysis: dict[str, Any] = field(default_factory=dict)
    mc_samples: int = 50_000
    mc_samples_curves: int = 100_000
    trains_demo_grid: bool = False


PROFILE_RECORDS: dict[str, Profile] = {
    # seconds on a CPU: a tiny model and a few steps; exercises the whole pipeline in CI
    "smoke": Profile(
        "smoke",
        run={
            "model": dict(d_model=24, n_layers=1, n_heads=2, d_mlp=48, init="torch"),
            "train": dict(steps=30, batch_size=64, eval_batch_size=256, plateau_window=10, lr=3e-3),
        },
        analysis=dict(n_sequences=300, vary_settings=3, vary_sequences=40, k_max=5, n_random_models=2),
        mc_samples=2_000,
        mc_samples_curves=4_000,
        trains_demo_grid=True,
    ),
    # the canonical model on a 2-core CPU in under 8 minutes; chosen by the time-to-result study
    # (benchmarks/recipe.md): small weights with unit-scale embeddings (the N(0, 1) embedding is what lets the
    # Mess3 factors be learned at this budget), lr 2e-3 with 100 steps of warmup and a cosine decay, batch 256;
    # 4,800 steps = 1.23M sequences at the quiet-machine 10 steps/s
    "laptop": Profile(
        "laptop",
        run={
            "model": dict(init="gpt2", embed_std=1.0),
            "train": dict(
                steps=4800,
                batch_size=256,
                lr=2e-3,
                schedule="cosine",
                warmup_steps=100,
                eval_batch_size=4096,
                checkpoint_every=250,
            ),  # fmt: skip
        },
        mc_samples_curves=40_000,  # 8 noise levels x 40k contexts: standard errors near 1% in about a minute
    ),
    # the authors' budget: a GPU job
    "paper": Profile(
        "paper",
        run={"train": dict(steps=500_000, batch_size=25_000, lr=5e-4, eval_batch_size=25_000, compile=True)},
        mc_samples=200_000,
        mc_samples_curves=400_000,
    ),
}


def profile_record(profile: str | None = None) -> Profile:
    """The `Profile` named `profile` (None or "": the default one, see `resolve_profile`)."""
    return PROFILE_RECORDS[resolve_profile(profile)]


def default_profile() -> str:
    """FACTORED_PROFILE from the environment (CI sets `smoke`), else `laptop`."""
    return os.environ.get("FACTORED_PROFILE", "laptop")


def resolve_profile(profile: str | None = None) -> str:
    """`profile`, or the default one when None or "" (papermill-friendly); ValueError unless one of PROFILES."""
    profile = profile or default_profile()
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    return profile


def make_config(profile: str | None = None, name: str | None = None, **overrides: Any) -> RunConfig:
    """The profile's config with single fields overridden by name, e.g. make_config("laptop", noise=0.1, arch="lstm").

    Every field name of DataConfig, ModelConfig and TrainConfig is accepted; the result is validated. The name
    (which starts the run folder's) defaults to the run's condition, `condition_name`.
    """
    profile = resolve_profile(profile)
    parts = {"data": DataConfig(), "model": ModelConfig(), "train": TrainConfig()}
    for part, values in PROFILE_RECORDS[profile].run.items():
        parts[part] = replace(parts[part], **values)
    owners = _field_owners()
    unknown = sorted(set(overrides) - set(owners))
    if unknown:
        raise ValueError(f"unknown config field {unknown[0]!r}; valid fields: {sorted(owners)}")
    for part in parts:
        parts[part] = replace(parts[part], **{k: v for k, v in overrides.items() if owners[k] == part})
    if parts["model"].arch != "transformer":
        # A recurrent net ignores the transformer's fields: asking for one is a mistake, and the profile's values
        # are reset to the defaults, so that they never enter the run hash (one LSTM, one run folder).
        given = sorted(set(overrides) & set(TRANSFORMER_ONLY))
        _check(not given, given[0] if given else "", f"left unset for arch={parts['model'].arch!r} (transformer "
               "only)", overrides.get(given[0]) if given else None)  # fmt: skip
        parts["model"] = replace(parts["model"], **{k: getattr(ModelConfig(), k) for k in TRANSFORMER_ONLY})
    return validate(RunConfig(name=name or condition_name(parts["data"], parts["model"]), **parts))


def condition_name(data: DataConfig, model: ModelConfig) -> str:
    """What a run is, for its folder name: `canonical` for the paper's transformer on the five independent noiseless
    factors, else its process, architecture and noise joined by '-': `eps0.2`, `chain`, `mess3x4`, `lstm32x2`,
    `chain-eps0.5`. (Sizes of the transformer and training settings are in the hash part of the folder name.)"""
    independent = data.structure == structures.INDEPENDENT.name
    parts = [f"mess3x{data.n_mess3}" if data.n_mess3 else "" if independent else data.structure]
    if (data.mess3_x, data.mess3_a) != (DataConfig.mess3_x, DataConfig.mess3_a):
        parts.append(f"x{data.mess3_x:g}-a{data.mess3_a:g}")
    parts.append("" if model.arch == "transformer" else f"{model.arch}{model.d_model}x{model.n_layers}")
    parts.append(f"eps{data.noise:g}" if data.noise else "")
    return "-".join(p for p in parts if p) or "canonical"


def architecture_sizes(arch: str, d_model: int = 0, n_layers: int = 0, n_heads: int = 0, d_mlp: int = 0) -> dict:
    """A notebook's size parameters (0: unset) for `from_parameters`, with the rules of the architecture study:
    a recurrent net's unset width and depth are the authors' (RECURRENT_DEFAULTS) and it takes no transformer-only
    sizes; a transformer whose width is set but not its MLP gets d_mlp = 4 d_model (the GPT-2 ratio)."""
    sizes = {"d_model": d_model, "n_layers": n_layers, "n_heads": n_heads, "d_mlp": d_mlp}
    if arch in ARCHS and arch != "transformer":
        return {k: sizes[k] or v for k, v in RECURRENT_DEFAULTS.items()} | {
            k: v for k, v in sizes.items() if k in TRANSFORMER_ONLY and v
        }
    if d_model and not d_mlp:
        sizes["d_mlp"] = 4 * d_model
    return sizes


def from_parameters(profile: str = "", name: str | None = None, **parameters: Any) -> RunConfig:
    """The run a notebook's parameters describe: make_config where a size or budget of 0 means "the profile's".

    Notebooks declare e.g. `steps: int = 0` and `d_model: int = 0`, so that `papermill -p d_model 32` changes
    one field and everything else follows the profile. `n_ctx` (context length, BOS included) sets seq_len.
    """
    overrides = {k: v for k, v in parameters.items() if not (k in _PROFILE_DEFAULTED and v == 0)}
    if "n_ctx" in overrides:
        n_ctx = overrides.pop("n_ctx")
        _check(_is_int(n_ctx) and 2 <= n_ctx <= 513, "n_ctx", "an integer in [2, 513]", n_ctx)
        overrides["seq_len"] = n_ctx - 1
    return make_config(profile, name=name, **overrides)


# Notebook parameters for which 0 means "keep the profile's value".
_PROFILE_DEFAULTED = ("steps", "d_model", "n_layers", "n_heads", "d_mlp", "n_ctx")


def _check(ok: bool, param: str, allowed: str, value: Any) -> None:
    if not ok:
        raise ValueError(f"{param} must be {allowed}, got {value!r}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def validate(cfg: RunConfig) -> RunConfig:
    """Return cfg unchanged, or raise one ValueError naming the first bad field and its allowed range."""
    d, m, t = cfg.data, cfg.model, cfg.train
    _check(
        isinstance(cfg.name, str) and cfg.name.replace("_", "").replace("-", "").replace(".", "").isalnum(),
        "name",
        "a non-empty string of letters, digits, '-', '_' and '.'",
        cfg.name,
    )
    _check(d.structure in STRUCTURES, "structure", f"one of {STRUCTURES}", d.structure)
    _check(_is_number(d.noise) and 0.0 <= d.noise <= 1.0, "noise", "a number in [0, 1]", d.noise)
    _check(_is_int(d.seq_len) and 1 <= d.seq_len <= 512, "seq_len", "an integer in [1, 512]", d.seq_len)
    _check(
        _is_int(d.n_mess3) and 0 <= d.n_mess3 <= 8 and (d.n_mess3 == 0 or d.structure == structures.INDEPENDENT.name),
        "n_mess3",
        "an integer in [0, 8] (0: the paper's five factors), and 0 unless structure is 'independent'",
        d.n_mess3,
    )
    _check(_is_number(d.mess3_x) and 0.0 < d.mess3_x <= 0.5, "mess3_x", "a number in (0, 0.5]", d.mess3_x)
    _check(_is_number(d.mess3_a) and 0.0 <= d.mess3_a <= 1.0, "mess3_a", "a number in [0, 1]", d.mess3_a)
    default_mess3 = (d.mess3_x, d.mess3_a) == (DataConfig.mess3_x, DataConfig.mess3_a)
    _check(d.n_mess3 > 0 or default_mess3, "mess3_x", "left at 0.15 (and mess3_a at 0.6) unless n_mess3 > 0",
           d.mess3_x)  # fmt: skip
    validate_model(m)
    _check(_is_int(t.steps) and 0 <= t.steps <= 10**8, "steps", "an integer in [0, 1e8]", t.steps)
    for name in ("batch_size", "eval_batch_size"):
        v = getattr(t, name)
        _check(_is_int(v) and 1 <= v <= 10**7, name, "an integer in [1, 1e7]", v)
    _check(_is_number(t.lr) and 0.0 < t.lr <= 1.0, "lr", "a number in (0, 1]", t.lr)
    _check(t.schedule in SCHEDULES, "schedule", f"one of {SCHEDULES}", t.schedule)
    _check(t.optimizer in OPTIMIZERS, "optimizer", f"one of {OPTIMIZERS}", t.optimizer)
    _check(
        t.muon_lr is None or (_is_number(t.muon_lr) and 0.0 < t.muon_lr <= 1.0),
        "muon_lr",
        "None or a number in (0, 1]",
        t.muon_lr,
    )
    _check(
        _is_number(t.muon_momentum) and 0.0 <= t.muon_momentum < 1.0,
        "muon_momentum",
        "a number in [0, 1)",
        t.muon_momentum,
    )
    for name in ("muon_lr", "muon_momentum"):  # Muon's settings on an AdamW run would only split run folders
        value, default = getattr(t, name), getattr(TrainConfig, name)
        _check(t.optimizer == "muon" or value == default, name, f"left at {default} unless optimizer is 'muon'", value)
    _check(_is_number(t.adam_beta2) and 0.0 < t.adam_beta2 < 1.0, "adam_beta2", "a number in (0, 1)", t.adam_beta2)
    _check(
        _is_int(t.warmup_steps) and 0 <= t.warmup_steps <= max(t.steps, 0),
        "warmup_steps",
        f"an integer in [0, steps={t.steps}]",
        t.warmup_steps,
    )
    _check(
        _is_number(t.weight_decay) and 0.0 <= t.weight_decay <= 1.0,
        "weight_decay",
        "a number in [0, 1]",
        t.weight_decay,
    )
    _check(
        _is_number(t.plateau_factor) and 0.0 < t.plateau_factor < 1.0,
        "plateau_factor",
        "a number in (0, 1)",
        t.plateau_factor,
    )
    _check(
        _is_int(t.plateau_patience) and t.plateau_patience >= 0,
        "plateau_patience",
        "an integer >= 0",
        t.plateau_patience,
    )
    _check(
        _is_int(t.plateau_window) and t.plateau_window >= 1,
        "plateau_window",
        "an integer >= 1",
        t.plateau_window,
    )
    _check(_is_int(t.seed) and 0 <= t.seed < 2**63, "seed", "an integer in [0, 2**63)", t.seed)
    _check(t.device in DEVICES, "device", f"one of {DEVICES}", t.device)
    _check(isinstance(t.compile, bool), "compile", "True or False", t.compile)
    _check(
        _is_int(t.checkpoint_every) and t.checkpoint_every >= 0,
        "checkpoint_every",
        "an integer >= 0",
        t.checkpoint_every,
    )
    return cfg


def validate_model(m: ModelConfig) -> ModelConfig:
    """Return m unchanged, or raise one ValueError naming the first bad model field and its allowed range."""
    _check(m.arch in ARCHS, "arch", f"one of {ARCHS}", m.arch)
    _check(m.act in ACTIVATIONS, "act", f"one of {ACTIVATIONS}", m.act)
    for name in ("d_model", "n_layers", "n_heads", "d_mlp"):
        v = getattr(m, name)
        _check(_is_int(v) and 1 <= v <= 65536, name, "an integer in [1, 65536]", v)
    if m.arch == "transformer":
        _check(m.d_model % m.n_heads == 0, "n_heads", f"a divisor of d_model={m.d_model}", m.n_heads)
    _check(m.init in INITS, "init", f"one of {INITS}", m.init)
    _check(
        m.embed_std is None or (_is_number(m.embed_std) and 0.0 < m.embed_std <= 100.0),
        "embed_std",
        "None or a number in (0, 100]",
        m.embed_std,
    )
    return m


def _field_owners() -> dict[str, str]:
    """{field name: "data" | "model" | "train"} over the run config's parts."""
    return {f.name: part for part, cls in (("data", DataConfig), ("model", ModelConfig), ("train", TrainConfig))
            for f in fields(cls)}  # fmt: skip


# Names IPython itself puts in a notebook's namespace; never parameters.
_IPYTHON_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit", "open"})
_PARAMETER_TYPES = (str, int, float, bool, list, dict, tuple, type(None))


def check_parameters(namespace: dict[str, Any]) -> None:
    """Check a notebook's parameters after papermill injected its own: one ValueError per bad notebook.

    Call it with `globals()` at the top of the cell after the `parameters` cell. The declared parameters are
    the annotated names of that cell (`noise: float = 0.0`), which Python records in `__annotations__`;
    papermill injects plain assignments, so any other public name holding plain data is an unknown parameter
    (papermill itself only warns about those, and the notebook would run with the default). A value whose type
    does not match its annotation (an int is a valid float) is reported too, before anything is computed.
    """
    declared: dict[str, Any] = namespace.get("__annotations__", {})
    unknown = sorted(
        k
        for k, v in namespace.items()
        if not k.startswith("_") and k not in _IPYTHON_NAMES and k not in declared and isinstance(v, _PARAMETER_TYPES)
    )
    if unknown:
        raise ValueError(f"unknown parameter {unknown[0]!r}; this notebook's parameters are {sorted(declared)}")
    for name, kind in declared.items():
        kind = getattr(kind, "__name__", kind)  # a type, or its name under `from __future__ import annotations`
        if kind in _PARAMETER_CHECKS:
            ok, expected = _PARAMETER_CHECKS[kind]
            value = namespace.get(name)
            defaulted = name in _PROFILE_DEFAULTED and value == 0  # 0: "the profile's", checked by from_parameters
            if name in _field_owners() and not defaulted:  # a run field: its own message names its range
                # one field alone: its range, not the rules between fields (a transformer's heads divide its width),
                # which `from_parameters` checks on the whole config right after (a Mess3 parameter alone is
                # checked on a Mess3 product, where any value in its range is allowed)
                data = DataConfig(n_mess3=1 if name in ("mess3_x", "mess3_a") else 0)
                part, default = _field_owners()[name], RunConfig(data=data, model=ModelConfig(arch="rnn"))
                validate(replace(default, **{part: replace(getattr(default, part), **{name: value})}))
            _check(ok(value), name, expected, value)


_PARAMETER_CHECKS = {
    "float": (_is_number, "a number"),
    "int": (_is_int, "an integer"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "bool": (lambda v: isinstance(v, bool), "True or False"),
}

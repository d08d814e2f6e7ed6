"""The paper's reported values, each with the figure or section it is read from: the one table the notebooks'
"paper" columns and the README's quote. Every value is one seed at the authors' budget (`BUDGET`), read off the
released figures, so most are approximate ("about") and kept as the paper's words, not as numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

BUDGET = "500k steps x 25,000 sequences"


@dataclass(frozen=True)
class Reported:
    """One value the paper reports: `value` in its words, `source` the figure or section it is read from."""

    value: str
    source: str


_DIMS = "figure: dims@95 of the residual stream over training"
_NOISE = "figure: dims@95 over training at each noise level eps"

# The five-factor process, eps 0 (notebooks 03, 04; the README's results table).
INIT_DIMS95 = Reported("about 60", f"{_DIMS}, independent factors")
COLLAPSE_DIMS95 = Reported("3", f"{_DIMS}, independent factors")
COLLAPSE_STEPS = Reported("200-300", f"{_DIMS}, independent factors")
FINAL_DIMS95 = Reported("10-11", f"{_DIMS}, independent factors (settled by about 1k steps)")
RMSE_MESS3 = Reported("about 0.06", "figure: belief regression RMSE per factor over training")
RMSE_BLOCH = Reported("about 0.075", "figure: belief regression RMSE per factor over training")
OVERLAP = Reported("about 1e-3", "figure: vary-one subspace overlap against rank k, k = 1, 2 after training")
RANDOM_INIT_OVERLAP = Reported("0.3-0.5", "figure: vary-one subspace overlap, randomly initialised models")
UNION_DIMS95 = Reported("about 12", "section: vary-one subspaces, dims@95 of their union")

# Noise (notebook 04): every eps first collapses, sits in the factored phase, then grows with eps.
NOISE_COLLAPSE_DIMS95 = Reported("3-5", _NOISE)
FACTORED_PHASE = Reported("10-11, up to about 1e4 steps", _NOISE)
EXPANSION_STEP = 10_000  # after about this many steps dims@95 starts growing with eps (the figure above)
NOISE_FINAL_DIMS95 = {
    0.0: Reported("10-11", _NOISE),
    0.001: Reported("11-13", _NOISE),
    0.01: Reported("11-13", _NOISE),
    0.05: Reported("11-13", _NOISE),
    0.1: Reported("11-13", _NOISE),
    0.2: Reported("about 19", _NOISE),
    0.3: Reported("about 24", _NOISE),
    0.5: Reported("about 38", _NOISE),
}

# Architectures (notebook 05): (arch, d_model, n_layers, n_ctx) -> final dims@95; the other variants are not
# reported in the text, and the GRU is not in the paper.
_ARCH = "figure: dims@95 over training by architecture"
ARCHITECTURE_FINAL_DIMS95 = {
    ("transformer", 120, 4, 9): Reported("10-11", _DIMS),
    ("transformer", 480, 4, 9): Reported("about 10-12", _ARCH),
    ("transformer", 120, 4, 101): Reported("about 10-12", _ARCH),
    ("lstm", 32, 2, 9): Reported("about 14-17", _ARCH),
    ("rnn", 256, 2, 9): Reported("about 35 (at 30k steps)", _ARCH),
}

NOT_REPORTED = Reported("not reported", "")


def noise_final_dims95(eps: float) -> Reported:
    """The paper's final dims@95 at noise level `eps` (NOT_REPORTED outside its sweep)."""
    return NOISE_FINAL_DIMS95.get(float(eps), NOT_REPORTED)


def architecture_final_dims95(cfg) -> Reported:
    """The paper's final dims@95 for the model of run config `cfg` on the five-factor process (NOT_REPORTED for a
    model or process it does not report)."""
    m, d = cfg.model, cfg.data
    if d.n_mess3 or d.structure != "independent" or d.noise:
        return NOT_REPORTED
    return ARCHITECTURE_FINAL_DIMS95.get((m.arch, m.d_model, m.n_layers, d.seq_len + 1), NOT_REPORTED)


# The chain process (notebook 06).
_CHAIN = "figures: the chain process (loss, belief RMSE and dims@95 over training)"
CHAIN_LOSS = Reported("about 5.95", _CHAIN)
CHAIN_RMSE = Reported("about 0.035-0.04", f"{_CHAIN}; by 5k steps")
CHAIN_FINAL_DIMS95 = Reported("about 10-11", _CHAIN)


def readme_column() -> dict[str, str]:
    """The README results table's "paper" column, by its quantity: composed from the values above."""
    return {
        "held-out gap to the optimal predictor (nats)": "(near 0)",
        "held-out RMSE, Mess3 / Bloch": f"{RMSE_MESS3.value} / {RMSE_BLOCH.value.removeprefix('about ')}",
        "mean vary-one overlap k = 1, 2": f"{OVERLAP.value} ({RANDOM_INIT_OVERLAP.value})",
        "dims@95: init, minimum (step), final": (
            f"{INIT_DIMS95.value}, {COLLAPSE_DIMS95.value} ({COLLAPSE_STEPS.value}), {FINAL_DIMS95.value}"
        ),
        "union dims@95 of the vary-one subspaces": UNION_DIMS95.value,
    }

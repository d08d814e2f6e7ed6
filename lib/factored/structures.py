"""How the factors of one step depend on each other: one object per structure, which sampling and theory ask.

    independent  P(t) = prod_n p_n(t_n | eta_n): the next-token law is a product of per-factor laws.
    chain        factor n > 0 uses the parameter variant its parent's same-step token selects (identity control
                 map): P(t) = p_0(t_0) prod_{n>0} p_n^{(t_{n-1})}(t_n). The beliefs still factor; the law does not.

A run config names its structure (`DataConfig.structure`); `structure_named` gives the object. Pure Python (no
numpy, no torch import), so that the config can check the name without loading the numeric stack.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Structure:
    """One structure. parent_picks_variant: factor n > 0 has one parameter variant per token of factor n - 1, and
    the same-step token of factor n - 1 picks the variant that emits factor n's token and updates its belief."""

    name: str
    parent_picks_variant: bool

    def n_variants(self, factor: int, parent_tokens: int) -> int:
        """How many parameter variants `factor` has (parent_tokens: the vocabulary of factor - 1)."""
        return parent_tokens if self.parent_picks_variant and factor > 0 else 1

    def variant_index(self, tokens):
        """The variant of every factor given this step's sub-tokens [N, B] (a torch tensor): [N, B], or None when
        every factor has its one variant 0."""
        if not self.parent_picks_variant:
            return None
        parents = tokens.roll(1, dims=0)  # row n holds factor n - 1's token; factor 0 has no parent
        parents[0] = 0
        return parents

    @property
    def law_is_product(self) -> bool:
        """Whether the noiseless next-token law is the product of the factors' own laws (then exact theory by
        enumeration and the fidelity cost 0)."""
        return not self.parent_picks_variant

    def __str__(self) -> str:
        return self.name


INDEPENDENT = Structure("independent", parent_picks_variant=False)
CHAIN = Structure("chain", parent_picks_variant=True)
STRUCTURES: dict[str, Structure] = {s.name: s for s in (INDEPENDENT, CHAIN)}


def structure_named(structure: str | Structure) -> Structure:
    """The Structure of a name (or the Structure itself); ValueError naming the known ones."""
    if isinstance(structure, Structure):
        return structure
    if structure not in STRUCTURES:
        raise ValueError(f"structure must be one of {tuple(STRUCTURES)}, got {structure!r}")
    return STRUCTURES[structure]

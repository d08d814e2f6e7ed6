"""Copy chosen figures out of the rendered notebooks into docs/figures/ for the README (`make figures`).

Each entry names a notebook and the position of the figure among that notebook's image outputs.
"""

from __future__ import annotations

import base64
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
FIGURES = {  # file name -> (notebook, index of the image output, counting from 0)
    "belief_geometry.png": ("01_theory", 0),
    "loss.png": ("02_training", 0),
    "dims_over_training.png": ("03_factored_geometry", 1),
    "projections.png": ("03_factored_geometry", 4),
    "extra_dims.png": ("03_factored_geometry", 5),
    "overlap.png": ("03_factored_geometry", 6),
    "noise_dims.png": ("04_noise", 4),
    "long_tokens.png": ("04_noise", 8),
    "sweep_noise.png": ("07_sweeps", 0),
    "expansion_dims.png": ("07_sweeps", 2),
    "sweep_architectures.png": ("07_sweeps", 4),
    "variance_parts.png": ("07_sweeps", 5),
    "factor_scaling.png": ("07_sweeps", 6),
}


def images(notebook: str) -> list[bytes]:
    nb = nbformat.read(ROOT / "notebooks" / f"{notebook}.ipynb", as_version=4)
    return [
        base64.b64decode(out["data"]["image/png"])
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if "image/png" in out.get("data", {})
    ]


if __name__ == "__main__":
    out = ROOT / "docs" / "figures"
    out.mkdir(parents=True, exist_ok=True)
    for name, (notebook, index) in FIGURES.items():
        (out / name).write_bytes(images(notebook)[index])
        print(f"docs/figures/{name} <- notebooks/{notebook}.ipynb image {index}")

"""The README's commands are the ones that work: the test command is what CI runs, the papermill examples name
notebooks, parameter files and parameters that exist, and the library snippet runs (at the smoke profile)."""

import re
import shlex
from pathlib import Path

import nbformat
import numpy as np
from notebook_runs import NOTEBOOKS

from factored import config

ROOT = NOTEBOOKS.parent
README = (ROOT / "README.md").read_text()


def bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", README, re.DOTALL)


def python_block() -> str:
    return re.search(r"```python\n(.*?)```", README, re.DOTALL).group(1)


def declared_parameters(notebook: Path) -> set[str]:
    cell = next(c for c in nbformat.read(notebook, 4).cells if "parameters" in c.metadata.get("tags", []))
    return set(re.findall(r"^(\w+):", cell.source, re.MULTILINE))


def test_the_readme_test_command_is_what_ci_runs():
    assert any(line.split("#")[0].strip() == "make test" for block in bash_blocks() for line in block.splitlines())
    assert "make test" in (ROOT / ".ci" / "run").read_text().splitlines()[-1]
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.MULTILINE))
    assert {"run", "test", "setup", "sweep", "render", "sync", "figures", "bench"} <= targets


def test_every_papermill_example_names_real_notebooks_files_and_parameters():
    commands = [line.split("#")[0] for block in bash_blocks() for line in block.splitlines() if "papermill" in line]
    assert len(commands) >= 3
    for command in commands:
        words = shlex.split(command)
        notebook = ROOT / next(w for w in words if w.endswith(".ipynb"))
        assert notebook.exists(), command
        declared = declared_parameters(notebook)
        for i, word in enumerate(words):
            if word == "-p":
                assert words[i + 1] in declared, f"{words[i + 1]} is not a parameter of {notebook.name}"
            if word == "-f":
                assert (ROOT / words[i + 1]).exists(), command


def test_the_library_snippet_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("FACTORED_OUTPUTS", str(tmp_path))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    code = python_block().replace('make_config("laptop")', 'make_config("smoke")')  # seconds, not minutes
    code = code.replace('"blocks.3.hook_resid_post"', '"blocks.0.hook_resid_post"')  # the smoke model has 1 layer
    code = code.replace("sample(process, 1024, 8", "sample(process, 400, 8")
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the README's own example
    report = namespace["report"]
    assert namespace["acts"].shape[:2] == (400, 7) and report.n_factors == len(report.subspaces) == len(
        report.table()["dims"]
    )
    for V in report.subspaces:  # each found subspace is orthonormal
        np.testing.assert_allclose(V @ V.T, np.eye(len(V)), atol=1e-6)
    assert config.make_config("smoke").run_id in [p.name for p in (tmp_path / "runs").iterdir()]


def test_the_transformerlens_export_snippet_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("FACTORED_OUTPUTS", str(tmp_path))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    block = next(b for b in re.findall(r"```python\n(.*?)```", README, re.DOTALL) if "lens.to_hooked" in b)
    code = block.replace('make_config("laptop")', 'make_config("smoke")')  # seconds, not minutes
    code = code.replace('"blocks.3.hook_resid_post"', '"blocks.0.hook_resid_post"')  # the smoke model has 1 layer
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the README's own example
    assert (
        max(namespace["lens"].site_differences(namespace["model"], namespace["hooked"], namespace["inputs"]).values())
        < 1e-5
    )
    assert namespace["acts"].shape[:2] == (64, 7) and namespace["cache"]["ln_final.hook_normalized"].shape[:2] == (
        64,
        9,
    )


def test_the_results_table_quotes_the_papers_values_from_the_library():
    from factored import paper

    results = README.split("## Results", 1)[1]
    table = results[results.index("\n|") + 1 :].split("\n\n", 1)[0]
    header, rule, *rows = table.splitlines()
    column = header.split("|").index(" paper ")
    quoted = {cells[1].strip(): cells[column].strip() for cells in (row.split("|") for row in rows)}
    assert {q: quoted[q] for q in paper.readme_column()} == paper.readme_column()

"""Where outputs go: FACTORED_OUTPUTS resolved once, against the folder the user started in, and checked to be a
folder before anything is written."""

import os

import pytest

from factored import paths


def test_a_relative_outputs_folder_is_the_working_folder_s_and_is_pinned_for_child_processes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FACTORED_OUTPUTS", "relout")
    assert paths.outputs_dir() == tmp_path / "relout"
    assert paths.pin_outputs_dir() == tmp_path / "relout"
    assert os.environ["FACTORED_OUTPUTS"] == str(tmp_path / "relout")  # what every child process inherits
    monkeypatch.chdir(tmp_path.parent)  # a child working elsewhere (a notebook kernel) agrees
    assert paths.outputs_dir() == tmp_path / "relout"


def test_unset_it_is_outputs_at_the_root_of_the_checkout(monkeypatch):
    monkeypatch.delenv("FACTORED_OUTPUTS", raising=False)
    assert paths.outputs_dir() == paths.ROOT / "outputs" and paths.pin_outputs_dir() == paths.ROOT / "outputs"
    assert "FACTORED_OUTPUTS" not in os.environ


@pytest.mark.parametrize("where", ["a file", "inside a file"])
def test_an_outputs_folder_that_is_a_file_is_one_line_naming_it(tmp_path, monkeypatch, where):
    (tmp_path / "taken").write_text("a file")
    target = tmp_path / "taken" if where == "a file" else tmp_path / "taken" / "outputs"
    monkeypatch.setenv("FACTORED_OUTPUTS", str(target))
    with pytest.raises(ValueError) as e:
        paths.outputs_dir()
    message = str(e.value)
    assert message.startswith(f"FACTORED_OUTPUTS={target} cannot be the outputs folder: ")
    assert ("is a file" if where == "a file" else "lies inside the file") in message
    assert str(tmp_path / "taken") in message and len(message.splitlines()) == 1

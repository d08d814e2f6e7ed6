"""Cached results (summaries, per-step analyses, whole results): a damaged cache file is set aside as <name>.damaged,
named in one warning, and the result computed again."""

import json
from types import SimpleNamespace

import pytest

from factored import probing, runs

DAMAGE = {"torn": '{"results": {"a": 1', "empty": "", "a list": "[]", "a null entry": '{"results": null}'}
SETTINGS = {"n_sequences": 10}


def run_at(path):
    return SimpleNamespace(dir=path)  # what the summary functions read of a run


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_summary_is_set_aside_and_computed_again(tmp_path, damage):
    run = run_at(tmp_path)
    path = runs.summary_path(run, "growth", SETTINGS)
    path.parent.mkdir()
    path.write_text(DAMAGE[damage])
    with pytest.warns(UserWarning, match=rf"{path.name} is damaged: moved aside to {path.name}.damaged"):
        assert runs.load_summary(run, "growth", SETTINGS) is None
    assert not path.exists() and path.with_name(f"{path.name}.damaged").read_text() == DAMAGE[damage]
    assert runs.cached(run, "growth", SETTINGS, lambda: {"gain": 0.5}) == {"gain": 0.5}
    assert runs.load_summary(run, "growth", SETTINGS) == {"gain": 0.5}  # saved again, readable


def test_a_summary_is_computed_once_per_settings(tmp_path):
    run, calls = run_at(tmp_path), []

    def compute():
        calls.append(1)
        return {"gain": len(calls)}

    assert runs.cached(run, "growth", SETTINGS, compute) == runs.cached(run, "growth", SETTINGS, compute) == {"gain": 1}
    assert runs.cached(run, "growth", {"n_sequences": 20}, compute) == {"gain": 2}


@pytest.mark.parametrize("text", ["", "[[0.5, 0.4]", "[]", "null"])
def test_a_damaged_whole_result_is_set_aside_and_computed_again(tmp_path, text):
    path = tmp_path / "analysis" / "random_init-x.json"
    path.parent.mkdir()
    path.write_text(text)
    with pytest.warns(UserWarning, match="is damaged: moved aside"):
        got = runs.cached_json(path, lambda: [[0.5, 0.4]], lambda d: isinstance(d, list) and len(d) > 0)
    assert got == [[0.5, 0.4]] and json.loads(path.read_text()) == [[0.5, 0.4]]


@pytest.mark.parametrize("text", ['{"10": {"r2": [0.9]}, "20": {"r2"', "", "[]", '{"10": {"r2": [0.9]}, "20": null}'])
def test_a_damaged_per_step_cache_is_set_aside_and_every_step_computed_again(tmp_path, text):
    path = tmp_path / "analysis" / "trajectory-x.json"
    path.parent.mkdir()
    path.write_text(text)
    with pytest.warns(UserWarning, match="trajectory-x.json is damaged"):
        got = probing._cached_steps(path, [10, 20], lambda step: {"r2": [step / 100]})
    assert got == {10: {"r2": [0.1]}, 20: {"r2": [0.2]}}
    assert (path.parent / "trajectory-x.json.damaged").read_text() == text
    assert probing._cached_steps(path, [10, 20], lambda step: pytest.fail("computed again")) == got

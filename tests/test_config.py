import pytest

from factored.config import RunConfig, make_config


def test_profiles_and_overrides():
    smoke, laptop = make_config("smoke"), make_config("laptop")
    assert laptop.model.d_model == 120 and laptop.model.n_layers == 4 and laptop.model.n_heads == 3
    assert smoke.train.steps < laptop.train.steps
    assert make_config("paper").train.batch_size == 25_000
    cfg = make_config("laptop", noise=0.2, arch="lstm", name="noise")
    assert (cfg.data.noise, cfg.model.arch, cfg.name) == (0.2, "lstm", "noise")


def test_environment_sets_default_profile(monkeypatch):
    monkeypatch.setenv("FACTORED_PROFILE", "smoke")
    assert make_config() == make_config("smoke")
    monkeypatch.delenv("FACTORED_PROFILE")
    assert make_config() == make_config("laptop")


def test_hash_is_stable_and_ignores_speed_only_fields():
    a = make_config("laptop")
    assert a.hash() == make_config("laptop").hash()
    assert a.hash() == make_config("laptop", device="cpu", compile=True, name="other").hash()
    assert a.hash() != make_config("laptop", seed=1).hash()
    assert a.hash() != make_config("laptop", noise=0.1).hash()
    assert RunConfig.from_dict(a.to_dict()) == a


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("noise", 1.5, r"noise must be a number in \[0, 1\]"),
        ("noise", -0.1, r"noise must be"),
        ("arch", "mamba", r"arch must be one of"),
        ("structure", "tree", r"structure must be one of"),
        ("n_heads", 7, r"n_heads must be a divisor of d_model=24"),
        ("steps", -1, r"steps must be an integer"),
        ("batch_size", 0, r"batch_size must be an integer in \[1"),
        ("batch_size", 2.5, r"batch_size must be an integer"),
        ("lr", 0.0, r"lr must be a number in \(0, 1\]"),
        ("plateau_factor", 1.0, r"plateau_factor must be a number in \(0, 1\)"),
        ("device", "tpu", r"device must be one of"),
        ("seq_len", 0, r"seq_len must be an integer in \[1, 512\]"),
    ],
)
def test_bad_values_name_the_field_and_range(field, value, message):
    with pytest.raises(ValueError, match=message):
        make_config("smoke", **{field: value})


def test_unknown_field_and_profile():
    with pytest.raises(ValueError, match="unknown config field 'nosie'"):
        make_config("smoke", nosie=0.1)
    with pytest.raises(ValueError, match="profile must be one of"):
        make_config("huge")
    with pytest.raises(ValueError, match="name must be"):
        make_config("smoke", name="a/b")

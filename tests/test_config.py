import dataclasses
import json

import pytest

from factored import config, parameters, profiles
from factored.config import DataConfig, ModelConfig, RunConfig, TrainConfig, make_config
from factored.parameters import check as check_parameters
from factored.parameters import from_parameters, parse_value, prologue


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
    assert a.hash() == make_config("laptop", device="cpu", compile=True, name="other", checkpoint_every=7).hash()
    assert a.hash() != make_config("laptop", init="gpt2").hash()
    assert a.hash() != make_config("laptop", embed_std=0.5).hash()
    assert a.hash() != make_config("laptop", schedule="plateau").hash()
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
        ("init", "xavier", r"init must be one of \('tl', 'gpt2', 'torch'\)"),
        ("embed_std", 0.0, r"embed_std must be None or a number in \(0, 100\]"),
        ("schedule", "linear", r"schedule must be one of \('plateau', 'cosine', 'constant'\)"),
        ("warmup_steps", 31, r"warmup_steps must be an integer in \[0, steps=30\]"),
        ("checkpoint_every", -1, r"checkpoint_every must be an integer >= 0"),
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


def test_overrides_apply_together():
    # one call may change two fields that are only valid together (d_model 32 needs n_heads to divide it)
    cfg = make_config("laptop", d_model=32, n_heads=4)
    assert (cfg.model.d_model, cfg.model.n_heads) == (32, 4)


def test_paper_profile_uses_the_authors_init():
    assert make_config("paper").model.init == "tl" and make_config("paper").train.schedule == "plateau"


def namespace(**params):
    """A notebook namespace after the parameters cell: annotated declarations, plus what papermill injected."""
    declared = {"noise": float, "profile": str, "seed": int}
    ns = {"__annotations__": declared, "noise": 0.0, "profile": "", "seed": 0, "In": [], "_i1": "x"}
    return ns | params


def test_check_parameters_accepts_declared_values_and_the_prologue_converts_them():
    check_parameters(namespace(json=json, plt=object))  # modules and other non-data names are not parameters
    with pytest.raises(ValueError, match="unknown parameter 'bogus'"):
        check_parameters(namespace(bogus=[1]))  # plain data under an undeclared name is a misspelt parameter
    ns = namespace(noise=0, seed=3, profile="smoke")  # papermill passes -p noise 0 as an int
    prologue(ns)
    assert (ns["noise"], type(ns["noise"]), ns["seed"], ns["profile"]) == (0.0, float, 3, "smoke")


def test_check_parameters_leaves_rules_between_fields_to_the_whole_config():
    # a Mess3 product's own parameters are valid field by field; only the whole config ties them to n_mess3 > 0
    mess3 = {"__annotations__": {"n_mess3": int, "mess3_x": float, "mess3_a": float}}
    check_parameters(mess3 | {"n_mess3": 3, "mess3_x": 0.05, "mess3_a": 0.9})
    with pytest.raises(ValueError, match=r"mess3_x must be a number in \(0, 0.5\], got 0.7"):
        check_parameters(mess3 | {"n_mess3": 3, "mess3_x": 0.7, "mess3_a": 0.9})
    with pytest.raises(ValueError, match=r"mess3_x must be left at 0.15 .* unless n_mess3 > 0"):
        from_parameters("smoke", n_mess3=0, mess3_x=0.05)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"bogus": 3}, r"unknown parameter 'bogus'; this notebook's parameters are \['noise', 'profile', 'seed'\]"),
        ({"noise": "abc"}, r"noise must be a number in \[0, 1\], got 'abc'"),
        ({"seed": 1.5}, r"seed must be an integer in \[0, 2\*\*63\), got 1.5"),
        ({"seed": True}, r"seed must be an integer in \[0, 2\*\*63\), got True"),
        ({"profile": 3}, r"profile must be a string, got 3"),
    ],
)
def test_check_parameters_rejects(params, message):
    with pytest.raises(ValueError, match=message):
        check_parameters(namespace(**params))


def test_from_parameters_zero_means_the_profiles():
    assert from_parameters("laptop", seed=0, steps=0, d_model=0, n_ctx=0) == make_config("laptop")
    cfg = from_parameters("smoke", seed=2, steps=7, d_model=32, n_heads=4, n_ctx=33)
    assert (cfg.train.seed, cfg.train.steps, cfg.model.d_model, cfg.data.seq_len) == (2, 7, 32, 32)
    with pytest.raises(ValueError, match=r"n_ctx must be an integer in \[2, 513\]"):
        from_parameters("smoke", n_ctx=1)
    with pytest.raises(ValueError, match=r"d_model must be an integer in \[1, 65536\], got -3"):
        from_parameters("smoke", d_model=-3)


def test_n_mess3_selects_the_number_of_factors_and_enters_the_hash():
    assert make_config("smoke").data.n_mess3 == 0  # the paper's five factors
    cfg = make_config("smoke", n_mess3=3, noise=0.1)
    assert cfg.data.n_mess3 == 3 and RunConfig.from_dict(cfg.to_dict()) == cfg
    assert len({make_config("smoke", n_mess3=n).hash() for n in range(9)}) == 9


@pytest.mark.parametrize("value", [-1, 9, 2.0, True, "3"])
def test_n_mess3_out_of_range(value):
    with pytest.raises(ValueError, match=r"n_mess3 must be an integer in \[0, 8\]"):
        make_config("smoke", n_mess3=value)


def test_n_mess3_needs_independent_factors():
    with pytest.raises(ValueError, match=r"n_mess3 must be .*0 unless structure is 'independent', got 2"):
        make_config("smoke", n_mess3=2, structure="chain")
    assert make_config("smoke", n_mess3=0, structure="chain").data.structure == "chain"


def test_hash_ignores_fields_at_their_default():
    # a field added later with a default that keeps the old behaviour must not move existing runs' folders
    a = make_config("smoke")
    d = a.to_dict()
    del d["data"]["noise"], d["model"]["embed_std"], d["train"]["adam_beta2"]  # as if they did not exist yet
    assert RunConfig.from_dict(d).hash() == a.hash()
    assert make_config("smoke", noise=0.0).hash() == a.hash() != make_config("smoke", noise=0.01).hash()


def test_a_recurrent_net_refuses_transformer_sizes_and_hashes_without_them():
    lstm = from_parameters("laptop", arch="lstm", **parameters.architecture_sizes("lstm"))
    assert (lstm.model.d_model, lstm.model.n_layers) == (32, 2)  # the authors' recurrent nets
    assert (lstm.model.n_heads, lstm.model.d_mlp, lstm.model.init) == (3, 480, "tl")  # the profile's reset
    with pytest.raises(ValueError, match=r"n_heads must be left unset for arch='lstm' \(transformer only\), got 7"):
        from_parameters("laptop", arch="lstm", **parameters.architecture_sizes("lstm", n_heads=7))
    smoke = from_parameters("smoke", arch="gru", **parameters.architecture_sizes("gru"))  # smoke sets heads, mlp
    plain = config.RunConfig(smoke.name, smoke.data, config.ModelConfig("gru", 32, 2), smoke.train)
    assert smoke.hash() == plain.hash()  # unused transformer fields never enter the hash
    assert parameters.architecture_sizes("transformer", d_model=64) == {"d_model": 64, "n_layers": 0, "n_heads": 0,
                                                                     "d_mlp": 256}  # fmt: skip


def test_profiles_are_records_of_run_analysis_and_monte_carlo_sizes():
    smoke, laptop = profiles.profile_record("smoke"), profiles.profile_record("laptop")
    assert smoke.trains_demo_grid and not laptop.trains_demo_grid
    assert smoke.mc_samples < laptop.mc_samples <= profiles.profile_record("paper").mc_samples
    assert config.make_config("smoke").model.d_model == smoke.run["model"]["d_model"]
    with pytest.raises(ValueError, match="profile must be one of"):
        profiles.profile_record("huge")


def test_describe_shows_what_the_run_uses():
    lstm = from_parameters("laptop", arch="lstm", **parameters.architecture_sizes("lstm")).describe()
    assert lstm.startswith("run lstm32x2-") and "n_heads" not in lstm and "d_mlp" not in lstm
    laptop = config.make_config("laptop").describe()
    assert "schedule=cosine" in laptop and "plateau_patience" not in laptop and "device" not in laptop


def test_parts_convert_and_check_their_own_fields():
    assert DataConfig(noise=0).noise == 0.0 and isinstance(DataConfig(noise=1).noise, float)
    assert make_config("smoke", noise=1).hash() == make_config("smoke", noise=1.0).hash()  # one run, not two
    assert isinstance(TrainConfig(lr=1).lr, float) and TrainConfig(muon_lr=None).muon_lr is None
    with pytest.raises(ValueError, match=r"noise must be a number in \[0, 1\], got 2"):
        DataConfig(noise=2)
    with pytest.raises(ValueError, match=r"n_heads must be a divisor of d_model=10, got 3"):
        ModelConfig(d_model=10, n_heads=3)
    assert ModelConfig(arch="lstm", d_model=10, n_heads=3).d_model == 10  # a recurrent net has no heads
    with pytest.raises(ValueError, match=r"warmup_steps must be an integer in \[0, steps=5\], got 6"):
        make_config("smoke", steps=5, warmup_steps=6)


def test_the_prologue_checks_converts_and_resolves(monkeypatch):
    monkeypatch.setenv("FACTORED_PROFILE", "smoke")
    ns = namespace(noise=0, seed=3)
    prologue(ns)
    assert ns["profile"] == "smoke"
    assert ns["noise"] == 0.0 and isinstance(ns["noise"], float) and isinstance(ns["seed"], int)
    with pytest.raises(ValueError, match=r"noise must be a number in \[0, 1\], got 3"):
        prologue(namespace(noise=3))


@pytest.mark.parametrize(
    "text, value",
    [("1e-3", 1e-3), ("1.0e-3", 1e-3), ("2E5", 2e5), ("0.2", 0.2), ("3", 3), ("-1", -1), ("true", True),
     ("lstm", "lstm"), ("'1e-3'", "1e-3"), ("[1, 2]", [1, 2]), ("", None)],
)  # fmt: skip
def test_a_command_line_value_reads_numbers_as_python_and_papermill_do(text, value):
    read = parse_value("lr", text)
    assert read == value and type(read) is type(value)


@pytest.mark.parametrize(
    "text, problem",
    [("[0.1", "expected ',' or ']', but got '<stream end>'"),
     ("!!python/object/apply:os.system ['echo hi']", "could not determine a constructor for the tag")],
)  # fmt: skip
def test_a_command_line_value_yaml_cannot_read_is_one_line_naming_the_parameter(text, problem):
    with pytest.raises(ValueError) as e:
        parse_value("noise", text)
    message = str(e.value)
    assert message.startswith(f"noise: cannot read {text!r} (") and problem in message and "\n" not in message


def test_a_recurrent_net_starts_from_its_own_recipe(monkeypatch):
    from factored import profiles

    laptop = profiles.PROFILE_RECORDS["laptop"]
    recipes = {"lstm": {"lr": 0.01, "optimizer": "adamw"}, "rnn256": {"lr": 0.001}, "rnn": {"lr": 0.02}}
    monkeypatch.setitem(profiles.PROFILE_RECORDS, "laptop", dataclasses.replace(laptop, recurrent=recipes))
    lstm = make_config("laptop", arch="lstm", d_model=32, n_layers=2)
    assert (lstm.train.lr, lstm.train.optimizer) == (0.01, "adamw")
    assert make_config("laptop", arch="rnn", d_model=256).train.lr == 0.001  # one width's own recipe wins
    assert make_config("laptop", arch="rnn", d_model=64).train.lr == 0.02
    assert make_config("laptop", arch="lstm", d_model=32, lr=0.003).train.lr == 0.003  # a field given wins
    assert make_config("laptop").train.lr == laptop.run["train"]["lr"]  # the transformer keeps the profile's


def test_a_noisy_run_trains_for_the_budget_its_profile_measured(monkeypatch):
    from factored import profiles

    laptop = profiles.PROFILE_RECORDS["laptop"]
    steps = laptop.run["train"]["steps"]
    measured = dataclasses.replace(laptop, noise_steps=((0.2, 3 * steps), (0.5, 6 * steps)))
    monkeypatch.setitem(profiles.PROFILE_RECORDS, "laptop", measured)
    assert make_config("laptop", noise=0.2).train.steps == 3 * steps
    assert make_config("laptop", noise=0.1).train.steps == 2 * steps  # linear between eps 0 and 0.2
    assert make_config("laptop", noise=0.8).train.steps == 6 * steps  # beyond the last measured eps: its budget
    assert make_config("laptop", noise=0.2, steps=500).train.steps == 500  # a budget given wins
    assert make_config("laptop").train.steps == steps
    assert profiles.PROFILE_RECORDS["smoke"].steps_at(0.5) is None  # no table: the profile's own steps


def test_one_rule_names_every_run_folder():
    assert make_config("laptop").name == "canonical"
    assert make_config("laptop", d_model=480, d_mlp=1920).name == "transformer480x4-ctx9"
    assert make_config("laptop", seq_len=100).name == "transformer120x4-ctx101"
    assert make_config("laptop", arch="lstm", d_model=32, n_layers=2).name == "lstm32x2"
    assert make_config("laptop", noise=0.2, d_model=60, d_mlp=240).name == "eps0.2"  # sizes: in the hash only
    assert make_config("smoke", d_model=480, d_mlp=1920, name="mine").name == "mine"
    # a sweep's point and the notebook it runs name the same run
    from factored import sweep_spec

    point = sweep_spec.Point("d_model=480", {"arch": "transformer", "d_model": 480, "profile": "laptop"})
    assert sweep_spec.point_config(point).run_id == from_parameters("laptop", d_model=480, d_mlp=1920).run_id


def test_the_prologue_returns_the_run_and_analysis_its_parameters_describe():
    declared = {"profile": str, "seed": int, "arch": str, "d_model": int, "site": str, "survey": bool}
    ns = {"__annotations__": declared, "profile": "smoke", "seed": 2, "arch": "lstm", "d_model": 0, "site": "",
          "survey": True}  # fmt: skip
    setup = prologue(ns, noise=0.1)
    cfg, acfg = setup
    assert cfg == from_parameters("smoke", seed=2, arch="lstm", d_model=32, n_layers=2, noise=0.1)
    assert acfg.site is None and acfg.n_sequences == profiles.profile_record("smoke").analysis["n_sequences"]
    assert setup.values == {"profile": "smoke", "seed": 2, "arch": "lstm", "d_model": 0, "site": "", "survey": True}
    only_profile = prologue({"__annotations__": {"profile": str}, "profile": "smoke"})
    assert only_profile.run is None and only_profile.analysis == acfg


def test_an_analysis_config_checks_itself():
    from factored.probing import AnalysisConfig

    with pytest.raises(ValueError, match="k_max must be an integer >= 1, got 0"):
        AnalysisConfig(k_max=0)

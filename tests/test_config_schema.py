"""``--config FILE``: one schema for the flags and the YAML file of run, tune and population.

The schema is read off each command's click options, so these tests hold it to its rule (every
option a key, every key an option), feed every key through the loader, and check end to end,
with real ``unlearnbench`` processes on digits, that a file says what the same flags say."""
from __future__ import annotations

import json
import re
from pathlib import Path

import click
import pytest
from test_cli import ok, runs_in, ub
from test_cli import model_cache as model_cache  # the session's model cache (fixture)

from unlearnbench.cli.config import ALIASES, RENAMED, config_keys, load_config
from unlearnbench.cli.run import population, run, tune
from unlearnbench.errors import UserError

COMMANDS = {"run": run, "tune": tune, "population": population}
README = Path(__file__).resolve().parents[1] / "README.md"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- the schema

@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_is_a_config_key_and_every_key_an_option(name):
    command = COMMANDS[name]
    assert "--config" in [opt for p in command.params for opt in p.opts]
    keys = config_keys(command)
    for param in command.params:
        if param.name == "config":
            continue
        assert isinstance(param, click.Option)
        assert param in keys.values(), f"`{name}` option {param.opts} has no config key"
    for key, param in keys.items():
        assert param in command.params, f"`{name}` config key {key!r} is no option"
        flag = next(opt for opt in param.opts if opt.startswith("--"))[2:]
        # the rule: the long name with - as _, or a documented mapping (README, the module)
        assert key == flag.replace("-", "_") or {**RENAMED, **ALIASES}.get(key) == flag, key
    assert "config" not in keys


def sample(key: str, param: click.Parameter):
    """A YAML value of the option's type, and what the option takes from it."""
    if key == "params":
        return {"ga": {"lr": 0.01}}, {"ga": {"lr": 0.01}}
    if isinstance(param.type, click.Choice):
        value = param.type.choices[-1]
    elif isinstance(param.type, click.types.IntParamType):
        value = 2
    elif isinstance(param.type, click.types.FloatParamType):
        value = 0.5
    elif isinstance(param.type, click.types.BoolParamType):
        value = True
    else:
        value = "x"
    return ([value], (value,)) if param.multiple else (value, value)


@pytest.mark.parametrize("name", COMMANDS)
def test_a_config_file_can_give_every_option(name, tmp_path):
    command = COMMANDS[name]
    keys = {key: param for key, param in config_keys(command).items() if key not in ALIASES}
    samples = {key: sample(key, param) for key, param in keys.items()}
    path = write(tmp_path / "all.yaml", "".join(f"{key}: {json.dumps(given)}\n"
                                                for key, (given, _) in samples.items()))
    values = load_config(path, command)
    assert values == {keys[key].name: taken for key, (_, taken) in samples.items()}


def test_benchmarks_is_benchmark_too(tmp_path):
    path = write(tmp_path / "a.yaml", "benchmarks: [digits-random10, digits-class]\n")
    assert load_config(path, run) == {"benchmark_names": ("digits-random10", "digits-class")}
    path = write(tmp_path / "b.yaml", "benchmarks: digits-random10\n")
    assert load_config(path, tune) == {"benchmark": "digits-random10"}
    path = write(tmp_path / "c.yaml", "benchmark: [digits-random10]\nbenchmarks: [digits-class]\n")
    with pytest.raises(UserError, match="give benchmark or benchmarks, not both"):
        load_config(path, run)


@pytest.mark.parametrize("name", COMMANDS)
def test_an_unknown_key_is_one_line_naming_it_and_the_valid_ones(name, tmp_path):
    path = write(tmp_path / "bad.yaml", "methods: [ga]\nlearning_rate: 3\n")
    with pytest.raises(UserError) as info:
        load_config(path, COMMANDS[name])
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"config file {str(path)!r}: unknown keys learning_rate; "
                              f"`unlearnbench {name}` takes ")
    assert message.endswith(", ".join(sorted(config_keys(COMMANDS[name]))))


@pytest.mark.parametrize("name, text, message", [
    ("run", "threads: many\n", "threads: expected int, got 'many'"),
    ("run", "seeds: 1.5\n", "seeds: expected int, got 1.5"),
    ("run", "tuned: 3\n", "tuned: expected bool, got 3"),
    ("run", "precision: fp64\n", "precision: 'fp64' is not one of 'fp32', 'bf16', 'fp16'"),
    ("run", "methods: [{ga: 1}]\n", "methods: expected str, got {'ga': 1}"),
    ("run", "params: {ga: 5}\n", "params must map each method to its hyperparameters"),
    ("tune", "benchmark: [digits-random10, digits-class]\n",
     "benchmark: expected str, got ['digits-random10', 'digits-class']"),
    ("tune", "utility_fraction: most\n", "utility_fraction: expected float, got 'most'"),
    ("population", "float32: maybe\n", "float32: expected bool, got 'maybe'"),
    ("population", "params: [ga.lr=0.1]\n", "params must map each method"),
])
def test_a_value_of_the_wrong_type_is_one_line(name, text, message, tmp_path):
    path = write(tmp_path / "bad.yaml", text)
    with pytest.raises(UserError) as info:
        load_config(path, COMMANDS[name])
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(f"config file {str(path)!r}: {message}")


def test_a_null_value_is_no_value(tmp_path):
    path = write(tmp_path / "nulls.yaml", "device:\nseeds: null\nmethods: [ga, null]\n")
    assert load_config(path, run) == {"method_names": ("ga",)}


def test_the_readme_example_is_a_valid_config(tmp_path):
    """README's config paragraph shows a file `run` takes."""
    [example] = re.findall(r"```yaml\n(.*?)```", README.read_text(), re.S)
    values = load_config(write(tmp_path / "readme.yaml", example), run)
    assert values["benchmark_names"] and values["method_names"]


# --------------------------------------------------------------------------- reading YAML

def test_load_config(tmp_path):
    path = write(tmp_path / "run.yaml", "benchmarks: [digits-random10]\nmethods: [finetune, ga]\n"
                                        "seeds: 3\nparams: {ga: {lr: 0.001}}\n")
    assert load_config(path, run) == {"benchmark_names": ("digits-random10",),
                                      "method_names": ("finetune", "ga"), "seeds": 3,
                                      "overrides": {"ga": {"lr": 0.001}}}
    assert load_config(write(tmp_path / "empty.yaml", ""), run) == {}


def test_load_config_refuses_python_tags(tmp_path):
    marker = tmp_path / "pwned"
    for text in (f'!!python/object/apply:os.system ["touch {marker}"]\n',
                 f'methods: !!python/object/apply:os.system ["touch {marker}"]\n',
                 "seeds: !!python/object:collections.OrderedDict {}\n",
                 "seeds: !!python/name:os.system\n"):
        with pytest.raises(UserError, match="not valid YAML"):
            load_config(write(tmp_path / "evil.yaml", text), run)
    assert not marker.exists()


@pytest.mark.parametrize("text, match", [
    ("methods: [ga\n  - x: {", "not valid YAML"),
    ("- ga\n- finetune\n", "mapping"),
    ("just a string\n", "mapping"),
])
def test_load_config_errors(tmp_path, text, match):
    with pytest.raises(UserError, match=match):
        load_config(write(tmp_path / "bad.yaml", text), run)


def test_load_config_missing_file(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_config(tmp_path / "nope.yaml", run)
    with pytest.raises(UserError, match="does not exist"):
        load_config(tmp_path, run)  # a directory is not a config file


# --------------------------------------------------------------------------- end to end

def last_line(result) -> str:
    return ok(result).stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_run_config_plans_the_jobs_the_flags_plan(model_cache, tmp_path):
    db = tmp_path / "r.db"
    flags = ["-b", "digits-random10", "-m", "ga", "--max-steps", "2", "--metrics", "ua",
             "--set", "ga.lr=0.001", "--no-progress", "--db", str(db)]
    assert last_line(ub("run", *flags, cache=model_cache, cwd=tmp_path)) == (
        f"1 finished, 0 failed, 0 already in {db}")
    config = write(tmp_path / "run.yaml", "benchmark: digits-random10\nmethods: [ga]\n"
                   "max_steps: 5\nmetrics: ua\nparams: {ga: {lr: 0.001}}\nno_progress: true\n")
    # The file's job is the stored one once the flag --max-steps 2 wins over its max_steps...
    result = ub("run", "--config", str(config), "--max-steps", "2", "--db", str(db),
                cache=model_cache, cwd=tmp_path)
    assert last_line(result) == f"0 finished, 0 failed, 1 already in {db}"
    # ... and the file's own max_steps is another job.
    result = ub("run", "--config", str(config), "--db", str(db), cache=model_cache, cwd=tmp_path)
    assert last_line(result) == f"1 finished, 0 failed, 0 already in {db}"
    assert [run["params"]["lr"] for run in runs_in(db)] == [0.001, 0.001]


@pytest.mark.slow
def test_tune_config_is_the_tuning_the_flags_ran(model_cache, tmp_path):
    db = tmp_path / "t.db"
    result = ok(ub("tune", "-b", "digits-random10", "-m", "ga", "--trials", "1", "--max-steps",
                   "2", "--db", str(db), cache=model_cache, cwd=tmp_path))
    assert "ga trial 1:" in result.stdout and "(already tuned)" not in result.stdout
    # the required --benchmark and --methods come from the file; --max-steps 2 wins over it
    config = write(tmp_path / "tune.yaml", "benchmark: digits-random10\nmethods: ga\n"
                                           "trials: 1\nmax_steps: 4\n")
    assert last_line(ub("tune", "--config", str(config), "--max-steps", "2", "--db", str(db),
                        cache=model_cache, cwd=tmp_path)).endswith("(already tuned)")


@pytest.mark.slow
def test_population_config_is_the_population_the_flags_ran(model_cache, tmp_path):
    db = tmp_path / "p.db"
    result = ok(ub("population", "-b", "digits-random10", "-m", "original", "--models", "3",
                   "--db", str(db), cache=model_cache, cwd=tmp_path))
    assert f"1 finished, 0 failed, 0 already in {db}" in result.stdout
    config = write(tmp_path / "population.yaml", "benchmark: digits-random10\n"
                                                 "methods: [original]\nmodels: 3\nseed: 4\n")
    result = ok(ub("population", "--config", str(config), "--seed", "0", "--db", str(db),
                   cache=model_cache, cwd=tmp_path))
    assert f"0 finished, 0 failed, 1 already in {db}" in result.stdout

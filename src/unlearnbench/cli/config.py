"""``--config FILE``: a YAML file that says what the flags of ``run``, ``tune`` and
``population`` say, checked against the command's own click options (one schema for both).

Each option is a key under its long name with ``-`` as ``_`` (``--max-steps`` is
``max_steps``, ``--no-progress`` is ``no_progress: true``), with two documented mappings:
``--set`` is ``params`` (method -> {hyperparameter: value}), and ``--benchmark`` may also be
written ``benchmarks``. The file's values become the options' defaults, so a flag on the
command line wins; ``--set`` adds to ``params``, hyperparameter by hyperparameter. YAML is
safe-loaded: a config holds plain values, it never names objects."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import yaml

from ..errors import UserError
from ..specs import coerce, parse_assignments

# The keys that are not an option's long name: key -> the option's long name.
RENAMED = {"params": "set"}
ALIASES = {"benchmarks": "benchmark"}

# Where --config leaves the file's params for --set's callback (shared by nested contexts).
CONFIG_PARAMS = "unlearnbench.config_params"

# The Python type a config value must have for each kind of click option (others: str).
BASE_TYPES = ((click.types.IntParamType, int), (click.types.FloatParamType, float),
              (click.types.BoolParamType, bool))


def long_name(option: click.Parameter) -> str:
    return next(opt for opt in option.opts if opt.startswith("--"))[2:]


def config_keys(command: click.Command) -> dict[str, click.Parameter]:
    """Every config key of ``command`` and the option it stands for: all its options but
    ``--config`` itself."""
    keys = {long_name(p).replace("-", "_"): p for p in command.params if p.name != "config"}
    for key, option in RENAMED.items():
        if option in keys:
            keys[key] = keys.pop(option)
    keys.update({key: keys[option] for key, option in ALIASES.items() if option in keys})
    return keys


def load_config(path: str | Path, command: click.Command) -> dict[str, Any]:
    """The values the YAML file ``path`` gives ``command``'s options, by parameter name and
    converted to each option's type (``params``: a mapping of mappings, checked when the run
    is planned). A null value is no value. Unknown keys and wrong types are user errors."""
    where = f"config file {str(path)!r}"
    data = read_yaml(Path(path), where)
    keys = config_keys(command)
    unknown = set(data) - set(keys)
    if unknown:
        raise UserError(f"{where}: unknown keys {', '.join(sorted(unknown))}; `unlearnbench "
                        f"{command.name}` takes {', '.join(sorted(keys))}")
    given = [key for key in data if data[key] is not None]
    for key, option in ALIASES.items():
        if key in given and option in given:
            raise UserError(f"{where}: give {option} or {key}, not both")
    return {keys[key].name: option_value(data[key], keys[key], key, f"{where}: {key}")
            for key in given}


def read_yaml(path: Path, where: str) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"{where} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{where} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UserError(f"{where} must hold a mapping of option: value")
    return data


def option_value(value: Any, option: click.Parameter, key: str, where: str) -> Any:
    """``value`` as the option would take it from the command line (a tuple for a repeatable
    option, which also takes a single value)."""
    if key == "params":
        if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
            raise UserError(f"{where} must map each method to its hyperparameters, e.g. "
                            "params: {ga: {lr: 0.001}}")
        return value
    if option.multiple:
        items = value if isinstance(value, list) else [value]
        return tuple(single_value(item, option, where) for item in items if item is not None)
    return single_value(value, option, where)


def single_value(value: Any, option: click.Parameter, where: str) -> Any:
    kind = next((kind for click_type, kind in BASE_TYPES if isinstance(option.type, click_type)),
                str)
    value = coerce(value, kind, where)
    try:  # a choice, a path: what click checks of a flag's value
        return option.type.convert(value, option, None)
    except click.BadParameter as exc:
        raise UserError(f"{where}: {exc.message}") from None


def use_config(ctx: click.Context, param: click.Parameter, path: str | None) -> str | None:
    """``--config``'s callback. The option is eager, so this runs before the other options
    take their values: the file's values become their defaults (click's ``default_map``)."""
    if path is not None:
        values = load_config(path, ctx.command)
        set_option = config_keys(ctx.command).get("params")
        if set_option is not None:  # merged with the flags by --set's own callback
            ctx.meta[CONFIG_PARAMS] = values.pop(set_option.name, {})
        ctx.default_map = values
    return path


def config_option(function):
    """The ``--config FILE`` option of a command."""
    return click.option("--config", type=click.Path(dir_okay=False), is_eager=True,
                        expose_value=False, callback=use_config,
                        help="YAML file giving these options by their long names with - as _ "
                             "(--set as params: {METHOD: {PARAM: VALUE}}); flags given here "
                             "win over it.")(function)


def hyperparameters(ctx: click.Context, param: click.Parameter,
                    assignments: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``--set``'s callback: the config file's params, each METHOD.PARAM=VALUE of the command
    line over them."""
    merged = {method: dict(values) for method, values in ctx.meta.get(CONFIG_PARAMS, {}).items()}
    for method, values in parse_assignments(assignments).items():
        merged.setdefault(method, {}).update(values)
    return merged

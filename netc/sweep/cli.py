"""`netc sweep`'s command line (wired into `netc` by netc/cli.py, which imports this module;
this package never imports netc.cli): netc's own flags, the overrides and options checked
before Hydra starts (usage errors, exit 2), the hand-off to Hydra, and the report.

    netc sweep specs/resnet18.net 'layers=[2,2,2,2],[3,4,6,3]' width_per_group=64,128
    netc sweep specs/simple_cnn.net image='[1,8,8]' measure=train train.epochs=5
    netc sweep specs/digits/digits_cnn.net hydra/sweeper=optuna hydra.sweeper.n_trials=12 \
        'depth=range(1,6)' 'width=choice(8,16,32)' measure=train objective=val_acc \
        hydra.sweeper.direction=maximize
    netc sweep --report multirun/2026-05-01/12-00-00
"""
from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from netc.sweep.config import (CONFIG_NAME, MISSING, OPTIONS, UsageError, escape_override,
                               option_problems, primary_config, register_config,
                               spec_parameters)
from netc.sweep.results import COLUMNS, _console, report, sort_rows

EXIT_OK, EXIT_SPEC, EXIT_USAGE = 0, 1, 2  # as netc's other commands (netc/cli.py)
HYDRA_INFO = ("all", "config", "defaults", "defaults-tree", "plugins", "searchpath")


# ---- the command line (`netc sweep ...`, wired in netc/cli.py)

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """netc's own flags of `netc sweep`; everything else is handed to Hydra."""
    parser.add_argument("--dry-run", action="store_true",
                        help="expand the variants, check each statically and print them; "
                             "launch nothing")
    parser.add_argument("--report", metavar="DIR",
                        help="rebuild the table, results.csv/json and the plot of an existing "
                             "sweep directory (e.g. after a cluster run); launch nothing")
    parser.add_argument("--sort", metavar="COLUMN",
                        help="sort the table by a column (params, macs, latency_ms, "
                             "train_ms, ...); --sort=-COLUMN sorts descending")
    parser.add_argument("-cd", "--config-dir", metavar="DIR",
                        help="a folder of Hydra configs (e.g. configs/), as in any Hydra app")
    parser.add_argument("-cn", "--config-name", metavar="NAME",
                        help="the sweep config in --config-dir (its `defaults` start with "
                             "netc_sweep; it may set `spec` and `hydra.sweeper.params`)")
    parser.add_argument("--cfg", choices=("job", "hydra", "all"),
                        help="print Hydra's composed config and exit (as Hydra's --cfg)")
    parser.add_argument("-m", "--multirun", action="store_true",
                        help="accepted for Hydra habits; netc sweep always runs a multirun")
    parser.add_argument("--info", nargs="?", const="all", choices=HYDRA_INFO,
                        help="print Hydra's information (config search path, plugins, "
                             "defaults) and exit, as Hydra's --info")
    parser.add_argument("--hydra-help", action="store_true",
                        help="Hydra's help (config groups, launchers, sweepers) and exit")


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def _parse(tokens: list[str], flags: argparse.Namespace) -> argparse.Namespace:
    """Flags may come anywhere among the overrides (argparse.REMAINDER keeps them)."""
    parser = _Parser(prog="netc sweep", add_help=False)
    add_arguments(parser)
    parser.add_argument("words", nargs="*")
    opts = parser.parse_intermixed_args(tokens)
    for name in ("dry_run", "multirun", "hydra_help"):
        setattr(opts, name, getattr(opts, name) or getattr(flags, name, False))
    for name in ("report", "sort", "config_dir", "config_name", "cfg", "info"):
        if getattr(opts, name) is None:
            setattr(opts, name, getattr(flags, name, None))
    opts.spec = None
    opts.overrides = []
    for word in opts.words:
        if opts.spec is None and not opts.overrides and "=" not in word \
                and not word.startswith(("~", "+")):
            opts.spec = word
        elif "=" not in word and not word.startswith("~"):
            raise UsageError(f"`{word}` is not an override (key=value); the spec comes first: "
                             "netc sweep SPEC key=a,b ...")
        else:
            opts.overrides.append(word)
    return opts


def _checked_overrides(overrides: list[str]) -> list[str]:
    """The overrides escaped (see `escape_override`) and parsed once with Hydra's parser
    before Hydra runs: a malformed one, or one deleting a netc option (`~spec`), is a usage
    error here rather than a traceback later."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    escaped = [escape_override(o) for o in overrides]
    parser = OverridesParser.create()
    for original, text in zip(overrides, escaped):
        try:
            parsed = parser.parse_overrides([text])[0]
        except Exception as error:
            raise UsageError(f"cannot read the override `{original}`: "
                             f"{' '.join(str(error).split())}") from None
        key = parsed.get_key_element().lstrip("+~")
        if parsed.is_delete() and key in OPTIONS:
            raise UsageError(f"`{original}`: `{key}` is a netc sweep option and cannot be "
                             f"deleted; set it instead (e.g. {key}=...)")
    return escaped


def _spec_values(overrides: list[str]) -> tuple[list[str], str | None]:
    """The spec paths named by a `spec=` override (a sweep gives several) and `net=`."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    specs, net = [], None
    wanted = [o for o in overrides if o.split("=", 1)[0].lstrip("+") in ("spec", "net")]
    if not wanted:
        return specs, net
    try:
        parsed = OverridesParser.create().parse_overrides(wanted)
    except Exception as error:
        raise UsageError(" ".join(str(error).split())) from None
    for override in parsed:
        key = override.get_key_element().lstrip("+")
        if override.is_sweep_override():
            values = list(override.sweep_string_iterator())
        else:
            values = [override.get_value_element_as_str()]
        if key == "spec":
            specs += [str(_unquote(v)) for v in values]
        elif len(values) == 1 and values[0] not in ("null", ""):
            net = _unquote(values[0])
    return specs, net


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _config_file(config_dir: str | None, config_name: str) -> Path | None:
    if config_dir is None:
        return None
    name = config_name if config_name.endswith((".yaml", ".yml")) else config_name + ".yaml"
    path = Path(config_dir) / name
    return path if path.is_file() else None


def _specs_from_config(path: Path) -> tuple[list[str], bool, dict]:
    """`spec` (or a sweep over it in `hydra.sweeper.params`) from a sweep config file, and
    whether the file builds on netc_sweep."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    data = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    defaults = data.get("defaults") or []
    extends = any(d == CONFIG_NAME or isinstance(d, dict) and CONFIG_NAME in d.values()
                  for d in defaults)
    swept = ((data.get("hydra") or {}).get("sweeper") or {}).get("params") or {}
    if "spec" in swept:
        override = OverridesParser.create().parse_overrides([f"spec={swept['spec']}"])[0]
        if override.is_sweep_override():
            return [_unquote(v) for v in override.sweep_string_iterator()], extends, data
        return [_unquote(override.get_value_element_as_str())], extends, data
    if isinstance(data.get("spec"), str) and data["spec"] != MISSING:
        return [data["spec"]], extends, data
    return [], extends, data


def run_cli(flags: argparse.Namespace) -> int:
    """`netc sweep`: exit 0 when every variant is valid (and ran), 1 when some are not,
    2 on usage errors (bad overrides or options, unreadable files, Hydra configuration
    errors)."""
    try:
        return _run(flags)
    except UsageError as error:
        print(f"netc: error: {error}", file=sys.stderr)
        return EXIT_USAGE


def _run(flags: argparse.Namespace) -> int:
    from netc.sweep.launch import STATE, run_hydra, usage_problem

    opts = _parse(list(getattr(flags, "args", []) or []), flags)
    if opts.report:
        if not Path(opts.report).is_dir():
            raise UsageError(f"--report: `{opts.report}` is not a directory")
        rows, _ = report(Path(opts.report), opts.sort)
        if not rows:
            raise UsageError(f"--report: no netc sweep jobs in `{opts.report}`")
        return EXIT_OK if all(r.get("status") == "ok" for r in rows) else EXIT_SPEC

    config_name = opts.config_name or CONFIG_NAME
    config_file = None
    if opts.config_name:
        if not opts.config_dir:
            raise UsageError("--config-name needs --config-dir (the folder of your configs)")
        config_file = _config_file(opts.config_dir, opts.config_name)
        if config_file is None:
            raise UsageError(f"no config `{opts.config_name}` in `{opts.config_dir}`")
    if opts.config_dir and not Path(opts.config_dir).is_dir():
        raise UsageError(f"--config-dir: `{opts.config_dir}` is not a directory")

    opts.overrides = _checked_overrides(opts.overrides)
    if opts.sort:  # an unknown column is a usage error before anything runs
        _check_sort(opts.sort, opts.overrides)
    swept, net = _spec_values(opts.overrides)
    spec_default = None
    if opts.spec is not None:
        if not Path(opts.spec).is_file():
            raise UsageError(f"cannot read `{opts.spec}`: no such file")
        spec_default = str(Path(opts.spec).resolve())
    specs = swept or ([spec_default] if spec_default else [])
    file_data = {}
    if config_file is not None:
        from_file, extends, file_data = _specs_from_config(config_file)
        if not extends:
            raise UsageError(f"{config_file}: a sweep config builds on netc's: start it with "
                             f"`defaults: [{CONFIG_NAME}, _self_]`")
        if not specs:
            specs = from_file
    if not specs:
        raise UsageError("no spec: netc sweep SPEC [overrides], spec=a.net,b.net, or "
                         "`spec:` in the --config-name file")
    infos = []
    for spec in specs:
        path = Path(spec)
        if not path.is_file():
            raise UsageError(f"cannot read `{spec}`: no such file")
        info = spec_parameters(path, net)
        if info.problems:
            print(info.problems, file=sys.stderr)
            return EXIT_SPEC
        infos.append(info)
    node = primary_config(infos, spec_default)
    groups = set()
    if opts.config_dir:  # config groups of the user's folder are keys too (`optimizer=adam`)
        groups = {p.name for p in Path(opts.config_dir).iterdir() if p.is_dir()}
    _check_keys_and_options(opts.overrides, file_data, node, groups)
    register_config(node)

    # Hydra's flags first, then the overrides (ANCHORS 8.3: flag order); always a multirun,
    # since Hydra uses the configured launcher only then (--cfg, --info, --hydra-help print)
    if opts.hydra_help:
        argv = ["netc-sweep", "--hydra-help"]
    elif opts.info:
        argv = ["netc-sweep", "--info", opts.info]
    elif opts.cfg:
        argv = ["netc-sweep", "--cfg", opts.cfg]
    else:
        argv = ["netc-sweep", "--multirun"]
    if opts.config_dir:
        argv += ["--config-dir", str(Path(opts.config_dir).resolve())]
    if opts.config_name:
        argv += ["--config-name", config_name]
    argv += opts.overrides + _search_defaults(opts.overrides, file_data)
    STATE.outcome, STATE.usage_error, STATE.dry_run = None, None, opts.dry_run
    status = run_hydra(argv, dry_run=opts.dry_run)
    usage_problem()
    if opts.cfg or opts.info or opts.hydra_help:
        return EXIT_OK if status == 0 else EXIT_USAGE
    outcome = STATE.outcome
    if outcome is None:
        if status == 0:
            print("netc sweep: no netc sweeper ran (hydra/sweeper overridden?); build the "
                  "table with `netc sweep --report DIR`", file=sys.stderr)
            return EXIT_OK
        return EXIT_USAGE  # Hydra has reported why (composition or override errors)
    all_ok = all(v.status == "ok" for v in outcome.variants)
    if outcome.dry_run:
        if outcome.sweeper != "netc":  # a search: the trials it sampled, and their check
            from netc.sweep.results import print_variants

            print_variants(outcome.variants, outcome.check_seconds, outcome.launcher, True,
                           outcome.sweep_dir)
            _drop_dry_run_files(outcome.sweep_dir)
        return EXIT_OK if all_ok else EXIT_SPEC
    if not outcome.sweep_dir.is_dir():
        return EXIT_SPEC if outcome.variants else EXIT_USAGE
    title = ", ".join(sorted({Path(i.path).name for i in infos}))
    rows, _ = report(outcome.sweep_dir, opts.sort, title=title)
    _console().print(f"sweep of {len(rows)} variants took {outcome.seconds:.1f} s "
                     f"(hydra/sweeper={outcome.sweeper}, hydra/launcher={outcome.launcher}); "
                     f"rebuild this table with `netc sweep --report {outcome.sweep_dir}`")
    if status != 0:
        return EXIT_SPEC
    return EXIT_OK if all(r.get("status") == "ok" for r in rows) else EXIT_SPEC


def _sweeper_choice(overrides: list[str], file_data: dict) -> str:
    """The sweeper the command line or the sweep config chose (netc's by default)."""
    for text in overrides:
        key, _, value = text.partition("=")
        if key.lstrip("+") == "hydra/sweeper":
            return value
    for item in file_data.get("defaults") or []:
        if isinstance(item, dict):
            for key, value in item.items():
                if key.split()[-1] == "hydra/sweeper":
                    return str(value)
    return "netc"


def _search_defaults(overrides: list[str], file_data: dict) -> list[str]:
    """netc's defaults for Optuna's sweeper: invalid trials are failed trials, expected
    where the search space has invalid regions, so one does not stop the search
    (`max_failure_rate=1.0`; give hydra.sweeper.max_failure_rate to change it)."""
    if _sweeper_choice(overrides, file_data) != "optuna":
        return []
    given = any(o.split("=", 1)[0].lstrip("+") == "hydra.sweeper.max_failure_rate"
                for o in overrides)
    in_file = "max_failure_rate" in (((file_data.get("hydra") or {}).get("sweeper")) or {})
    return [] if given or in_file else ["hydra.sweeper.max_failure_rate=1.0"]


def _drop_dry_run_files(sweep_dir: Path) -> None:
    """A search sweeper writes its summary even when netc launched nothing (`--dry-run`):
    remove it, and the sweep directory when that leaves it empty."""
    summary = Path(sweep_dir) / "optimization_results.yaml"
    if summary.is_file():
        summary.unlink()
    try:
        Path(sweep_dir).rmdir()
    except OSError:
        pass


def _check_sort(sort: str, overrides: list[str]) -> None:
    from netc.sweep.results import override_values

    column = sort.lstrip("-")
    keys = set(override_values(overrides))
    if column in COLUMNS or column in keys or column.startswith("arg.") and column[4:] in keys:
        return
    sort_rows([], sort)  # raises with a did-you-mean


def _override_items(overrides: list[str]):
    """(key, [values]) of each override that is not Hydra's own, sweeps expanded."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for text in overrides:
        parsed = parser.parse_overrides([text])[0]
        key = parsed.get_key_element()
        if key.lstrip("+~").startswith("hydra") or parsed.is_delete():
            continue
        if parsed.is_sweep_override():
            if parsed.is_choice_sweep() or parsed.is_range_sweep():
                values = list(parsed.sweep_iterator())
            else:
                values = []  # an interval: numbers, checked with each variant
        else:
            values = [parsed.value()]
        yield key, values


def _check_keys_and_options(overrides: list[str], file_data: dict, node: dict,
                            groups: set[str] = frozenset()) -> None:
    """Before Hydra starts: every key of the command line is a parameter of the spec, a
    netc option or a key of the sweep config (else a usage error with a did-you-mean), and
    every option value fits its schema (`measure=latensy`, `bench.runs=0`: exit 2). The
    same checks run on a config file's `hydra.sweeper.params` inside the sweeper."""
    known = (set(node) | set(file_data) | set(groups)) - {"defaults", "hydra"}
    sweeper_params = ((file_data.get("hydra") or {}).get("sweeper") or {}).get("params") or {}
    items = list(_override_items(overrides))
    items += list(_override_items([f"{k}={v}" for k, v in sweeper_params.items()]))
    for key, values in items:
        plain = key.lstrip("+~")
        head = plain.split(".", 1)[0]
        if not key.startswith("+") and head not in known:
            candidates = sorted(k for k in known if k != "defaults")
            close = difflib.get_close_matches(head, candidates, n=1)
            raise UsageError(f"`{head}` is not a parameter of the spec nor a netc option"
                             + (f"; did you mean `{close[0]}`?" if close else
                                f" (known: {', '.join(candidates)})"))
        if head in OPTIONS and head not in ("spec", "net", "input"):
            for value in values:
                problems = option_problems(plain, _plain(value))
                if problems:
                    raise UsageError(problems[0])


def _plain(value):
    """A parsed override value as plain Python (Hydra's parser gives lists and dicts)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value

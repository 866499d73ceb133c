"""The `netc` command line. Only this module prints; the stages return diagnostics.

Exit codes: 0 valid / built, 1 errors in a spec (or weights that do not fit it), 2 usage
errors, unreadable files (weights too) and outputs netc will not write, 3 an internal error
(a bug in netc, reported as such).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

from netc.diagnostics import Diagnostics, NetcError, WeightsMismatch, render_json, render_text
from netc.files import PathError, check_input, check_output, write_bytes

EXIT_OK, EXIT_SPEC, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3

FORMATS = {
    "torchscript": ".pt",  # torch.jit.save of the scripted module
    "export": ".pt2",  # torch.export.save of an ExportedProgram
    "onnx": ".onnx",  # torch.onnx.export (dynamo) of the same program
    "py": ".py",  # the generated module source, importable without netc
}
FORMAT_OF_SUFFIX = {suffix: fmt for fmt, suffix in FORMATS.items()}


class UsageError(Exception):
    """A bad command line (exit 2)."""


def _want_colour(stream) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return hasattr(stream, "isatty") and stream.isatty()


def _parse_defines(pairs: list[str]) -> dict:
    """`-D key=value` pairs as parsed netc expressions (so lists and block names work)."""
    from netc.compiler import parse_override

    overrides = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise UsageError(f"-D expects key=value, got `{pair}`")
        diags = Diagnostics()
        expr = parse_override(key, text.strip(), diags)
        if expr is None:
            raise UsageError(f"-D {key}: cannot read `{text}` as a value "
                             "(numbers, true/false, lists like [3, 4, 6, 3], or a block name)")
        overrides[key] = expr
    return overrides


def _parse_limits(pairs: list[str] | None) -> dict[str, int]:
    from netc.elaborate import LIMITS

    limits = {}
    for pair in pairs or []:
        name, _, value = pair.partition("=")
        if name not in LIMITS:
            raise UsageError(f"--limit: unknown limit `{name}` (known: {', '.join(LIMITS)})")
        try:
            number = float(value)
            limits[name] = int(number) if float(int(number)) == number else int("x")
        except (ValueError, OverflowError):
            raise UsageError(f"--limit {name}: `{value}` is not a whole number") from None
        if limits[name] < 0 or limits[name] > 10 ** 18:
            raise UsageError(f"--limit {name}: `{value}` is out of range (0 to 1e18)")
    return limits


def _parse_input(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        dims = tuple(int(part) for part in text.replace("x", ",").split(","))
    except ValueError:
        raise UsageError(f"--input expects C,H,W (e.g. 3,224,224), got `{text}`") from None
    if len(dims) not in (1, 3) or any(d < 1 for d in dims):
        raise UsageError(f"--input expects C,H,W or F of positive integers, got `{text}`")
    return dims


def _require_files(specs: list[str]) -> None:
    """Each spec is a file, or the name of a model on the library path (`resnet50`)."""
    from netc.loader import resolve_spec

    for spec in specs:
        if resolve_spec(spec) is None:
            raise UsageError(f"cannot read `{spec}`: no such file or model "
                             "(`netc list` shows the models found by name)")


def cmd_list(args) -> int:
    """The models `netc check NAME` finds: the shipped specs and those on NETC_PATH / --lib."""
    from netc.loader import list_models

    for name in list_models():
        print(name)
    return EXIT_OK


def _artifact_target(args) -> tuple[str, Path]:
    """`netc build`'s format and output path: --format, else the -o suffix, else TorchScript.
    A known suffix that names another format is an error (a `.onnx` file holding TorchScript
    helps no one), and so is a suffix that names none when --format is absent."""
    if args.output is None:
        fmt = args.format or "torchscript"
        return fmt, check_output(Path.cwd() / (Path(args.spec).stem + FORMATS[fmt]))
    out = check_output(args.output)  # `-o .` is a directory before it is a missing suffix
    suffix = out.suffix.lower()
    implied = FORMAT_OF_SUFFIX.get(suffix)
    if args.format and implied and implied != args.format:
        raise UsageError(f"-o {args.output}: the suffix {suffix} means --format {implied}, not "
                         f"{args.format}; use a {FORMATS[args.format]} file or drop --format")
    if not (args.format or implied):
        raise UsageError(f"-o {args.output}: cannot tell the format from the suffix; use "
                         f"{', '.join(FORMAT_OF_SUFFIX)} or give --format")
    return args.format or implied, out


def _require_onnx() -> None:
    """torch.onnx's dynamo exporter needs onnx and onnxscript, an extra of netc."""
    missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageError(f"--format onnx needs {' and '.join(missing)}: "
                         "pip install 'netc[onnx]'")


def _print_diagnostics(compiled, fmt: str = "text", totals: bool = True) -> None:
    if fmt == "json":
        return
    if compiled.diagnostics:
        from netc.diagnostics import render_totals

        colour = _want_colour(sys.stderr)
        text = render_text(compiled.diagnostics, compiled.sources, colour)
        print(text, file=sys.stderr)
        if totals:
            print(render_totals(sum(d.is_error for d in compiled.diagnostics),
                                sum(not d.is_error for d in compiled.diagnostics), colour),
                  file=sys.stderr)


def _compile_one(args, progress=None):
    """The `SPEC` of a single-spec command compiled with its -D / --input / --net / --limit
    options, its diagnostics printed (after clearing `netc build`'s progress line)."""
    from netc.compiler import compile_spec

    _require_files([args.spec])
    compiled = compile_spec(args.spec, _parse_defines(args.define),
                            input_shape=_parse_input(args.input), net=args.net,
                            limits=_parse_limits(args.limit))
    if progress is not None:
        progress.done()
    _print_diagnostics(compiled)
    return compiled


def _signature(graph) -> tuple[str, str]:
    """`image [3, 224, 224]` and `[1000]`: a net's inputs and outputs, for reports."""
    from netc.shapes import format_shape

    ins = ", ".join(f"{i.name} {format_shape(i.shape)}" for i in graph.inputs)
    outs = ", ".join(format_shape(graph.node(o).shape) for o in graph.outputs)
    return ins, outs


# ---- commands

def _spec_files(targets: list[str]) -> list[str]:
    """`netc check` targets as files: a directory means every `.net` inside it (sorted,
    recursively), `-` the standard input; missing paths are kept (reported one by one)."""
    files = []
    for target in targets:
        path = Path(target)
        if target != "-" and path.is_dir():
            found = sorted(str(p) for p in path.rglob("*.net") if p.is_file())
            if not found:
                raise UsageError(f"`{target}` is a directory with no .net files")
            files += found
        else:
            files.append(target)
    return files


def _compile_stdin(overrides, input_shape, net, limits):
    """The standard input compiled as a spec named `<stdin>` (imports resolve from the
    current directory)."""
    import tempfile
    from netc.compiler import compile_spec

    text = sys.stdin.read()
    with tempfile.TemporaryDirectory(prefix="netc-stdin-", dir=".") as folder:
        path = Path(folder) / "stdin.net"
        path.write_text(text, encoding="utf-8")
        compiled = compile_spec(path, overrides, input_shape=input_shape, net=net, limits=limits)
    return _renamed(compiled, display=str(path), to="<stdin>")


def _renamed(compiled, display: str, to: str):
    """A compilation whose diagnostics and sources name `display` as `to`."""
    import dataclasses
    from netc.source import SourceFile

    candidates = {display, str(Path(display).resolve())}
    for path in list(compiled.sources.files):
        if Path(path).resolve() == Path(display).resolve():
            candidates.add(path)

    def span(s):
        return dataclasses.replace(s, file=to) if s is not None and s.file in candidates else s

    def fix(d):
        return dataclasses.replace(
            d, span=span(d.span),
            labels=tuple(dataclasses.replace(l, span=span(l.span)) for l in d.labels),
            context=tuple(dataclasses.replace(f, span=span(f.span)) for f in d.context))

    compiled.diagnostics = [fix(d) for d in compiled.diagnostics]
    for path in candidates:
        if path in compiled.sources.files:
            compiled.sources.add(SourceFile(to, compiled.sources.files[path].text))
    return compiled


def _as_errors(diagnostics):
    """`-W error`: every warning counts as an error."""
    import dataclasses
    from netc.diagnostics import Severity

    return [dataclasses.replace(d, severity=Severity.ERROR) for d in diagnostics]


def cmd_check(args) -> int:
    """Every target checked and reported, whatever the others did; the exit status is the
    worst one met (a missing file is a usage error, 2, but does not hide the others)."""
    from netc.compiler import compile_spec
    from netc.diagnostics import render_totals
    from netc.loader import resolve_spec

    overrides = _parse_defines(args.define)
    input_shape = _parse_input(args.input)
    limits = _parse_limits(args.limit)
    colour = _want_colour(sys.stderr)
    status = EXIT_OK
    every = []
    for spec in _spec_files(args.specs):
        if spec != "-" and not Path(spec).is_file() and resolve_spec(spec) is None:
            print(f"netc: error: cannot read `{spec}`: no such file or model "
                  "(`netc list` shows the models found by name)", file=sys.stderr)
            status = max(status, EXIT_USAGE)
            continue
        if spec == "-":
            compiled = _compile_stdin(overrides, input_shape, args.net, limits)
        else:
            compiled = compile_spec(spec, overrides, input_shape=input_shape, net=args.net,
                                    limits=limits)
        if args.warnings_as_errors:
            compiled.diagnostics = _as_errors(compiled.diagnostics)
        every += compiled.diagnostics
        if not compiled.ok:
            status = max(status, EXIT_SPEC)
        if args.format == "text":
            _print_diagnostics(compiled, totals=False)
            if compiled.ok and not args.quiet:
                ins, outs = _signature(compiled.graph)
                name = "<stdin>" if spec == "-" else spec
                print(f"{name}: ok: {compiled.graph.name}: {ins} -> {outs} "
                      f"({len(compiled.graph)} nodes)")
    if args.format == "json":
        print(render_json(every))
    else:
        totals = render_totals(sum(d.is_error for d in every),
                               sum(not d.is_error for d in every), colour)
        if totals:
            print(totals, file=sys.stderr)
            codes = sorted({d.code for d in every})
            print(f"for more about {'this code' if len(codes) == 1 else 'a code'}, try "
                  f"`netc explain {codes[0]}`", file=sys.stderr)
    return status


class _Progress:
    """`netc build`'s stage (parse + check, lower, optimize, script/export/onnx + write) on
    one line of stderr when it is a terminal; silent when piped, so that logs and scripts see
    only the report."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.live = hasattr(self.stream, "isatty") and self.stream.isatty() and \
            not os.environ.get("NETC_NO_PROGRESS")
        self.shown = False

    def stage(self, name: str, spec: str) -> None:
        if self.live:
            self.stream.write(f"\r\x1b[2Knetc: {name} {spec} ...")
            self.stream.flush()
            self.shown = True

    def done(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self.shown = False


def _passes_for(args, fmt: str) -> tuple[str, ...]:
    """The optimisation passes of `--optimize` for this format: the default ones, with
    `--enable-pass` ones, without `--disable-pass` ones."""
    from netc import optimize

    def names(given) -> list[str]:
        return [name.strip() for names in given or [] for name in names.split(",") if name.strip()]

    try:
        return optimize.select(names(args.disable_pass), fmt, names(args.enable_pass))
    except ValueError as error:
        raise UsageError(f"--enable-pass/--disable-pass: {error}") from None

def cmd_explain(args) -> int:
    from netc.explain import explain

    from netc.explain import listing

    if args.list or not args.code:
        print(listing())
        return EXIT_OK
    text = explain(args.code)
    if text is None:
        raise UsageError(f"no diagnostic code `{args.code}`; codes look like E301 or W201 "
                         "(`netc explain --list` lists them)")
    print(text)
    return EXIT_OK


def cmd_build(args) -> int:
    if args.passes:
        from netc.optimize import describe_passes

        print(describe_passes())
        return EXIT_OK
    if args.spec is None:
        raise UsageError("build needs a SPEC (or --passes to list the optimisation passes)")
    if (args.disable_pass or args.enable_pass) and not args.optimize:
        raise UsageError("--enable-pass and --disable-pass choose passes of --optimize; "
                         "give --optimize")
    progress = _Progress()
    try:
        return _build(args, progress)
    finally:
        progress.done()


def _build(args, progress: _Progress) -> int:
    from netc.codegen import emit_module
    from netc.analysis import totals, human

    fmt, out = _artifact_target(args)  # every refusal comes before the compile and the weights
    if args.weights and fmt == "py":
        raise UsageError("--weights: a py build writes only the module's source, which holds "
                         "no weights; build torchscript, export or onnx to carry them")
    if args.weights:
        check_input(args.weights, "weights")
    if fmt == "onnx":
        _require_onnx()
    passes = _passes_for(args, fmt) if args.optimize else ()
    progress.stage("parse + check", args.spec)
    compiled = _compile_one(args, progress)
    if not compiled.ok:
        return EXIT_SPEC
    graph = compiled.graph
    progress.stage("lower", args.spec)
    code = emit_module(graph, Path(args.spec).name)
    if fmt == "py" and args.optimize:
        from netc import optimize

        opt = optimize.optimize(graph, passes)
        code = optimize.source(emit_module(opt.graph, Path(args.spec).name))
    if fmt == "py":  # the source only: a module is never made, however large the net
        progress.stage("write", args.spec)
        write_bytes(out, code.src.encode("utf-8"))
    else:
        from netc.analysis import check_memory

        limits = _parse_limits(args.limit)
        check_memory(graph, limits, sources=compiled.sources)  # before torch is imported
        from netc.load import instantiate, load_weights, write_artifact

        module = instantiate(code, graph, limits)
        if args.weights:
            load_weights(module, args.weights)
        if args.optimize:
            from netc import optimize

            progress.stage("optimize", args.spec)
            module, code, opt = optimize.lower(graph, module, passes, Path(args.spec).name)
            graph = opt.graph
        progress.stage({"torchscript": "script"}.get(fmt, fmt) + " + write", args.spec)
        write_artifact(module.eval(), code, graph, fmt, out)
    progress.done()
    t = totals(compiled.graph)
    shapes, outs = _signature(compiled.graph)
    print(f"built {graph.name} from {args.spec}")
    print(f"  input    {shapes}")
    print(f"  output   {outs}")
    print(f"  params   {t.params:,} ({human(t.params)})")
    print(f"  MACs     {t.macs:,} ({human(t.macs)})")
    if args.weights:
        print(f"  weights  {args.weights}")
    if args.optimize:
        print(f"  optimize {', '.join(passes) or 'no pass'} (eval only)")
    print(f"  wrote    {out} ({fmt})")
    return EXIT_OK


def cmd_summary(args) -> int:
    from netc.report import Summary

    compiled = _compile_one(args)
    if not compiled.ok:
        return EXIT_SPEC
    summary = Summary(compiled.graph, spec=args.spec, depth=args.depth, batch_size=args.batch)
    if args.format == "json":
        print(summary.to_json())
    elif args.format == "csv":
        sys.stdout.write(summary.to_csv())
    elif args.format == "markdown":
        sys.stdout.write(summary.to_markdown())
    elif _want_colour(sys.stdout):
        from rich.console import Console
        summary.render_rich(Console(highlight=False))
    else:
        sys.stdout.write(summary.render_text())
    return EXIT_OK


def cmd_graph(args) -> int:
    from netc import graph as pictures

    to_stdout = args.output in (None, "-")
    if not to_stdout:
        check_output(args.output)
    try:
        fmt = pictures.format_for(args.output, args.format)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if to_stdout and fmt == "png":
        raise UsageError("png is binary: give an output file, e.g. -o net.png")
    compiled = _compile_one(args)
    if not compiled.ok:
        return EXIT_SPEC
    try:
        data = pictures.render(compiled.graph, fmt, args.depth, args.direction)
    except pictures.GraphvizMissing as error:
        raise UsageError(str(error)) from None
    if to_stdout:
        sys.stdout.write(data.decode("utf-8"))
        return EXIT_OK
    write_bytes(args.output, data)
    print(f"wrote {args.output} ({fmt}, {compiled.graph.name})", file=sys.stderr)
    return EXIT_OK


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got `{text}`")
    return value


def cmd_sweep(args) -> int:
    from netc.sweep import run_cli  # hydra (and torch, in jobs) are imported only here

    return run_cli(args)


# ---- argument parsing

def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-D", dest="define", action="append", metavar="KEY=VALUE",
                        help="override a net parameter or input shape, e.g. -D num_classes=10 "
                             "-D 'layers=[2, 2, 2, 2]' -D block=BasicBlock")
    parser.add_argument("--input", metavar="C,H,W",
                        help="check/build at another input size (the net's first input)")
    parser.add_argument("--net", metavar="NAME",
                        help="the net to use (default: the last net defined in the file)")
    parser.add_argument("--limit", action="append", metavar="NAME=N",
                        help="change a safety limit: repeat (10000), nodes (50000), depth (64), "
                             "params (1e10), steps (1e6: work while elaborating), elements (1e7: "
                             "list items and string characters created)")


def make_parser(sweep_options: bool = True) -> argparse.ArgumentParser:
    """The command line. `sweep_options=False` leaves out `netc sweep`'s own options, which
    live in netc.sweep: `main` passes it for every other command, so that they start without
    importing the sweep (see bench/bench_check.py)."""
    parser = argparse.ArgumentParser(
        prog="netc", description="Compile .net network specs to PyTorch, with every shape "
                                 "checked before anything runs.")
    parser.add_argument("--version", action="version", version="netc 0.1.0")
    parser.add_argument("--lib", action="append", metavar="DIR", default=[],
                        help="a directory of specs and libraries to search after the importing "
                             "file's (adds to NETC_PATH; repeatable)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    listing = commands.add_parser("list", help="list the models found by name "
                                               "(`netc check resnet50`)")
    listing.set_defaults(run=cmd_list)

    check = commands.add_parser("check", help="report every error in specs (never imports torch)",
                                description="Check specs statically: syntax, names, arguments "
                                            "and every tensor shape. Exit 0 if all are valid, "
                                            "1 if any has errors, 2 on usage errors.")
    check.add_argument("specs", nargs="+", metavar="SPEC",
                       help="spec files, directories (every .net inside) or - (standard input)")
    check.add_argument("-W", dest="warnings_as_errors", choices=("error",),
                       help="-W error: treat warnings as errors (exit 1 on any)")
    check.add_argument("--format", choices=("text", "json"), default="text",
                       help="text for people (default), json for editors and CI")
    check.add_argument("-q", "--quiet", action="store_true", help="print only diagnostics")
    _add_common(check)
    check.set_defaults(run=cmd_check)

    explain = commands.add_parser(
        "explain", help="what a diagnostic code means, with a broken and a fixed example",
        description="Explain a diagnostic code (E301, W201, ...): what it means, its usual "
                    "causes, and a broken spec next to its fix.")
    explain.add_argument("code", nargs="?", metavar="CODE", help="a code such as E301")
    explain.add_argument("--list", action="store_true", help="list every code with its slug")
    explain.set_defaults(run=cmd_explain)

    build = commands.add_parser(
        "build", help="compile a spec to TorchScript, torch.export, ONNX or Python",
        description="Compile a spec and write an artifact (atomically: on failure no file is "
                    "left behind). The format comes from --format, else from the -o suffix "
                    "(.pt, .pt2, .onnx, .py), else TorchScript. torch.export and ONNX "
                    "artifacts take any batch size, and any height and width the net allows.")
    build.add_argument("spec", metavar="SPEC", nargs="?")
    build.add_argument("-o", "--output", metavar="OUT",
                       help="output file; its directory must exist (default: <spec-stem>.pt, "
                            ".pt2, .onnx or .py in the current directory)")
    build.add_argument("--format", choices=tuple(FORMATS),
                       help="torchscript (the default), export (torch.export), onnx (needs "
                            "netc[onnx]), py (the module's source)")
    build.add_argument("--weights", metavar="FILE",
                       help="load this state_dict (torch.save; bare or under 'state_dict' or "
                            "'model') into the module, strictly, before writing it")
    build.add_argument("--optimize", action="store_true",
                       help="an eval-only, CPU-optimised build: BatchNorm folded, dropout "
                            "dropped, channels-last (see --passes); --weights are the plain "
                            "module's, folded in")
    build.add_argument("--passes", action="store_true",
                       help="list the passes of --optimize and exit")
    build.add_argument("--disable-pass", action="append", metavar="NAME",
                       help="switch off a pass of --optimize (repeat, or NAME,NAME)")
    build.add_argument("--enable-pass", action="append", metavar="NAME",
                       help="switch on a pass of --optimize that is off by default "
                            "(fuse_conv_activation)")
    _add_common(build)
    build.set_defaults(run=cmd_build)

    summary = commands.add_parser(
        "summary", help="a table of shapes, params, MACs and receptive fields (never imports torch)",
        description="Show the network before running it: every layer's output shape, params, "
                    "MACs and receptive field (with its effective stride), blocks as a tree, "
                    "then totals, memory and the minimum input size. Rich on a terminal, plain "
                    "text when piped.")
    summary.add_argument("spec", metavar="SPEC")
    summary.add_argument("--format", choices=("text", "json", "csv", "markdown"), default="text",
                         help="text (default), json (for scripts: totals and every node), csv "
                              "(one row per node), markdown")
    summary.add_argument("--depth", type=_positive_int, metavar="N",
                         help="fold blocks nested deeper than N into one row (default: show all)")
    summary.add_argument("--batch", type=_positive_int, default=1, metavar="N",
                         help="batch size for the memory estimate (default 1)")
    _add_common(summary)
    summary.set_defaults(run=cmd_summary)

    graph = commands.add_parser(
        "graph", help="draw the network: SVG or PNG (Graphviz), DOT or Mermaid text",
        description="Draw the network with blocks as clusters and edges labelled with shapes; "
                    "skip, concat and gate edges drawn apart. The format comes from the -o "
                    "suffix (.svg, .png, .dot/.gv, .mmd) or --format; without -o, DOT (or "
                    "--format) goes to stdout. SVG and PNG need Graphviz's `dot`.")
    graph.add_argument("spec", metavar="SPEC")
    graph.add_argument("-o", "--output", metavar="FILE", help="output file (default: stdout)")
    graph.add_argument("--format", choices=("svg", "png", "dot", "mermaid"),
                       help="picture format (default: from the -o suffix, else dot)")
    graph.add_argument("--depth", type=_positive_int, metavar="N",
                       help="collapse blocks nested N deep into one box each (1: stages only)")
    graph.add_argument("--direction", choices=("TB", "LR"), default="TB",
                       help="top to bottom (default) or left to right")
    _add_common(graph)
    graph.set_defaults(run=cmd_graph)

    sweep = commands.add_parser(
        "sweep", help="a Hydra multirun over variants of a spec: one row and one job each",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run a Hydra multirun over variants of SPEC. The spec's parameters are the\n"
                    "config; overrides use Hydra's syntax (width=32,64  'layers=[2,2,2,2],[3,4,6,3]'\n"
                    "range(32,129,32)  spec=a.net,b.net  hydra/launcher=joblib). Every variant is\n"
                    "checked before anything launches: invalid ones become rows, not jobs. Results:\n"
                    "results.csv, results.json and results.png in the sweep directory.",
        epilog="options of a variant (overrides like the spec's parameters):\n"
               "  artifact=true        write the TorchScript file (or artifact=py / export)\n"
               "  measure=latency      CPU forward latency (median, IQR) and one training step\n"
               "  measure=train        train on scikit-learn's digits: val_acc, val_loss\n"
               "  measure=all          both\n"
               "  bench.batch_size=N bench.runs=N bench.warmup=N bench.threads=N\n"
               "  bench.max_spread=0.1 bench.train=false bench.train_batch_size=N\n"
               "  train.epochs=N train.lr=X train.batch_size=N train.optimizer=adam|sgd\n"
               "  train.seed=N train.val_fraction=X train.threads=N\n"
               "  objective=val_acc    what each job returns to hydra/sweeper=optuna\n"
               "                       (a list for several: objective=[val_acc,macs])\n"
               "  input=64             the first input's size (also [H, W] or [C, H, W])\n"
               "examples:\n"
               "  netc sweep specs/resnet18.net 'layers=[2,2,2,2],[3,4,6,3]' --dry-run\n"
               "  netc sweep specs/resnet50.net width_per_group=64,128 measure=latency\n"
               "  netc sweep specs/digits/digits_cnn.net depth=1,2,3 measure=train\n"
               "  netc sweep -cd configs -cn digits_search     (an Optuna search)\n"
               "  netc sweep specs/resnet18.net input=64,128 hydra/launcher=joblib\n"
               "  netc sweep -cd configs -cn resnet_depth_width hydra/launcher=submitit_slurm\n"
               "  netc sweep --report multirun/2026-05-01/12-00-00 --sort=-latency_ms")
    if sweep_options:
        from netc.sweep import add_arguments as add_sweep_arguments
        add_sweep_arguments(sweep)
    sweep.add_argument("args", nargs=argparse.REMAINDER, metavar="SPEC [OVERRIDE ...]",
                       help="the spec, then Hydra overrides (key=value, key=a,b, ...)")
    sweep.set_defaults(run=cmd_sweep)
    return parser


def _command_word(argv: list[str]) -> str | None:
    """The subcommand argparse will pick: the first word that is not an option (the top-level
    parser's options, -h and --version, take no value)."""
    return next((word for word in argv if not word.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else [str(word) for word in argv]
    parser = make_parser(sweep_options=_command_word(argv) == "sweep")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0) if exit_.code in (0, None) else EXIT_USAGE
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    if args.lib:  # through the environment, so sweep jobs and workers search it too
        os.environ["NETC_PATH"] = os.pathsep.join(
            [str(Path(d).resolve()) for d in args.lib] + [os.environ.get("NETC_PATH", "")]).rstrip(os.pathsep)
    try:
        return args.run(args)
    except (UsageError, PathError) as error:
        print(f"netc: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except NetcError as error:
        print(str(error), file=sys.stderr)
        return EXIT_SPEC
    except WeightsMismatch as error:
        print(f"netc: error: {error}", file=sys.stderr)
        return EXIT_SPEC
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # a bug in netc: say so, never pass it off as a spec error
        print(f"netc: internal error: {type(error).__name__}: {error}\n"
              "netc: this is a bug in netc, not in your spec; please report it with the spec "
              "and the command", file=sys.stderr)
        if os.environ.get("NETC_DEBUG"):
            raise
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())

"""elaborate: the AST of a net -> a flat graph IR, with every shape inferred on the way.

Parameters and expressions are evaluated, blocks are expanded in place (with their
qualified names), repeats and loops are unrolled and conditionals decided. Shape queries
(`in.c`) make elaboration depend on types, so each node's shape is inferred (by
`netc.infer`) the moment the node is created.

Errors are collected, not raised: a failed statement poisons the names it would bind
(`UNKNOWN`), and anything computed from a poisoned value is poisoned silently, so one
mistake gives one diagnostic, not a cascade.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any

from netc import ast
from netc.diagnostics import Diagnostics, Frame, Label
from netc.infer import bind_op_args, infer_node, operand_shapes
from netc.ir import Graph, InputSpec, Node, Region
from netc.loader import LoadedModule, Program
from netc.ops import OpSpec, lookup, suggest, OPS, INTERNAL_OPS, REORDERING_OPS
from netc.parser import interpolations, parse_expression
from netc.shapes import Multi, ShapeError, format_shape
from netc.source import Span

# Guards against runaway specs (a typo like `* 1000000`); `netc check --limit name=N` and
# `compile_spec(limits=...)` change them for one compilation.
LIMITS = {
    "repeat": 10_000,  # one repeat count or loop length
    "nodes": 50_000,  # nodes in one graph (70x the largest shipped net; a few seconds)
    "depth": 64,  # nested block applications (a block that applies itself)
    "params": 10_000_000_000,  # parameters in the whole net
    # work budgets: every input answers in seconds and megabytes, whatever it computes
    "steps": 1_000_000,  # statements run and expressions evaluated, in all
    "elements": 10_000_000,  # list items and string characters created, in all
    # bytes a build allocates (parameters and buffers), and a sweep batch's estimate
    "memory": 4 * 2 ** 30,
}
LIMIT_HELP = {
    "repeat": "one repeat count or loop length",
    "nodes": "nodes in one graph",
    "depth": "nested block applications",
    "params": "parameters in the whole net",
    "steps": "statements run and expressions evaluated while elaborating",
    "elements": "list items and string characters created while elaborating",
    "memory": "bytes of parameters and buffers a build allocates",
}

# fullmatch only; dots nest ("paths.0"). A part is any name `nn.Module.add_module` takes
# (RegNet's "block1-0"), less what would be unreadable or ambiguous in a key: spaces,
# quotes, backslashes, braces (interpolation) and control characters.
LABEL_RE = re.compile(r"[^.\s\"'\\{}\x00-\x1f\x7f]+(\.[^.\s\"'\\{}\x00-\x1f\x7f]+)*")
RESERVED_WORDS = {"true", "false", "none", "in", "if", "then", "else", "elif", "for", "out",
                  "input", "block", "net", "def", "import", "defaults", "assert", "and", "or", "not"}

# Public attributes of torch.nn.Module (torch 2.13); a submodule with one of these names
# cannot be registered. Listed here so that `netc check` needs no torch; a test compares
# the list with the installed torch.
RESERVED_MODULE_NAMES = frozenset("""
    T_destination add_module apply bfloat16 buffers call_super_init children compile cpu cuda
    double dump_patches eval extra_repr float forward get_buffer get_extra_state get_parameter
    get_submodule half ipu load_state_dict modules mtia named_buffers named_children
    named_modules named_parameters parameters register_backward_hook register_buffer
    register_forward_hook register_forward_pre_hook register_full_backward_hook
    register_full_backward_pre_hook register_load_state_dict_post_hook
    register_load_state_dict_pre_hook register_module register_parameter
    register_state_dict_post_hook register_state_dict_pre_hook requires_grad_ set_extra_state
    set_submodule share_memory state_dict to to_empty train training type xpu zero_grad
""".split())


class _Unknown:
    """The poisoned value: the result of anything that already failed."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()


class EvalError(Exception):
    def __init__(self, code: str, message: str, span: Span | None, hint: str | None = None,
                 notes: tuple[str, ...] = (), labels: tuple[Label, ...] = ()):
        super().__init__(message)
        self.code, self.message, self.span = code, message, span
        self.hint, self.notes, self.labels = hint, notes, labels


class BudgetExceeded(EvalError):
    """The work budget (steps, elements) ran out: elaboration stops at once, as a whole."""


# ---- runtime values of the spec language

@dataclass(frozen=True)
class Tensor:
    node: str  # the producing node's id
    shape: Any  # Shape or Multi
    span: Span  # where it was produced


@dataclass(frozen=True)
class BlockValue:
    """A block definition together with the file it was written in (its lexical scope)."""
    defn: ast.BlockDef
    module: LoadedModule


@dataclass(frozen=True)
class OpStage:
    op: OpSpec
    args: tuple
    kwargs: dict
    span: Span
    defaults: dict  # the `defaults` of the file where the call was written
    # the call as written and the offset of its op arguments among `call.args` (for
    # diagnostics that show an argument's expression with its values); never compared
    call: Any = field(default=None, compare=False)


@dataclass(frozen=True)
class BlockStage:
    block: BlockValue
    args: tuple
    kwargs: dict
    span: Span


@dataclass(frozen=True)
class SeqStage:
    items: tuple
    span: Span
    nested: bool  # a list literal: a naming level of its own inside another sequence


@dataclass(frozen=True)
class NamedStage:
    label: str
    inner: Any
    span: Span
    # where its layer is registered (its place in the state_dict) if not where it is applied:
    # a labelled layer bound to a name (`post = norm1: layer_norm`) is registered there
    declared: float | None = None


@dataclass(frozen=True)
class Builtin:
    name: str


STAGES = (OpStage, BlockStage, SeqStage, NamedStage, BlockValue)
BUILTINS = {"len", "range", "min", "max", "int", "abs", "float", "round", "ceil", "floor",
            "log2", "sqrt"}


def kind_of(value) -> str:
    """A value's kind, in words, for type errors."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "`none`"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Tensor):
        return f"a tensor {format_shape(value.shape)}"
    if isinstance(value, BlockValue) and value.defn.kind == "def":
        return "a function"
    if isinstance(value, STAGES):
        return "a layer"
    if isinstance(value, Builtin):
        return "a function"
    return "a value"


@dataclass
class Env:
    """A block's (or net's) local names, its file, and where its names go in the state_dict."""

    module: LoadedModule
    values: dict[str, Any] = field(default_factory=dict)
    prefix: tuple[str, ...] = ()
    depth: int = 0
    reads: set[str] = field(default_factory=set)  # names looked up (for unused warnings)
    tensors_bound: dict[str, Span] = field(default_factory=dict)  # tensor names, where bound
    pure: bool = False  # the body of a `def` function: values only, no layers


class Elaborator:
    def __init__(self, program: Program, diags: Diagnostics, permissive: bool = False,
                 limits: dict[str, int] | None = None) -> None:
        self.limits = {**LIMITS, **(limits or {})}
        # permissive: a node whose shape rule fails is kept with a guessed shape, so that a
        # broken net can still be lowered (only the mutation tests' oracle wants this)
        self.permissive = permissive
        self.program = program
        self.diags = diags
        self.graph = Graph()
        self.modules_seen: dict[str, Node] = {}
        self._defaults_cache: dict[int, dict] = {}
        self.input_overrides: dict[str, Any] = {}
        self.used_blocks: set[tuple] = set()
        self.module_parents: set[str] = set()
        self.warned: set[Span] = set()
        self.steps = 0  # work done so far, against limits["steps"]
        self.elements = 0  # list items and characters created, against limits["elements"]
        self._fresh_next: dict[str, int] = {}
        self._declarations = 0  # labelled stages written so far (see _declaration_order)
        self._register_at: float | None = None  # the declared place of the layer being applied
        self.budget_reported = False  # per stem: the next suffix to try
        # diagnostics context (issue 10): the block applications being elaborated (outermost
        # first), each name's last assignment per scope, and where overrides came from
        self.frames: list[tuple] = []
        self.assignments: dict[int, dict[str, ast.Assign]] = {}
        self.override_origin: dict[str, Any] = {}
        self.reported_at: dict[tuple, int] = {}
        self.errors_met = 0

    # ---- entry point

    def elaborate(self, net_name: str | None, overrides: dict[str, Any]) -> Graph | None:
        root = self.program.root
        if root is None:
            return None
        own_nets = root.ast.nets
        if not own_nets:
            self.diags.error("E207", "this file defines no `net`",
                             Span(root.ast.path, 1, 1, 1, 1),
                             hint="add `net Name(...) { input x: [3, 224, 224] ... out ... }` "
                                  "or `net name = Other(...)`")
            return None
        if net_name is None:
            chosen = own_nets[-1]
        else:
            chosen = root.nets.get(net_name)
            if chosen is None:
                close = suggest(net_name, root.nets)
                self.diags.error("E201", f"no net named `{net_name}`", None,
                                 hint=f"did you mean `{close}`?" if close else None)
                return None
        self.graph.name = chosen.name
        self.graph.doc = chosen.doc or root.ast.doc
        defn, bound = self._resolve_net(chosen, root, overrides)
        if defn is None:
            return None
        env = Env(self.program.modules[self._owner_path(defn, root)], dict(bound))
        for module in self.program.modules.values():
            self._file_defaults(module)  # report mistakes in `defaults` lines up front
        try:
            self._run_body(defn.body, env, is_net=True)
        except BudgetExceeded as error:  # the work budget ran out: one error, nothing after
            self._report(error)
            return self.graph
        if not self.diags.has_errors:  # after an error, "unused" often means "its use failed"
            self._warn_unused_tensors(env)
            self._warn_unused_blocks(root)
        if not self.graph.outputs and not self.diags.has_errors:
            self.diags.error("E208", f"net `{defn.name}` has no `out` statement", defn.span,
                             hint="end the net with `out <tensor>`")
        return self.graph

    def _warn_unused_tensors(self, env: Env) -> None:
        """A tensor bound to a name and never read is usually a forgotten edge."""
        for name, span in env.tensors_bound.items():
            if name not in env.reads and span not in self.warned and \
                    env.values.get(name) is not UNKNOWN:
                self.warned.add(span)
                self.diags.warning("W201", f"tensor `{name}` is computed but never used", span,
                                   hint="use it (e.g. in an add or cat), or drop the line")

    def _warn_unused_blocks(self, root: LoadedModule) -> None:
        for block in root.ast.blocks:
            if (root.path, block.name) not in self.used_blocks:
                what = "function" if block.kind == "def" else "block"
                head = Span(block.span.file, block.span.line, block.span.col, block.span.line,
                            block.span.col + len(f"{block.kind} {block.name}"))  # the header only
                self.diags.warning("W202", f"{what} `{block.name}` is never used", head)

    def _owner_path(self, defn, module: LoadedModule):
        owner = module.owner.get(defn.name, module)
        return owner.path

    def _resolve_net(self, chosen, root: LoadedModule, overrides: dict):
        """The net definition to elaborate and its parameters: defaults, then an alias's
        arguments, then the user's overrides."""
        levels: list[tuple[tuple, dict]] = []  # each alias's arguments, outermost first
        defn = chosen
        module = root.owner.get(chosen.name, root)
        seen = set()
        while isinstance(defn, ast.NetAlias):
            if defn.name in seen:
                self.diags.error("E206", f"net `{defn.name}` is defined in terms of itself", defn.span)
                return None, {}
            seen.add(defn.name)
            env = Env(module)
            try:
                levels.append((tuple(self.eval(a, env) for a in defn.args),
                               {kw.name: self.eval(kw.value, env) for kw in defn.kwargs}))
            except EvalError as error:
                self._report(error)
                return None, {}
            target = module.nets.get(defn.target)
            if target is None:
                close = suggest(defn.target, module.nets)
                self.diags.error("E201", f"no net named `{defn.target}`", defn.target_span,
                                 hint=f"did you mean `{close}`?" if close else None)
                return None, {}
            module = module.owner.get(defn.target, module)
            defn = target
        # `net wider = wide(k = 5)` over `net wide = Base(c = 16)`: inner aliases first,
        # outer ones override them, positions counting against the final net's parameters
        alias_args: tuple = ()
        alias_kwargs: dict = {}
        for args, kwargs in reversed(levels):
            named = dict(zip((p.name for p in defn.params), args))
            alias_kwargs.update({**named, **kwargs})
        input_names = self._input_names(defn.body)
        overrides = self._evaluate_overrides(overrides, defn, root)
        if overrides is None:
            return None, {}
        unknown = [k for k in overrides if k not in {p.name for p in defn.params} | input_names]
        for key in unknown:
            close = suggest(key, [p.name for p in defn.params] + sorted(input_names))
            origin = self.override_origin.get(key)  # the `-D key` itself, when it was one
            self.diags.error("E204", f"`{key}` is not a parameter or input of net `{defn.name}`",
                             origin if isinstance(origin, Span) else None, hint=f"did you mean `{close}`?" if close else
                             "parameters: " + ", ".join(p.name for p in defn.params))
        if unknown:
            return None, {}
        env = Env(module)
        try:
            bound = self._bind_params(defn, alias_args, alias_kwargs, env, defn.span,
                                      overrides={k: v for k, v in overrides.items()
                                                 if k not in input_names})
        except EvalError as error:
            self._report(error)
            return None, {}
        self.input_overrides = {k: v for k, v in overrides.items() if k in input_names}
        if levels:  # an alias (`net bad = ResNet(..., groups = 2)`): the outermost context of
            # every diagnostic in the net is the user's line, not only the library's
            self.frames.append(((), defn.name, alias_kwargs, chosen.span))
        return defn, bound

    def _evaluate_overrides(self, overrides: dict, defn: ast.BlockDef, root: LoadedModule):
        """Overrides as netc values: `-D` text is evaluated in the root file's scope (so
        `-D block=BasicBlock` names a block); `<input>` means the first input."""
        result = {}
        for key, value in overrides.items():
            first_key = key
            if key == "<input>":
                first = next((s.name for s in defn.body if isinstance(s, ast.InputDecl)), None)
                if first is None:
                    self.diags.error("E210", f"net `{defn.name}` declares no `input` to resize",
                                     defn.span)
                    return None
                key = first
            self.override_origin[key] = "--input" if key != first_key else (
                value.span if isinstance(value, ast.Expr) else None)
            if isinstance(value, ast.Expr):
                try:
                    value = self.eval(value, Env(root))
                except EvalError as error:
                    self._report(error)
                    return None
            if isinstance(value, str) and value in root.blocks:
                value = BlockValue(root.blocks[value], root.owner[value])  # block="BasicBlock"
            result[key] = _python_to_netc(value)
        return result

    @staticmethod
    def _input_names(body) -> set[str]:
        return {s.name for s in body if isinstance(s, ast.InputDecl)}

    # ---- statements

    def _report(self, error: EvalError) -> None:
        if not error.code:  # a poisoned value already reported upstream
            return
        if isinstance(error, BudgetExceeded):
            if self.budget_reported:  # one report of the budget, however often it is met
                return
            self.budget_reported = True
        self.errors_met += 1
        key = (error.code, error.span) if error.span else (error.code, error.message)
        found = getattr(error, "extra", {}).get("cause") or {}
        if found.get("node"):  # two symptoms of one cause (a sum and a cat of the same maps)
            key = ("cause", found.get("kind"), found["node"])
        if key in self.reported_at:  # the same mistake met again (a loop, a repeated block)
            self._count_again(self.reported_at[key])
            return
        self.reported_at[key] = len(self.diags)
        extra = getattr(error, "extra", {})
        self.diags.error(error.code, error.message, error.span, hint=error.hint,
                         notes=error.notes, labels=error.labels,
                         context=self._context(), **extra)

    def _context(self) -> tuple[Frame, ...]:
        """The block applications a diagnostic sits in, innermost first."""
        from netc import cause  # (only when there is something to explain)

        return tuple(Frame(".".join(prefix), cause.describe_call(name, bound), span)
                     for prefix, name, bound, span in reversed(self.frames))

    def _count_again(self, index: int) -> None:
        """One diagnostic per mistake: a mistake met in every loop iteration or block use is
        reported once, with the number of times it was met."""
        import dataclasses

        if index < len(self.diags):
            d = self.diags[index]
            self.diags[index] = dataclasses.replace(d, count=d.count + 1)

    def _run_body(self, body, env: Env, is_net: bool = False) -> None:
        """Run statements, reporting each failure and poisoning what it would have bound.
        Loop and `if` bodies run here too: they share their block's names, as in Python."""
        for stmt in body:
            try:
                self._run_stmt(stmt, env, is_net)
            except BudgetExceeded:
                raise
            except EvalError as error:
                self._report(error)
                self._poison(stmt, env)
                if error.code == "E212":  # a failed `assert` stops its block: nothing after
                    env.values["<out>"] = UNKNOWN  # it may rely on the broken assumption
                    return
            except RecursionError:
                self.errors_met += 1
                self.diags.error("E211", "this statement nests too deeply to evaluate", stmt.span,
                                 hint="split it with intermediate names")
                self._poison(stmt, env)

    def _poison(self, stmt, env: Env) -> None:
        if isinstance(stmt, ast.Assign):
            env.values[stmt.name] = UNKNOWN
        elif isinstance(stmt, ast.Unpack):
            for name in stmt.names:
                env.values[name] = UNKNOWN
        elif isinstance(stmt, ast.InputDecl):
            env.values[stmt.name] = UNKNOWN
        elif isinstance(stmt, ast.Out):
            env.values["<out>"] = UNKNOWN

    def _step(self, span: Span | None) -> None:
        self.steps += 1
        if self.steps > self.limits["steps"]:
            raise BudgetExceeded("E211", f"elaborating the net takes more than "
                                         f"{self.limits['steps']:,} steps (statements and "
                                         f"expressions evaluated)", span,
                                 hint="a runaway loop, repeat or recursion? if the net is "
                                      "meant to be this large, raise it with "
                                      "`--limit steps=N`")

    def _grow(self, count: int, span: Span | None) -> None:
        """Account for `count` list items or characters about to be created (before they are)."""
        self.elements += count
        if self.elements > self.limits["elements"]:
            raise BudgetExceeded("E211", f"elaborating the net creates more than "
                                         f"{self.limits['elements']:,} list items and string "
                                         f"characters (this one adds {count:,})", span,
                                 hint="a list or string that doubles in a loop? if this is "
                                      "intended, raise it with `--limit elements=N`")

    def _run_stmt(self, stmt, env: Env, is_net: bool):
        self._step(stmt.span)
        bound = {ast.Assign: lambda: [stmt.name], ast.Unpack: lambda: list(stmt.names),
                 ast.InputDecl: lambda: [stmt.name], ast.For: lambda: [stmt.var]}
        for word in bound.get(type(stmt), lambda: [])():
            if word in RESERVED_WORDS:
                raise EvalError("E209", f"`{word}` is a reserved word and cannot be a name",
                                stmt.span, hint="choose another name")
        if isinstance(stmt, ast.Assign):
            self.assignments.setdefault(id(env.values), {})[stmt.name] = stmt
            value = self.eval(stmt.value, env)
            if isinstance(value, NamedStage) and isinstance(value.inner, OpStage):
                # `post = norm1: layer_norm`: the layer is registered here, where it is written
                value = dataclasses.replace(value, declared=self._declaration_order())
            env.values[stmt.name] = value
            if isinstance(value, Tensor):
                env.reads.discard(stmt.name)  # a new tensor under this name: not read yet
                env.tensors_bound[stmt.name] = stmt.span
        elif isinstance(stmt, ast.Unpack):
            self._unpack(stmt, env)
        elif isinstance(stmt, ast.InputDecl):
            if not is_net:
                raise EvalError("E210", "`input` belongs in a `net`; a block's input is `in`",
                                stmt.span)
            env.values[stmt.name] = self._declare_input(stmt, env)
        elif isinstance(stmt, ast.Out):
            if "<out>" in env.values:
                raise EvalError("E208", "a second `out`: a block or net has exactly one output",
                                stmt.span)
            value = self.eval(stmt.value, env)
            env.values["<out>"] = value
            if is_net:
                self._set_net_output(value, stmt.value.span)
            return value
        elif isinstance(stmt, ast.For):
            self._run_for(stmt, env, is_net)
        elif isinstance(stmt, ast.If):
            for cond, body in stmt.branches:
                decided = self.eval(cond, env)
                if decided is UNKNOWN:
                    return None
                if self._truth(decided, cond.span):
                    return self._run_body(body, env, is_net)
            return self._run_body(stmt.orelse, env, is_net)
        elif isinstance(stmt, ast.Assert):
            self._assert(stmt, env)
        return None

    def _run_for(self, stmt: ast.For, env: Env, is_net: bool) -> None:
        items = self.eval(stmt.iterable, env)
        if items is UNKNOWN:
            return
        if not isinstance(items, list):
            raise EvalError("E310", f"`for` needs a list or a range, got {kind_of(items)}",
                            stmt.iterable.span, hint="write `for i in 0..3` or `for n in [64, 128]`")
        for item in items:
            self._step(stmt.span)  # an empty body still costs its iterations
            env.values[stmt.var] = item
            self._run_body(stmt.body, env, is_net)

    def _assert(self, stmt: ast.Assert, env: Env) -> None:
        ok = self.eval(stmt.cond, env)
        if ok is UNKNOWN or self._truth(ok, stmt.cond.span):
            return
        message = "assertion failed"
        if stmt.message is not None:
            text = self.eval(stmt.message, env)
            message = str(text) if text is not UNKNOWN else message
        raise EvalError("E212", message, stmt.cond.span)

    def _unpack(self, stmt: ast.Unpack, env: Env) -> None:
        value = self.eval(stmt.value, env)
        if value is UNKNOWN:
            raise _silent_poison()  # the names are poisoned; the cause is reported already
        if isinstance(value, list):
            if len(value) != len(stmt.names):
                raise EvalError("E310", f"{len(stmt.names)} names for a list of {len(value)}",
                                stmt.span)
            env.values.update(zip(stmt.names, value))
            return
        raise EvalError("E310", f"cannot unpack {kind_of(value)}", stmt.value.span)

    def _declare_input(self, stmt: ast.InputDecl, env: Env) -> Tensor:
        shape = self.input_overrides.get(stmt.name)
        span = stmt.shape.span
        if shape is None:
            shape = self.eval(stmt.shape, env)
        if isinstance(shape, tuple):
            shape = list(shape)
        if not (isinstance(shape, list) and 1 <= len(shape) <= 4
                and all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 1 << 20
                        for d in shape)):
            raise EvalError("E210", f"input `{stmt.name}` needs a per-sample shape of one to "
                                    f"four positive integers ([C, H, W], [L, D], [F]), got "
                                    f"{shape!r}", span)
        shape = tuple(shape)
        if stmt.name in self.graph:
            first = self.graph.node(stmt.name)
            if first.span == stmt.span:
                raise EvalError("E203", f"`input {stmt.name}` runs more than once: an input is "
                                        f"declared once, outside loops", stmt.span)
            raise EvalError("E203", f"`{stmt.name}` is already the name of "
                                    f"{'an input' if first.op == 'input' else 'a layer'}",
                            stmt.span, labels=(Label(first.span, "first named here"),),
                            hint="each `input` is declared once, outside loops, with its own name")
        self.graph.inputs.append(InputSpec(stmt.name, shape, stmt.span))
        node = Node(stmt.name, "input", {}, (), stmt.span, self.graph.next_order(), shape=shape)
        self.graph.add(node)
        return Tensor(node.id, shape, stmt.span)

    def _set_net_output(self, value, span: Span) -> None:
        if value is UNKNOWN:
            return
        if not isinstance(value, Tensor):
            raise EvalError("E310", f"a net's `out` must be a tensor, got {kind_of(value)}", span,
                            hint="apply the layer to a tensor: `out x >> layer`")
        self.graph.outputs.append(value.node)

    # ---- expressions

    def eval(self, expr: ast.Expr, env: Env) -> Any:
        self._step(expr.span)
        method = getattr(self, f"eval_{type(expr).__name__}")
        return method(expr, env)

    def eval_Number(self, expr: ast.Number, env: Env):
        return expr.value

    def eval_String(self, expr: ast.String, env: Env):
        return expr.value

    def eval_Constant(self, expr: ast.Constant, env: Env):
        return expr.value

    def eval_InputRef(self, expr: ast.InputRef, env: Env):
        if "in" not in env.values:
            raise EvalError("E201", "`in` is a block's input; a net names its inputs with `input`",
                            expr.span)
        return env.values["in"]

    def eval_Ref(self, expr: ast.Ref, env: Env):
        name = expr.name
        if name in env.values:
            env.reads.add(name)
            return env.values[name]
        if name in env.module.blocks:
            self.used_blocks.add((env.module.owner[name].path, name))
            owner = env.module.owner[name]
            return BlockValue(env.module.blocks[name], owner)
        op = lookup(name)
        if op is not None:
            return OpStage(op, (), {}, expr.span, self._file_defaults(env.module))
        if name in BUILTINS:
            return Builtin(name)
        candidates = [*env.values, *env.module.blocks, *(k for k in OPS if k not in INTERNAL_OPS),
                      *BUILTINS]
        close = suggest(name, [c for c in candidates if not c.startswith("<")])
        raise EvalError("E201", f"`{name}` is not defined", expr.span,
                        hint=f"did you mean `{close}`?" if close else None)

    def eval_ListExpr(self, expr: ast.ListExpr, env: Env):
        self._grow(len(expr.items), expr.span)
        return [self.eval(item, env) for item in expr.items]

    def eval_Attr(self, expr: ast.Attr, env: Env):
        obj = self.eval(expr.obj, env)
        if obj is UNKNOWN:
            return UNKNOWN
        if not isinstance(obj, Tensor):
            raise EvalError("E310", f"`.{expr.name}` needs a tensor, got {kind_of(obj)}", expr.span)
        shape = obj.shape
        if shape is None:
            return UNKNOWN
        if isinstance(shape, Multi):
            raise EvalError("E310", "unpack a multi-result op before asking its shape", expr.span,
                            hint="`a, b = split(x, 2)`")
        fields = {"shape": list(shape), "rank": len(shape), "c": shape[0]}
        if len(shape) == 3:
            fields.update(h=shape[1], w=shape[2])
        if expr.name not in fields:
            raise EvalError("E310", f"a tensor {format_shape(shape)} has no `.{expr.name}`",
                            expr.span, hint="shape queries: .c, .h, .w, .shape, .rank")
        return fields[expr.name]

    def eval_Index(self, expr: ast.Index, env: Env):
        obj = self.eval(expr.obj, env)
        index = self.eval(expr.index, env)
        if obj is UNKNOWN or index is UNKNOWN:
            return UNKNOWN
        if isinstance(obj, Tensor) and _is_int(index):  # `x[0]`: a position along dim 0
            stage = OpStage(OPS["select"], (0, index), {}, expr.span, {})
            return self._apply_op(stage, [obj], env, None)
        if not isinstance(obj, list):
            raise EvalError("E310", f"cannot index {kind_of(obj)}", expr.span)
        if not _is_int(index):
            raise EvalError("E310", f"a list index must be an integer, got {kind_of(index)}",
                            expr.index.span)
        if not -len(obj) <= index < len(obj):
            raise EvalError("E308", f"index {index} is out of range for a list of {len(obj)}",
                            expr.index.span)
        return obj[index]

    def eval_Neg(self, expr: ast.Neg, env: Env):
        value = self.eval(expr.operand, env)
        if value is UNKNOWN:
            return UNKNOWN
        if not _is_number(value):
            raise EvalError("E310", f"cannot negate {kind_of(value)}", expr.span)
        return -value

    def eval_Not(self, expr: ast.Not, env: Env):
        value = self.eval(expr.operand, env)
        return UNKNOWN if value is UNKNOWN else not self._truth(value, expr.span)

    def eval_BoolOp(self, expr: ast.BoolOp, env: Env):
        left = self.eval(expr.left, env)
        if left is UNKNOWN:
            return UNKNOWN
        left = self._truth(left, expr.left.span)
        if expr.op == "and" and not left:
            return False
        if expr.op == "or" and left:
            return True
        right = self.eval(expr.right, env)
        return UNKNOWN if right is UNKNOWN else self._truth(right, expr.right.span)

    def eval_Compare(self, expr: ast.Compare, env: Env):
        values = [self.eval(o, env) for o in expr.operands]
        if any(v is UNKNOWN for v in values):
            return UNKNOWN
        for (a, b), op, span in zip(zip(values, values[1:]), expr.ops, expr.operands[1:]):
            if op in ("==", "!="):
                if isinstance(a, Tensor) or isinstance(b, Tensor):
                    raise EvalError("E310", "tensors cannot be compared; compare their shapes",
                                    expr.span, hint="e.g. `in.c != planes`")
                ok = (a == b) if op == "==" else (a != b)
            else:
                if not (_is_number(a) and _is_number(b)):
                    raise EvalError("E310", f"cannot compare {kind_of(a)} and {kind_of(b)} "
                                            f"with `{op}`", expr.span)
                ok = {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
            if not ok:
                return False
        return True

    def eval_IfExpr(self, expr: ast.IfExpr, env: Env):
        cond = self.eval(expr.cond, env)
        if cond is UNKNOWN:
            return UNKNOWN
        # only the chosen branch is evaluated: the other one creates no layers
        return self.eval(expr.then if self._truth(cond, expr.cond.span) else expr.orelse, env)

    def eval_Range(self, expr: ast.Range, env: Env):
        lo, hi = self.eval(expr.lo, env), self.eval(expr.hi, env)
        if lo is UNKNOWN or hi is UNKNOWN:
            return UNKNOWN
        if not (_is_int(lo) and _is_int(hi)):
            raise EvalError("E310", f"a range needs integer ends, got {kind_of(lo)} and "
                                    f"{kind_of(hi)}", expr.span)
        self._check_count(hi - lo + 1, expr.span)
        self._grow(max(0, hi - lo + 1), expr.span)
        return list(range(lo, hi + 1))

    def eval_BinOp(self, expr: ast.BinOp, env: Env):
        left = self.eval(expr.left, env)
        right = self.eval(expr.right, env)
        if left is UNKNOWN or right is UNKNOWN:
            return UNKNOWN
        op = expr.op
        if isinstance(left, Tensor) or isinstance(right, Tensor):
            return self._tensor_binop(expr, left, right, env)
        if op == "*" and (_is_stage(left) or _is_stage(right)):
            return self._repeat(expr, left, right)
        if op in ("+", "*") and isinstance(left, list) and isinstance(right, (list, int)):
            if op == "*":
                self._check_count(right if _is_int(right) else 0, expr.right.span)
            if isinstance(right, bool) or (op == "+" and not isinstance(right, list)):
                raise EvalError("E310", f"cannot apply `{op}` to a list and {kind_of(right)}",
                                expr.span)
            self._grow(len(left) + len(right) if op == "+" else len(left) * max(right, 0),
                       expr.span)
            return left + right if op == "+" else left * right
        if op == "+" and isinstance(left, str) and isinstance(right, str):
            self._grow(len(left) + len(right), expr.span)
            return left + right
        if not (_is_number(left) and _is_number(right)):
            raise EvalError("E310", f"cannot apply `{op}` to {kind_of(left)} and {kind_of(right)}",
                            expr.span)
        return self._arith(expr, op, left, right)

    def _arith(self, expr: ast.BinOp, op: str, a, b):
        if op in ("/", "//", "%") and b == 0:
            raise EvalError("E314", "division by zero", expr.right.span)
        if op == "**" and (abs(b) > 64 or abs(a) > 1 << 20):
            raise EvalError("E211", "exponent too large", expr.span)
        result = {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b,
                  "/": lambda: a / b, "//": lambda: a // b, "%": lambda: a % b,
                  "**": lambda: a ** b}[op]()
        if isinstance(result, float) and not math.isfinite(result):
            raise EvalError("E211", "number too large", expr.span)
        if isinstance(result, int) and abs(result) > 1 << 62:
            raise EvalError("E211", "number too large", expr.span)
        return result

    def _tensor_binop(self, expr: ast.BinOp, left, right, env: Env):
        if not (isinstance(left, Tensor) and isinstance(right, Tensor)):
            other = right if isinstance(left, Tensor) else left
            hint = "tensors combine with tensors: `a + b`, `x * gate`"
            if _is_stage(other):
                hint = (f"`>>` binds more loosely than `{expr.op}` (as in Python): write "
                        f"`(x >> layer) {expr.op} y`, or name the branch first")
            raise EvalError("E310", f"cannot apply `{expr.op}` to a tensor and {kind_of(other)}",
                            expr.span, hint=hint)
        ops = {"+": "add", "*": "mul"}
        if expr.op not in ops:
            raise EvalError("E310", f"tensors support `+` and `*`, not `{expr.op}`", expr.span)
        operands = [(expr.left, left), (expr.right, right)]
        return self._apply_op(OpStage(OPS[ops[expr.op]], (), {}, expr.span, {}), [left, right],
                              env, name=None, operand_exprs=operands)

    def _repeat(self, expr: ast.BinOp, left, right):
        stage, count = (left, right) if _is_stage(left) else (right, left)
        if not _is_int(count):
            raise EvalError("E310", f"a layer repeats an integer number of times, got "
                                    f"{kind_of(count)}", expr.span)
        if count < 0:
            raise EvalError("E308", f"repeat count {count} is negative", expr.span)
        self._check_count(count, expr.span)
        self._grow(count, expr.span)
        stage = self._as_stage(stage, expr.span)  # `Unit * 2`: a block by its bare name
        return SeqStage(tuple([stage] * count), expr.span, nested=False)

    def _check_count(self, count: int, span: Span) -> None:
        if count > self.limits["repeat"]:
            raise EvalError("E211", f"{count} repetitions is beyond the limit of "
                                    f"{self.limits['repeat']}", span,
                            hint="a typo? the limit guards against runaway specs")

    def eval_Named(self, expr: ast.Named, env: Env):
        label = self._label(expr, env)
        if label is UNKNOWN:
            return UNKNOWN
        inner_expr = expr.inner
        if isinstance(inner_expr, ast.Call):
            # `se: SE(x, 16)` applies at once; the label names what it creates
            return self.eval_Call(inner_expr, env, name=label)
        inner = self.eval(inner_expr, env)
        if inner is UNKNOWN:
            return UNKNOWN
        stage = self._as_stage(inner, inner_expr.span)
        return NamedStage(label, stage, expr.span)

    def _label(self, expr: ast.Named, env: Env):
        if isinstance(expr.label, str):
            return expr.label
        text = self._interpolate(expr.label, env)
        if text is UNKNOWN:
            return UNKNOWN
        if not LABEL_RE.fullmatch(text) or not text.isprintable():  # no bidi overrides
            raise EvalError("E209", f"`{text}` cannot be a submodule name", expr.label_span,
                            hint="a name has no spaces, quotes, backslashes or braces, "
                                 "and dots separate levels")
        return text

    def _interpolate(self, string: ast.String, env: Env):
        """`"layer{i+1}"`: each `{...}` is a netc expression (parsed, never eval'd)."""
        parts, text, pos = [], string.value, 0
        for match, span in interpolations(string):
            parts.append(text[pos:match.start()])
            inner = parse_expression(match.group(1), span, self.diags)
            if inner is None:
                return UNKNOWN
            value = self.eval(inner, env)
            if value is UNKNOWN:
                return UNKNOWN
            if not isinstance(value, (int, str)) or isinstance(value, bool):
                raise EvalError("E310", f"a name part must be a number or a string, got "
                                        f"{kind_of(value)}", span)
            parts.append(str(value))
            self._grow(len(parts[-1]), span)
            pos = match.end()
        parts.append(text[pos:])
        return "".join(parts)

    def eval_Pipe(self, expr: ast.Pipe, env: Env, name: str | None = None):
        left = self.eval(expr.left, env)
        right = self.eval(expr.right, env)
        if _poisoned(left) or _poisoned(right):
            return UNKNOWN
        if isinstance(left, Tensor):
            return self._apply(self._as_stage(right, expr.right.span), left, env, name)
        if isinstance(left, list) and left and all(isinstance(t, Tensor) for t in left):
            stage = self._as_stage(right, expr.right.span)
            if isinstance(stage, OpStage) and stage.op.variadic:
                return self._apply_op(stage, list(left), env, name)
            if _takes_list(stage):  # a block whose `in` is the list (a dense layer's inputs)
                return self._apply(stage, list(left), env, name)
            raise EvalError("E312", "a list of tensors can only feed a block, `cat`, `add` "
                                    "or `mul`", expr.span, hint="e.g. `[a, b, c] >> cat`")
        if _is_stage(left) or isinstance(left, list):
            # composition: `conv(64, 3) >> bn >> relu` is a reusable stage
            first = self._as_stage(left, expr.left.span)
            second = self._as_stage(right, expr.right.span)
            return SeqStage((first, second), expr.span, nested=False)
        raise EvalError("E312", f"`>>` feeds a tensor to a layer, but its left side is "
                                f"{kind_of(left)}", expr.left.span)

    def eval_Call(self, expr: ast.Call, env: Env, name: str | None = None):
        func = self.eval(expr.func, env)
        if func is UNKNOWN:
            return UNKNOWN
        args = tuple(self.eval(a, env) for a in expr.args)
        kwargs = {}
        for kw in expr.kwargs:
            if kw.name in kwargs:
                raise EvalError("E306", f"`{kw.name}` is given twice", kw.span)
            kwargs[kw.name] = self.eval(kw.value, env)
        if any(_poisoned(a) for a in args) or any(v is UNKNOWN for v in kwargs.values()):
            return UNKNOWN
        if isinstance(func, Builtin):
            return self._builtin(func.name, args, kwargs, expr)
        if isinstance(func, BlockStage):  # `unit = Bottleneck(attn = SE)` ... `unit(64)`
            head = args[:1] if args and isinstance(args[0], Tensor) else ()
            args = head + func.args + args[len(head):]
            func, kwargs = func.block, {**func.kwargs, **kwargs}
        if isinstance(func, OpStage):
            inputs, rest = _leading_tensors(args, func.op.variadic)
            rest, kwargs = func.args + rest, {**func.kwargs, **kwargs}
            stage = OpStage(func.op, rest, kwargs, expr.span, func.defaults,
                            call=(expr, len(inputs) - len(func.args)))
            if inputs or func.op.arity == 0:  # `param([1, 1, D])` makes its tensor at once
                return self._apply_op(stage, inputs, env, name,
                                      operand_exprs=list(zip(expr.args, inputs)))
            return NamedStage(name, stage, expr.span) if name else stage
        if isinstance(func, BlockValue) and func.defn.kind == "def":
            return self._call_function(func, args, kwargs, expr, env)
        if isinstance(func, BlockValue):
            if args and isinstance(args[0], Tensor):
                stage = BlockStage(func, args[1:], kwargs, expr.span)
                return self._apply(stage, args[0], env, name)
            stage = BlockStage(func, args, kwargs, expr.span)
            return NamedStage(name, stage, expr.span) if name else stage
        hint = "call an op (`conv(64, 3)`) or a block (`Bottleneck(64)`)"
        if isinstance(expr.func, ast.Ref) and (lookup(expr.func.name) or
                                               expr.func.name in env.module.blocks):
            hint = (f"here `{expr.func.name}` is a local name ({kind_of(func)}) that hides the "
                    f"{'op' if lookup(expr.func.name) else 'block'} of the same name; rename it")
        raise EvalError("E202", f"{kind_of(func)} cannot be called", expr.func.span, hint=hint)

    def _call_function(self, func: BlockValue, args: tuple, kwargs: dict, expr: ast.Call,
                       env: Env):
        """A `def` function: its body runs in a scope of its own (its file's names and its
        parameters), may not create layers, and its `out` is the call's value."""
        defn = func.defn
        if env.depth >= self.limits["depth"]:
            raise EvalError("E211", f"calls nest deeper than {self.limits['depth']} levels "
                                    f"(does `{defn.name}` call itself?)", expr.span)
        local = Env(func.module, {}, env.prefix, env.depth + 1, pure=True)
        local.values.update(self._bind_params(defn, args, kwargs, local, expr.span))
        for stmt in defn.body:
            if isinstance(stmt, ast.InputDecl):
                raise EvalError("E210", f"function `{defn.name}` cannot declare an `input`",
                                stmt.span, hint="a `def` computes a value from its parameters")
            self._run_stmt(stmt, local, is_net=False)  # a failure is the caller's error
            if "<out>" in local.values:
                break
        if "<out>" not in local.values:
            raise EvalError("E208", f"function `{defn.name}` has no `out` statement", defn.span,
                            hint="end the function with `out <value>`")
        return local.values["<out>"]

    def _builtin(self, name: str, args, kwargs, expr: ast.Call):
        if kwargs:
            raise EvalError("E306", f"`{name}` takes no keyword arguments", expr.span)
        try:
            if name == "len":
                (value,) = args
                if not isinstance(value, list):
                    raise TypeError
                return len(value)
            if name == "range":
                if not all(_is_int(a) for a in args) or not 1 <= len(args) <= 3:
                    raise TypeError
                result = range(*args)
                try:
                    count = len(result)
                except OverflowError:  # more than sys.maxsize items
                    count = abs(args[-1] - args[0]) if len(args) > 1 else args[0]
                self._check_count(count, expr.span)
                self._grow(count, expr.span)
                return list(result)
            if name in ("min", "max"):
                values = list(args[0]) if len(args) == 1 and isinstance(args[0], list) else list(args)
                if not values or not all(_is_number(v) for v in values):
                    raise TypeError
                return min(values) if name == "min" else max(values)
            if name in ("int", "abs", "float", "ceil", "floor", "sqrt", "log2"):
                (value,) = args
                if not _is_number(value) or (name in ("sqrt", "log2") and value < 0) or \
                        (name == "log2" and value == 0):
                    raise TypeError
                return {"int": int, "abs": abs, "float": float, "ceil": math.ceil,
                        "floor": math.floor, "sqrt": math.sqrt, "log2": math.log2}[name](value)
            if name == "round":  # Python's: half to even; `round(x, n)` keeps n decimals
                if not 1 <= len(args) <= 2 or not _is_number(args[0]) or \
                        (len(args) == 2 and not _is_int(args[1])):
                    raise TypeError
                return round(*args)
        except (TypeError, ValueError):
            pass
        raise EvalError("E307", f"bad arguments to `{name}`: "
                                + ", ".join(kind_of(a) for a in args), expr.span)

    # ---- stages

    def _as_stage(self, value, span: Span):
        if isinstance(value, (OpStage, BlockStage, SeqStage, NamedStage)):
            return value
        if isinstance(value, BlockValue) and value.defn.kind == "def":
            raise EvalError("E312", f"`{value.defn.name}` is a function: call it for a value",
                            span, hint="layers are ops and blocks; a `def` computes numbers")
        if isinstance(value, BlockValue):
            return BlockStage(value, (), {}, span)
        if isinstance(value, list):
            return SeqStage(tuple(self._as_stage(v, span) for v in value), span, nested=True)
        if isinstance(value, Tensor):
            raise EvalError("E312", "a tensor cannot follow `>>`; `>>` feeds a tensor to a layer",
                            span, hint="combine tensors with `+`, `*` or `cat(a, b)`")
        raise EvalError("E312", f"expected a layer here, got {kind_of(value)}", span)

    def _declaration_order(self) -> float:
        """A place between the nodes made so far and the next one, for layers written now and
        applied later; later declarations sort after earlier ones."""
        self._declarations += 1
        return self.graph.last_order + 0.5 + self._declarations * 1e-9

    def _apply(self, stage, x: Tensor, env: Env, name: str | None) -> Any:
        if isinstance(stage, NamedStage) and stage.declared is not None and \
                isinstance(stage.inner, OpStage):
            self._register_at, outer = stage.declared, self._register_at
            try:
                return self._apply(stage.inner, x, env, stage.label)
            finally:
                self._register_at = outer
        if isinstance(stage, NamedStage):
            if isinstance(stage.inner, NamedStage):  # `a: b: layer` names it `a.b`
                inner = Env(env.module, env.values, (*env.prefix, stage.label), env.depth)
                return self._apply(stage.inner, x, inner, None)
            return self._apply(stage.inner, x, env, stage.label)
        if isinstance(stage, OpStage):
            return self._apply_op(stage, [x], env, name)
        if isinstance(stage, BlockStage):
            return self._apply_block(stage, x, env, name)
        if isinstance(stage, SeqStage):
            return self._apply_seq(stage, x, env, name)
        if isinstance(stage, BlockValue):
            return self._apply_block(BlockStage(stage, (), {}, stage.defn.span), x, env, name)
        raise AssertionError(type(stage).__name__)

    def _apply_seq(self, seq: SeqStage, x, env: Env, name: str | None):
        if name is None:
            for item in seq.items:
                x = self._apply(item, x, env, None)
                if x is UNKNOWN:
                    return UNKNOWN
            return x
        # a named sequence is a naming level: its items are `name.0`, `name.1`, ...
        inner = Env(env.module, env.values, (*env.prefix, name), env.depth)
        first, start = x, self._region_start()
        for index, item in enumerate(_flatten_items(seq)):
            x = self._apply(item, x, inner, str(index))
            if x is UNKNOWN:
                return UNKNOWN
        self._record_region(inner.prefix, "sequence", "", first, x, start, seq.span)
        return x

    def _region_start(self) -> float:
        """Where a block or labelled sequence opens: after the nodes made so far (an integer
        order) and the layers declared so far, before those declared inside it (declarations
        sit at `_declaration_order`; codegen places the submodule half-way to the next node)."""
        return self.graph.last_order + (self._declarations + 0.5) * 1e-9

    def _record_region(self, prefix, kind: str, name: str, x, out, start: float, span: Span,
                       doc: str = ""):
        """Remember a naming level that maps one tensor to one tensor: codegen makes it a
        submodule (the hierarchy a torchvision user indexes and hooks)."""
        packed = isinstance(x, list) and all(isinstance(t, Tensor) for t in x)
        if (isinstance(x, Tensor) or packed) and isinstance(out, Tensor):
            inputs = tuple(t.node for t in x) if packed else x.node
            self.graph.regions.append(Region(".".join(prefix), kind, name, inputs, out.node,
                                             start, self.graph.last_order, span, doc))

    def _apply_block(self, stage: BlockStage, x, env: Env, name: str | None):
        block = stage.block
        if env.depth >= self.limits["depth"]:
            raise EvalError("E211", f"blocks nest deeper than {self.limits['depth']} levels "
                                    f"(does `{block.defn.name}` apply itself?)", stage.span)
        prefix = (*env.prefix, name) if name else env.prefix
        start = self._region_start()
        local = Env(block.module, {"in": x}, prefix, env.depth + 1)
        bound = self._bind_params(block.defn, stage.args, stage.kwargs, local, stage.span)
        local.values.update(bound)
        errors_before = self._error_count()
        # the context of diagnostics in the body, made into a Frame only when one is reported
        self.frames.append((prefix, block.defn.name, bound, stage.span))
        try:
            self._run_body(block.defn.body, local)
        finally:
            self.frames.pop()
        if "<out>" in local.values and self._error_count() == errors_before:
            self._warn_unused_tensors(local)
        if "<out>" not in local.values:
            raise EvalError("E208", f"block `{block.defn.name}` has no `out` statement",
                            block.defn.span, hint="end the block with `out <tensor>`")
        out = local.values["<out>"]
        if out is not UNKNOWN and not isinstance(out, Tensor):
            raise EvalError("E310", f"block `{block.defn.name}` outputs {kind_of(out)}, "
                                    f"not a tensor", block.defn.span)
        if name:
            self._record_region(prefix, "block", block.defn.name, x, out, start, stage.span,
                                block.defn.doc or "")
        return out

    def _error_count(self) -> int:
        """Errors met so far (reported or counted again), O(1)."""
        return self.errors_met

    def _bind_params(self, defn: ast.BlockDef, args: tuple, kwargs: dict, env: Env, span: Span,
                     overrides: dict | None = None) -> dict:
        params = defn.params
        kind = {"net": "net", "def": "function"}.get(defn.kind, "block")
        if len(args) > len(params):
            raise EvalError("E305", f"{kind} `{defn.name}` takes {len(params)} arguments, "
                                    f"got {len(args)}", span)
        bound = dict(zip((p.name for p in params), args))
        names = [p.name for p in params]
        for key, value in kwargs.items():
            if key not in names:
                close = suggest(key, names)
                raise EvalError("E306", f"{kind} `{defn.name}` has no parameter `{key}`", span,
                                hint=f"did you mean `{close}`?" if close else
                                "parameters: " + ", ".join(names))
            if key in bound:
                raise EvalError("E306", f"`{key}` is given twice", span)
            bound[key] = value
        bound.update(overrides or {})
        # defaults see the parameters before them, and a block's input (`c = in.c * 2`)
        scope = Env(env.module, {k: v for k, v in env.values.items() if k == "in"}, env.prefix,
                    env.depth)
        for param in params:
            if param.name not in bound:
                if param.default is None:
                    raise EvalError("E305", f"{kind} `{defn.name}` needs `{param.name}`", span,
                                    labels=(Label(param.span, "declared here"),))
                scope.values.update(bound)
                bound[param.name] = self.eval(param.default, scope)
        return {name: bound[name] for name in names}

    def _file_defaults(self, module: LoadedModule) -> dict:
        """The file's `defaults`, by canonical op name (`conv2d` means `conv`), checked once."""
        key = id(module)
        if key not in self._defaults_cache:
            table: dict[str, dict] = {}
            # cached before it is filled: `defaults conv(bias = conv)` reads this file's
            # defaults while computing them (the value is then checked where it is used)
            self._defaults_cache[key] = table
            for line in module.ast.defaults:
                op = lookup(line.op)
                if op is None:
                    close = suggest(line.op, [k for k in OPS if k not in INTERNAL_OPS])
                    self._report(EvalError("E201", f"`defaults` names no op `{line.op}`",
                                           line.span, hint=f"did you mean `{close}`?"
                                           if close else None))
                    continue
                names = [p.name for p in op.params]
                for kw in line.kwargs:
                    if kw.name not in names:
                        close = suggest(kw.name, names)
                        self._report(EvalError("E306", f"`{op.name}` has no argument `{kw.name}`",
                                               kw.span, hint=f"did you mean `{close}`?"
                                               if close else None))
                        continue
                    try:
                        value = self.eval(kw.value, Env(module))
                    except EvalError as error:
                        self._report(error)
                        continue
                    table.setdefault(op.name, {})[kw.name] = value
            self._defaults_cache[key] = table
        return self._defaults_cache[key]

    def _apply_op(self, stage: OpStage, inputs: list, env: Env, name: str | None,
                  operand_exprs=None, hint_id: str | None = None):
        if any(t is UNKNOWN for t in inputs):
            return UNKNOWN
        bad = [t for t in inputs if not isinstance(t, Tensor)]
        if bad:
            raise EvalError("E310", f"`{stage.op.name}` takes tensors, got {kind_of(bad[0])}",
                            stage.span)
        if stage.op.variadic and len(inputs) == 1 and stage.op.name in ("add", "mul"):
            return inputs[0]  # `sum(parts)` of one part (radix 1) is that part
        if stage.op.variadic and not inputs:
            raise EvalError("E305", f"`{stage.op.name}` needs at least one tensor", stage.span)
        if not stage.op.variadic and len(inputs) != stage.op.arity:
            takes = "no tensor" if stage.op.arity == 0 else "one tensor"
            raise EvalError("E305", f"`{stage.op.name}` takes {takes}, got {len(inputs)}",
                            stage.span)
        if stage.op.name == "cat":
            inputs = self._expand_params(inputs, stage.span, env)
        defaults = stage.defaults.get(stage.op.name, {})
        try:
            args = bind_op_args(stage.op, stage.args, stage.kwargs, defaults, stage.span,
                                EvalError)
        except EvalError as error:
            raise self._argument_error(error, stage, env) from None
        result = self._add_node(stage.op, args, inputs, stage.span, env, name,
                                operand_exprs=operand_exprs, hint_id=hint_id)
        if isinstance(result, Tensor) and isinstance(result.shape, Multi):
            # several results (split): a list of tensors, one `getitem` node each, so that
            # `a, b = split(x, 2)`, `parts[i]` and `sum(parts)` all work on plain lists
            base = result.node.rsplit(".", 1)[-1]
            return [self._add_node(OPS["getitem"], {"index": index}, [result], stage.span, env,
                                   name=None, hint_id=f"{base}_{index}")
                    for index in range(len(result.shape))]
        return result

    def _expand_params(self, inputs: list, span: Span, env: Env) -> list:
        """A learnable tensor concatenated with batched ones (ViT's class token before the
        patches) is first repeated along their batch, as `class_token.expand(n, -1, -1)`."""
        batched = [t for t in inputs if self.graph.node(t.node).op != "param"]
        if len(batched) == len(inputs):
            return inputs
        if not batched:
            raise EvalError("E312", "`cat` of learnable tensors only has no batch to follow",
                            span, hint="concatenate them with the tensor they belong to")
        return [t if t in batched else
                self._add_node(OPS["batch_expand"], {}, [t, batched[0]], span, env, None,
                               hint_id=f"{t.node.rsplit('.', 1)[-1]}_expanded")
                for t in inputs]

    def _add_node(self, op: OpSpec, args: dict, inputs: list, span: Span, env: Env,
                  name: str | None, operand_exprs=None, hint_id: str | None = None):
        if any(t.shape is None for t in inputs):
            return UNKNOWN
        if env.pure:
            raise EvalError("E310", f"`{op.name}` creates a layer, but a `def` function computes "
                                    f"values only", span, hint="make it a `block` instead")
        if len(self.graph) >= self.limits["nodes"]:
            raise BudgetExceeded("E211", f"the net has more than {self.limits['nodes']:,} nodes",
                                 span, hint="a runaway repeat or recursion? if the net is meant "
                                            "to be this large, raise it with `--limit nodes=N`")
        module = None
        if op.has_module:
            module = ".".join((*env.prefix, name)) if name else self._fresh(env.prefix, op.name)
            clash = next((part for part in module.split(".") if part in RESERVED_MODULE_NAMES
                          or part.startswith("_")), None)
            if clash and clash.startswith("_"):
                raise EvalError("E209", f"`{clash}` cannot name a submodule: names starting with "
                                        f"`_` are private to torch `nn.Module` (`_modules`, "
                                        f"`_parameters`, ...)", span,
                                hint="choose a name that starts with a letter or a digit")
            if clash:
                raise EvalError("E209", f"`{clash}` cannot name a submodule: it is an attribute "
                                        f"of every torch `nn.Module`", span,
                                hint="choose another name (e.g. add a suffix)")
            if module in self.modules_seen:
                first = self.modules_seen[module]
                raise EvalError("E203", f"two layers are named `{module}`", span,
                                labels=(Label(first.span, "first used here"),),
                                hint="label the repetition, e.g. `layer1: [block(64) * 3]`")
            if module in self.graph:  # an input, or an unlabelled node, has this id already
                first = self.graph.node(module)
                what = f"input `{module}`" if first.op == "input" else \
                    f"an unlabelled `{first.op}` (its automatic name)"
                raise EvalError("E203", f"`{module}` is already the name of {what}", span,
                                labels=(Label(first.span, "named here"),),
                                hint="choose another label")
            parents = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
            clash = {p for p in parents if p in self.modules_seen} or (
                {module} & self.module_parents)
            if clash:
                other = self.modules_seen.get(next(iter(clash)))
                raise EvalError("E203", f"`{module}` would be both a layer and a group of layers",
                                span, labels=(Label(other.span, "the other use"),) if other else (),
                                hint="rename one of them")
            node_id = module
        else:
            node_id = self._fresh(env.prefix, name or hint_id or op.name)
        node = Node(node_id, op.name, args, tuple(t.node for t in inputs), span,
                    self.graph.next_order(), module=module, scope=env.prefix)
        if module and self._register_at is not None:
            node.register_order, self._register_at = self._register_at, None
        try:
            node.shape = infer_node(op, args, self._operand_shapes(op, inputs))
        except ShapeError as error:
            labels = tuple(self._operand_labels(operand_exprs, inputs))
            if not self.permissive:
                raise self._shape_error(error, op, args, inputs, span, labels, operand_exprs,
                                        env) from None
            self._report(EvalError(error.code, error.message, span))
            node.shape = _guess_shape(op, args, [t.shape for t in inputs])
        self.graph.add(node)
        if module:
            self.modules_seen[module] = node
            self.module_parents |= {".".join(module.split(".")[:i])
                                    for i in range(1, module.count(".") + 1)}
        for code, message, hint in op.warnings(args, [t.shape for t in inputs]):
            if code == "W301" and self._dims_reordered(inputs[0].node):
                continue  # a channels-last map ([H, W, C] after `permute`): meant
            if (span, code) not in self.warned:
                self.warned.add((span, code))
                self.diags.warning(code, message, span, hint=hint)
        return Tensor(node.id, node.shape, span)

    def _operand_shapes(self, op: OpSpec, inputs: list) -> list:
        return operand_shapes(op, [t.shape for t in inputs],
                              [self.graph.node(t.node).op == "param" for t in inputs])

    def _dims_reordered(self, node_id: str) -> bool:
        """Whether a value's dims were moved about (permute, transpose, ...) on its way from
        the input, so that a rank-3 shape is no longer [C, H, W]."""
        for _ in range(64):  # a few elementwise steps back; far enough for any real net
            node = self.graph.node(node_id)
            if node.op in REORDERING_OPS:
                return True
            if not node.inputs or node.op in ("conv", "maxpool", "avgpool", "input"):
                return False
            node_id = node.inputs[0]
        return False

    def _shape_error(self, error: ShapeError, op: OpSpec, args: dict, inputs: list, span: Span,
                     labels: tuple, operand_exprs, env: Env) -> EvalError:
        """A shape rule's objection as a diagnostic, pointed at its cause when cause analysis
        finds one (the layer and argument where the operands' derivations part)."""
        from netc import cause  # (only when there is something to explain)

        evaluate = lambda expr: self._pure_value(expr, env)  # noqa: E731
        found = cause.explain_conflict(
            self.graph, op, args, [t.node for t in inputs], error, span, labels,
            self.program.sources, operand_exprs=operand_exprs,
            block_out=lambda expr: self._applied_block_out(expr, env), evaluate=evaluate,
            assigned=self.assignments.get(id(env.values), {}), unknown=UNKNOWN)
        result = EvalError(error.code, error.message, found.span, hint=found.hint,
                           notes=error.notes + found.notes, labels=found.labels)
        result.extra = {"label": found.label, "cause": found.cause}
        return result

    def _pure_value(self, expr, env: Env):
        """An expression evaluated again for the values a diagnostic shows: only a pure one
        (numbers, names, shape queries, arithmetic), so this never creates a layer."""
        from netc import cause  # (only when there is something to explain)

        if not cause.is_pure(expr):
            return UNKNOWN
        try:
            return self.eval(expr, env)
        except EvalError:
            return UNKNOWN

    def _applied_block_out(self, expr, env: Env):
        """The `out` statement of the block an operand expression applies (`in >> Shortcut(...)`),
        for a shortcut that came back unchanged."""
        call = expr.right if isinstance(expr, ast.Pipe) else expr
        call = call.inner if isinstance(call, ast.Named) else call
        func = call.func if isinstance(call, ast.Call) else call
        if isinstance(func, ast.Ref) and func.name in env.module.blocks:
            defn = env.module.blocks[func.name]
            args = [self._pure_value(arg, env)
                    for arg in (call.args if isinstance(call, ast.Call) else ())]
            return next((s for s in defn.body if isinstance(s, ast.Out)), None), defn.name, args
        return None

    def _argument_error(self, error: EvalError, stage: OpStage, env: Env) -> EvalError:
        """A bad op argument, with the expression that computed it and its values
        (`in.c // reduction = 10 // 16 = 0`), and the command line when a `-D` set it."""
        from netc import cause  # (only when there is something to explain)

        evaluate = lambda expr: self._pure_value(expr, env)  # noqa: E731
        try:
            found = cause.explain_argument(
                error, stage.op, stage.call, evaluate,
                assigned=self.assignments.get(id(env.values), {}),
                origins=self.override_origin if env.depth == 0 else {}, unknown=UNKNOWN)
        except BudgetExceeded:
            raise
        except Exception:  # analysis is a bonus: it must never hide the error itself
            found = None
        if found is None:
            return error
        result = EvalError(error.code, error.message, found.span, hint=found.hint,
                           notes=error.notes + found.notes, labels=error.labels + found.labels)
        result.extra = {"label": found.label, "cause": found.cause}
        return result

    def _operand_labels(self, operand_exprs, inputs):
        if not operand_exprs:
            return
        for expr, tensor in operand_exprs:
            producer = self.graph.node(tensor.node)
            what = f"`{expr.name}`" if isinstance(expr, ast.Ref) else (
                "`in`" if isinstance(expr, ast.InputRef) else "this operand")
            origin = "the block input" if isinstance(expr, ast.InputRef) else f"`{producer.id}`"
            yield Label(producer.span, f"{what} is {format_shape(tensor.shape)}, from {origin}")

    def _fresh(self, prefix: tuple[str, ...], base: str) -> str:
        """A node id not yet used: `layer1.0.relu`, then `layer1.0.relu_1`, ..."""
        stem = ".".join((*prefix, base))
        counter = self._fresh_next.get(stem, 0)  # amortised O(1): never retry a used suffix
        candidate = stem if counter == 0 else f"{stem}_{counter}"
        while candidate in self.graph or candidate in self.modules_seen:
            counter += 1
            candidate = f"{stem}_{counter}"
        self._fresh_next[stem] = counter + 1
        return candidate

    @staticmethod
    def _truth(value, span: Span) -> bool:
        if isinstance(value, bool):
            return value
        raise EvalError("E310", f"a condition must be true or false, got {kind_of(value)}", span)


def _guess_shape(op: OpSpec, args: dict, in_shapes: list):
    """A plausible shape for a node whose rule failed (permissive mode only)."""
    first = in_shapes[0]
    if op.name == "conv":
        return (args["out_channels"], *first[1:]) if len(first) == 3 else (args["out_channels"], 1, 1)
    if op.name == "linear":
        return (args["out_features"],)
    return first


def _python_to_netc(value):
    """A value from the Python API as the spec language sees it (tuples are lists)."""
    if isinstance(value, (tuple, list)):
        return [_python_to_netc(v) for v in value]
    return value


def _poisoned(value) -> bool:
    """UNKNOWN, or a list holding it (a dense block's features after one layer failed):
    anything computed from it is poisoned silently, not reported again."""
    return value is UNKNOWN or (isinstance(value, list) and any(v is UNKNOWN for v in value))


def _silent_poison() -> EvalError:
    return EvalError("", "", None)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _takes_list(stage) -> bool:
    """A block, possibly labelled: it can take a list of tensors as its `in`."""
    while isinstance(stage, NamedStage):
        stage = stage.inner
    return isinstance(stage, BlockStage)


def _is_stage(value) -> bool:
    return isinstance(value, STAGES)


def _leading_tensors(args: tuple, variadic: bool) -> tuple[list, tuple]:
    """Split a call's positional arguments into tensor inputs and op arguments:
    `relu(x)`, `cat(a, b, c)`, `cat([a, b])` apply at once; `conv(64, 3)` is a stage."""
    if variadic and args and isinstance(args[0], list) and args[0] \
            and all(isinstance(t, Tensor) for t in args[0]):
        return list(args[0]), args[1:]
    count = 0
    while count < len(args) and isinstance(args[count], Tensor):
        count += 1
    if not variadic:
        count = min(count, 1)
    return list(args[:count]), args[count:]


def _flatten_items(seq: SeqStage) -> list:
    """A sequence's items with unnamed repeats and compositions spliced in, so that
    `[block(64, 2), block(64) * 3]` numbers its blocks 0..3."""
    items = []
    for item in seq.items:
        if isinstance(item, SeqStage) and not item.nested:
            items.extend(_flatten_items(item))
        else:
            items.append(item)
    return items

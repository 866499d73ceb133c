"""A structured fuzzer: random DAG specs with hostile labels, numbers and strings, each run
through everything a user runs, under a per-example time and memory watchdog.

The grammar fuzzer (`test_fuzz.py`) mostly produces text that fails to parse; this one writes
specs that look like real networks (convs, norms, pools, residual adds, gates, concats,
splits, reshapes, labelled sequences, blocks applied with labels, `for` loops), so most of
them elaborate, type and build, and then salts them with what an attacker would try: labels
that are Python keywords, builtins, names the generated code uses (`self`, `torch`, `F`,
`nn`), private `nn.Module` attributes, very long or non-ASCII names; numbers that are 0,
negative, 2**62, 1e400 or fractional; doc comments with quotes, backslashes, `\"\"\"`,
control characters and terminal escape sequences. Many specs are invalid on purpose. The
property is behaviour, not validity (issue 13: exit codes 0/1/2 only, no traceback, bounded
time and memory):

1. `netc.check` returns diagnostics and raises nothing; each has a `file:line:col` span
   inside the file, or none (a global diagnostic), and the source line it quotes is the
   line its span points at;
2. when the spec is valid: `netc.summary` renders, the generated source compiles,
   `netc.build` builds and a forward at batch 2 runs, and every node's static shape equals
   the shape the module really computes (as in `test_runtime_shapes.py`);
3. a sample goes through `python -m netc check` in a subprocess: exit 0, 1 or 2, and no
   traceback or "internal error" on stderr.

Each example runs under an interval timer (TIME_LIMIT_S) and an address-space limit
(MEMORY_LIMIT_BYTES above what the process already has), so a hang or a memory bomb fails
that example instead of the run. The default suite runs a deterministic sample; locally,

    NETC_FUZZ_EXAMPLES=10000 pytest tests/test_fuzz_structured.py -q

or `python tests/test_fuzz_structured.py 10000` (a plain loop that logs every failing seed
and its spec, without pytest's per-test overhead). `NETC_FUZZ_SEED=N` shifts the seeds.
Bugs found are kept in KNOWN_FINDINGS as minimal specs, each a test (all six found so far
are fixed and pass); a random example that fails with a known finding's signature is an
xfail, anything else fails.
"""
from __future__ import annotations

import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import traceback
from contextlib import contextmanager
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import netc  # noqa: E402
import netc.api  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = int(os.environ.get("NETC_FUZZ_EXAMPLES", "150"))
CLI_EXAMPLES = int(os.environ.get("NETC_FUZZ_CLI_EXAMPLES", "10"))
SEED0 = int(os.environ.get("NETC_FUZZ_SEED", "0"))
TIME_LIMIT_S = float(os.environ.get("NETC_FUZZ_TIME_LIMIT", "10"))
MEMORY_LIMIT_BYTES = 1 << 30  # on top of what the process has mapped already
BATCH = 2
NL, CR = chr(10), chr(13)


# -- the watchdog ----------------------------------------------------------------------------

class Watchdog(Exception):
    """An example ran past its time limit."""


def _vm_size() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@contextmanager
def watchdog(seconds: float = TIME_LIMIT_S, memory: int = MEMORY_LIMIT_BYTES):
    """Raise Watchdog in the block after `seconds`; make allocations beyond `memory` more
    than the current address space fail with MemoryError (Linux; elsewhere time only)."""
    def expire(signum, frame):
        raise Watchdog(f"example ran past {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    size = _vm_size()
    limited = False
    if size:
        cap = size + memory
        if hard == resource.RLIM_INFINITY or cap <= hard:
            resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
            limited = True
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if limited:
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


# -- the generator ---------------------------------------------------------------------------

# labels that are valid netc names but hostile to generated Python and to nn.Module
# (VALID_HOSTILE_NAMES: the ones netc accepts as labels, so they reach codegen and torch)
VALID_HOSTILE_NAMES = [
    "class", "None", "True", "False", "def", "lambda", "return", "from", "yield", "self",
    "torch", "F", "nn", "super", "object", "list", "int", "print", "type", "Tensor", "List",
    "Optional", "torchvision", "inputs", "out_", "input_", "math", "_1", "a" * 300,
    "L" + "0" * 120, "x_", "result", "module", "layer", "weight", "bias", "args", "kwargs",
]
HOSTILE_NAMES = VALID_HOSTILE_NAMES + [
    "class", "None", "True", "False", "def", "lambda", "return", "import", "from", "yield",
    "self", "torch", "F", "nn", "super", "object", "list", "int", "sum", "print", "type",
    "forward", "training", "_modules", "_parameters", "_buffers", "_version", "__init__",
    "__class__", "_", "__", "_1", "x", "image", "relu", "conv", "bn", "cat", "add",
    "Tensor", "List", "Optional", "torchvision", "inputs", "out_", "input_", "math",
    "a" * 300, "L" + "0" * 120, "T" * 1000,
]
# string labels: interpolations, digits first, non-ASCII, spaces, dots
HOSTILE_STRING_LABELS = [
    "1abc", "0", "{i}", "{i}{i}", "a.b", "a b", "ñame", "λ", "数据", "Ω_1", "é", "a-b",
    "", " ", "{", "}", "{{i}}", "class", "x{i}_{i}", "ǅ", "\u00a0", "a\\b", "'q'",
    "\u202e", "\u200b", "a\x7f",
]
HOSTILE_NUMBERS = ["0", "-1", "-7", "2 ** 62", "2 ** 31", "10 ** 30", "1.5", "2.0", "0.0",
                   "1e400", "1e-300", "-(2 ** 62)", "9223372036854775808", "3.000000001"]
# printable hostile text (a spec may hold it); CONTROL_TEXT is only in hostile examples
PRINTABLE_TEXT = ['"quoted"', "'single'", '"""triple"""', "back\\slash", "\\n\\t\\x00", "{x}",
                  "${oc.env:HOME}", "%s %d", "😀", "ünïcödé", "数据", "</script>", "`rm -rf`"]
HOSTILE_TEXT = [
    '"quoted"', "'single'", '"""triple"""', "back\\slash", "\\n\\t\\x00", "\x1b]0;owned\x07",
    "\x1b[31mred\x1b[0m", "\x00nul", "\t tab", "\x07bell", "\x7fdel", "\u202eRTL", "\ufeffbom",
    "{x}", "${oc.env:HOME}", "%s %d", "\x08\x08", "\r carriage", "\x0c form feed", "😀",
    "\u2028line sep", "\x85next line",
]


class Spec:
    """One random spec, from one seed: source text plus what was meant."""

    def __init__(self, seed: int, hostility: float | None = None):
        self.rng = random.Random(seed)
        rng = self.rng
        self.hostility = rng.choice([0.0, 0.0, 0.05, 0.15, 0.4]) if hostility is None \
            else hostility
        # hostile but valid names, on their own dial so that many specs with them are valid
        self.name_hostility = rng.choice([0.0, 0.1, 0.3, 0.6])
        self.count = 0
        self.vars: dict[str, list[int]] = {}   # tensor variable -> its intended shape
        self.lists: dict[str, list[list[int]]] = {}  # split results
        self.lines: list[str] = []
        self.blocks: list[str] = []
        self.block_defs: list[str] = []
        self.text = self._render()

    # - pieces -
    def hostile(self) -> bool:
        return self.rng.random() < self.hostility

    def fresh(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def label(self) -> str:
        rng = self.rng
        if self.hostile():
            if rng.random() < 0.6:
                return rng.choice(HOSTILE_NAMES)
            return '"' + rng.choice(HOSTILE_STRING_LABELS) + '"'
        if rng.random() < self.name_hostility:
            return self.fresh_hostile()
        return self.fresh(rng.choice(["l", "conv", "layer", "fc", "bn", "stage"]))

    def fresh_hostile(self) -> str:
        """A valid hostile name not used yet (labels must be unique)."""
        name = self.rng.choice(VALID_HOSTILE_NAMES)
        self.used = getattr(self, "used", set())
        while name in self.used:
            name += "_"
        self.used.add(name)
        return name

    def var(self) -> str:
        if self.rng.random() < self.name_hostility:
            return self.fresh_hostile()
        if self.hostile():
            name = self.rng.choice(HOSTILE_NAMES)
            if name not in ("in",) and not name.startswith("__"):
                return name
        return self.fresh("v")

    def num(self, value) -> str:
        return self.rng.choice(HOSTILE_NUMBERS) if self.hostile() else str(value)

    def doc(self) -> list[str]:
        rng = self.rng
        if rng.random() < 0.5:
            return []
        lines = []
        for _ in range(rng.randint(1, 3)):
            words = ["A", "doc", "comment"]
            if rng.random() < 0.4:
                words += rng.sample(PRINTABLE_TEXT, rng.randint(1, 3))
            if self.hostile():
                words += rng.sample(HOSTILE_TEXT, rng.randint(1, 3))
            lines.append("## " + " ".join(words))
        return lines

    def pick(self, pred=lambda s: True) -> str | None:
        names = [v for v, s in self.vars.items() if pred(s)]
        return self.rng.choice(names) if names else None

    # - statements -
    def assign(self, expr: str, shape: list[int]) -> str:
        name = self.var()
        self.lines.append(f"{name} = {expr}")
        self.vars[name] = shape
        return name

    def conv(self, src: str, s: list[int], labelled: bool = True) -> tuple[str, list[int]]:
        rng = self.rng
        c = rng.randint(1, 8)
        k = rng.choice([1, 3])
        stride = rng.choice([1, 1, 2])
        args = [self.num(c), self.num(k)]
        pad = (k - 1) // 2
        if stride != 1 or rng.random() < 0.3:
            args.append(self.num(stride))
        if rng.random() < 0.25:
            pad = rng.randint(0, 2)
            args.append(f"padding = {self.num(pad)}")
        h, w = ((d + 2 * pad - (k - 1) - 1) // stride + 1 for d in s[1:])
        text = f"conv({', '.join(args)})"
        if labelled:
            text = f"{self.label()}: {text}"
        return text, [c, h, w]

    def statement(self) -> None:
        rng = self.rng
        maps = lambda s: len(s) == 3  # noqa: E731
        vecs = lambda s: len(s) == 1  # noqa: E731
        kind = rng.choice(["conv", "conv", "bn", "act", "act", "pool", "gap", "flatten",
                           "linear", "add", "mul", "cat", "split", "parts", "reshape",
                           "dropout", "sequence", "block", "for", "gate"])
        if kind == "conv" and (src := self.pick(maps)):
            text, shape = self.conv(src, self.vars[src])
            extra = rng.choice(["", " >> relu", f" >> {self.label()}: bn >> relu"])
            self.assign(f"{src} >> {text}{extra}", shape)
        elif kind == "bn" and (src := self.pick()):
            self.assign(f"{src} >> {self.label()}: bn", self.vars[src])
        elif kind == "act" and (src := self.pick()):
            op = rng.choice(["relu", "sigmoid", "identity", "tanh"])
            expr = f"{op}({src})" if rng.random() < 0.3 else f"{src} >> {op}"
            self.assign(expr, self.vars[src])
        elif kind == "dropout" and (src := self.pick()):
            p = rng.choice(["0.0", "0.1", "0.5", "0"])
            self.assign(f"{src} >> dropout({self.num(p)})", self.vars[src])
        elif kind == "pool" and (src := self.pick(lambda s: maps(s) and min(s[1:]) >= 2)):
            op = rng.choice(["maxpool", "avgpool"])
            s = self.vars[src]
            self.assign(f"{src} >> {op}({self.num(2)})", [s[0], s[1] // 2, s[2] // 2])
        elif kind == "gap" and (src := self.pick(maps)):
            self.assign(f"{src} >> gap", [self.vars[src][0], 1, 1])
        elif kind == "flatten" and (src := self.pick(maps)):
            s = self.vars[src]
            self.assign(f"{src} >> flatten", [s[0] * s[1] * s[2]])
        elif kind == "linear" and (src := self.pick(vecs)):
            n = rng.randint(1, 16)
            self.assign(f"{src} >> {self.label()}: linear({self.num(n)})", [n])
        elif kind in ("add", "mul") and (src := self.pick()):
            s = self.vars[src]
            same = [v for v, t in self.vars.items() if t == s]
            gates = [v for v, t in self.vars.items() if len(s) == 3 and t == [s[0], 1, 1]]
            other = rng.choice(same + gates)
            op = "+" if kind == "add" else "*"
            form = rng.choice([f"{src} {op} {other}", f"{kind}({src}, {other})"])
            self.assign(form, s)
        elif kind == "cat" and (src := self.pick()):
            s = self.vars[src]
            fits = [v for v, t in self.vars.items() if len(t) == len(s) and t[1:] == s[1:]]
            others = rng.sample(fits, min(len(fits), rng.randint(1, 3)))
            shape = [sum(self.vars[v][0] for v in [src, *others]), *s[1:]]
            self.assign(f"cat({', '.join([src, *others])})", shape)
        elif kind == "split" and (src := self.pick(lambda s: s[0] % 2 == 0)):
            s = self.vars[src]
            n = rng.choice([d for d in (2, 3, 4) if s[0] % d == 0] or [2])
            if rng.random() < 0.4 and n == 2:
                a, b = self.var(), self.var()
                if a == b:
                    b = self.fresh("v")
                self.lines.append(f"{a}, {b} = split({src}, {self.num(n)})")
                self.vars[a] = self.vars[b] = [s[0] // 2, *s[1:]]
            else:
                name = self.fresh("parts")
                self.lines.append(f"{name} = split({src}, {self.num(n)})")
                self.lists[name] = [[s[0] // n, *s[1:]]] * n
        elif kind == "parts" and self.lists:
            name = rng.choice(sorted(self.lists))
            parts = self.lists[name]
            i = rng.randrange(len(parts))
            index = rng.choice([str(i), str(i - len(parts))]) if not self.hostile() else \
                rng.choice(HOSTILE_NUMBERS)
            if rng.random() < 0.3:
                self.assign(f"sum({name})", parts[0])
            else:
                self.assign(f"{name}[{index}]", parts[i])
        elif kind == "reshape" and (src := self.pick()):
            s = self.vars[src]
            if len(s) == 3:
                shape = [s[0] * s[1] * s[2]]
            else:
                shape = rng.choice([[s[0], 1, 1], [1, 1, s[0]]])
            self.assign(f"{src} >> reshape([{', '.join(map(self.num, shape))}])", shape)
        elif kind == "sequence" and (src := self.pick(maps)):
            s = self.vars[src]
            conv, shape = self.conv(src, s, labelled=rng.random() < 0.3)
            items = [conv, "bn", "relu"]
            rng.shuffle(items)
            self.assign(f"{src} >> {self.label()}: [{', '.join(items)}]", shape)
        elif kind == "block" and (src := self.pick(maps)):
            self.apply_block(src)
        elif kind == "for" and (src := self.pick(maps)):
            s = self.vars[src]
            n = rng.randint(0, 3)
            name = self.var()
            c = s[0]
            self.lines.append(f"{name} = {src}")
            loop_label = rng.choice(['"{l}{{i}}"'.format(l=self.fresh("loop")),
                                     '"{l}_{{i}}_{{i}}"'.format(l=self.fresh("loop"))])
            if self.hostile():
                loop_label = rng.choice(['"{i}"', '"class{i}"', "same", '"_modules{i}"'])
            self.lines.append(f"for i in range({self.num(n)}) {{")
            self.lines.append(f"  {name} = {name} >> {loop_label}: conv({self.num(c)}, 3)"
                              " >> relu")
            self.lines.append("}")
            self.vars[name] = s
        elif kind == "gate" and (src := self.pick(maps)):
            s = self.vars[src]
            r = self.rng.choice([1, 2, 4])
            hidden = max(1, s[0] // r)
            gate = (f"{src} >> gap >> flatten >> {self.label()}: linear({self.num(hidden)}) >> "
                    f"relu >> {self.label()}: linear({s[0]}) >> sigmoid >> reshape([{s[0]}, 1, 1])")
            g = self.assign(gate, [s[0], 1, 1])
            self.assign(f"{src} * {g}", s)

    def apply_block(self, src: str) -> None:
        rng = self.rng
        s = self.vars[src]
        which = rng.choice(["Unit", "Res", "Seq", "Gate"])
        if which not in self.blocks:
            self.blocks.append(which)
            self.block_defs += self.doc() + BLOCKS[which].splitlines()
        label = self.label() if rng.random() < 0.8 else None
        prefix = f"{label}: " if label else ""
        if which == "Unit":
            c, stride = rng.randint(1, 8), rng.choice([1, 2])
            shape = [c, *((d - 1) // stride + 1 for d in s[1:])]
            call = f"Unit({self.num(c)}, {self.num(stride)})"
        elif which == "Res":
            shape, call = s, "Res()" if rng.random() < 0.5 else "Res"
        elif which == "Seq":
            n = rng.randint(0, 3)
            shape, call = s, f"[Seq({s[0]}) * {self.num(n)}]"
            if not label:
                prefix = f"{self.label()}: "
        else:
            shape, call = s, f"Gate({self.num(rng.choice([1, 2, 4]))})"
        self.assign(f"{src} >> {prefix}{call}", shape)

    def _render(self) -> str:
        rng = self.rng
        c, h, w = rng.randint(1, 8), rng.randint(1, 12), rng.randint(1, 12)
        shape = [c, h, w] if rng.random() < 0.85 else [rng.randint(1, 32)]
        inp = self.fresh("x") if not self.hostile() else self.var()
        self.vars[inp] = shape
        for _ in range(rng.randint(3, 15)):
            self.statement()
        last = list(self.vars)[-1]
        if rng.random() < 0.3 and len(self.vars) > 1:  # several branches meet at the end
            same = [v for v, t in self.vars.items() if t == self.vars[last]]
            if len(same) > 1:
                last_expr = " + ".join(same[-3:])
            else:
                last_expr = last
        else:
            last_expr = last
        head = self.doc()
        if rng.random() < 0.2:
            head.append("defaults conv(bias = false)")
        params = "" if not self.hostile() else f"width = {rng.choice(HOSTILE_NUMBERS)}"
        net = [*self.doc(), f"net {rng.choice(['Net', 'Model', 'N', 'self', 'torch', 'nn'])}"
               f"({params}) {{", f"  input {inp}: [{', '.join(map(self.num, shape))}]"]
        net += ["  " + line for line in self.lines]
        net += [f"  out {last_expr}", "}"]
        return "\n".join([*head, *self.block_defs, *net]) + "\n"


BLOCKS = {
    "Unit": """block Unit(c, stride = 1) {
  out in >> conv1: conv(c, 3, stride) >> bn1: bn >> relu
}""",
    "Res": """block Res(k = 3) {
  y = in >> conv1: conv(in.c, k) >> bn1: bn >> relu >> conv2: conv(in.c, k) >> bn2: bn
  out relu(y + in)
}""",
    "Seq": """block Seq(c) {
  out in >> conv: conv(c, 3) >> relu
}""",
    "Gate": """block Gate(r = 2) {
  g = in >> gap >> flatten >> fc1: linear(max(1, in.c // r)) >> relu >> fc2: linear(in.c)
        >> sigmoid >> reshape([in.c, 1, 1])
  out in * g
}""",
}


# -- the properties --------------------------------------------------------------------------

def static_vs_runtime(path: Path) -> None:
    import torch

    from test_runtime_shapes import per_sample_shape, runtime_values

    compiled = netc.compile(path)
    graph = compiled.graph
    module, code = netc.api.lower(compiled)
    inputs = [torch.randn(BATCH, *i.shape) for i in graph.inputs]
    values = runtime_values(module.eval(), code, inputs)
    for node in graph:
        value = values.get(code.variables[node.id])
        assert value is not None, f"node {node.id}: no runtime value"
        if isinstance(value, torch.Tensor):
            assert value.shape[0] == BATCH, f"node {node.id}: batch {value.shape[0]}"
        static = tuple(node.shape) if not isinstance(node.shape, tuple) or not node.shape or \
            not isinstance(node.shape[0], tuple) else tuple(tuple(s) for s in node.shape)
        assert per_sample_shape(value) == static, \
            f"node {node.id}: static {node.shape}, runtime {per_sample_shape(value)}"


def check_example(path: Path) -> str:
    """Every property on one spec file; returns "valid" or "invalid" (raises on failure)."""
    text = path.read_bytes().decode("utf-8")  # no newline translation: a lone \r stays
    n_lines = text.count("\n") + 1
    diagnostics = netc.check(path)
    sources = netc.compile(path).sources
    file_lines = text.split(NL)
    for d in diagnostics:
        assert isinstance(d, netc.Diagnostic), d
        if d.span is None:
            continue
        assert d.span.line >= 1 and d.span.col >= 1, f"bad span {d.span} for {d.code}"
        if Path(d.span.file).name != path.name:
            continue
        assert d.span.line <= n_lines, f"span {d.span} past the end ({d.code})"
        # the line a diagnostic quotes is the line its span points at (checked where that
        # line is plain ASCII, which no escaping of the quote can change)
        expected = file_lines[d.span.line - 1]
        if CR not in text and expected.isascii() and expected.isprintable():
            quoted = sources.line_text(d.span)
            assert quoted.rstrip() == expected.rstrip(), \
                f"{d.code} at {d.span} quotes {quoted!r}, not line {d.span.line} {expected!r}"
    if any(d.is_error for d in diagnostics):
        return "invalid"
    import torch

    summary = netc.summary(path)
    assert str(summary)
    source = netc.generate_source(path)
    compile(source.src, f"<netc fuzz {path.name}>", "exec")
    model = netc.build(path).eval()
    graph = netc.compile(path).graph
    inputs = [torch.randn(BATCH, *i.shape) for i in graph.inputs]
    with torch.no_grad():
        output = model(*inputs)
    assert output is not None
    static_vs_runtime(path)
    return "valid"


def run_seed(seed: int, workdir: Path) -> tuple[str, Spec]:
    spec = Spec(seed)
    path = workdir / f"fuzz{seed}.net"
    path.write_text(spec.text, encoding="utf-8")
    try:
        with watchdog():
            return check_example(path), spec
    finally:
        path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz_structured")


# (small tensors: intra-op threads only contend on a shared machine)
pytestmark = pytest.mark.usefixtures("one_thread")


_outcomes: dict[str, int] = {}


@pytest.mark.parametrize("seed", range(SEED0, SEED0 + EXAMPLES))
def test_random_spec_behaves(seed, workdir):
    try:
        outcome, _ = run_seed(seed, workdir)
    except BaseException as error:
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            raise
        spec = Spec(seed)
        if (ident := known_finding(error)) is not None:
            pytest.xfail(f"seed {seed}: known finding {ident}: {error}")
        pytest.fail(f"seed {seed}: {type(error).__name__}: {error}\n--- spec ---\n{spec.text}"
                    f"\n{traceback.format_exc(limit=-6)}", pytrace=False)
    _outcomes[outcome] = _outcomes.get(outcome, 0) + 1


def test_the_generator_mostly_writes_valid_specs(workdir):
    """A fuzzer whose specs all fail to check tests nothing past the parser: at least a
    third of the hostility-free specs must be valid (they are, by construction, mostly)."""
    valid = 0
    for seed in range(40):
        spec = Spec(seed, hostility=0.0)
        path = workdir / f"clean{seed}.net"
        path.write_text(spec.text, encoding="utf-8")
        if not any(d.is_error for d in netc.check(path)):
            valid += 1
    assert valid >= 40 // 3, valid


def test_the_watchdog_stops_time_and_memory_bombs():
    with pytest.raises(Watchdog):
        with watchdog(seconds=0.2):
            while True:
                pass
    if _vm_size():
        with pytest.raises(MemoryError):
            with watchdog(memory=64 << 20):
                bytearray(1 << 30)
    bytearray(1 << 26)  # and the limits are lifted afterwards


@pytest.mark.parametrize("seed", range(SEED0, SEED0 + CLI_EXAMPLES))
def test_cli_check_exits_cleanly(seed, workdir):
    spec = Spec(seed * 7919 + 1, hostility=0.4)
    path = workdir / f"cli{seed}.net"
    path.write_text(spec.text, encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "netc", "check", str(path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=30,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    if result.returncode not in (0, 1, 2) or "Traceback" in result.stderr:
        import re

        for ident, _, pattern, _ in KNOWN_FINDINGS:
            if re.search(pattern, result.stderr):
                pytest.xfail(f"known finding {ident}: exit {result.returncode}")
    assert result.returncode in (0, 1, 2), (result.returncode, result.stderr[-2000:],
                                            spec.text)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr.lower(), \
        (result.stderr[-2000:], spec.text)


# -- found so far, and fixed: minimal specs, now regression tests ------------------------------

# (id, what fails, a regex on "ExceptionType: message" that recognises it in a random example,
#  the minimal spec). A random example that fails with a known finding's signature is an
# xfail, not a failure, so the CI sample stays green while a bug is open; anything else
# fails. Each minimal spec is also its own test (mark a new, open one xfail until fixed).
KNOWN_FINDINGS: list[tuple[str, str, str, str]] = [
    ("nul-in-doc-comment",
     "a NUL byte in a `##` doc comment checks clean, then the generated source (the module's "
     "docstring) holds the NUL: compile() and every build fail (issue 13)",
     r"source code string cannot contain null bytes",
     "## a\x00b\nnet N() {\n  input x: [1, 2, 2]\n  out x >> relu\n}\n"),
    ("range-overflow",
     "`range(2**63)` in a for loop is OverflowError from len() in netc.elaborate: an "
     "internal error (exit 3) instead of E211 (issue 13)",
     r"OverflowError",
     "net N() {\n  input x: [1, 2, 2]\n  for i in range(9223372036854775808) {\n"
     "    x = x >> relu\n  }\n  out x\n}\n"),
    ("unicode-line-separator",
     "a diagnostic quotes a line other than its span's. Cause seen: a U+2028 (or U+2029) in a "
     "comment: the parser counts lines by \\n only, the "
     "source quoter by str.splitlines, so every later diagnostic quotes the wrong line",
     r"quotes .*, not line",
     "## a\u2028b\nnet N() {\n  input x: [1, 2, 2]\n  out y\n}\n"),
    ("label-private-module-attribute",
     "a label `_modules` (`_parameters`, `_buffers`, `_version`) checked clean, then every "
     "build failed with KeyError: attribute already exists (issue 13)",
     r"attribute '_\w+' already exists",
     "net N() {\n  input x: [2, 4, 4]\n  out x >> _modules: conv(2, 1)\n}\n"),
    ("label-equals-automatic-name",
     "a label equal to an unlabelled op's automatic name (`cat:` after a `cat(...)`) was "
     "AssertionError: duplicate node id (issue 13)",
     r"duplicate node id",
     "net N() {\n  input x: [2, 4, 4]\n  y = cat(x, x)\n  out y >> cat: conv(2, 1)\n}\n"),
    ("unbounded-padding",
     "`conv(..., padding = 2**62)` checked clean; the forward is a TypeError (overflow "
     "unpacking padding) (issue 13)",
     r"padding' failed to unpack|Overflow when unpacking",
     "net N() {\n  input x: [2, 4, 4]\n  out x >> c: conv(2, 3, padding = 2 ** 62)\n}\n"),
]


def known_finding(error: BaseException) -> str | None:
    import re

    message = f"{type(error).__name__}: {error}"
    for ident, _, pattern, _ in KNOWN_FINDINGS:
        if re.search(pattern, message):
            return ident
    return None


@pytest.mark.parametrize("what, text", [(w, t) for _, w, _, t in KNOWN_FINDINGS],
                         ids=[i for i, *_ in KNOWN_FINDINGS])
def test_found_and_fixed(what, text, workdir):
    path = workdir / "finding.net"
    path.write_text(text, encoding="utf-8")
    with watchdog():
        check_example(path)


# -- a plain loop for long local runs ------------------------------------------------------------

def main(argv: list[str]) -> int:
    import time

    import torch

    torch.set_num_threads(1)
    count = int(argv[0]) if argv else EXAMPLES
    start = int(argv[1]) if len(argv) > 1 else SEED0
    failures = 0
    outcomes: dict[str, int] = {}
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(start, start + count):
            t0 = time.perf_counter()
            try:
                outcome, _ = run_seed(seed, Path(tmp))
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
            except Exception as error:  # noqa: BLE001 -- every failure is logged
                failures += 1
                ident = known_finding(error) or "NEW"
                outcomes[ident] = outcomes.get(ident, 0) + 1
                print(f"=== FAIL [{ident}] seed {seed}: {type(error).__name__}: {str(error)[:500]}")
                print(Spec(seed).text)
                print(traceback.format_exc(limit=-4))
            spent = time.perf_counter() - t0
            if spent > 3:
                print(f"--- slow seed {seed}: {spent:.1f} s")
            if (seed - start + 1) % 500 == 0:
                print(f"... {seed - start + 1} examples, {failures} failures, {outcomes}, "
                      f"{time.perf_counter() - began:.0f} s", flush=True)
    print(f"done: {count} examples from seed {start}, {failures} failures, {outcomes}, "
          f"{time.perf_counter() - began:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""`netc explain CODE`: a longer description of each diagnostic code, with a broken spec and
its fix (tests/test_diagnostics.py checks that every broken example gives its code and every
fixed one is clean, so the examples cannot drift from the compiler).

Imports nothing but the catalogue: explaining a code needs no compilation.
"""
from __future__ import annotations

from dataclasses import dataclass

from netc.diagnostics import CATALOGUE


@dataclass(frozen=True)
class Explanation:
    text: str  # what it means and its usual causes, a paragraph or two
    broken: str  # a whole spec (file name `example.net`) that gives this code
    fixed: str  # the same spec, fixed
    flags: tuple[str, ...] = ()  # command-line flags for the broken example
    fixed_flags: tuple[str, ...] = ()


def _net(body: str, shape: str = "[3, 32, 32]", params: str = "") -> str:
    lines = "\n".join(f"  {line}" for line in body.strip().splitlines())
    return f"net N({params}) {{\n  input x: {shape}\n{lines}\n}}\n"


EXPLANATIONS: dict[str, Explanation] = {
    "E101": Explanation(
        "The parser met a token the grammar does not allow at this point. The message says "
        "what it expected instead (a layer after `>>`, a `)` to close a call, ...). Usual "
        "causes: a doubled operator, a missing operand, a keyword used as a name.",
        _net("out x >> >> relu"), _net("out x >> relu")),
    "E102": Explanation(
        "A character that starts no token of the language: `$`, `@`, a backtick, or a "
        "look-alike Unicode character pasted from a document (a non-breaking space, a "
        "typographic quote).",
        _net("out x >> conv(8, 3) >> $relu"), _net("out x >> conv(8, 3) >> relu")),
    "E103": Explanation(
        "The file ends in the middle of a statement: an `import` without its path, a block "
        "without its closing `}`, an expression cut short.",
        'import\n', _net("out x")),
    "E104": Explanation(
        "A `(`, `[` or `{` is never closed. netc points at the opening bracket, not at the "
        "place where the parser noticed (which is often lines later).",
        _net("out x >> conv(8, [3, 3) >> relu"), _net("out x >> conv(8, [3, 3]) >> relu")),
    "E105": Explanation(
        "A string is not closed on its line. Strings (labels like `\"layer{i}\"`, import "
        "paths) end on the line they start.",
        _net('out x >> "conv1: conv(8, 3)'), _net('out x >> "conv1": conv(8, 3)')),
    "E201": Explanation(
        "A name that is not defined where it is used: a tensor, a block, an op, a parameter "
        "or a net. netc suggests the closest defined name. Blocks must be defined (or "
        "imported) in the file that uses them; names inside a block see only its parameters, "
        "`in`, and the names bound before them in the block.",
        _net("out x >> cnov(8, 3) >> relu"), _net("out x >> conv(8, 3) >> relu")),
    "E202": Explanation(
        "A call of something that is not an op, a block or a builtin: a number, a tensor, or "
        "a local name that hides the op of the same name (`conv = ...` then `conv(8, 3)`).",
        _net("conv = 3\nout x >> conv(8, conv)"), _net("k = 3\nout x >> conv(8, k)")),
    "E203": Explanation(
        "Two layers with one state_dict name, or one name defined twice. Layer names are "
        "the state_dict keys, so they must be unique: label repetitions (`layer1: [b(64) * "
        "3]` names them `layer1.0`, `layer1.1`, ...).",
        _net("y = x >> conv1: conv(8, 3)\nout y >> conv1: conv(8, 3)"),
        _net("y = x >> conv1: conv(8, 3)\nout y >> conv2: conv(8, 3)")),
    "E204": Explanation(
        "A `-D key=value` (or a keyword argument of `netc.build` / `netc.check`) names no "
        "parameter or input of the net. netc suggests the closest parameter.",
        _net("out x >> conv(width, 3)", params="width = 8"),
        _net("out x >> conv(width, 3)", params="width = 8"),
        flags=("-D", "widht=16"), fixed_flags=("-D", "width=16")),
    "E205": Explanation(
        "An import (or the spec itself) that is missing, unreadable or outside the allowed "
        "folders. Imports are resolved relative to the importing file.",
        'import "lib/missing.net"\n' + _net("out x"), _net("out x")),
    "E206": Explanation(
        "Files that import each other, or a net alias defined through itself "
        "(`net a = b()` and `net b = a()`).",
        'import "example.net"\n' + _net("out x"), _net("out x")),
    "E207": Explanation(
        "A spec file with no `net`: there is nothing to build. A library of blocks is "
        "imported by a spec that defines a net.",
        "block Stem(c) {\n  out in >> conv(c, 3) >> relu\n}\n",
        "block Stem(c) {\n  out in >> conv(c, 3) >> relu\n}\n" + _net("out x >> stem: Stem(8)")),
    "E208": Explanation(
        "A block or net without `out`, or with two. Every block ends with exactly one "
        "`out <tensor>`.",
        "block Stem(c) {\n  y = in >> conv(c, 3) >> relu\n}\n" + _net("out x >> stem: Stem(8)"),
        "block Stem(c) {\n  out in >> conv(c, 3) >> relu\n}\n" + _net("out x >> stem: Stem(8)")),
    "E209": Explanation(
        "A label that cannot be a submodule name: spaces, punctuation, a reserved word, a "
        "name starting with `_`, or an attribute every `nn.Module` has (`forward`, `train`).",
        _net('out x >> "conv 1": conv(8, 3)'), _net('out x >> "conv_1": conv(8, 3)')),
    "E210": Explanation(
        "An `input` declaration that is not [C, H, W] or [F] of positive integers, or an "
        "`input` inside a block (a block's input is `in`).",
        _net("out x >> conv(8, 3)", shape="[3, 0, 32]"), _net("out x >> conv(8, 3)")),
    "E211": Explanation(
        "A repeat count, nesting depth, node count, parameter count or work budget beyond its "
        "limit. The limits guard against typos like `* 100000`; raise one with `--limit "
        "name=N` when the size is intended.",
        "block Unit() { out in >> conv1: conv(8, 3) }\n"
        + _net("out x >> stage: Unit() * 100000", shape="[8, 32, 32]"),
        "block Unit() { out in >> conv1: conv(8, 3) }\n"
        + _net("out x >> stage: [Unit() * 4]", shape="[8, 32, 32]")),
    "E212": Explanation(
        "A spec's own `assert` failed: the block's author stated a condition its arguments "
        "must meet. The message is the author's.",
        "block Grouped(c, groups) {\n  assert c % groups == 0, \"channels must split evenly\"\n"
        "  out in >> conv(c, 3, groups = groups)\n}\n"
        + _net("out x >> g: Grouped(12, 8)", shape="[8, 32, 32]"),
        "block Grouped(c, groups) {\n  assert c % groups == 0, \"channels must split evenly\"\n"
        "  out in >> conv(c, 3, groups = groups)\n}\n"
        + _net("out x >> g: Grouped(16, 8)", shape="[8, 32, 32]")),
    "E301": Explanation(
        "An add or multiply of tensors with different channel counts, or a declared "
        "`in_channels` / `in_features` that disagrees with the input. In a residual block "
        "the shortcut needs a projection (a 1x1 conv) when the channels change; when the "
        "projection exists, the residual branch's last conv must give the same channels "
        "(e.g. a bottleneck's expansion `planes * 4`). An attention gate must have as many "
        "channels as the tensor it gates. netc walks both operands back to where they part "
        "and points at the layer that sets the channels.",
        "block Down(c) {\n  y = in >> conv1: conv(c, 3) >> bn1: bn\n  out relu(y + in)\n}\n"
        + _net("out x >> down: Down(64)", shape="[32, 56, 56]"),
        "block Down(c) {\n  y = in >> conv1: conv(c, 3) >> bn1: bn\n"
        "  s = in >> proj: conv(c, 1)\n  out relu(y + s)\n}\n"
        + _net("out x >> down: Down(64)", shape="[32, 56, 56]")),
    "E302": Explanation(
        "An add or multiply of maps of different heights or widths. The usual causes: a "
        "strided branch whose shortcut does not stride (give the projection the same "
        "stride), a conv whose padding does not keep the size (a 5x5 kernel needs padding 2, "
        "a 3x3 padding 1), or a pooling layer in one branch only. netc names the layer that "
        "makes the difference and the padding or stride that fixes it.",
        "block Down(c) {\n  y = in >> conv1: conv(c, 3, 2) >> bn1: bn\n  out relu(y + in)\n}\n"
        + _net("out x >> down: Down(64)", shape="[64, 56, 56]"),
        "block Down(c) {\n  y = in >> conv1: conv(c, 3, 2) >> bn1: bn\n"
        "  s = in >> proj: conv(c, 1, 2)\n  out relu(y + s)\n}\n"
        + _net("out x >> down: Down(64)", shape="[64, 56, 56]")),
    "E303": Explanation(
        "A conv makes a spatial size zero or less: its input is too small for its kernel, "
        "stride and dilation. The note shows PyTorch's formula with the numbers, "
        "floor((n + 2p - d(k - 1) - 1) / s) + 1. Use a larger input (netc says how large), "
        "or a smaller kernel or stride.",
        _net("out x >> conv1: conv(64, 11, 4, 0) >> relu", shape="[3, 7, 7]"),
        _net("out x >> conv1: conv(64, 11, 4, 0) >> relu", shape="[3, 63, 63]")),
    "E304": Explanation(
        "A feature-map layer (conv, pool, bn on maps) after `flatten`, or operands of "
        "different ranks. Layers that need [C, H, W] come before `flatten`.",
        _net("out x >> flatten >> conv(8, 3)"), _net("out x >> conv(8, 3) >> flatten")),
    "E305": Explanation(
        "Too many positional arguments for an op or block, or a required one missing. The "
        "message lists the positional arguments in order.",
        _net("out x >> maxpool(2, 2, 0, 1, false, 7)"), _net("out x >> maxpool(2, 2)")),
    "E306": Explanation(
        "A keyword argument the op or block does not have (netc suggests the closest), or "
        "one given twice.",
        _net("out x >> conv1: conv(8, 3, strides = 2)"),
        _net("out x >> conv1: conv(8, 3, stride = 2)")),
    "E307": Explanation(
        "An argument of the wrong kind: a number where a boolean is expected, a list where a "
        "number is, a string that is not one of the allowed words.",
        _net("out x >> conv1: conv(8, 3, bias = 1)"),
        _net("out x >> conv1: conv(8, 3, bias = false)")),
    "E308": Explanation(
        "A number outside its range: a zero stride, negative or zero channels, a probability "
        "above 1. When the number was computed (`in.c // reduction`), netc shows the "
        "expression with its values, so the parameter that makes it zero is visible.",
        _net("out x >> conv1: conv(8, 3, stride = 0)"),
        _net("out x >> conv1: conv(8, 3, stride = 1)")),
    "E309": Explanation(
        "`groups` does not divide the input or output channels, or a split into parts that "
        "do not divide the channels evenly.",
        _net("out x >> conv1: conv(8, 3, groups = 4)", shape="[6, 32, 32]"),
        _net("out x >> conv1: conv(8, 3, groups = 2)", shape="[6, 32, 32]")),
    "E310": Explanation(
        "An operation on values of the wrong kind: a tensor plus a number, a condition that "
        "is not a boolean, an attribute of something that is not a tensor. Note that `>>` "
        "binds more loosely than `+`: write `(x >> layer) + y`.",
        _net("out x + 1"), _net("out x + x")),
    "E311": Explanation(
        "Concatenated tensors whose other dimensions differ, or a concat along a dim they do "
        "not have. netc dims are per sample: dim 0 is the channels, so PyTorch's "
        "`torch.cat(xs, 1)` is netc's `cat(xs)` (dim 0, the default), not `dim = 1`.",
        _net("a = x >> conv(8, 3)\nb = x >> conv(4, 3)\nout cat(a, b, dim = 1)"),
        _net("a = x >> conv(8, 3)\nb = x >> conv(4, 3)\nout cat(a, b)")),
    "E312": Explanation(
        "Something that is not a layer after `>>`: a number, a tensor, a string. `>>` feeds "
        "a tensor to a layer; tensors combine with `+`, `*` or `cat`.",
        _net("out x >> 3"), _net("out x >> relu")),
    "E313": Explanation(
        "A pooling window larger than its (padded) input. Pool a whole map whatever its size "
        "with `gap` or `adaptive_avgpool(1)`, or use a larger input (netc says how large).",
        _net("y = x >> conv1: conv(128, 3, 2)\nout y >> avgpool(32) >> flatten"),
        _net("y = x >> conv1: conv(128, 3, 2)\nout y >> gap >> flatten")),
    "E314": Explanation(
        "A division by zero in a spec expression, usually a parameter set to 0 (on the "
        "command line or by default).",
        _net("out x >> conv1: conv(width / groups, 3)", params="width = 64, groups = 0"),
        _net("out x >> conv1: conv(width / groups, 3)", params="width = 64, groups = 1")),
    "W201": Explanation(
        "A tensor bound to a name and never used: usually a forgotten edge (a shortcut "
        "computed and not added).",
        _net("skip = x >> proj: conv(8, 1)\nout x >> conv1: conv(8, 3) >> relu"),
        _net("skip = x >> proj: conv(8, 1)\nout (x >> conv1: conv(8, 3) >> relu) + skip")),
    "W202": Explanation(
        "A block defined in the spec but never applied. Harmless, but often a sign that the "
        "net uses another block than intended.",
        "block Unused() { out in >> relu }\n" + _net("out x >> conv1: conv(8, 3)"),
        "block Act() { out in >> relu }\n" + _net("out x >> conv1: conv(8, 3) >> Act()")),
    "W301": Explanation(
        "A `linear` on a feature map acts on its last axis (the width) only, as in PyTorch. "
        "To use every feature, pool and flatten first.",
        _net("out x >> conv1: conv(8, 3) >> gap >> fc: linear(10)"),
        _net("out x >> conv1: conv(8, 3) >> gap >> flatten >> fc: linear(10)")),
}


def explain(code: str) -> str | None:
    """The long text `netc explain CODE` prints, or None for an unknown code."""
    code = code.strip().upper()
    if code not in CATALOGUE or code not in EXPLANATIONS:
        return None
    slug, short = CATALOGUE[code]
    entry = EXPLANATIONS[code]
    flags = f"   (netc check {' '.join(entry.flags)} example.net)" if entry.flags else ""
    fixed_flags = (f"   (netc check {' '.join(entry.fixed_flags)} example.net)"
                   if entry.fixed_flags else "")
    return "\n".join([
        f"{code} {slug}: {short}", "", _wrap(entry.text), "",
        f"Broken:{flags}", _indent(entry.broken), f"Fixed:{fixed_flags}", _indent(entry.fixed)])


def listing() -> str:
    return "\n".join(f"{code}  {slug:<24} {short}" for code, (slug, short) in CATALOGUE.items())


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" if line else "" for line in text.rstrip().splitlines()) + "\n"


def _wrap(text: str, width: int = 88) -> str:
    import textwrap

    return textwrap.fill(text, width)

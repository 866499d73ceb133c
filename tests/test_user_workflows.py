"""What users do with a torchvision ResNet-18 works on the netc-built one: hooks on a stage
and on a block, torchvision's feature extraction, freezing, swapping a block or the head,
torchinfo, TorchScript, torch.export, torch.compile, pickling, copying and saving, other batch
and image sizes, and training."""
from __future__ import annotations

import copy
import io
import pickle
import warnings
from contextlib import contextmanager
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import netc
from conftest import SPECS
from refmodels import torchvision

X_SHAPE = (2, 3, 64, 64)  # 64 px: layer3 is 4x4, layer4 2x2
RTOL, ATOL = 1e-4, 1e-5


# (small tensors: intra-op threads only contend on a shared machine)
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model():
    """specs/resnet18.net built once, in eval mode. Tests that change it work on a copy."""
    torch.manual_seed(0)
    return netc.build(SPECS / "resnet18.net").eval()


@pytest.fixture(scope="module")
def x():
    return torch.randn(X_SHAPE, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def expected(model, x):
    with torch.no_grad():
        return model(x)


@contextmanager
def recording(*modules: nn.Module):
    """Forward hooks on `modules` while the block runs; yields one list per module, of its
    calls' (input, output), cloned. The hooks are removed however the block ends."""
    records = [[] for _ in modules]
    handles = []

    def keep(calls, _module, args, output):
        calls.append((args[0].detach().clone(), output.detach().clone()))

    try:
        for module, calls in zip(modules, records):
            handles.append(module.register_forward_hook(partial(keep, calls)))
        yield records
    finally:
        for handle in handles:
            handle.remove()


def only_call(calls: list, what: str) -> tuple:
    assert len(calls) == 1, f"the forward hook on {what} fired {len(calls)} times, not once"
    return calls[0]


def head(model: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """torchvision's ResNet after layer4: global average pool, flatten, fc."""
    return model.fc(torch.flatten(F.adaptive_avg_pool2d(features, 1), 1))


def test_forward_hooks_on_a_stage_and_a_block_fire(model, x, expected):
    with recording(model.layer3, model.layer4[1]) as (stage, block), torch.no_grad():
        out = model(x)
    stage_in, stage_out = only_call(stage, "layer3")
    block_in, block_out = only_call(block, "layer4[1]")
    assert stage_in.shape == (2, 128, 8, 8) and stage_out.shape == (2, 256, 4, 4)
    assert block_in.shape == block_out.shape == (2, 512, 2, 2)
    torch.testing.assert_close(out, expected)
    with torch.no_grad():
        # the hooked activations are the ones the model computes with
        torch.testing.assert_close(head(model, block_out), out, rtol=RTOL, atol=ATOL)
        torch.testing.assert_close(model.layer3(stage_in), stage_out, rtol=RTOL, atol=ATOL)


def test_hooks_on_every_block_fire_in_order(model, x):
    blocks = [block for stage in (model.layer1, model.layer2, model.layer3, model.layer4)
              for block in stage]
    assert len(blocks) == 8
    order = []
    handles = []
    try:
        for i, block in enumerate(blocks):
            handles.append(block.register_forward_hook(lambda m, a, o, i=i: order.append(i)))
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    assert order == list(range(8))


def test_create_feature_extractor_returns_layer3(model, x):
    torchvision()  # imports torchvision beside the CPU torch (tests/refmodels.py)
    from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

    _, eval_nodes = get_graph_node_names(model)  # traced through the blocks, as torchvision's
    assert any(node.startswith("layer3.1.") for node in eval_nodes)
    extractor = create_feature_extractor(model, {"layer3": "feat", "layer4.1": "last"})
    with torch.no_grad():
        features = extractor(x)
    with recording(model.layer3, model.layer4[1]) as (stage, block), torch.no_grad():
        model(x)
    assert set(features) == {"feat", "last"}
    assert features["feat"].shape == (2, 256, 4, 4)
    torch.testing.assert_close(features["feat"], only_call(stage, "layer3")[1],
                               rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(features["last"], only_call(block, "layer4[1]")[1],
                               rtol=RTOL, atol=ATOL)


def test_freezing_all_but_the_head_trains_only_the_head(model, x):
    m = copy.deepcopy(model).train()
    for p in m.parameters():
        p.requires_grad_(False)
    for p in m.fc.parameters():
        p.requires_grad_(True)
    trainable = [name for name, p in m.named_parameters() if p.requires_grad]
    assert trainable == ["fc.weight", "fc.bias"]
    before = {name: p.detach().clone() for name, p in m.named_parameters()}
    optimizer = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.1)
    loss = F.cross_entropy(m(x), torch.tensor([1, 7]))
    loss.backward()
    optimizer.step()
    changed = sorted(name for name, p in m.named_parameters() if not torch.equal(p, before[name]))
    assert changed == ["fc.bias", "fc.weight"]
    assert all(p.grad is None for name, p in m.named_parameters() if not name.startswith("fc."))


def test_replacing_a_block_with_identity(model, x, expected):
    m = copy.deepcopy(model)
    m.layer4[1] = nn.Identity()
    assert len(m.layer4) == 2 and isinstance(m.layer4[1], nn.Identity)
    assert not any(key.startswith("layer4.1.") for key in m.state_dict())
    with recording(m.layer4[0]) as (first,), torch.no_grad():
        out = m(x)
    assert out.shape == (2, 1000)
    assert not torch.allclose(out, expected), "the replaced block still ran"
    with torch.no_grad():  # layer4[0]'s output goes straight to the head
        torch.testing.assert_close(out, head(m, only_call(first, "layer4[0]")[1]),
                                   rtol=RTOL, atol=ATOL)


def test_replacing_the_head(model, x):
    m = copy.deepcopy(model)
    m.fc = nn.Linear(512, 10)
    with recording(m.layer4) as (last,), torch.no_grad():
        out = m(x)
    assert out.shape == (2, 10)
    with torch.no_grad():
        torch.testing.assert_close(out, head(m, only_call(last, "layer4")[1]),
                                   rtol=RTOL, atol=ATOL)


def test_torchinfo_summary_shows_blocks_and_sequences(model):
    torchinfo = pytest.importorskip("torchinfo")
    result = torchinfo.summary(model, input_size=(1, 3, 64, 64), verbose=0)
    text = str(result)
    assert "BasicBlock" in text and "Sequential" in text
    assert text.count("BasicBlock") == 8
    assert result.total_params == 11_689_512


def test_torch_jit_script_matches_eager(model, x, expected):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        scripted = torch.jit.script(model)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), expected, rtol=RTOL, atol=ATOL)
    # the submodules are scripted as modules: a block can be reached and run on its own
    assert scripted.layer3.original_name == "Sequential"


def test_torch_export_matches_eager(model, x, expected):
    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), expected, rtol=RTOL, atol=ATOL)
    # the module hierarchy is kept in the exported graph's metadata
    stacks = [str(node.meta.get("nn_module_stack", "")) for node in exported.graph.nodes]
    assert any("layer4.1" in stack for stack in stacks)


def test_torch_compile_matches_eager(model, x, expected):
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="aot_eager")  # no C++ compiler needed
    try:
        with torch.no_grad():
            torch.testing.assert_close(compiled(x), expected, rtol=RTOL, atol=ATOL)
    finally:
        torch._dynamo.reset()


def test_pickle_round_trip(model, x, expected):
    restored = pickle.loads(pickle.dumps(model))
    assert type(restored).__name__ == type(model).__name__
    with torch.no_grad():
        torch.testing.assert_close(restored(x), expected, rtol=0, atol=0)


def test_deepcopy(model, x, expected):
    copied = copy.deepcopy(model)
    assert copied.conv1.weight is not model.conv1.weight
    with torch.no_grad():
        torch.testing.assert_close(copied(x), expected, rtol=0, atol=0)


def test_torch_save_and_load_whole_model(model, x, expected):
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert type(loaded).__name__ == type(model).__name__
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), expected, rtol=0, atol=0)


def test_whole_model_loads_in_another_process(model, x, expected, tmp_path):
    """`torch.save(model)` holds the generated source, so a fresh Python (with netc, but
    without the spec) loads the model and computes the same output."""
    import subprocess
    import sys

    torch.save(model, tmp_path / "model.pt")
    torch.save({"x": x, "expected": expected}, tmp_path / "io.pt")
    code = (f"import torch\n"
            f"model = torch.load({str(tmp_path / 'model.pt')!r}, weights_only=False)\n"
            f"data = torch.load({str(tmp_path / 'io.pt')!r})\n"
            "with torch.no_grad():\n"
            "    torch.testing.assert_close(model(data['x']), data['expected'], rtol=0, atol=0)\n"
            "print(type(model.layer4[-1]).__name__)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "BasicBlock"


def test_state_dict_round_trip_into_a_fresh_build(model, x, expected):
    fresh = netc.build(SPECS / "resnet18.net").eval()
    fresh.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), expected, rtol=0, atol=0)


@pytest.mark.parametrize("batch", [1, 3])
def test_any_batch_size(model, batch):
    """Each sample's output is the one it gets alone (no sample leaks into another)."""
    xs = torch.randn(batch, 3, 64, 64, generator=torch.Generator().manual_seed(batch))
    with torch.no_grad():
        out = model(xs)
        alone = torch.cat([model(xs[i:i + 1]) for i in range(batch)])
    assert out.shape == (batch, 1000)
    torch.testing.assert_close(out, alone, rtol=RTOL, atol=ATOL)


def test_another_image_size(model):
    with recording(model.layer3) as (stage,), torch.no_grad():
        out = model(torch.randn(1, 3, 96, 96))
    assert out.shape == (1, 1000)
    assert only_call(stage, "layer3")[1].shape == (1, 256, 6, 6)


def test_train_mode_forward_and_backward(model, x):
    m = copy.deepcopy(model).train()
    tracked = m.bn1.num_batches_tracked.clone()
    out = m(x)
    assert out.shape == (2, 1000)
    out.square().mean().backward()
    missing = [name for name, p in m.named_parameters() if p.grad is None]
    assert missing == []
    assert all(torch.isfinite(p.grad).all() for p in m.parameters())
    assert m.bn1.num_batches_tracked == tracked + 1  # BN in training mode


def test_torchvision_weights_give_torchvision_outputs(model, x):
    """A torchvision checkpoint loads strictly and gives torchvision's output, and its hooks
    on layer3 see torchvision's activations."""
    torch.manual_seed(0)
    reference = torchvision().models.resnet18(weights=None).eval()
    m = copy.deepcopy(model)
    m.load_state_dict(reference.state_dict(), strict=True)
    with recording(m.layer3, reference.layer3) as (ours, theirs), torch.no_grad():
        out, ref_out = m(x), reference(x)
    torch.testing.assert_close(out, ref_out, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(only_call(ours, "layer3")[1], only_call(theirs, "layer3")[1],
                               rtol=RTOL, atol=ATOL)

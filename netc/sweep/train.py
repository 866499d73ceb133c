"""`measure=train`: fit a built variant on a real data set that ships with a package and
report its validation accuracy and loss. `examples/train.py` runs the same code.

The data set is scikit-learn's digits (`sklearn.datasets.load_digits`: 1,797 8x8 grey
images of handwritten digits, 10 classes, bundled with scikit-learn, no download). Pixels
are scaled to [0, 1]; a stratified split holds out `val_fraction` of them, the same split for
every variant of a sweep. Everything random (the split, the initial weights, the batch
order) comes from `seed`, and training runs on one thread by default, so that a variant
trains to the same numbers every time on the same machine.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass


@dataclass
class Data:
    x_train: object  # float tensors [N, 1, 8, 8]
    y_train: object  # int64 tensors [N]
    x_val: object
    y_val: object
    classes: int
    name: str


def load_data(name: str = "digits", val_fraction: float = 0.2, seed: int = 0) -> Data:
    """The data set as tensors, split into training and validation sets."""
    if name != "digits":
        raise ValueError(f"unknown data set `{name}` (known: digits)")
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise RuntimeError("measure=train needs scikit-learn for the digits data set: "
                           "pip install 'netc[sweep]'") from error
    import numpy as np
    import torch

    digits = load_digits()
    images = digits.images.astype(np.float32) / 16.0  # 0..16 grey levels
    labels = digits.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    train_idx, val_idx = [], []
    for cls in np.unique(labels):  # stratified: every class in both sets, in proportion
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_val = max(1, round(len(idx) * val_fraction))
        val_idx += idx[:n_val].tolist()
        train_idx += idx[n_val:].tolist()
    train_idx, val_idx = sorted(train_idx), sorted(val_idx)
    x = torch.from_numpy(images).unsqueeze(1)  # [N, 1, 8, 8]
    y = torch.from_numpy(labels)
    return Data(x[train_idx], y[train_idx], x[val_idx], y[val_idx], 10, name)


def fit_input(x, shape: tuple[int, ...]):
    """The images as the model's first input wants them: channels repeated (a 3-channel
    spec sees grey RGB), the 8x8 grid resized (bilinear) to the input's size, or flattened
    for a model whose input is a vector."""
    import torch.nn.functional as F

    if len(shape) == 1:
        return x.flatten(1) if shape[0] == x[0].numel() else None
    if len(shape) != 3:
        return None
    channels, height, width = shape
    if tuple(x.shape[-2:]) != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
    if channels != x.shape[1]:
        x = x.repeat(1, channels, 1, 1) if x.shape[1] == 1 else None
    return x


def evaluate(module, x, y, batch_size: int = 256) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of `module` on (x, y)."""
    import torch
    import torch.nn.functional as F

    module.eval()
    loss, correct = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(x), batch_size):
            logits = module(x[start:start + batch_size])
            target = y[start:start + batch_size]
            loss += F.cross_entropy(logits, target, reduction="sum").item()
            correct += (logits.argmax(1) == target).sum().item()
    return loss / len(x), correct / len(x)


def fit(module, dataset: Data, input_shape: tuple[int, ...], *, epochs: int = 5,
        batch_size: int = 32, optimizer: str = "adam", lr: float = 0.003,
        momentum: float = 0.9, weight_decay: float = 0.0, seed: int = 0,
        threads: int | None = 1, log=None, **_ignored) -> dict:
    """Train `module` (its weights as they are) for `epochs` and evaluate it after each.

    Returns the row's training columns: `val_acc`, `val_loss`, `train_loss` (the last
    epoch's mean), `epochs`, `train_s` and `history` (per epoch: train loss, val loss,
    val accuracy). A model whose output is not [batch, classes] logits cannot be trained
    here: ValueError."""
    import torch
    import torch.nn.functional as F

    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        x_train = fit_input(dataset.x_train, tuple(input_shape))
        x_val = fit_input(dataset.x_val, tuple(input_shape))
        if x_train is None:
            raise ValueError(f"the model's input {list(input_shape)} cannot take "
                             f"{dataset.name} images [1, 8, 8]")
        with torch.inference_mode():
            out = module.eval()(x_train[:2])
        if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[1] < dataset.classes:
            shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"the model's output {shape} is not [batch, >= {dataset.classes}] "
                             "logits")
        params = [p for p in module.parameters() if p.requires_grad]
        if optimizer == "sgd":
            opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
        else:
            opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
        generator = torch.Generator().manual_seed(seed)
        history = []
        tic = time.perf_counter()
        for epoch in range(epochs):
            module.train()
            order = torch.randperm(len(x_train), generator=generator)
            total, seen = 0.0, 0
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                if len(idx) < 2:  # BatchNorm cannot train on a single sample
                    continue
                loss = F.cross_entropy(module(x_train[idx]), dataset.y_train[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
                seen += len(idx)
            train_loss = total / max(seen, 1)
            val_loss, val_acc = evaluate(module, x_val, dataset.y_val)
            history.append({"epoch": epoch + 1, "train_loss": round(train_loss, 4),
                            "val_loss": round(val_loss, 4), "val_acc": round(val_acc, 4)})
            if log is not None:
                log(f"epoch {epoch + 1}/{epochs}: train loss {train_loss:.4f}, "
                    f"val loss {val_loss:.4f}, val acc {val_acc:.2%}")
            if not math.isfinite(train_loss):
                break  # diverged: no point going on
        last = history[-1]
        return {"val_acc": last["val_acc"], "val_loss": last["val_loss"],
                "train_loss": last["train_loss"], "epochs": len(history),
                "train_s": round(time.perf_counter() - tic, 2), "history": history,
                "data": dataset.name, "train_samples": len(x_train), "val_samples": len(x_val)}
    finally:
        torch.set_num_threads(old_threads)

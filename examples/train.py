"""A minimal Hydra training script whose model comes from netc (configs/train.yaml):

    python examples/train.py
    python examples/train.py model.spec=specs/resnet18.net model.num_classes=100 train.steps=5

`hydra.utils.instantiate(cfg.model)` calls `netc.build(spec=..., **params)`; the rest is an
ordinary PyTorch loop on random data (bring your own data loader).
"""
import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
def main(cfg: DictConfig) -> float:
    model = instantiate(cfg.model)  # an nn.Module, every shape checked by netc
    params = sum(p.numel() for p in model.parameters())
    shape = tuple(cfg.model.get("input_shape") or (3, 224, 224))
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.train.lr, momentum=0.9)
    model.train()
    loss = torch.tensor(0.0)
    for step in range(cfg.train.steps):
        images = torch.randn(cfg.train.batch_size, *shape)
        logits = model(images)
        labels = torch.randint(0, logits.shape[1], (cfg.train.batch_size,))
        loss = torch.nn.functional.cross_entropy(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        print(f"step {step}: loss {loss.item():.4f}")
    print(f"model {cfg.model.spec}: {params:,} parameters, logits {tuple(logits.shape)}")
    return float(loss)


if __name__ == "__main__":
    main()

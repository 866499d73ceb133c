"""A minimal Hydra training script whose model comes from netc (configs/train.yaml):

    python examples/train.py
    python examples/train.py model.width=32 train.epochs=10
    python examples/train.py model.spec=specs/digits/digits_resnet.net '~model.depth'

`hydra.utils.instantiate(cfg.model)` calls `netc.build(spec=..., **params)`; the data and the
loop are `netc.sweep.train`'s, the code `netc sweep ... measure=train` runs in each job:
scikit-learn's digits (1,797 8x8 images, bundled, no download), a stratified split, Adam,
seeded. It prints the loss and validation accuracy per epoch and returns the accuracy (so a
Hydra sweeper can optimise it). Bring your own data by replacing `load_data`.
"""
import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import netc
from netc.sweep.train import fit, load_data


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
def main(cfg: DictConfig) -> float:
    settings = OmegaConf.to_container(cfg.train)
    torch.manual_seed(settings["seed"])  # the initial weights
    model = instantiate(cfg.model)  # an nn.Module, every shape checked by netc
    spec = {k: v for k, v in OmegaConf.to_container(cfg.model).items() if k != "_target_"}
    shape = tuple(netc.compile(**spec).graph.inputs[0].shape)  # the model's input, statically
    data = load_data(settings["data"], settings["val_fraction"], settings["seed"])
    params = sum(p.numel() for p in model.parameters())
    print(f"model {cfg.model.spec}: {params:,} parameters, input {list(shape)}; "
          f"{len(data.x_train)} training and {len(data.x_val)} validation images")
    result = fit(model, data, shape, **settings, log=print)
    print(f"validation accuracy {result['val_acc']:.2%} after {result['epochs']} epochs "
          f"({result['train_s']:.1f} s)")
    return result["val_acc"]


if __name__ == "__main__":
    main()

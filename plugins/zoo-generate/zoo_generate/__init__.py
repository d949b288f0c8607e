"""zoo-generate: registers the autoencode task (an encoder, a latent vector, a decoder) with zoo.

Written only against zoo-core's public API. Registering imports no torch."""

from zoo_core import DatasetSpec, HeadSpec, TaskSpec, hookimpl

RECON = "regression/reconstruction"  # (B, C, H, W) pixels in [0, 1], and the (B, latent) code

# The embedded faces' recipe: a small CNN from scratch (the images are 25x25 grey), everything trained.
FACES_RECIPE = {"backbone": "cnn2", "pretrained": False, "image_size": 32, "head": "ae-decoder", "loss": "l1",
                "mode": "finetune", "backbone_lr_mult": 1.0, "epochs": 40, "batch_size": 16, "lr": 3e-3,
                "augment": "none"}


@hookimpl
def register_tasks(register):
    register(TaskSpec("autoencode", "zoo_generate.autoencode:AutoencodeTask", RECON,
                      "autoencoder: an image through a latent vector and back (default: scikit-image's small face set)"))


@hookimpl
def register_datasets(register):
    register(DatasetSpec("lfw-faces", "zoo_generate.datasets:faces_dataset", RECON,
                         "scikit-image's lfw_subset: 100 real grey 25x25 faces (embedded)", recipe=FACES_RECIPE))
    register(DatasetSpec("digits-images", "zoo_generate.datasets:digits_dataset", RECON,
                         "scikit-learn's 1,797 8x8 handwritten digits as images (embedded)",
                         recipe={**FACES_RECIPE, "image_size": 16, "epochs": 10}))
    register(DatasetSpec("image-folder-ae", "zoo_generate.datasets:folder_dataset", RECON,
                         "any folder of images (no labels: the image is its own target)",
                         matches="zoo_generate.datasets:is_folder"))


@hookimpl
def register_heads(register):
    register(HeadSpec("ae-decoder", "zoo_generate.heads:ae_decoder", RECON,
                      description="pooled features -> a latent vector -> transposed convolutions back to the "
                                  "input's size (options: latent, channels)"))


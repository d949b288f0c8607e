import pytest
import torch
from zoo_core import DataConfig, ZooError

from zoo_embed.data import PKSampler, csv_dataset, folder_dataset

DC = DataConfig()


def test_split_holds_identities_out_and_keeps_closed_set_images(identity_dir):
    data = folder_dataset(str(identity_dir), data_config=DC, seed=0, val_fraction=0.34)
    held = {s["target"]["identity"] for s in data.val if s["target"]["label"] < 0}
    trained = {s["target"]["identity"] for s in data.train}
    assert len(held) == 2 and not held & trained  # open set: never seen in training
    closed = [s for s in data.val if s["target"]["label"] >= 0]
    assert len(closed) == 2 * len(trained)  # closed_per_identity=2 of each training identity
    assert len(data.info["classes"]) == 4
    # the same split again at evaluation, labels indexed as the model learned them
    again = folder_dataset(str(identity_dir), data_config=DC, seed=0, val_fraction=0.34, reference_info=data.info)
    assert [s["target"] for s in again.val] == [s["target"] for s in data.val]


def test_empty_identity_folder_is_one_line_error(identity_dir):
    (identity_dir / "nobody").mkdir()
    with pytest.raises(ZooError, match="nobody: an identity folder with no images"):
        folder_dataset(str(identity_dir), data_config=DC, seed=0, val_fraction=0.3)


def test_single_image_identity_is_gallery_only_and_said(identity_dir):
    (identity_dir / "solo").mkdir()
    (identity_dir / "id00" / "0.png").rename(identity_dir / "solo" / "0.png")
    data = folder_dataset(str(identity_dir), data_config=DC, seed=0, val_fraction=1.0)
    assert "one image: in the gallery, never a query" in data.description


def test_csv(identity_dir):
    rows = ["path,identity"] + [f"{p.relative_to(identity_dir)},{p.parent.name}" for p in sorted(identity_dir.rglob("*.png"))]
    (identity_dir / "list.csv").write_text("\n".join(rows) + "\n")
    data = csv_dataset(str(identity_dir / "list.csv"), data_config=DC, seed=0, val_fraction=0.34)
    assert len(data.train) + len(data.val) == 24


def test_pk_sampler_batches_hold_k_images_of_p_identities():
    labels = [i // 5 for i in range(40)]  # 8 identities x 5
    g = torch.Generator().manual_seed(0)
    batches = list(PKSampler(labels, 8, g, k=4))
    assert len(batches) == 5
    for b in batches:
        ids = [labels[i] for i in b]
        assert len(b) == 8 and sorted(ids.count(x) for x in set(ids)) == [4, 4]

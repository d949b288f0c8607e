import torch
from torch.nn import functional as F

from zoo_embed.metrics import retrieval_scores


def test_perfect_and_random_embeddings():
    ids = torch.arange(40).repeat_interleave(5)
    centres = F.normalize(torch.randn(40, 16, generator=torch.Generator().manual_seed(0)), dim=1)
    perfect = retrieval_scores(centres[ids], ids)
    assert perfect["recall_at_1"] == 1.0 and perfect["map_at_r"] == 1.0 and perfect["roc_auc"] == 1.0
    assert perfect["same_cosine"] > 0.99 and "tar_at_far_1e-3" in perfect  # 19,500 different pairs
    noise = F.normalize(torch.randn(200, 16, generator=torch.Generator().manual_seed(1)), dim=1)
    chance = retrieval_scores(noise, ids)
    assert chance["recall_at_1"] < 0.2 and 0.4 < chance["roc_auc"] < 0.6


def test_map_at_r_counts_only_the_first_r():
    # query 0 has two positives (1, 2); its ranking puts 3 (a negative) between them: AP@R = (1/1 + 0) / 2
    e = F.normalize(torch.tensor([[1.0, 0.0], [0.99, 0.14], [0.5, 0.87], [0.9, 0.44]]), dim=1)
    ids = torch.tensor([0, 0, 0, 1])
    scores = retrieval_scores(e, ids)
    assert 0 < scores["map_at_r"] < 1


def test_no_queries_no_scores():
    assert retrieval_scores(torch.eye(3), torch.tensor([0, 1, 2])) == {}

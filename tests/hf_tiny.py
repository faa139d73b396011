"""A tiny BERT built from a config (no download) on generated token sequences whose label is
which of two tokens occurs more often, for the Hugging Face tests."""

from __future__ import annotations

import torch
from transformers import BertConfig, BertForSequenceClassification

VOCAB, LENGTH = 16, 12


def model_init() -> BertForSequenceClassification:
    config = BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=LENGTH, num_labels=2)
    return BertForSequenceClassification(config)


class Majority(torch.utils.data.Dataset):
    """`n` sequences of tokens 2 and 3 (plus noise tokens); label 1 when 3 outnumbers 2."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(2, VOCAB, (n, LENGTH), generator=g)
        self.ids[:, ::2] = torch.randint(2, 4, (n, LENGTH // 2), generator=g)
        self.labels = ((self.ids == 3).sum(1) > (self.ids == 2).sum(1)).long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "attention_mask": torch.ones(LENGTH, dtype=torch.long),
                "labels": self.labels[i]}

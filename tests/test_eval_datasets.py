"""Dataset loaders: every file under shared/data loads with the counts of its README,
and malformed or missing files raise InputError naming the file and line."""

from __future__ import annotations

import dataclasses
import gzip
import itertools
import json
import math
from collections import Counter
from pathlib import Path

import pytest

from xrerank_core import ConfigError, InputError
from xrerank_core.eval import (
    DL19_FIRST_STAGES,
    Candidate,
    EvalDataset,
    Passage,
    candidates_from_run,
    load_beir,
    load_dataset,
    load_dl19,
    load_noveleval,
    load_rankllm,
    load_scifact,
    load_trec,
    load_wikiqa,
    read_qrels,
    read_topics,
    read_trec_run,
    run_from_candidates,
    write_trec_run,
)
from xrerank_core.eval._datasets import _read_scifact_claims

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DL19 = DATA / "trec-dl-2019-passage"
SCIFACT = DATA / "scifact"
NOVELEVAL = DATA / "noveleval-2306"
WIKIQA = DATA / "wikiqa" / "WikiQA-test.tsv"

needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data not found at {DATA}")


def _n_judgments(ds: EvalDataset) -> int:
    return sum(len(j) for j in ds.qrels.values())


def _is_best_first(cands: list[Candidate]) -> bool:
    return all(a.score >= b.score for a, b in itertools.pairwise(cands))


# --------------------------------------------------------------------------- shared/data


@needs_data
@pytest.mark.parametrize("first_stage", DL19_FIRST_STAGES)
def test_dl19_counts(first_stage: str) -> None:
    ds = load_dl19(DL19, first_stage)
    assert ds.name == f"trec-dl-2019-passage/{first_stage}"
    assert len(ds.queries) == 43
    assert set(ds.qrels) == set(ds.queries)
    assert _n_judgments(ds) == 9260
    grades = Counter(g for judged in ds.qrels.values() for g in judged.values())
    assert grades == {0: 5158, 1: 1601, 2: 1804, 3: 697}
    assert ds.corpus is None
    assert ds.candidates is not None
    assert set(ds.candidates) == set(ds.queries)
    assert all(len(c) == 100 for c in ds.candidates.values())
    assert all(isinstance(qid, str) for qid in ds.candidates)
    assert all(_is_best_first(c) for c in ds.candidates.values())
    assert all(c.text for cands in ds.candidates.values() for c in cands)
    # query texts equal the topics file exactly
    assert ds.queries == read_topics(DL19 / "anserini-tools/topics/topics.dl19-passage.txt")
    assert ds.queries["156493"] == "do goldfish grow"


@needs_data
@pytest.mark.parametrize("first_stage", DL19_FIRST_STAGES)
def test_dl19_trec_run_has_the_json_ranking(first_stage: str) -> None:
    folder = DL19 / "rank_llm/retrieve_results" / first_stage
    run_file = folder / "trec_results_dl19.txt"
    assert sum(len(rows) for rows in read_trec_run(run_file).values()) == 4300
    from_json = load_dl19(DL19, first_stage)
    from_trec = load_trec(
        DL19 / "anserini-tools/qrels/qrels.dl19-passage.txt",
        DL19 / "anserini-tools/topics/topics.dl19-passage.txt",
        run_file,
    )
    assert from_json.candidates is not None
    assert from_trec.candidates is not None
    assert from_trec.qrels == from_json.qrels
    for qid, cands in from_json.candidates.items():
        assert [c.docid for c in from_trec.candidates[qid]] == [c.docid for c in cands]
        assert all(c.text == "" for c in from_trec.candidates[qid])  # no corpus given


@needs_data
def test_scifact_test_split() -> None:
    ds = load_scifact(SCIFACT, "test")
    assert ds.name == "scifact/test"
    assert len(ds.queries) == 300
    assert _n_judgments(ds) == 339
    assert {g for judged in ds.qrels.values() for g in judged.values()} == {1}
    assert ds.corpus is not None
    assert len(ds.corpus) == 5183
    assert all(d in ds.corpus for judged in ds.qrels.values() for d in judged)
    assert ds.candidates is None
    assert ds.queries["1"] == "0-dimensional biomaterials show inductive properties."
    doc = ds.corpus["31715818"]
    assert doc.title.startswith("New opportunities: the use of nanotechnologies")
    assert doc.full_text == f"{doc.title} {doc.text}"
    # the anserini TREC qrels hold the same pairs as the BEIR TSV
    assert read_qrels(SCIFACT / "anserini-tools/qrels/qrels.beir-v1.0.0-scifact.test.txt") == ds.qrels
    # README: all 300 test topics equal the claim of the same id in claims_validation.csv
    claims = _read_scifact_claims(SCIFACT / "claimverifier/scifact.zip", "claims_validation.csv")
    assert len(claims) == 300
    assert all(claims[qid] == text for qid, text in ds.queries.items())


@needs_data
def test_scifact_train_split_reads_claims_from_the_zip() -> None:
    ds = load_scifact(SCIFACT, "train")
    assert len(ds.queries) == 809
    assert _n_judgments(ds) == 919
    assert ds.queries["0"] == "0-dimensional biomaterials lack inductive properties."
    assert ds.qrels["0"] == {"31715818": 1}
    assert ds.corpus is not None
    assert all(d in ds.corpus for judged in ds.qrels.values() for d in judged)


@needs_data
def test_noveleval() -> None:
    ds = load_noveleval(NOVELEVAL)
    assert len(ds.queries) == 21
    assert ds.corpus is not None
    assert len(ds.corpus) == 420
    assert _n_judgments(ds) == 420
    assert Counter(g for judged in ds.qrels.values() for g in judged.values()) == {0: 290, 1: 40, 2: 90}
    assert ds.candidates is not None
    assert all(len(c) == 20 for c in ds.candidates.values())
    for qid, cands in ds.candidates.items():
        assert [c.docid for c in cands] == [f"{qid}-{i}" for i in range(20)]  # Google order
        assert all(c.text == ds.corpus[c.docid].text for c in cands)
    assert ds.candidates["1"][2].score == pytest.approx(1 / 3)


@needs_data
def test_wikiqa(tmp_path: Path) -> None:
    ds = load_wikiqa(WIKIQA)
    assert len(ds.queries) == 633
    assert ds.candidates is not None
    assert sum(len(c) for c in ds.candidates.values()) == 6165
    positives = [q for q, judged in ds.qrels.items() if max(judged.values()) == 1]
    assert sum(sum(j.values()) for j in ds.qrels.values()) == 293
    assert len(positives) == 243
    assert sum(1 for q in positives if min(ds.qrels[q].values()) == 0) == 237
    first = ds.candidates["Q0"]
    assert [c.score for c in first[:3]] == [-1.0, -2.0, -3.0]  # file order, score = -rank
    assert first[0].docid == "D0-0"
    assert first[0].text.startswith("African immigration to the United States refers to")
    assert ds.corpus is not None
    # a run of these sentences, read back, reranks the very same strings as the given candidates
    again = candidates_from_run(read_trec_run(write_trec_run(tmp_path / "run.txt", ds.candidates)), ds.corpus)
    assert {q: [c.text for c in cs] for q, cs in again.items()} == {
        q: [c.text for c in cs] for q, cs in ds.candidates.items()
    }


@needs_data
@pytest.mark.parametrize(
    ("target", "name", "n_queries"),
    [
        (DL19, "trec-dl-2019-passage/BM25", 43),
        (SCIFACT, "scifact/test", 300),
        (NOVELEVAL, "noveleval-2306", 21),
        (WIKIQA.parent, "WikiQA-test", 633),
        (WIKIQA, "WikiQA-test", 633),
        (
            DL19 / "rank_llm/retrieve_results/BM25_RM3/retrieve_results_dl19.json.gz",
            "retrieve_results_dl19.json.gz",
            43,
        ),
        (NOVELEVAL / "data.json", "data.json", 21),
    ],
)
def test_load_dataset_detects_the_format(target: Path, name: str, n_queries: int) -> None:
    ds = load_dataset(target)
    assert ds.name == name
    assert len(ds.queries) == n_queries


@needs_data
def test_load_dataset_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_dataset("dl19", data_dir=DATA, first_stage="SPLADE_P_P_ENSEMBLE_DISTIL").name.endswith(
        "SPLADE_P_P_ENSEMBLE_DISTIL"
    )
    assert len(load_dataset("scifact", data_dir=DATA, split="train").queries) == 809
    monkeypatch.setenv("XRERANK_DATA_DIR", str(DATA))
    assert len(load_dataset("noveleval").queries) == 21
    monkeypatch.delenv("XRERANK_DATA_DIR")
    with pytest.raises(ConfigError, match="XRERANK_DATA_DIR"):
        load_dataset("wikiqa")


@needs_data
def test_rankllm_qids_become_strings_and_topics_override() -> None:
    json_file = DL19 / "rank_llm/retrieve_results/BM25/retrieve_results_dl19.json.gz"
    ds = load_rankllm(json_file)
    assert ds.qrels == {}
    assert ds.candidates is not None
    assert "264014" in ds.candidates
    top = ds.candidates["264014"][0]
    assert top.docid == "5611210"
    assert top.score == pytest.approx(15.7806, abs=1e-4)
    with_topics = load_rankllm(json_file, topics={**ds.queries, "264014": "flea life cycle"})
    assert with_topics.queries["264014"] == "flea life cycle"


# --------------------------------------------------------------------------- small files


def _write_beir(folder: Path, *, gz: bool = True, tsv_queries: bool = False) -> None:
    folder.mkdir()
    docs = [
        {"_id": "d1", "title": "Cats", "text": "Cats purr.", "metadata": {}},
        {"_id": "d2", "title": "", "text": "Dogs bark.", "metadata": {}},
        {"_id": "d3", "title": "Birds", "text": "Birds sing."},
    ]
    body = "".join(json.dumps(d) + "\n" for d in docs).encode()
    if gz:
        (folder / "corpus.jsonl.gz").write_bytes(gzip.compress(body))
    else:
        (folder / "corpus.jsonl").write_bytes(body)
    if tsv_queries:
        (folder / "queries.tsv").write_text("q1\twhat purrs\nq2\twho barks\nq3\tunjudged\n")
    else:
        (folder / "queries.jsonl").write_text(
            "".join(
                json.dumps({"_id": q, "text": t}) + "\n"
                for q, t in [("q1", "what purrs"), ("q2", "who barks"), ("q3", "unjudged")]
            )
        )
    (folder / "qrels").mkdir()
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\nq2\td3\t0\n")


@pytest.mark.parametrize(("gz", "tsv_queries"), [(True, False), (False, True)])
def test_load_beir_folder(tmp_path: Path, gz: bool, tsv_queries: bool) -> None:
    _write_beir(tmp_path / "mini", gz=gz, tsv_queries=tsv_queries)
    ds = load_beir(tmp_path / "mini")
    assert ds.name == "mini/test"
    assert ds.queries == {"q1": "what purrs", "q2": "who barks"}  # only judged queries
    assert ds.qrels == {"q1": {"d1": 1}, "q2": {"d2": 2, "d3": 0}}
    assert ds.corpus == {
        "d1": Passage("Cats", "Cats purr."),
        "d2": Passage("", "Dogs bark."),
        "d3": Passage("Birds", "Birds sing."),
    }
    assert ds.corpus["d1"].full_text == "Cats Cats purr."
    assert ds.corpus["d2"].full_text == "Dogs bark."
    assert load_dataset(tmp_path / "mini") == ds
    with pytest.raises(InputError, match="qrels for split 'dev' not found"):
        load_beir(tmp_path / "mini", split="dev")


def test_load_trec_with_corpus(tmp_path: Path) -> None:
    (tmp_path / "qrels.txt").write_text("1 0 a 2\n1 0 b 0\n2 Q0 c 1\n")
    (tmp_path / "topics.tsv").write_text("1\tfirst query\n2\tsecond query\n3\tunjudged\n")
    (tmp_path / "run.txt").write_text(
        "1 Q0 b 1 5.0 x\n1 Q0 a 2 5.0 x\n1 Q0 c 3 9.5 x\n2 Q0 c 1 1.0 x\n3 Q0 a 1 1.0 x\n"
    )
    corpus = {"a": Passage("A", "alpha"), "b": Passage("", "beta"), "c": Passage("", "gamma")}
    ds = load_trec(tmp_path / "qrels.txt", tmp_path / "topics.tsv", tmp_path / "run.txt", corpus)
    assert ds.queries == {"1": "first query", "2": "second query"}
    assert ds.candidates is not None
    # sorted by score; the tie between b and a follows the rank column
    assert [(c.docid, c.text, c.score) for c in ds.candidates["1"]] == [
        ("c", "gamma", 9.5),
        ("b", "beta", 5.0),
        ("a", "A alpha", 5.0),
    ]
    assert "3" not in ds.candidates
    assert run_from_candidates(ds.candidates) == {"1": {"c": 9.5, "b": 5.0, "a": 5.0}, "2": {"c": 1.0}}
    assert list(ds.first_stage_run()["1"]) == ["c", "b", "a"]
    with pytest.raises(InputError, match=r"'c'.*not in the corpus"):
        load_trec(
            tmp_path / "qrels.txt", tmp_path / "topics.tsv", tmp_path / "run.txt", {"a": corpus["a"], "b": corpus["b"]}
        )


def test_tsv_corpus_unquotes_only_csv_quoted_fields(tmp_path: Path) -> None:
    (tmp_path / "qrels.txt").write_text("1 0 a 1\n")
    (tmp_path / "topics.tsv").write_text("1\tq\n")
    (tmp_path / "run.txt").write_text("1 Q0 a 1 3.0 x\n1 Q0 b 2 2.0 x\n1 Q0 c 3 1.0 x\n")
    (tmp_path / "corpus.tsv").write_text('a\t"He said ""hi"" twice"\nb\t"Hi" he said\nc\tplain\n')
    ds = load_trec(tmp_path / "qrels.txt", tmp_path / "topics.tsv", tmp_path / "run.txt", tmp_path / "corpus.tsv")
    assert ds.candidates is not None
    assert [c.text for c in ds.candidates["1"]] == ['He said "hi" twice', '"Hi" he said', "plain"]


def test_datasets_are_frozen() -> None:
    ds = EvalDataset(name="x", queries={"q": "text"}, qrels={"q": {"d": 1}})
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.name = "y"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Candidate("d", "t", 1.0).score = 2.0  # type: ignore[misc]
    with pytest.raises(InputError, match="no query text"):
        EvalDataset(name="x", queries={}, qrels={"q": {"d": 1}})
    with pytest.raises(InputError, match="has no first-stage candidates"):
        ds.first_stage_run()


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("name", "content", "reader", "match"),
    [
        ("qrels.txt", "1 Q0 a 1\n1 Q0 b\n", read_qrels, r"qrels.txt, line 2: expected TREC qrels"),
        ("qrels.txt", "1 Q0 a 1\n1 Q0 b high\n", read_qrels, r"line 2: relevance grade 'high'"),
        ("qrels.txt", "1 Q0 a 1\n1 Q0 a 2\n", read_qrels, r"line 2: document 'a' judged twice"),
        ("test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\n", read_qrels, r"test.tsv, line 2: expected 'query-id"),
        ("topics.tsv", "1\tok\n2 no tab here\n", read_topics, r"topics.tsv, line 2: expected 'qid<TAB>query'"),
        ("topics.tsv", "1\tok\n1\tagain\n", read_topics, r"line 2: query id '1' appears twice"),
        ("run.txt", "1 Q0 a 1 2.0 t\n1 Q0 b 2 t\n", read_trec_run, r"run.txt, line 2: expected TREC run"),
        ("run.txt", "1 Q0 a 1 2.0 t\n1 Q0 b x 1.0 t\n", read_trec_run, r"line 2: rank 'x'"),
        ("run.txt", "1 Q0 a 1 2.0 t\n1 Q0 a 2 1.0 t\n", read_trec_run, r"line 2: document 'a' listed twice"),
        ("run.txt", "1 Q0 a 1 nan t\n", read_trec_run, r"line 1: score 'nan' is not finite"),
    ],
)
def test_malformed_lines_name_file_and_line(
    tmp_path: Path, name: str, content: str, reader: object, match: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError, match=match):
        reader(path)  # type: ignore[operator]


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"not found: .*nope\.txt"):
        read_qrels(tmp_path / "nope.txt")
    bad_json = tmp_path / "hits.json"
    bad_json.write_text('[{"query": "q",\n "hits": [}]')
    with pytest.raises(InputError, match=r"hits.json, line 2: invalid JSON"):
        load_rankllm(bad_json)
    no_hits = tmp_path / "empty.json"
    no_hits.write_text('[{"query": "q", "hits": []}]')
    with pytest.raises(InputError, match="entry 0: no hits"):
        load_rankllm(no_hits)
    not_gzip = tmp_path / "topics.tsv.gz"
    not_gzip.write_text("1\tplain text, not gzip\n")
    with pytest.raises(InputError, match="cannot be read"):
        read_topics(not_gzip)
    _write_beir(tmp_path / "beir")
    (tmp_path / "beir" / "corpus.jsonl.gz").write_bytes(gzip.compress(b'{"_id": "d1", "text": "ok"}\n{"_id": "d2"}\n'))
    with pytest.raises(InputError, match=r"corpus.jsonl.gz, line 2: expected an object with '_id' and 'text'"):
        load_beir(tmp_path / "beir")
    (tmp_path / "beir" / "queries.jsonl").unlink()
    with pytest.raises(InputError, match=r"no queries\.jsonl"):
        load_beir(tmp_path / "beir")
    with pytest.raises(InputError, match="format not recognised"):
        load_dataset(tmp_path)
    with pytest.raises(InputError, match="neither an existing path nor a known dataset name"):
        load_dataset(tmp_path / "missing")
    wrong_header = tmp_path / "WikiQA-test.tsv"
    wrong_header.write_text("QuestionID\tQuestion\n")
    with pytest.raises(InputError, match=r"WikiQA-test\.tsv, line 1: expected the WikiQA header"):
        load_wikiqa(wrong_header)


def test_bad_options() -> None:
    with pytest.raises(ConfigError, match="'test' or 'train'"):
        load_scifact(SCIFACT, "dev")
    with pytest.raises(ConfigError, match="first_stage must be one of"):
        load_dl19(DL19, "BM42")


def test_a_byte_order_mark_is_not_part_of_the_first_id(tmp_path: Path) -> None:
    topics = tmp_path / "topics.tsv"
    topics.write_bytes("\ufeff1\tfirst query\n2\tsecond\n".encode())
    assert read_topics(topics) == {"1": "first query", "2": "second"}
    qrels = tmp_path / "test.tsv"
    qrels.write_bytes("\ufeffquery-id\tcorpus-id\tscore\nq1\td1\t1\n".encode())
    assert read_qrels(qrels) == {"q1": {"d1": 1}}


def test_corrupt_or_undecodable_files_are_input_errors(tmp_path: Path) -> None:
    import gzip

    good = gzip.compress(b"1\tquery one\n" * 200)
    broken = tmp_path / "topics.tsv.gz"
    broken.write_bytes(good[:30] + bytes(b ^ 0xFF for b in good[30:60]) + good[60:])
    with pytest.raises(InputError, match=r"topics\.tsv\.gz: cannot be read"):
        read_topics(broken)
    json_gz = tmp_path / "run.json.gz"
    json_gz.write_bytes(broken.read_bytes())
    with pytest.raises(InputError, match=r"run\.json\.gz: cannot be read"):
        load_rankllm(json_gz)
    latin = tmp_path / "latin.tsv"
    latin.write_bytes("Question\tcaf\xe9\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"latin\.tsv: cannot be read"):
        load_dataset(str(latin))


def test_rankllm_scores_must_be_finite(tmp_path: Path) -> None:
    hits = [{"qid": "1", "docid": d, "content": d, "score": s} for d, s in (("a", 3.0), ("b", "NaN"), ("c", 5.0))]
    path = tmp_path / "run.json"
    path.write_text(json.dumps([{"query": "q", "hits": hits}]))
    with pytest.raises(InputError, match=r"entry 0: hit 'b' has score nan, not a finite number"):
        load_rankllm(path)


def test_a_run_with_unscored_documents_is_written_and_read_back_in_order(tmp_path: Path) -> None:
    ranked = {"1": [Candidate("a", "", 2.5), Candidate("b", "", -1.0), Candidate("c", "", -math.inf)]}
    back = read_trec_run(write_trec_run(tmp_path / "run.txt", ranked))
    assert [(d, r) for d, r, _ in back["1"]] == [("a", 1), ("b", 2), ("c", 3)]
    assert [s for _, _, s in back["1"]] == [2.5, -1.0, -2.0]


def test_null_ids_and_texts_in_beir_jsonl_are_refused_not_read_as_none(tmp_path: Path) -> None:
    from xrerank_core.eval._datasets import _read_jsonl_corpus, _read_jsonl_queries

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"_id": "d1", "text": "fine"}\n{"_id": 7, "title": null, "text": "an int id"}\n')
    assert {d: p.text for d, p in _read_jsonl_corpus(corpus).items()} == {"d1": "fine", "7": "an int id"}
    corpus.write_text('{"_id": "d1", "text": null}\n')
    with pytest.raises(InputError, match=r"line 1: expected an object with '_id' and 'text'.*'text' must be a string"):
        _read_jsonl_corpus(corpus)
    queries = tmp_path / "queries.jsonl"
    queries.write_text('{"_id": null, "text": "q"}\n')
    with pytest.raises(InputError, match=r"'_id' must be a string or an integer, got None"):
        _read_jsonl_queries(queries)

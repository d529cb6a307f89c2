"""Schemathesis against the live OpenAPI spec: generated requests, answers checked against the spec.

Valid requests (positive) and invalid ones (negative) for every operation; schemathesis's default
checks (no server error, status codes, content types and bodies as documented, invalid data
rejected) run on each answer. The number of examples is bounded so this runs in well under a minute.
"""

from __future__ import annotations

import pytest
import schemathesis
from conftest import serving
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

from xrerank_core import Reranker
from xrerank_core.serve import ServerSettings, create_app

# Invalid data must get a 4xx (the default list also allows 5xx); more documents than the
# spec's maxItems are answered 413, as text-embeddings-inference does.
CONFIG = SchemathesisConfig.from_str(
    """
[checks.negative_data_rejection]
expected-statuses = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]
"""
)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("api_key", [None, "k3y"])
def test_the_server_keeps_its_spec(tiny_bert: str, mode: GenerationMode, api_key: str | None) -> None:
    settings_ = ServerSettings(model_name="tiny-bert", max_documents=64, timeout_s=20, api_key=api_key)
    app = create_app(Reranker(tiny_bert), settings_)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
    with serving(app) as url:
        schema = schemathesis.openapi.from_url(url + "/openapi.json", config=CONFIG)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert {op.path for op in operations} == {"/v1/rerank", "/rerank", "/health", "/metrics"}
        statuses: list[int] = []
        for operation in operations:
            if mode is GenerationMode.NEGATIVE and operation.method.upper() != "POST":
                continue  # a GET without parameters has nothing to make invalid

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            def check(case: schemathesis.Case) -> None:
                response = case.call_and_validate(headers=headers)
                statuses.append(response.status_code)
                assert response.status_code < 500, response.text

            check()
        assert statuses
        if mode is GenerationMode.POSITIVE:
            assert 200 in statuses


@pytest.mark.parametrize("query", ["\x1d\x1d", " \t", "\xa0", "\x85", "\ufeff", "a"])
def test_the_spec_and_the_server_agree_on_blank_queries(tiny_bert: str, query: str) -> None:
    """The spec's query pattern accepts exactly what the engine ranks (a fuzz run once found U+001D)."""
    import re

    import httpx

    with serving(create_app(Reranker(tiny_bert), ServerSettings(model_name="tiny-bert"))) as url:
        spec = httpx.get(url + "/openapi.json").json()
        pattern = spec["components"]["schemas"]["CohereRequest"]["properties"]["query"]["pattern"]
        answer = httpx.post(url + "/v1/rerank", json={"query": query, "documents": ["x"]})
    assert (re.search(pattern, query) is not None) == bool(query.strip())
    # the request model (pydantic's own regex engine) draws the same line as the engine
    from pydantic import ValidationError

    from xrerank_core.serve._app import CohereRequest

    try:
        CohereRequest(query=query, documents=["x"])
        valid = True
    except ValidationError:
        valid = False
    assert valid == bool(query.strip())
    assert answer.status_code == (200 if query.strip() else 422), answer.text

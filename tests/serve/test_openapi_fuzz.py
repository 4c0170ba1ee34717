"""schemathesis against the app's own OpenAPI schema, in-process (ASGI, no socket).

Every operation gets a bounded number of generated requests, schema-valid and schema-invalid
(schemathesis' positive and negative modes), and each answer must: not be a 5xx, have a
documented status code and content type, match the documented response schema, and refuse
schema-invalid input. Left out is `positive_data_acceptance`: some schema-valid requests are
refused on purpose, with a 422 naming the field, for rules JSON Schema cannot state (an unknown
genre, one movie rated twice, a query of accents only). A 413 (body too large) counts as a
refusal of invalid input. Thousands of cases, with memory, are
benchmarks/serve_fuzz.py's job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
schemathesis = pytest.importorskip("schemathesis", minversion="4")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import positive_data_acceptance  # noqa: E402

from movierec.serve import app_from_folder  # noqa: E402

CASES = 15  # per operation and mode: about five seconds for the whole schema
OPERATIONS = ["GET /health", "GET /model", "POST /model/reload", "GET /users",
              "GET /users/{user_id}", "GET /users/{user_id}/recommendations",
              "POST /recommendations", "GET /movies/search", "GET /movies/{item_id}/similar",
              "GET /metrics"]
# Nothing to make invalid:
NO_INPUT = {"GET /health", "GET /model", "POST /model/reload", "GET /metrics"}
# Invalid input may also be refused by the body size limit (413), before it is validated.
CONFIG = schemathesis.Config.from_dict({"checks": {"negative_data_rejection": {
    "expected-statuses": ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422",
                          "428", "429", "5XX"]}}})


@pytest.fixture(scope="module")
def api_schema(itemknn_dir: Path) -> Any:
    app = app_from_folder(itemknn_dir, max_k=20, max_ratings=20)
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=CONFIG)


def test_schema_lists_every_endpoint(api_schema: Any) -> None:
    labels = {result.ok().label for result in api_schema.get_all_operations()}
    assert labels == set(OPERATIONS)


# schemathesis' own pytest integration (`schemathesis.pytest.from_fixture`) needs a pytest
# internal (`Item._nodeid`) that pytest 9 removed, so the cases come from its hypothesis
# strategies instead.
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=["valid", "invalid"])
@pytest.mark.parametrize("label", OPERATIONS)
def test_generated_requests_get_documented_answers(api_schema: Any, label: str,
                                                   mode: GenerationMode) -> None:
    if mode is GenerationMode.NEGATIVE and label in NO_INPUT:
        pytest.skip("the operation takes no input that could be invalid")
    method, path = label.split(" ", 1)
    operation = api_schema[path][method]
    statuses: list[int] = []

    @settings(max_examples=CASES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = case.call_and_validate(excluded_checks=[positive_data_acceptance])
        statuses.append(response.status_code)
        assert response.status_code < 500, response.text

    run()
    assert statuses and max(statuses) < 500

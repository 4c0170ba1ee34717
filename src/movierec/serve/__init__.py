"""HTTP service: JSON API (FastAPI) and a small web page over one saved model.

`create_app(model, catalog, meta)` builds the app (nothing is built at import time);
`app_from_folder(path)` loads a model folder first, and its app can reload that folder
(`POST /model/reload`, see `movierec.serve.reload`). Limits on bodies, read times and model work
are in `movierec.serve.guard`; `movierec serve` adds a header deadline to uvicorn
(`movierec.serve.protocol`). Needs the `serve` extra (`pip install 'movierec[serve]'`: fastapi
and uvicorn).
"""

from __future__ import annotations

from movierec.errors import MissingExtraError

try:
    import fastapi  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised with fastapi hidden in tests
    raise MissingExtraError(
        "the movierec service needs fastapi and uvicorn: pip install 'movierec[serve]'"
    ) from exc

from movierec.serve.app import app_from_folder, create_app

__all__ = ["app_from_folder", "create_app"]

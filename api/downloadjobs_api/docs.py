"""
The interactive API documentation at ``/docs``: Swagger UI served by the API itself.

Its script and stylesheet come from the pinned ``swagger-ui-bundle-v2`` package and
are served under ``/docs/assets``; the page starts it with a script of ours under
``/static``. Nothing is inline and nothing comes from another origin, so the page
runs under the same Content-Security-Policy as every other answer: a CDN could
otherwise change the script the docs run, and an exemption would open the path
to whatever else it matched.
"""

from pathlib import Path

import swagger_ui_bundle
from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

#: Swagger UI's files, as the package ships them.
ASSETS = Path(str(swagger_ui_bundle.swagger_ui_path))
ASSETS_URL = "/docs/assets"

PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>DownloadJobs API</title>
<link rel="stylesheet" href="{ASSETS_URL}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{ASSETS_URL}/swagger-ui-bundle.js"></script>
<script src="/static/docs.js"></script>
</body>
</html>
"""

router = APIRouter()


@router.get("/docs", include_in_schema=False)
async def docs() -> HTMLResponse:
    """Swagger UI for /openapi.json."""
    return HTMLResponse(PAGE, headers={"Cache-Control": "no-cache"})


def install(app: FastAPI) -> None:
    """Serve the page at ``/docs`` and Swagger UI's files under ``/docs/assets``."""
    app.include_router(router)
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")

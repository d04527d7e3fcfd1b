"""
The OpenAPI document as the API really answers: FastAPI documents a 422
"validation error" for every route with parameters, but this API answers
validation problems with 400 in the common error envelope (as the original
service did), so those 422 entries are dropped; a 422 documented on purpose
(a misused Idempotency-Key) stays.
"""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

_VALIDATION_REF = "#/components/schemas/HTTPValidationError"


def _is_fastapi_422(response: dict[str, Any]) -> bool:
    content = response.get("content", {}).get("application/json", {})
    return bool(content.get("schema", {}).get("$ref") == _VALIDATION_REF)


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        for path in document.get("paths", {}).values():
            for operation in path.values():
                responses = operation.get("responses", {})
                if "422" in responses and _is_fastapi_422(responses["422"]):
                    del responses["422"]
        schemas = document.get("components", {}).get("schemas", {})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]

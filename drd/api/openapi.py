"""The OpenAPI 3.1 document, generated from the route table and the pydantic bodies."""

from typing import Any

from drd import __version__
from drd.api.routes import Route
from drd.domain.access import Access

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["code", "message", "details"],
        "properties": {
            "code": {"type": "string"},
            "message": {"type": "string"},
            "details": {},
        },
    }},
}


def openapi_document(routes: dict[str, Route]) -> dict[str, Any]:
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    paths: dict[str, dict[str, Any]] = {}
    for route in routes.values():
        operation: dict[str, Any] = {
            "summary": route.summary,
            "x-drd-access": route.access.value,
            "responses": _responses(route, schemas),
        }
        if route.access is not Access.OPEN:
            operation["security"] = [{"bearer": []}]
        parameters = [{"name": part[1:-1], "in": "path", "required": True,
                       "schema": {"type": "string"}}
                      for part in route.path.split("/") if part.startswith("{")]
        if parameters:
            operation["parameters"] = parameters
        if route.request_model is not None:
            operation["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": _ref(route.request_model, schemas)}}}
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "drd site daemon API", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _ref(model: Any, schemas: dict[str, Any]) -> dict[str, str]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        schemas[name] = definition
    schemas[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _responses(route: Route, schemas: dict[str, Any]) -> dict[str, Any]:
    error = {"description": "error", "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    ok: dict[str, Any] = {"description": "success"}
    if route.response_model is not None:
        ok["content"] = {"application/json": {"schema": _ref(route.response_model, schemas)}}
    else:
        ok["content"] = {route.content_type: {}}
    responses: dict[str, Any] = {"200": ok}
    if route.access is not Access.OPEN:
        responses |= {"401": error, "403": error}
    if route.request_model is not None:
        responses["400"] = error
    return responses

"""Request and response bodies of the JSON routes: a pydantic model in, a model out."""

from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from drd.api.errors import invalid_body

Body = TypeVar("Body", bound=BaseModel)


def json_response(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(text=model.model_dump_json(), status=status,
                        content_type="application/json")


async def read_body(request: web.Request, model: type[Body]) -> Body:
    """The request's JSON body as `model` (an empty body as `{}`); 400 naming the field."""
    raw = await request.read()
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as error:
        raise invalid_body(error) from error

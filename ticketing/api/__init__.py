"""The API contract: request and reply models, one validation path, the OpenAPI document.

Each service declares its routes with :class:`Api`. A declaration names the models that
validate the route's query and body (the handler receives them validated) and the replies
it may give; the same declarations generate the service's OpenAPI document, and
``deploy/openapi.py`` merges the services' documents into the one the gateway serves.
"""

from ticketing.api.declare import Api, Operation
from ticketing.api.document import document, merge
from ticketing.api.replies import (
    Empty,
    Html,
    Ok,
    Problems,
    Raw,
    Reply,
)
from ticketing.api.shapes import (
    NO_NUL,
    Body,
    Header,
    Id,
    PathId,
    ProblemFields,
    Query,
    Shape,
    Text,
)
from ticketing.api.validate import read_body, read_query

__all__ = [
    "NO_NUL",
    "Api",
    "Body",
    "Empty",
    "Header",
    "Html",
    "Id",
    "Ok",
    "Operation",
    "PathId",
    "ProblemFields",
    "Problems",
    "Query",
    "Raw",
    "Reply",
    "Shape",
    "Text",
    "document",
    "merge",
    "read_body",
    "read_query",
]

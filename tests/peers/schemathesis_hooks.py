"""Schemathesis hooks for tests/tests/openapi.rs (loaded through
SCHEMATHESIS_HOOKS): how to send the two request bodies of sluice's OpenAPI
document that are not JSON, which Schemathesis cannot serialize by itself.

- `application/x-ndjson` (a participant upload): one JSON value a line. A
  generated string is sent as it is (the document's schema for the body is
  the text), anything else as its JSON lines.
- `message/rfc822` (a returned message for POST /v1/bounces): the text as
  it is.
"""

import json

import schemathesis


def _text(value):
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return None


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    text = _text(value)
    if text is not None:
        return text
    lines = value if isinstance(value, list) else [value]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


@schemathesis.serializer("message/rfc822")
def rfc822(ctx, value):
    text = _text(value)
    if text is not None:
        return text
    return json.dumps(value).encode()

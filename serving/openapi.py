"""Complete BentoML's OpenAPI document so that it describes what the API really does: the
request body is required, unknown fields and blank text are refused, and every error status
the guard or the service can send is listed with its JSON shape. (BentoML states none of
these; a client generated from its document, or a contract tester such as schemathesis,
would otherwise meet undocumented behaviour.)"""

from __future__ import annotations

PROBLEM = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "'<field>: <problem>', a sentence a person can act on"},
        "field": {"type": "string", "description": "the request field at fault ('body' for the whole body)"},
    },
}
ERRORS = {
    "400": "the body is not readable: empty, not UTF-8, not JSON, or nested too deeply",
    "405": "a method other than POST; the Allow header says POST",
    "413": "the body is larger than 1 MiB",
    "422": "a JSON body that breaks the rules: unknown field, wrong type, empty or too-long text, too many items "
           "(or more than 32 asking for explain)",
    "429": "too many requests at once; retry later",
    "503": "overloaded, shutting down, or this item could not be scored; retry later",
}


def _strict(schema: dict, components: dict, pattern: str, name: str) -> None:
    """The guard's rules, stated in a request schema: no field but the listed ones, and text
    that is not only whitespace, control or format characters."""
    if "$ref" in schema:
        schema = components.get(schema["$ref"].rsplit("/", 1)[-1], {})
    if schema.get("type") == "array":
        return _strict(schema.get("items", {}), components, pattern, name)
    if schema.get("type") != "object":
        return
    schema["additionalProperties"] = False
    for field, prop in schema.get("properties", {}).items():
        if "default" in prop and prop["default"] is None:
            prop["nullable"] = True  # BentoML drops the null of `str | None`; the API takes it
        for option in [prop, *prop.get("anyOf", [])]:
            if option.get("type") == "string":
                # An actor names someone: a letter or a digit (model.items.check_actor).
                option["pattern"] = name if field == "actor" else pattern
            elif option.get("type") in ("object", "array") or "$ref" in option:
                _strict(option, components, pattern, name)


def patch(doc: dict, paths: list[str]) -> dict:
    from model.items import name_pattern, not_blank_pattern

    components = doc.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = PROBLEM
    ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    pattern, name = not_blank_pattern(), name_pattern()
    for path in paths:
        post = doc.get("paths", {}).get(path, {}).get("post")
        if post is None:
            continue
        if "requestBody" in post:
            post["requestBody"]["required"] = True
            for media in post["requestBody"].get("content", {}).values():
                _strict(media.get("schema", {}), components, pattern, name)
        ok = post.get("responses", {}).get("200")
        post["responses"] = {**({"200": ok} if ok else {}),
                             **{code: {"description": text, "content": ref} for code, text in ERRORS.items()}}
    return doc

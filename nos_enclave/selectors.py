"""Pick one value out of a source's response body with the selector in the params."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ElementTree
from typing import Any

from nos_enclave.protocol import ParamsError

_JSON_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def select(body: bytes, path: str) -> str:
    """`json:a.b[0]`, `xml:./a/b` (ElementTree path; text of the first match) or `regex:...`."""
    kind, _, expression = path.partition(":")
    text = body.decode("utf-8", errors="strict") if kind != "regex" else body.decode("utf-8", errors="replace")
    if kind == "json":
        return _select_json(text, expression)
    if kind == "xml":
        return _select_xml(text, expression)
    if kind == "regex":
        return _select_regex(text, expression)
    raise ParamsError(f"unknown selector kind {kind!r}")


def _select_json(text: str, expression: str) -> str:
    try:
        node: Any = json.loads(text)
    except json.JSONDecodeError as err:
        raise ParamsError(f"source did not return JSON: {err}") from err
    for key, index in _JSON_STEP.findall(expression.removeprefix("$").lstrip(".")):
        try:
            node = node[int(index)] if index else node[key]
        except (KeyError, IndexError, TypeError) as err:
            raise ParamsError(f"json path {expression!r} not found in the response") from err
    if isinstance(node, (dict, list)):
        raise ParamsError(f"json path {expression!r} selects an object, not a value")
    return json.dumps(node) if isinstance(node, bool) or node is None else str(node)


def _select_xml(text: str, expression: str) -> str:
    try:
        root = ElementTree.fromstring(text)  # stdlib parser: no external entities are fetched
    except ElementTree.ParseError as err:
        raise ParamsError(f"source did not return XML: {err}") from err
    found = root.find(expression)
    if found is None or found.text is None:
        raise ParamsError(f"xml path {expression!r} not found in the response")
    return found.text


def _select_regex(text: str, expression: str) -> str:
    try:
        match = re.search(expression, text)
    except re.error as err:
        raise ParamsError(f"bad regex {expression!r}: {err}") from err
    if match is None:
        raise ParamsError(f"regex {expression!r} does not match the response")
    return match.group(1) if match.groups() else match.group(0)

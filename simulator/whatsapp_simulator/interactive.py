"""Interactive message objects: types, header, body, footer and the button, list and
cta_url actions with Meta's limits (3 buttons of 20 characters, list button 20, at most 10
sections and 10 rows in all, section and row titles 24, row descriptions 72, header and
footer 60, body 1024). Interactive object reference:
https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages#interactive-object
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from whatsapp_simulator.faults import GraphError
from whatsapp_simulator.params import (
    bounded,
    count,
    items,
    not_valid,
    obj,
    one_of,
    required,
    sub,
    text,
)

INTERACTIVE_TYPES = frozenset(
    {"button", "list", "cta_url", "flow", "product", "product_list", "catalog_message"}
    | {"location_request_message", "call_permission_request", "voice_call", "carousel"}
    | {"address_message"}
)
NEEDS_BODY = frozenset({"button", "list", "cta_url", "flow", "product_list", "catalog_message"})


def _buttons(action: Mapping[str, Any], path: str) -> None:
    if "buttons" not in action:
        raise required(sub(path, "buttons"))
    buttons = items(action["buttons"], sub(path, "buttons"))
    count(buttons, "buttons", 3)
    for i, button in enumerate(buttons):
        where = sub(sub(path, "buttons"), i)
        entry = obj(button, where, {"type", "reply"})
        if entry.get("type") != "reply":
            raise one_of(sub(where, "type"), frozenset({"reply"}), entry.get("type"))
        reply = obj(entry.get("reply"), sub(where, "reply"), {"id", "title"})
        bounded(text(reply, "id", sub(where, "reply"), need=True), "Button id", 256)
        bounded(
            text(reply, "title", sub(where, "reply"), need=True, empty=True), "Button title", 20
        )


def _list(action: Mapping[str, Any], path: str) -> None:
    bounded(text(action, "button", path, need=True), "Button text", 20)
    if "sections" not in action:
        raise required(sub(path, "sections"))
    sections = items(action["sections"], sub(path, "sections"))
    count(sections, "sections", 10)
    rows = 0
    for i, section in enumerate(sections):
        where = sub(sub(path, "sections"), i)
        part = obj(section, where, {"title", "rows", "product_items"})
        title = text(part, "title", where, need=len(sections) > 1)
        if title:
            bounded(title, "Section title", 24)
        for j, row in enumerate(items(part.get("rows", []), sub(where, "rows"))):
            line = obj(row, sub(sub(where, "rows"), j), {"id", "title", "description"})
            bounded(text(line, "id", sub(sub(where, "rows"), j), need=True), "Row id", 200)
            bounded(
                text(line, "title", sub(sub(where, "rows"), j), need=True, empty=True),
                "Row title",
                24,
            )
            bounded(
                text(line, "description", sub(sub(where, "rows"), j), need=False),
                "Row description",
                72,
                low=0,
            )
            rows += 1
    if not 1 <= rows <= 10:
        raise not_valid(
            f"Invalid rows count. Min allowed rows: 1, Max allowed rows: 10 - got {rows}"
        )


def _cta_url(action: Mapping[str, Any], path: str) -> None:
    if action.get("name") != "cta_url":
        raise one_of(sub(path, "name"), frozenset({"cta_url"}), action.get("name"))
    parameters = obj(action.get("parameters"), sub(path, "parameters"), {"display_text", "url"})
    bounded(
        text(parameters, "display_text", sub(path, "parameters"), need=False), "Display text", 20
    )
    text(parameters, "url", sub(path, "parameters"), need=True)


ACTIONS: dict[str, Callable[[Mapping[str, Any], str], None]] = {
    "button": _buttons,
    "list": _list,
    "cta_url": _cta_url,
}
ACTION_KEYS = {
    "button": {"buttons"},
    "list": {"button", "sections"},
    "cta_url": {"name", "parameters"},
}
HEADERS = frozenset({"text", "image", "video", "document"})


def check_interactive(value: object, path: str) -> None:
    content = obj(value, path, {"type", "header", "body", "footer", "action"})
    kind = text(content, "type", path, need=True)
    if kind not in INTERACTIVE_TYPES:
        raise one_of(sub(path, "type"), INTERACTIVE_TYPES, kind)
    if "header" in content:
        header = obj(content["header"], sub(path, "header"), {"type", "text", "sub_text", *HEADERS})
        if text(header, "type", sub(path, "header"), need=True) not in HEADERS:
            raise one_of(sub(sub(path, "header"), "type"), HEADERS, header["type"])
        if header["type"] == "text":
            bounded(text(header, "text", sub(path, "header"), need=False), "Header text", 60)
    if "body" in content or kind in NEEDS_BODY:
        if "body" not in content:
            raise required(sub(path, "body"))
        body = obj(content["body"], sub(path, "body"), {"text"})
        bounded(text(body, "text", sub(path, "body"), need=True), "Body text", 1024)
    if "footer" in content:
        footer = obj(content["footer"], sub(path, "footer"), {"text"})
        bounded(text(footer, "text", sub(path, "footer"), need=True), "Footer text", 60)
    if "action" not in content:
        raise required(sub(path, "action"))
    check = ACTIONS.get(kind)
    if check is None:  # flow, product, catalog...: their actions are not checked further
        if not isinstance(content["action"], dict):
            raise GraphError(100, message=f"(#100) Param {sub(path, 'action')} must be an object.")
        return
    check(obj(content["action"], sub(path, "action"), ACTION_KEYS[kind]), sub(path, "action"))

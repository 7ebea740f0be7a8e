"""Turn a `/account/costs` reply into typed packs, or say exactly which field was wrong."""

from __future__ import annotations

import contextlib
import math
from datetime import UTC, datetime
from typing import Any

from bot.domain.packs import ResourcePack, parse_status, parse_type
from bot.kling.errors import MalformedReplyError, error_for

PACKS_FIELD = "resource_pack_subscribe_infos"


def _code(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise MalformedReplyError(f"Kling reply field '{where}' is not a number", field=where)
    try:
        return int(value)
    except ValueError:
        raise MalformedReplyError(f"Kling reply field '{where}' is not a number", field=where) from None


def check_envelope(http_status: int, body: Any) -> list[Any]:
    """Check both layers of the reply (`code` and `data.code`); return the raw pack list.

    Raises the most specific `KlingAPIError` for an error reply and `MalformedReplyError`
    for anything that is not the documented shape.
    """
    if not isinstance(body, dict):
        if http_status >= 400:
            raise error_for(http_status, None, None, None)
        raise MalformedReplyError("Kling reply is not a JSON object", field="(body)")
    request_id = body.get("request_id") if isinstance(body.get("request_id"), str) else None
    if "code" not in body:
        if http_status >= 400:
            raise error_for(http_status, None, _text(body.get("message")), request_id)
        raise MalformedReplyError("Kling reply has no field 'code'", field="code")
    code = _code(body["code"], "code")
    if code != 0 or http_status >= 400:
        raise error_for(http_status, code if code != 0 else None, _text(body.get("message")), request_id)
    data = body.get("data")
    if not isinstance(data, dict):
        raise MalformedReplyError("Kling reply field 'data' is missing or not an object", field="data")
    if "code" in data:
        inner = _code(data["code"], "data.code")
        if inner != 0:
            raise error_for(http_status, inner, _text(data.get("msg")), request_id)
    infos = data.get(PACKS_FIELD)
    if infos is None:
        return []
    if not isinstance(infos, list):
        raise MalformedReplyError(f"Kling reply field 'data.{PACKS_FIELD}' is not a list", field=f"data.{PACKS_FIELD}")
    return infos


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _str_field(raw: dict[str, Any], name: str, where: str) -> str:
    value = raw.get(name)
    if not isinstance(value, str):
        what = "missing" if value is None else f"not a string ({type(value).__name__})"
        raise MalformedReplyError(f"Kling reply field '{where}.{name}' is {what}", field=f"{where}.{name}")
    return value


def _number(raw: dict[str, Any], name: str, where: str) -> float:
    value = raw.get(name)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        what = "missing" if value is None else f"not a number ({value!r})"
        raise MalformedReplyError(f"Kling reply field '{where}.{name}' is {what}", field=f"{where}.{name}")
    return float(value)


def _time(raw: dict[str, Any], name: str, where: str) -> datetime | None:
    value = raw.get(name)
    if value is None or value == 0:
        return None  # not yet known (e.g. a pack not yet effective)
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedReplyError(
            f"Kling reply field '{where}.{name}' is not a time in milliseconds ({value!r})",
            field=f"{where}.{name}",
        )
    try:
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise MalformedReplyError(
            f"Kling reply field '{where}.{name}' is out of range ({value!r})", field=f"{where}.{name}"
        ) from None


def parse_pack(raw: Any, index: int) -> ResourcePack:
    where = f"data.{PACKS_FIELD}[{index}]"
    if not isinstance(raw, dict):
        raise MalformedReplyError(f"Kling reply field '{where}' is not an object", field=where)
    return ResourcePack(
        name=_str_field(raw, "resource_pack_name", where),
        pack_id=_str_field(raw, "resource_pack_id", where),
        pack_type=parse_type(_str_field(raw, "resource_pack_type", where)),
        total=_number(raw, "total_quantity", where),
        remaining=_number(raw, "remaining_quantity", where),
        purchase_time=_time(raw, "purchase_time", where),
        effective_time=_time(raw, "effective_time", where),
        invalid_time=_time(raw, "invalid_time", where),
        status=parse_status(_str_field(raw, "status", where)),
    )


def parse_reply(http_status: int, body: Any) -> list[ResourcePack]:
    return [parse_pack(raw, i) for i, raw in enumerate(check_envelope(http_status, body))]


def _ms(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def pack_to_api_dict(pack: ResourcePack) -> dict[str, Any]:
    """A pack in Kling's own field names (the inverse of `parse_pack`), times in ms."""
    return {
        "resource_pack_name": pack.name,
        "resource_pack_id": pack.pack_id,
        "resource_pack_type": str(pack.pack_type),
        "total_quantity": pack.total,
        "remaining_quantity": pack.remaining,
        "purchase_time": _ms(pack.purchase_time),
        "effective_time": _ms(pack.effective_time),
        "invalid_time": _ms(pack.invalid_time),
        "status": str(pack.status),
    }

"""Turn a `/account/costs` reply into typed packs, or say exactly which field was wrong."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.domain.packs import ResourcePack, parse_status, parse_type
from bot.kling.errors import MalformedReplyError, error_for

PACKS_FIELD = "resource_pack_subscribe_infos"
# The most units a pack may report. Real packs hold thousands to millions of units; anything
# far beyond is a broken reply, and unbounded values (1e308) made family sums overflow to
# inf and `round(inf)` crash every view. At 1e12, even a million packs sum to 1e18: finite,
# and still exact enough to print as whole units.
MAX_QUANTITY = 1e12
# Real pack ids are 32-40 characters and names a few dozen. Longer ones are not data: the id
# is a database key (PostgreSQL indexes at most ~2.7 KB per entry, 4 bytes a character), and
# a name becomes a family that people subscribe to.
MAX_PACK_ID = 512
MAX_TEXT = 500
# Pack times (ms since 1970) must lie in [1970, 9999): 0 means "not known yet", a negative one
# is garbage, and a year's margin below datetime's end keeps date arithmetic on a far-future
# "never expires" value from overflowing.
MAX_TIME_MS = int(datetime(9999, 1, 1, tzinfo=UTC).timestamp() * 1000)


def _code(value: Any, where: str) -> int:
    # A code is an integer; JSON may spell it 1003, 1003.0 or "1003". Infinity, NaN or 0.5
    # are not codes (and int(inf) would raise OverflowError, not a Kling error).
    if isinstance(value, float) and not value.is_integer():
        value = None
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


def _str_field(raw: dict[str, Any], name: str, where: str, *, max_length: int = MAX_TEXT) -> str:
    value = raw.get(name)
    if not isinstance(value, str):
        what = "missing" if value is None else f"not a string ({type(value).__name__})"
        raise MalformedReplyError(f"Kling reply field '{where}.{name}' is {what}", field=f"{where}.{name}")
    if len(value) > max_length:
        raise MalformedReplyError(
            f"Kling reply field '{where}.{name}' is {len(value):,} characters long (at most {max_length:,})",
            field=f"{where}.{name}",
        )
    return value


def _quantity(raw: dict[str, Any], name: str, where: str) -> float:
    """A pack quantity: a finite number in [0, MAX_QUANTITY]."""
    value = raw.get(name)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        what = "missing" if value is None else f"not a number ({_short(value)})"
        raise MalformedReplyError(f"Kling reply field '{where}.{name}' is {what}", field=f"{where}.{name}")
    # float() of a huge JSON integer (10**400) raises OverflowError: out of range like inf.
    number = float(value) if not isinstance(value, int) or abs(value) <= MAX_QUANTITY else math.inf
    if not (math.isfinite(number) and 0 <= number <= MAX_QUANTITY):
        raise MalformedReplyError(
            f"Kling reply field '{where}.{name}' is out of range ({_short(value)})", field=f"{where}.{name}"
        )
    return number


def _short(value: Any) -> str:
    # A field's value goes into logs; a pathological one (a 4,000-digit number) is cut.
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _time(raw: dict[str, Any], name: str, where: str) -> datetime | None:
    value = raw.get(name)
    if value is None or value == 0:
        return None  # not yet known (e.g. a pack not yet effective)
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedReplyError(
            f"Kling reply field '{where}.{name}' is not a time in milliseconds ({_short(value)})",
            field=f"{where}.{name}",
        )
    # The comparison also rejects NaN, which is neither in nor out of any range.
    if not 0 <= value < MAX_TIME_MS:
        raise MalformedReplyError(
            f"Kling reply field '{where}.{name}' is out of range ({_short(value)})", field=f"{where}.{name}"
        )
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def parse_pack(raw: Any, index: int) -> ResourcePack:
    where = f"data.{PACKS_FIELD}[{index}]"
    if not isinstance(raw, dict):
        raise MalformedReplyError(f"Kling reply field '{where}' is not an object", field=where)
    return ResourcePack(
        name=_str_field(raw, "resource_pack_name", where),
        pack_id=_str_field(raw, "resource_pack_id", where, max_length=MAX_PACK_ID),
        pack_type=parse_type(_str_field(raw, "resource_pack_type", where)),
        total=_quantity(raw, "total_quantity", where),
        remaining=_quantity(raw, "remaining_quantity", where),
        purchase_time=_time(raw, "purchase_time", where),
        effective_time=_time(raw, "effective_time", where),
        invalid_time=_time(raw, "invalid_time", where),
        status=parse_status(_str_field(raw, "status", where)),
    )


@dataclass(frozen=True, slots=True)
class ParsedReply:
    """The packs that could be read, and why each of the others could not."""

    packs: list[ResourcePack]
    skipped: list[MalformedReplyError]


def parse_packs(http_status: int, body: Any) -> ParsedReply:
    """Parse a reply, skipping packs that cannot be read.

    One bad row must not hide every other pack from everyone, so a malformed pack is
    skipped and reported in `skipped` (the client logs it). A malformed envelope still
    raises, and so does a reply in which every pack is malformed: that is the API's shape
    changing, and an empty list would read as "no packs" and hide the problem.
    """
    packs: list[ResourcePack] = []
    skipped: list[MalformedReplyError] = []
    infos = check_envelope(http_status, body)
    for i, raw in enumerate(infos):
        try:
            packs.append(parse_pack(raw, i))
        except MalformedReplyError as exc:
            skipped.append(exc)
    if infos and not packs:
        raise skipped[0]
    return ParsedReply(packs, skipped)


def parse_reply(http_status: int, body: Any) -> list[ResourcePack]:
    """The readable packs of a reply (see `parse_packs`, which also says what was skipped)."""
    return parse_packs(http_status, body).packs


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

"""Every number taken from Kling is bounded; one unreadable pack is skipped, not fatal to the rest."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable

import httpx
import pytest

from bot.domain.packs import family_totals
from bot.kling.errors import MalformedReplyError
from bot.kling.parse import MAX_QUANTITY, parse_packs, parse_reply
from tests.fake_clock import FakeClock
from tests.stand_ins.kling import make_pack
from tests.test_kling_client import client_for, ok_body

PACKS = "data.resource_pack_subscribe_infos"


def test_two_huge_packs_are_skipped_with_a_warning_and_the_rest_kept(caplog: pytest.LogCaptureFixture) -> None:
    """Packs of 1e308 units are dropped with a WARNING naming the field; the good pack stays and totals are finite."""
    packs = [
        make_pack("Video Generation - A", total=1e308, remaining=1e308),
        make_pack("Video Generation - B", total=1e308, remaining=1e308),
        make_pack("Video Generation - C", total=100, remaining=40),
    ]
    body = json.dumps(ok_body(packs)).encode()
    handler: Callable[[httpx.Request], httpx.Response] = lambda r: httpx.Response(200, content=body)  # noqa: E731
    with caplog.at_level(logging.WARNING, logger="bot.kling.client"):
        parsed = client_for(handler, FakeClock()).fetch_packs()
    assert [p.name for p in parsed] == ["Video Generation - C"]
    [total] = family_totals(parsed)
    assert math.isfinite(total.remaining) and round(total.remaining) == 40
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert f"'{PACKS}[0].total_quantity' is out of range (1e+308)" in warnings[0]
    assert f"'{PACKS}[1].total_quantity'" in warnings[1]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("total_quantity", 1e308),
        ("total_quantity", "1e308"),
        ("total_quantity", 10**400),  # a JSON integer too large for a float
        ("total_quantity", MAX_QUANTITY * 10),
        ("remaining_quantity", -1),
        ("remaining_quantity", float("nan")),
        ("remaining_quantity", float("inf")),
        ("invalid_time", -1),
        ("invalid_time", 10**20),
        ("effective_time", float("nan")),
    ],
)
def test_out_of_range_value_skips_its_pack_naming_the_field(field: str, value: object) -> None:
    """A quantity outside [0, MAX_QUANTITY] or a time outside [1970, 9999) skips that pack with its field named."""
    bad = make_pack("Bad - 1")
    bad[field] = value
    # Through real JSON text, as it comes from Kling (NaN and Infinity are what Python's json accepts).
    body = json.loads(json.dumps(ok_body([bad, make_pack("Good - 1")])))
    parsed = parse_packs(200, body)
    assert [p.name for p in parsed.packs] == ["Good - 1"]
    [error] = parsed.skipped
    assert error.field == f"{PACKS}[0].{field}"
    assert "out of range" in str(error) and len(str(error)) < 200


def test_largest_accepted_quantity_and_zero_are_kept() -> None:
    """The bounds themselves are accepted: 0 and MAX_QUANTITY units."""
    body = ok_body([make_pack(total=MAX_QUANTITY, remaining=0)])
    [pack] = parse_reply(200, body)
    assert pack.total == MAX_QUANTITY and pack.remaining == 0


def test_reply_whose_every_pack_is_bad_raises() -> None:
    """When no pack can be read the reply raises (an API change must not read as 'no packs')."""
    body = ok_body([make_pack(total=1e308), make_pack(remaining=-5)])
    with pytest.raises(MalformedReplyError, match=r"\[0\]\.total_quantity' is out of range"):
        parse_reply(200, body)


@pytest.mark.parametrize(
    "body",
    [
        {"code": float("inf"), "data": {}},
        {"code": 0.5, "data": {}},
        {"code": 0, "data": {"code": float("nan")}},
        {"code": 0, "data": {"resource_pack_subscribe_infos": {"not": "a list"}}},
    ],
)
def test_malformed_envelope_still_raises(body: dict) -> None:
    """A bad `code`, `data.code` or pack list raises MalformedReplyError, never OverflowError or a silent success."""
    with pytest.raises(MalformedReplyError):
        parse_reply(200, json.loads(json.dumps(body)))

"""Several Kling accounts in one bot (issue 7): each with its own client, cache and state; one
failing never hides or delays the others; every view names the account when there are
several, and none does when there is one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest

from bot.config import ConfigError, Settings
from tests.blocks import all_text, assert_valid_message
from tests.conftest import RunningBot, start_bot
from tests.slack_requests import signed_headers, slash_command_body
from tests.stand_ins.kling import API_KEY, FakeKling, make_pack
from tests.stand_ins.slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack
from tests.test_cli import run
from tests.world import ALERTS, World


@pytest.fixture
def lab() -> Iterator[FakeKling]:
    """The second account's Kling (another region, say)."""
    with FakeKling(packs=[]) as fake:
        yield fake


def two_accounts(studio: FakeKling, lab: FakeKling, *, lab_key: str = API_KEY) -> dict[str, str]:
    return {
        "KLING_ACCOUNTS": "Studio,china-lab",
        "KLING_STUDIO_API_BASE": studio.url,
        # An API key: the scenario tests' fake clock runs ahead of the stand-in's real one,
        # which would make a signed JWT "not valid yet".
        "KLING_STUDIO_API_KEY": API_KEY,
        "KLING_CHINA_LAB_API_BASE": lab.url,
        "KLING_CHINA_LAB_API_KEY": lab_key,
    }


# -- settings -----------------------------------------------------------------------------


def test_accounts_are_read_from_prefixed_settings() -> None:
    """KLING_ACCOUNTS=Studio,china-lab reads KLING_STUDIO_* and KLING_CHINA_LAB_*; names keep their case."""
    settings = Settings.from_env(
        {
            "KLING_ACCOUNTS": "Studio, china-lab",
            "KLING_STUDIO_API_KEY": "k1",
            "KLING_CHINA_LAB_ACCESS_KEY": "ak",
            "KLING_CHINA_LAB_SECRET_KEY": "sk",
            "KLING_CHINA_LAB_API_BASE": "https://api-beijing.klingai.com",
        }
    )
    studio, lab = settings.accounts
    # The first account keeps the state of the single account a bot had before (key "default").
    assert (studio.account.key, studio.account.name, studio.api_key) == ("default", "Studio", "k1")
    assert studio.api_base == "https://api-singapore.klingai.com"
    assert (lab.account.name, lab.access_key, lab.api_base) == ("china-lab", "ak", "https://api-beijing.klingai.com")
    assert settings.account_names == {"default": "Studio", "china-lab": "china-lab"}


def test_every_missing_or_invalid_account_setting_is_named() -> None:
    """Missing keys for one account, a bad name and a duplicate are each named in one error."""
    with pytest.raises(ConfigError) as info:
        Settings.from_env(
            {
                "KLING_ACCOUNTS": "studio,bad name!,STUDIO,lab",
                "KLING_STUDIO_API_KEY": "k",
                "KLING_LAB_ACCESS_KEY": "ak",
                "KLING_LAB_API_BASE": "not a url",
            }
        )
    text = str(info.value)
    assert "'bad name!' is not an account name" in text
    assert "'STUDIO' twice" in text
    assert "KLING_LAB_SECRET_KEY is missing" in text
    assert "KLING_LAB_API_BASE" in text


def test_without_kling_accounts_there_is_one_unnamed_default_account() -> None:
    """The classic settings are the `default` account, and no view names it."""
    settings = Settings.from_env({"KLING_API_KEY": "k"})
    [account] = settings.accounts
    assert account.account.key == "default" and settings.account_names is None


# -- /kling-balance over signed HTTP ---------------------------------------------------------


@pytest.fixture
def bot_with_a_bad_account(
    kling: FakeKling, lab: FakeKling, slack: FakeSlack, database_url: str
) -> Iterator[RunningBot]:
    kling.packs = [make_pack("Video Generation - 10,000 entries", total=10000, remaining=2500, pack_id="same")]
    lab.packs = [make_pack("Video Generation - 1,000 entries", total=1000, remaining=900, pack_id="same")]
    yield from start_bot(kling, slack, database_url, **two_accounts(kling, lab, lab_key="rejected-key"))


def send(bot: RunningBot, text: str, key: str) -> dict:
    body = slash_command_body(text, response_url=bot.slack.response_url(key))
    assert bot.post(body, signed_headers(SIGNING_SECRET, body)).status_code == 200
    return bot.slack.wait_for_answer(key)


def test_slash_command_shows_the_good_account_and_a_sentence_for_the_failed_one(
    bot_with_a_bad_account: RunningBot,
) -> None:
    """One account's keys are rejected: its sentence names it; the other's packs and totals are shown."""
    reply = send(bot_with_a_bad_account, "", "r1")
    assert_valid_message(reply)
    text = all_text(reply)
    assert "Account Studio" in text and "2,500 / 10,000" in text
    assert "Account china-lab" in text and "rejected the bot's credentials" in text
    assert "1,000 entries" not in text and "KLING_" not in text


def test_a_word_naming_an_account_shows_that_account_only(bot_with_a_bad_account: RunningBot) -> None:
    """`/kling-balance studio` shows Studio alone, named; other words still filter pack names."""
    text = all_text(send(bot_with_a_bad_account, "studio", "r2"))
    assert "Studio" in text and "2,500 / 10,000" in text and "china-lab" not in text
    text = all_text(send(bot_with_a_bad_account, "studio audio", "r3"))
    assert "No pack name contains" in text


# -- the command line -------------------------------------------------------------------------


def test_balance_json_names_accounts_and_lists_errors(kling: FakeKling, lab: FakeKling) -> None:
    """`balance --json` gives each pack its account and an errors entry for the failed one; exit 1."""
    kling.packs = [make_pack("Video Generation - A", pack_id="p1")]
    lab.fail_next(1, 401, 1000, "Authentication failed")
    code, out, err = run(["balance", "--json"], two_accounts(kling, lab))
    assert code == 1
    data = json.loads(out)
    assert [p["account"] for p in data["packs"]] == ["Studio"]
    [error] = data["errors"]
    assert error["account"] == "china-lab" and "Authentication failed" in error["message"]
    assert "china-lab" in err


def test_balance_table_groups_by_account_and_account_option_picks_one(kling: FakeKling, lab: FakeKling) -> None:
    """The table has a section per account; --account shows one; an unknown name exits 2."""
    kling.packs = [make_pack("Video Generation - A", pack_id="p1")]
    lab.packs = [make_pack("Image Generation - B", pack_id="p1")]
    lab.qps_interval_s = kling.qps_interval_s = 0
    code, out, _ = run(["balance"], two_accounts(kling, lab))
    assert code == 0 and "== Account Studio ==" in out and "== Account china-lab ==" in out
    code, out, _ = run(["balance", "--account", "CHINA-LAB"], two_accounts(kling, lab))
    assert code == 0 and "Image Generation - B" in out and "Video Generation - A" not in out
    code, _, err = run(["balance", "--account", "nope"], two_accounts(kling, lab))
    assert code == 2 and "Studio, china-lab" in err


def test_demo_with_kling_accounts_shows_two_sample_accounts() -> None:
    """`balance --demo` with KLING_ACCOUNTS set shows two sample accounts, named."""
    code, out, _ = run(["balance", "--demo"], {"KLING_ACCOUNTS": "studio,lab"})
    assert code == 0 and "== Account studio ==" in out and "== Account lab ==" in out


# -- warnings, DMs and state ------------------------------------------------------------------


@pytest.fixture
def world(kling: FakeKling, lab: FakeKling, slack: FakeSlack, database_url: str) -> Iterator[World]:
    lab.qps_interval_s = 0
    w = World(kling, slack, database_url, **two_accounts(kling, lab))
    yield w
    w.close()


def test_check_warns_for_the_good_account_while_the_other_fails(world: World, kling: FakeKling, lab: FakeKling) -> None:
    """With one account down, the other's run-out is warned, naming its account; the down one decides nothing."""
    pack = make_pack("Video Generation - A", remaining=10, pack_id="p1")
    kling.packs = [pack]
    lab.packs = [make_pack("Image Generation - B", remaining=10, pack_id="p1")]
    world.check()
    kling.packs = [{**pack, "status": "runOut", "remaining_quantity": 0}]
    lab.fail_next(100, 503, 5001, "maintenance")
    world.check()
    [post] = world.posts(ALERTS)
    assert "Video Generation - A" in post["text"] and "account Studio" in post["text"]
    assert world.jobs.last_kling_errors and "china-lab" in [a.name for a in world.jobs.last_kling_errors]


def test_the_same_pack_id_in_two_accounts_is_two_packs(world: World, kling: FakeKling, lab: FakeKling) -> None:
    """Pack ids are unique only within an account: the same id running out in both gives two warnings."""
    kling.packs = [make_pack("Video Generation - A", remaining=10, pack_id="dup")]
    lab.packs = [make_pack("Video Generation - B", remaining=10, pack_id="dup")]
    world.check()
    kling.packs = [{**kling.packs[0], "status": "runOut", "remaining_quantity": 0}]
    lab.packs = [{**lab.packs[0], "status": "runOut", "remaining_quantity": 0}]
    world.check()
    world.check()
    texts = sorted(p["text"] for p in world.posts(ALERTS))
    assert len(texts) == 2 and "account Studio" in texts[1] + texts[0] and "account china-lab" in " ".join(texts)


def test_thresholds_watch_each_account_separately_or_one_account(
    world: World, kling: FakeKling, lab: FakeKling
) -> None:
    """`subscribe 20%` watches each account's families on their own; `on china-lab` only that account's."""
    kling.packs = [make_pack("Video Generation - A", total=1000, remaining=900, pack_id="a")]
    lab.packs = [make_pack("Video Generation - B", total=1000, remaining=900, pack_id="b")]
    world.check()
    world.command("subscribe 20%", user_id="U_ALL")
    reply = all_text(world.command("subscribe 20% for video on china-lab", user_id="U_LAB"))
    assert "account *china-lab*" in reply
    assert "china-lab" in all_text(world.command("subscriptions", user_id="U_LAB"))
    kling.packs = [make_pack("Video Generation - A", total=1000, remaining=100, pack_id="a")]
    world.check()
    [dm] = world.dms("U_ALL")
    assert "account Studio" in dm["text"]
    assert world.dms("U_LAB") == []
    lab.packs = [make_pack("Video Generation - B", total=1000, remaining=50, pack_id="b")]
    world.check()
    assert len(world.dms("U_ALL")) == 2 and len(world.dms("U_LAB")) == 1
    assert "account china-lab" in world.dms("U_LAB")[0]["text"]


def test_an_account_added_later_is_baselined_alone(
    kling: FakeKling, lab: FakeKling, slack: FakeSlack, database_url: str
) -> None:
    """Adding an account later: its old expired packs are not announced, and the first account goes on."""
    kling.qps_interval_s = lab.qps_interval_s = 0
    kling.packs = [make_pack("Video Generation - A", remaining=10, pack_id="a")]
    lab.packs = [
        make_pack("Image Generation - old", status="expired", expires_in_days=-30, pack_id="old"),
        make_pack("Image Generation - live", pack_id="live"),
    ]
    env = {"KLING_ACCOUNTS": "Studio", "KLING_STUDIO_API_BASE": kling.url, "KLING_STUDIO_API_KEY": API_KEY}
    w = World(kling, slack, database_url, **env)
    try:
        w.check()
        w.env.update(two_accounts(kling, lab, lab_key=API_KEY), KLING_STUDIO_API_KEY=API_KEY)
        w.restart()
        report = w.check()
        assert report is not None and report.baselined == ["china-lab"]  # Studio kept its state
        kling.packs = [{**kling.packs[0], "status": "runOut", "remaining_quantity": 0}]
        w.check()
        [post] = w.posts(ALERTS)
        assert "used up" in post["text"]
    finally:
        w.close()


def test_digest_has_a_section_per_account(world: World, kling: FakeKling, lab: FakeKling) -> None:
    """The digest names each account and keeps their families apart."""
    kling.packs = [make_pack("Video Generation - A", total=1000, remaining=400, pack_id="a")]
    lab.packs = [make_pack("Video Generation - B", total=1000, remaining=700, pack_id="b")]
    world.check()
    world.clock.advance(timedelta(hours=1).total_seconds())
    payload = world.jobs.digest_payload()
    text = all_text(payload)
    assert "Account* *Studio*" in text.replace("_", "") or "Studio" in text
    assert "400 / 1,000" in text and "700 / 1,000" in text and "1,100" not in text
    assert_valid_message(payload)


def test_slack_sees_no_account_name_with_one_account(kling: FakeKling, slack: FakeSlack, database_url: str) -> None:
    """Without KLING_ACCOUNTS, replies never mention an account."""
    kling.packs = [make_pack("Video Generation - A", pack_id="a")]
    for bot in start_bot(kling, slack, database_url):
        text = all_text(send(bot, "", "one"))
        assert "Account" not in text and "default" not in text


def test_one_account_answers_while_the_other_is_slow(
    kling: FakeKling, lab: FakeKling, slack: FakeSlack, database_url: str
) -> None:
    """A slow account does not delay the other's packs beyond the bounded wait: the reply names it as slow."""
    import threading

    kling.packs = [make_pack("Video Generation - A", pack_id="a")]
    lab.gate = threading.Event()
    try:
        for bot in start_bot(kling, slack, database_url, **two_accounts(kling, lab)):
            text = all_text(send(bot, "", "slow"))
            assert "Account Studio" in text and "Video Generation - A" in text
            assert "Account china-lab" in text and "slow to answer" in text
    finally:
        lab.gate.set()


def test_bot_token_is_checked_once_whatever_the_accounts(kling: FakeKling, lab: FakeKling, slack: FakeSlack) -> None:
    """Setting names stay per account in errors: a missing key names the account's own variable."""
    env = {"KLING_ACCOUNTS": "studio", "SLACK_BOT_TOKEN": BOT_TOKEN}
    code, _, err = run(["balance"], env)
    assert code == 2 and "KLING_STUDIO_ACCESS_KEY" in err and "for account studio" in err


def test_going_from_one_account_to_several_repeats_nothing(
    kling: FakeKling, lab: FakeKling, slack: FakeSlack, database_url: str
) -> None:
    """A bot with one unnamed account that gets KLING_ACCOUNTS=Studio,china-lab: Studio keeps its
    state, warnings and subscriptions; nothing is said again."""
    kling.qps_interval_s = lab.qps_interval_s = 0
    kling.packs = [make_pack("Video Generation - A", total=1000, remaining=500, pack_id="a", expires_in_days=3)]
    w = World(kling, slack, database_url)  # KLING_API_BASE + KLING_API_KEY: one account
    try:
        w.check()
        w.command("subscribe 60%")
        w.check()
        said = len(w.posts(ALERTS)), len(w.dms("U_ALICE"))
        assert said == (1, 1)
        w.env.update(two_accounts(kling, lab))
        w.restart()
        report = w.check()
        w.check()
        assert report is not None and report.baselined == ["china-lab"]
        assert (len(w.posts(ALERTS)), len(w.dms("U_ALICE"))) == said
    finally:
        w.close()

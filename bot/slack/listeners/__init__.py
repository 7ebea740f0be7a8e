"""Wire every listener onto the app; the listener functions stay plain and importable.

A listener calls `ack()` and hands the rest to `background.run(...)` (see
`bot.slack.app.Background`): nothing slow, and nothing that can raise, after the ack."""

from slack_bolt import App

from bot.slack.listeners import commands, events, mutes


def register(app: App) -> None:
    commands.register(app)
    events.register(app)
    mutes.register(app)

"""Wire every listener onto the app; the listener functions stay plain and importable."""

from slack_bolt import App

from bot.slack.listeners import commands


def register(app: App) -> None:
    commands.register(app)

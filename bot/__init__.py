"""Kling Balance Bot: Kling AI resource-pack balances in Slack."""

__version__ = "0.1.0"

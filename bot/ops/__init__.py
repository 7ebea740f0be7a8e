"""Operator tools: commands that look at a deployment rather than run it (`kling-bot doctor`)."""

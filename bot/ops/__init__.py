"""Operator tools: what operators see of a deployment (`kling-bot doctor`, metrics, readiness)."""

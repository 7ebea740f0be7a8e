"""What operators see of a running bot: metrics and readiness."""

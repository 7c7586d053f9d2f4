"""opsbook: a declarative runbook engine for incident response."""

__version__ = "0.1.0"

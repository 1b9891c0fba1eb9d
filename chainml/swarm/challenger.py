"""The challenger now lives with the other actors (``chainml.actors.challenger``)."""

from chainml.actors.challenger import Challenge, Challenger

__all__ = ["Challenge", "Challenger"]

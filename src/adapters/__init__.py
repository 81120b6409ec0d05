"""Adapters: the concrete systems behind talkcore's ports."""

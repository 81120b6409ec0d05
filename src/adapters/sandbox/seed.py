"""Generated, deterministic data sets for both sandboxes (placeholder; filled in below)."""

from __future__ import annotations

from adapters.sandbox.poweroffice import PowerOfficeSandbox
from adapters.sandbox.zendesk import ZendeskSandbox


def seed_sandboxes(po: PowerOfficeSandbox, zd: ZendeskSandbox, *, size: int, seed: int) -> None:
    """Fill both sandboxes with a realistic data set of about `size` customers."""
    for n in range(size):
        po.add_customer(Name=f"Kunde {seed}-{n}")

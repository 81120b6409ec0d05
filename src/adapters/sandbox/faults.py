"""Fault injection and the crash hook, shared by both sandbox apps when they are served together.

A `Controller` decides, deterministically from a seed and the order requests arrive in, which
requests get a fault instead of (or on top of) a normal answer, counts requests and writes, and
can withhold the response to the Nth write until a test releases it (so the test can kill the
client at the worst moment: the write applied, the answer not yet seen).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import attrs

#: Every fault the controller can inject.
FAULT_KINDS: tuple[str, ...] = (
    "429",  # throttled, with Retry-After
    "429_no_retry_after",  # throttled, no Retry-After header
    "500",
    "502",
    "503",
    "delay",  # answered normally, but only after `delay_seconds` (past the client's timeout)
    "cut_off",  # applied, then the body is cut off mid-transfer and the connection closed
    "html",  # an HTML page (a proxy's or portal's) instead of the API's JSON
)

#: Faults answered without touching the data.
REFUSING_FAULTS = frozenset({"429", "429_no_retry_after", "500", "502", "503", "html"})


@attrs.frozen
class FaultConfig:
    """Which share of requests gets a fault, which faults, and their parameters."""

    rate: float = attrs.field(
        default=0.0,
        validator=attrs.validators.and_(attrs.validators.ge(0.0), attrs.validators.le(1.0)),
    )
    seed: int = 0
    kinds: tuple[str, ...] = attrs.field(default=FAULT_KINDS, converter=tuple)
    delay_seconds: float = 30.0
    retry_after_seconds: int = 1
    html_status: int = 200

    @kinds.validator
    def _known_kinds(self, _attribute: object, value: tuple[str, ...]) -> None:
        unknown = set(value) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")

    def to_json(self) -> dict[str, Any]:
        """The configuration as JSON-ready data."""
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any], base: FaultConfig | None = None) -> FaultConfig:
        """A configuration from JSON data; missing keys keep `base`'s values."""
        merged = (base or cls()).to_json()
        unknown = set(data) - set(merged)
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        merged.update(data)
        return cls(**merged)


@attrs.define
class Controller:
    """Fault decisions, request/write counters and the hold-after-N-writes hook.

    Thread-safe; one instance may serve both sandbox apps so writes are counted across them.
    """

    faults: FaultConfig = attrs.Factory(FaultConfig)
    sleep: Callable[[float], None] = time.sleep
    _rng: random.Random = attrs.field(init=False)
    _cond: threading.Condition = attrs.field(init=False, factory=threading.Condition)
    requests: Counter[str] = attrs.field(init=False, factory=Counter)
    injected: Counter[str] = attrs.field(init=False, factory=Counter)
    writes: int = attrs.field(init=False, default=0)
    _hold_after: int | None = attrs.field(init=False, default=None)
    _held: str | None = attrs.field(init=False, default=None)
    _released: bool = attrs.field(init=False, default=False)

    def __attrs_post_init__(self) -> None:
        self._rng = random.Random(self.faults.seed)

    # -- configuration ---------------------------------------------------------------------

    def configure(self, faults: FaultConfig) -> None:
        """Replace the fault configuration and restart its random sequence from its seed."""
        with self._cond:
            self.faults = faults
            self._rng = random.Random(faults.seed)

    def hold_after_writes(self, count: int | None) -> None:
        """Withhold the response to the `count`-th write from now on (counted from zero)."""
        with self._cond:
            self._hold_after = None if count is None else self.writes + count
            self._released = False

    def release(self) -> None:
        """Let a withheld response go (and cancel a pending hold)."""
        with self._cond:
            self._released = True
            self._hold_after = None
            self._cond.notify_all()

    def reset_counters(self) -> None:
        """Zero the request, fault and write counters."""
        with self._cond:
            self.requests.clear()
            self.injected.clear()
            self.writes = 0

    def wait_until_held(self, timeout: float) -> bool:
        """Block until a response is being withheld; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._held is not None, timeout)

    # -- used by the apps --------------------------------------------------------------------

    def count_request(self, endpoint: str) -> None:
        """Count a request to an endpoint (e.g. "zendesk GET /api/v2/users")."""
        with self._cond:
            self.requests[endpoint] += 1

    def pick_fault(self) -> str | None:
        """Draw the fault (or None) for the next request, deterministically from the seed."""
        with self._cond:
            config = self.faults
            if config.rate <= 0 or not config.kinds:
                return None
            # Two draws per request whatever the outcome, so the sequence depends only on the
            # number of requests seen, not on which of them were faulted.
            hit = self._rng.random() < config.rate
            kind = config.kinds[self._rng.randrange(len(config.kinds))]
            if not hit:
                return None
            self.injected[kind] += 1
            return kind

    def note_write(self, description: str) -> None:
        """Count an applied write; block here if it is the one to hold, until released."""
        with self._cond:
            self.writes += 1
            if self._hold_after is None or self.writes != self._hold_after:
                return
            self._held = description
            self._released = False
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._released)
            self._held = None
            self._released = False

    # -- reporting ---------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Counters, configuration and hold status as JSON-ready data."""
        with self._cond:
            return {
                "faults": self.faults.to_json(),
                "requests": dict(sorted(self.requests.items())),
                "faults_injected": dict(sorted(self.injected.items())),
                "writes": self.writes,
                "hold_after_writes": self._hold_after,
                "held": self._held is not None,
                "held_request": self._held,
            }

    def apply(self, command: dict[str, Any]) -> dict[str, Any]:
        """Apply a control command (the body of `POST /_sandbox/control`); returns state().

        Keys: `faults` (partial FaultConfig), `hold_after_writes` (int or null), `release`
        (true), `reset_counters` (true).
        """
        unknown = set(command) - {"faults", "hold_after_writes", "release", "reset_counters"}
        if unknown:
            raise ValueError(f"unknown control keys: {sorted(unknown)}")
        if "faults" in command:
            self.configure(FaultConfig.from_json(dict(command["faults"]), self.faults))
        if command.get("reset_counters"):
            self.reset_counters()
        if command.get("release"):
            self.release()
        if "hold_after_writes" in command:
            value = command["hold_after_writes"]
            self.hold_after_writes(None if value is None else int(value))
        return self.state()

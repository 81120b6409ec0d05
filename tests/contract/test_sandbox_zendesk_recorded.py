"""The Zendesk sandbox answers every recorded request like the real Zendesk did.

Each recorded file is replayed in order against a fresh sandbox. Ids the real account assigned
are rewritten to the ids the sandbox assigned (learnt from the responses as we go), and each
answer must have the recorded status and the recorded shape: same keys, same JSON types,
recursively (ids, times and counts may differ).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from sandbox_support import ZENDESK_RECORDED, shape_problems, zendesk_client

from adapters.sandbox import FakeClock, ZendeskSandbox

RECORDINGS = sorted(ZENDESK_RECORDED.glob("*.json")) if ZENDESK_RECORDED.is_dir() else []
pytestmark = pytest.mark.skipif(
    not RECORDINGS,
    reason="recorded Zendesk traffic not found under ../shared/fixtures/zendesk-recorded/ "
    "(it lives beside the repository, not in it)",
)
# Headers the recordings keep that every sandbox answer must carry too.
CARRIED_HEADERS = ("x-rate-limit", "x-rate-limit-remaining", "location")


class IdMap:
    """Recorded ids (numbers and job ids) to the sandbox's, learnt from paired responses."""

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}

    def learn(self, recorded: Any, actual: Any) -> None:
        """Pair ids found at the same places in a recorded and an actual response."""
        if isinstance(recorded, dict) and isinstance(actual, dict):
            for key, value in recorded.items():
                other = actual.get(key)
                if key == "id" and value is not None and other is not None:
                    self.ids.setdefault(str(value), str(other))
                else:
                    self.learn(value, other)
        elif isinstance(recorded, list) and isinstance(actual, list):
            for left, right in zip(recorded, actual, strict=False):
                self.learn(left, right)

    def rewrite_text(self, text: str) -> str:
        """Replace every known recorded id in a path or query value."""
        return re.sub(r"V3-[0-9a-f]+|\d{6,}", lambda m: self.ids.get(m.group(0), m.group(0)), text)

    def rewrite_json(self, body: Any) -> Any:
        """Replace known recorded ids in `id` fields of a request body."""
        if isinstance(body, dict):
            return {
                k: (self._swap(v) if k == "id" else self.rewrite_json(v)) for k, v in body.items()
            }
        if isinstance(body, list):
            return [self.rewrite_json(v) for v in body]
        return body

    def _swap(self, value: Any) -> Any:
        mapped = self.ids.get(str(value))
        if mapped is None:
            return value
        return int(mapped) if isinstance(value, int) else mapped


def _sandbox() -> ZendeskSandbox:
    # A clock at the real "now", so start_time=0 is far enough in the past; two polls per job,
    # as the recordings show (queued, working, completed).
    zd = ZendeskSandbox(clock=FakeClock(time.time()), job_polls=2)
    for n in range(150):
        zd.add_user(name=f"Eksisterende bruker {n}", email=f"bruker{n}@eksempel.no")
    return zd


@pytest.mark.parametrize("recording", RECORDINGS, ids=lambda p: Path(p).stem[:60])
def test_sandbox_answers_like_the_recording(recording: Path) -> None:
    interactions = json.loads(recording.read_text(encoding="utf-8"))
    zd = _sandbox()
    ids = IdMap()
    with zendesk_client(zd) as client:
        for number, interaction in enumerate(interactions):
            request, expected = interaction["request"], interaction["response"]
            path = ids.rewrite_text(request["path"])
            query = {k: [ids.rewrite_text(v) for v in vs] for k, vs in request["query"].items()}
            body = ids.rewrite_json(request.get("json"))
            kwargs: dict[str, Any] = {"params": query}
            if body is not None:
                kwargs["json"] = body
            response = client.request(request["method"], path, **kwargs)
            where = f"#{number} {request['method']} {request['path']}"
            assert response.status_code == expected["status"], (where, response.text[:300])
            actual = response.json() if response.content else None
            problems = shape_problems(expected["json"], actual)
            assert not problems, (where, problems[:10])
            for header in CARRIED_HEADERS:
                if header in expected["headers"]:
                    assert header in response.headers, (where, header)
            ids.learn(expected["json"], actual)


def test_shape_comparison_catches_differences() -> None:
    """The comparison used above can fail: a missing key, an extra key, a changed type."""
    recorded = {"user": {"id": 1, "name": "a", "tags": ["x"], "photo": None}}
    assert shape_problems(recorded, {"user": {"id": 2, "name": "b", "tags": [], "photo": {}}})
    assert shape_problems(recorded, {"user": {"id": 2, "tags": ["y"], "photo": None}})
    assert shape_problems(recorded, {"user": {"id": "2", "name": "b", "tags": ["y"], "x": 1}})
    assert not shape_problems(recorded, {"user": {"id": 2, "name": "b", "tags": ["z"], "photo": 3}})

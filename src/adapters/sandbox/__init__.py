"""Local stand-ins for PowerOffice Go v2 and Zendesk Support, for tests and demos.

They share no code with the real adapters (a second, independent reading of each API) and
depend only on the standard library and attrs.
"""

from adapters.sandbox.base import FakeClock
from adapters.sandbox.faults import FAULT_KINDS, Controller, FaultConfig
from adapters.sandbox.poweroffice import PowerOfficeCredentials, PowerOfficeSandbox
from adapters.sandbox.server import RunningSandboxes, serve_forever, serve_sandboxes
from adapters.sandbox.zendesk import ZendeskCredentials, ZendeskSandbox

__all__ = [
    "FAULT_KINDS",
    "Controller",
    "FakeClock",
    "FaultConfig",
    "PowerOfficeCredentials",
    "PowerOfficeSandbox",
    "RunningSandboxes",
    "ZendeskCredentials",
    "ZendeskSandbox",
    "serve_forever",
    "serve_sandboxes",
]

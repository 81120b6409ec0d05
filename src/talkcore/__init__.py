"""talkcore: the pure sync core of talksync. Values in, values out; no I/O.

The engine (``run_sync``, ``plan_run``) is the one exception: it touches the world only through
the ports (``SystemPort``, ``StateStore``) it is given.
"""

from talkcore.dataflow import (
    DEFAULT_DATAFLOW,
    Dataflow,
    Flow,
    PropertyMap,
    Reference,
    Role,
    render_checklist,
)
from talkcore.engine import RunObserver, RunOptions, RunReport, plan_run, run_sync
from talkcore.plan import Plan
from talkcore.planning import plan_changes
from talkcore.policy import ConflictPolicy, FlowPolicy, NameCollisionPolicy, SyncPolicy
from talkcore.ports import (
    AlreadyRunning,
    StateStore,
    SystemPort,
    SystemUnavailable,
    WriteError,
    WriteOp,
    WriteRequest,
    WriteResult,
)
from talkcore.records import (
    Kind,
    ReadPages,
    ReadResult,
    Record,
    RecordKey,
    RecordProblem,
    Snapshot,
    System,
    collect_read,
)
from talkcore.state import SyncState, fold_results

__all__ = [
    "DEFAULT_DATAFLOW",
    "AlreadyRunning",
    "ConflictPolicy",
    "Dataflow",
    "Flow",
    "FlowPolicy",
    "Kind",
    "NameCollisionPolicy",
    "Plan",
    "PropertyMap",
    "ReadPages",
    "ReadResult",
    "Record",
    "RecordKey",
    "RecordProblem",
    "Reference",
    "Role",
    "RunObserver",
    "RunOptions",
    "RunReport",
    "Snapshot",
    "StateStore",
    "SyncPolicy",
    "SyncState",
    "System",
    "SystemPort",
    "SystemUnavailable",
    "WriteError",
    "WriteOp",
    "WriteRequest",
    "WriteResult",
    "collect_read",
    "fold_results",
    "plan_changes",
    "plan_run",
    "render_checklist",
    "run_sync",
]

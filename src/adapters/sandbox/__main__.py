"""`python -m adapters.sandbox --size N --seed S`: print the exports, then serve until Ctrl-C."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from adapters.sandbox.faults import FaultConfig
from adapters.sandbox.server import serve_forever


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and serve both sandboxes."""
    parser = argparse.ArgumentParser(prog="python -m adapters.sandbox", description=__doc__)
    parser.add_argument("--size", type=int, default=20, help="number of customers to generate")
    parser.add_argument("--seed", type=int, default=1, help="seed for the generated data")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="PowerOffice port (Zendesk: +1)")
    parser.add_argument("--zendesk-rate-limit", type=int, default=None, help="requests/minute")
    parser.add_argument("--poweroffice-rate-limit", type=int, default=None, help="requests/second")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of faulted requests")
    parser.add_argument("--fault-seed", type=int, default=0)
    args = parser.parse_args(argv)
    faults = FaultConfig(rate=args.fault_rate, seed=args.fault_seed)
    serve_forever(
        args.size,
        args.seed,
        host=args.host,
        port=args.port,
        zendesk_rate_limit=args.zendesk_rate_limit,
        poweroffice_rate_limit=args.poweroffice_rate_limit,
        faults=faults,
    )


if __name__ == "__main__":
    main()

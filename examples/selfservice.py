#!/usr/bin/env python3
"""The example self-service back end for the sample hotline's balance and
data lookups (ivr_flows/hotline.yaml calls http://127.0.0.1:8099/account?msisdn=...).

    python3 examples/selfservice.py                      # examples/accounts.csv, port 8099
    python3 examples/selfservice.py --accounts my.csv --port 8100
    curl 'http://127.0.0.1:8099/account?msisdn=13800138000'

The server itself is acd/loadsim/selfservice.py (standard library only; the
demo runs it in-process too); docs/selfservice.md says what it answers and
how to put your own back end in its place.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # this checkout's acd, installed or not

from acd.loadsim.selfservice import main  # noqa: E402 - after the path is set

if __name__ == "__main__":
    sys.exit(main(default_accounts=HERE / "accounts.csv"))

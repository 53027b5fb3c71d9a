"""Run by tests/test_faults.py: `scorelab ARGS...` with a fault injected into checkpointing.

    python crash_worker.py MODE N -- scorelab arguments...

MODE, at the N-th `atomic_write` into checkpoints/ by this process (a checkpoint makes three:
weights, state, then checkpoint.json, the commit point; other files written atomically, such as
a truncated metrics.jsonl on resume, do not count):
- none: no fault;
- torn: write half of the bytes to the temp file, then SIGKILL (a kill mid-write);
- written: SIGKILL right after the write completed (a tensor file in place, not committed;
  or, for checkpoint.json, committed but the old files not yet deleted).
"""

from __future__ import annotations

import os
import signal
import sys


def main() -> int:
    mode, n = sys.argv[1], int(sys.argv[2])
    args = sys.argv[sys.argv.index("--") + 1 :]
    import scorelab.checkpoint as ck
    from scorelab.cli import main as cli

    original = ck.atomic_write
    calls = 0

    def faulty(path, data):
        nonlocal calls
        if path.parent.name != "checkpoints":
            return original(path, data)
        calls += 1
        if mode == "torn" and calls == n:
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
            with open(tmp, "wb") as f:
                f.write(data[: len(data) // 2])
                f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        original(path, data)
        if mode == "written" and calls == n:
            os.kill(os.getpid(), signal.SIGKILL)

    ck.atomic_write = faulty
    return cli(args)


if __name__ == "__main__":
    sys.exit(main())

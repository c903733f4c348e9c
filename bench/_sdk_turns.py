"""Turn-latency baseline: the same short real turns through the official ``openai-codex`` SDK.

Usage: python bench/_sdk_turns.py CWD (with CODEX_HOME etc. of the fake provider in the
environment). Same binary, same fake provider, same prompt as ``bench/_turns.py``, and the same
lockstep protocol: one turn per line read on stdin, one JSON line of milliseconds printed per
turn (``turn/start`` answered, first agent-message delta, ``turn/completed``, and the CPU time
of this process: its threads included, the codex child not, as for codexd).
"""

from __future__ import annotations

import os
import sys
import time

from _lockstep import turn_row
from openai_codex import Codex
from openai_codex.client import CodexConfig

from codexd._binary import bundled_codex


def main(cwd: str) -> None:
    config = CodexConfig(codex_bin=bundled_codex(), cwd=cwd, env=dict(os.environ))
    with Codex(config) as codex:
        thread = codex.thread_start(cwd=cwd)
        print("ready", flush=True)
        for _go in sys.stdin:
            cpu = time.process_time()
            started = time.perf_counter()
            handle = thread.turn("Say hello.")
            answered = time.perf_counter()
            first = None
            for note in handle.stream():
                if note.method == "item/agentMessage/delta" and first is None:
                    first = time.perf_counter()
            done = time.perf_counter()
            print(turn_row(started, answered, first or done, done, cpu), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])

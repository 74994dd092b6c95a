"""Wall time and conditional accuracy of `genlab demo` on this machine.

    python benchmarks/demo.py

Runs the demo exactly as `make demo` does (same defaults) into outputs/bench_demo/ and stores
its metrics. Target: ≤ 3 minutes on 2 CPU cores with ≥ 90 % conditional accuracy.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import header, save  # noqa: E402

from genlab.demo import DemoConfig, run_demo  # noqa: E402


def main() -> None:
    info = header("genlab demo: wall time and conditional accuracy")
    metrics = run_demo("outputs/bench_demo", DemoConfig(), progress=False)
    ok_time, ok_acc = metrics["wall_seconds"] <= 180, metrics["conditional_accuracy"] >= 0.90
    print(f"target ≤ 180 s: {'met' if ok_time else 'MISSED'} ({metrics['wall_seconds']:.0f} s); "
          f"target ≥ 90 %: {'met' if ok_acc else 'MISSED'} ({metrics['conditional_accuracy']:.1%})")  # fmt: skip
    save("demo", {**metrics, **info})


if __name__ == "__main__":
    main()

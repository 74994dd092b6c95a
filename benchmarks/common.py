"""What every benchmark prints and stores: when, on what machine, with which software."""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    import numpy
    import torch

    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{cpu_model()}, {os.cpu_count()} logical cores, {platform.system()} {platform.machine()}",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        # the 1-minute load average when the run started: above the core count, other work shared the CPU
        # and wall times are inflated (quality figures of fixed-step runs are not affected)
        "load_average": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }


def header(title: str) -> dict:
    info = machine_info()
    print(f"# {title}")
    print(f"date: {info['date']} | machine: {info['machine']} | torch {info['torch']} ({info['torch_threads']} threads) "
          f"| load average {info['load_average']}")
    return info


def save(name: str, payload: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    print(f"saved {path.relative_to(RESULTS.parent.parent)}")
    return path


def feature_network_or_exit(dataset: str = "mnist", title: str = "MNIST"):
    """genlab's feature network for ``dataset``, or exit with one line saying where the data was looked for."""
    from genlab.errors import GenlabError
    from genlab.metrics import feature_network

    try:
        return feature_network(dataset, progress=False)
    except GenlabError as err:
        raise SystemExit(f"{err}\n(this benchmark reads {title} from GENLAB_DATA={os.environ.get('GENLAB_DATA', '(unset)')})") from None

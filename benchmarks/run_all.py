"""Run every benchmark in turn, then write BENCHMARKS.md.  `make bench` calls this."""

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["demo.py", "unet_throughput.py", "mnist_5min.py", "guidance_mnist.py", "mnist_recipes.py", "samplers_mnist.py", "em_vs_sklearn.py", "vae_mnist.py",
           "gan_modes.py", "families_mnist.py", "text2image_mnist.py", "lora_mnist.py", "quality_per_step.py", "dit_vs_unet.py"]
NEEDS_MNIST = {"mnist_5min.py", "guidance_mnist.py", "mnist_recipes.py", "samplers_mnist.py", "vae_mnist.py", "families_mnist.py",
               "text2image_mnist.py", "lora_mnist.py", "quality_per_step.py", "dit_vs_unet.py"}

for script in SCRIPTS:
    if script in NEEDS_MNIST and not os.environ.get("GENLAB_DATA"):
        print(f"skipping {script}: set GENLAB_DATA to a folder with the MNIST IDX files")
        continue
    print(f"== {script}", flush=True)
    subprocess.run([sys.executable, str(HERE / script)], check=True)
    if script == "mnist_5min.py":  # the same report for Fashion-MNIST, where its files are present
        print("== mnist_5min.py --dataset fashion_mnist", flush=True)
        if subprocess.run([sys.executable, str(HERE / script), "--dataset", "fashion_mnist"]).returncode != 0:
            print("skipped Fashion-MNIST in 5 minutes: its files are not under GENLAB_DATA (the message above says which)")
subprocess.run([sys.executable, str(HERE / "report.py")], check=True)

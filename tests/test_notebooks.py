"""The course notebooks: committed clean, named as in the curriculum, parametrised, and executable.

The runner itself (scripts/run_notebooks.py) is tested on tiny notebooks written here, so these
tests mean something even before the course notebooks exist.
"""

import gzip
import importlib.util
import json
import os
import struct
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks" / "generative"


def _load_runner():
    spec = importlib.util.spec_from_file_location("run_notebooks", REPO / "scripts" / "run_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["run_notebooks"] = module
    spec.loader.exec_module(module)
    return module


runner = sys.modules.get("run_notebooks") or _load_runner()

# The fixed file names of Part I (CURRICULUM.md, notebooks 30..45): learners and links rely on them.
CURRICULUM_NOTEBOOKS = (
    "30_probability_and_normal_distribution_v1.ipynb",
    "31_maximum_likelihood_estimation_v1.ipynb",
    "32_multivariate_normal_distribution_v1.ipynb",
    "33_gaussian_mixture_models_v1.ipynb",
    "34_expectation_maximization_algorithm_v1.ipynb",
    "35_pytorch_fundamentals_v1.ipynb",
    "36_neural_networks_mnist_v1.ipynb",
    "37_variational_autoencoder_theory_v1.ipynb",
    "38_variational_autoencoder_implementation_v1.ipynb",
    "39_diffusion_models_theory_basics_v1.ipynb",
    "40_diffusion_models_theory_elbo_v1.ipynb",
    "41_unet_positional_encoding_v1.ipynb",
    "42_diffusion_model_implementation_v1.ipynb",
    "43_diffusion_model_training_v1.ipynb",
    "44_conditional_diffusion_models_v1.ipynb",
    "45_guidance_stable_diffusion_v1.ipynb",
)
# Part V (notebooks 46..58), the advanced lectures: the same rule
PART_V_NOTEBOOKS = (
    "46_sampling_methods_v1.ipynb",
    "47_generative_adversarial_networks_v1.ipynb",
    "48_gan_stabilization_stylegan_v1.ipynb",
    "49_score_based_models_v1.ipynb",
    "50_fast_samplers_v1.ipynb",
    "51_diffusion_in_depth_v1.ipynb",
    "52_latent_diffusion_v1.ipynb",
    "53_diffusion_applications_v1.ipynb",
    "54_text_to_image_and_customization_v1.ipynb",
    "55_flow_matching_v1.ipynb",
    "56_diffusion_transformer_v1.ipynb",
    "57_consistency_models_v1.ipynb",
    "58_deployment_onnx_v1.ipynb",
)

NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
by_name = pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])


# ------------------------------------------------------------------- the committed notebooks
def test_curriculum_list_has_sixteen_numbered_names():
    assert [int(n[:2]) for n in CURRICULUM_NOTEBOOKS] == list(range(30, 46))
    assert [int(n[:2]) for n in PART_V_NOTEBOOKS] == list(range(46, 59))


@by_name
def test_notebook_name_is_from_the_curriculum(path):
    assert path.name in CURRICULUM_NOTEBOOKS + PART_V_NOTEBOOKS, f"{path.name} is not a file name from CURRICULUM.md (30..58)"


@by_name
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i + 1 for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or execution counts; save it cleared"


@by_name
def test_notebook_has_one_parameters_cell_defining_smoke(path):
    nb = nbformat.read(path, as_version=4)
    cells = runner.parameters_cells(nb)
    assert len(cells) == 1, f"{path.name}: {len(cells)} code cells tagged 'parameters', need exactly 1"
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert first_code is cells[0], f"{path.name}: the parameters cell must be the first code cell"
    assert "SMOKE" in runner.assigned_names(cells[0].source), f"{path.name}: parameters cell does not set SMOKE"


@pytest.mark.notebook
@by_name
def test_notebook_runs_at_smoke_scale(path, tmp_path):
    # One BLAS thread per pytest-xdist worker, so that two kernels share 2 cores without fighting.
    threads = 1 if os.environ.get("PYTEST_XDIST_WORKER") else None
    try:
        runner.run_notebook(path, smoke=True, out_dir=tmp_path, threads=threads)
    except runner.NotebookExecutionError as err:
        pytest.fail(str(err), pytrace=False)


def _write_idx_gz(path: Path, array: np.ndarray) -> None:
    """An IDX file written by hand (uint8; big-endian header), gzip-compressed, as the MNIST files are."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes(), compresslevel=1))


def place_digit_like_mnist(root: Path) -> dict:
    """MNIST-format files in ``root`` with MNIST's official counts (60 000 / 10 000, which the loader
    checks), holding scikit-learn's 8×8 digits scaled ×3 to 24×24 and placed at a random offset on a
    28×28 canvas: learnable like MNIST, and written here, so no download is needed or attempted."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    small = np.round(digits.images / 16 * 255).astype(np.uint8)          # (1797, 8, 8), 0..255
    big = np.kron(small, np.ones((1, 3, 3), dtype=np.uint8))              # (1797, 24, 24)
    counts = {}
    for prefix, n, seed in (("train", 60_000, 0), ("t10k", 10_000, 1)):
        rng = np.random.default_rng(seed)
        pick = rng.integers(0, len(big), size=n)
        dy, dx = rng.integers(0, 5, size=(2, n))                          # offsets 0..4 on the canvas
        images = np.zeros((n, 28, 28), dtype=np.uint8)
        for oy in range(5):
            for ox in range(5):
                sel = np.flatnonzero((dy == oy) & (dx == ox))
                images[sel, oy:oy + 24, ox:ox + 24] = big[pick[sel]]
        _write_idx_gz(root / f"{prefix}-images-idx3-ubyte.gz", images)
        _write_idx_gz(root / f"{prefix}-labels-idx1-ubyte.gz", digits.target[pick].astype(np.uint8))
        counts[prefix] = n
    return counts


@pytest.mark.notebook
@pytest.mark.slow
def test_notebook_36_runs_on_mnist_format_files(tmp_path, monkeypatch):
    """The MNIST path of notebook 36 (IDX files under $GENLAB_DATA), not only the digits fallback."""
    path = NOTEBOOK_DIR / "36_neural_networks_mnist_v1.ipynb"
    if not path.is_file():
        pytest.skip("notebook 36 not present")
    data = tmp_path / "data"
    data.mkdir()
    place_digit_like_mnist(data)
    placed = sorted(p.name for p in data.iterdir())
    monkeypatch.setenv("GENLAB_DATA", str(data))  # the kernel inherits this process's environment
    threads = 1 if os.environ.get("PYTEST_XDIST_WORKER") else None
    try:
        runner.run_notebook(path, smoke=True, out_dir=tmp_path / "out", threads=threads,
                            parameters={"DATASET": "mnist"})
    except runner.NotebookExecutionError as err:
        pytest.fail(str(err), pytrace=False)
    executed = nbformat.read(tmp_path / "out" / path.name, as_version=4)
    text = "\n".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "データセット: mnist" in text and "1, 28, 28)" in text and "入力次元: 784" in text
    assert "学習用: 分割 'train'、テスト用: 分割 'test'" in text  # both splits were read from the IDX files
    assert sorted(p.name for p in data.iterdir()) == placed      # nothing was downloaded next to them


# ----------------------------------------------------------------- the runner, on tiny notebooks
def write_notebook(path: Path, cells: list) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def params_cell(source: str):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = ["parameters"]
    return cell


def test_smoke_parameters_only_add_dataset_when_defined():
    with_dataset = nbformat.v4.new_notebook(cells=[params_cell('SMOKE = False\nDATASET: str = "mnist"\n')])
    without = nbformat.v4.new_notebook(cells=[params_cell("SMOKE = False\nSTEPS = 10  # DATASET = 1\n")])
    assert runner.smoke_parameters(with_dataset) == {"SMOKE": True, "DATASET": "digits"}
    assert runner.smoke_parameters(without) == {"SMOKE": True}
    assert runner.assigned_names("%matplotlib inline\nSMOKE = False\nA == 1\n") == {"SMOKE"}


def test_run_notebook_injects_smoke_and_uses_this_interpreter(tmp_path):
    folder = tmp_path / "course"
    folder.mkdir()
    nb_path = write_notebook(folder / "99_probe.ipynb", [
        nbformat.v4.new_markdown_cell("# 確認用"),
        params_cell('SMOKE = False\nDATASET = "mnist"'),
        nbformat.v4.new_code_cell(
            "import os, sys, json, matplotlib\n"
            "json.dump({'smoke': SMOKE, 'dataset': DATASET, 'exe': sys.executable, 'cwd': os.getcwd(),\n"
            "           'backend': matplotlib.get_backend(), 'omp': os.environ.get('OMP_NUM_THREADS')},\n"
            "          open('probe.json', 'w'))"
        ),
    ])
    seconds = runner.run_notebook(nb_path, smoke=True, out_dir=tmp_path / "out", threads=1)
    probe = json.loads((folder / "probe.json").read_text())
    assert probe["smoke"] is True and probe["dataset"] == "digits"
    assert probe["exe"] == sys.executable
    assert Path(probe["cwd"]) == folder
    assert "inline" in probe["backend"].lower() and probe["omp"] == "1"
    assert 0 < seconds < 120
    executed = nbformat.read(tmp_path / "out" / "99_probe.ipynb", as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    # The source notebook is untouched (still clean).
    assert all(c.get("execution_count") is None for c in nbformat.read(nb_path, as_version=4).cells
               if c.cell_type == "code")


def test_run_notebook_parameters_override_smoke_ones(tmp_path):
    nb_path = write_notebook(tmp_path / "96_override.ipynb", [
        params_cell('SMOKE = False\nDATASET = "mnist"\nEPOCHS = 8'),
        nbformat.v4.new_code_cell("import json; json.dump([SMOKE, DATASET, EPOCHS], open('seen.json', 'w'))"),
    ])
    runner.run_notebook(nb_path, smoke=True, out_dir=tmp_path / "out", parameters={"DATASET": "mnist", "EPOCHS": 2})
    assert json.loads((tmp_path / "seen.json").read_text()) == [True, "mnist", 2]
    assert runner.parse_overrides(["EPOCHS=2", "DATASET=mnist", "HIDDEN=(8, 8)"]) == {
        "EPOCHS": 2, "DATASET": "mnist", "HIDDEN": (8, 8)}
    with pytest.raises(ValueError, match="NAME=VALUE"):
        runner.parse_overrides(["EPOCHS"])


def test_run_notebook_failure_names_notebook_and_cell(tmp_path):
    nb_path = write_notebook(tmp_path / "98_broken.ipynb", [
        params_cell("SMOKE = False"),
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell("# 失敗するセル\nraise ValueError('boom at smoke scale' if SMOKE else 'learner')"),
        nbformat.v4.new_code_cell("y = 2"),
    ])
    with pytest.raises(runner.NotebookExecutionError) as err:
        runner.run_notebook(nb_path, smoke=True, out_dir=tmp_path / "out")
    summary = err.value.summary
    assert "\n" not in summary
    assert summary.startswith("98_broken.ipynb: cell 3 ")  # 1-based, the injected cell not counted
    assert "ValueError: boom at smoke scale" in summary and "# 失敗するセル" in summary
    details = str(err.value).split("\n", 1)[1]  # the traceback's tail and where the executed copy is
    assert "boom at smoke scale" in details and str(tmp_path / "out" / "98_broken.ipynb") in details


def test_main_reports_and_exit_codes(tmp_path, monkeypatch, capsys):
    write_notebook(tmp_path / "97_ok.ipynb", [params_cell("SMOKE = False"), nbformat.v4.new_code_cell("1 + 1")])
    monkeypatch.setattr(runner, "NOTEBOOK_DIR", tmp_path)
    monkeypatch.setattr(runner, "course_notebooks", lambda folder=None: sorted(tmp_path.glob("*.ipynb")))
    assert runner.main(["--scale", "smoke", "--out", str(tmp_path / "out"), "97"]) == 0
    out = capsys.readouterr().out
    assert "[1/1] 97_ok.ipynb  ok" in out and "1 notebook(s): 1 passed, 0 failed" in out
    assert runner.main(["12"]) == 2
    assert "no notebook matches '12'" in capsys.readouterr().err


def test_kernel_name_falls_back_to_a_private_kernelspec(tmp_path, monkeypatch):
    """If 'python3' would start another interpreter, the runner writes its own kernelspec."""
    from jupyter_client.kernelspec import KernelSpecManager

    monkeypatch.setattr(runner, "_kernel_cache", None)
    default = runner.kernel_name()  # 'python3' in the project venv (argv[0] 'python' → sys.executable)
    assert runner._runs_this_python(KernelSpecManager().get_kernel_spec(default).argv)
    fake = tmp_path / "kernels" / "python3"
    fake.mkdir(parents=True)
    (fake / "kernel.json").write_text(json.dumps(
        {"argv": ["/opt/other/bin/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
         "display_name": "Other", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    name = runner.kernel_name(refresh=True)
    assert name == runner.PRIVATE_KERNEL
    assert KernelSpecManager().get_kernel_spec(name).argv[0] == sys.executable
    monkeypatch.setattr(runner, "_kernel_cache", None)  # the next user re-resolves in its own env

import subprocess
import sys

HEAVY = ["torch", "torch_geometric", "fastapi", "optuna", "matplotlib", "faiss", "numba"]


def test_import_movierec_pulls_in_no_heavy_dependency():
    code = (
        "import sys, movierec, movierec.data, movierec.models, movierec.split\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert 'movierec.models.knn' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_version_is_exposed():
    import movierec

    assert movierec.__version__.count(".") == 2

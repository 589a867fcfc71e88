"""TFF's C++ workers without TFF: `tffprune worker` never loads TensorFlow."""

import subprocess
import sys
from pathlib import Path

from tffprune.fl.workers import worker_binary_path


def test_the_worker_command_loads_neither_tensorflow_nor_tff():
    # What `tffprune worker` imports; TensorFlow's import (and its teardown
    # at exit, 2 s and more on a loaded machine) is what made it slow to stop.
    code = (
        "import sys, tffprune.cli\n"
        "from tffprune.fl.workers import serve_worker\n"
        "from tffprune.data.formats import DataError\n"
        "from tffprune.stopping import interrupt_on_signals\n"
        "print(sorted(m for m in ('tensorflow', 'tensorflow_federated') "
        "if m in sys.modules))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[]"


def test_the_worker_binary_is_the_one_in_the_tff_wheel():
    import tensorflow_federated as tff

    expected = Path(tff.__file__).parent / "data" / "worker_binary"
    assert worker_binary_path() == expected and expected.is_file()

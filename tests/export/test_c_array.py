import shutil
import subprocess

import pytest

from tffprune.export.c_array import c_header, c_source


def test_xxd_layout():
    source = c_source(bytes(range(14)), name="g_model")

    assert "alignas(16) const unsigned char g_model[] = {\n" in source
    assert (
        "  0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b,\n"
        in source
    )
    assert "  0x0c, 0x0d\n};" in source
    assert "const unsigned int g_model_len = 14;" in source


def test_bad_names_and_alignment():
    with pytest.raises(ValueError, match="not a C identifier"):
        c_source(b"x", name="2model")
    with pytest.raises(ValueError, match="power of two"):
        c_source(b"x", alignment=12)


def test_compiles_and_round_trips(tmp_path):
    compiler = shutil.which("c++") or shutil.which("g++")
    assert compiler, "a C++ compiler is needed (g++ is on every machine here)"
    payload = bytes((7 * i + 3) % 256 for i in range(1000))
    (tmp_path / "model_data.h").write_text(c_header())
    (tmp_path / "model_data.cc").write_text(c_source(payload))
    (tmp_path / "main.cc").write_text(
        '#include <cstdint>\n#include <cstdio>\n#include "model_data.h"\n'
        "int main() {\n"
        "  if (reinterpret_cast<std::uintptr_t>(g_model) % 16 != 0) return 3;\n"
        "  std::fwrite(g_model, 1, g_model_len, stdout);\n"
        "  return 0;\n}\n"
    )
    subprocess.run(
        [
            compiler,
            "-std=c++17",
            "-Wall",
            "-Werror",
            "-o",
            str(tmp_path / "dump"),
            str(tmp_path / "main.cc"),
            str(tmp_path / "model_data.cc"),
        ],
        check=True,
        cwd=tmp_path,
    )

    dumped = subprocess.run([str(tmp_path / "dump")], capture_output=True, check=True)

    assert dumped.stdout == payload

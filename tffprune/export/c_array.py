"""A ``.tflite`` model as a C array for firmware (what ``xxd -i`` writes).

``model_data.h`` declares the array and its length; ``model_data.cc`` defines
them, 12 bytes per line, with an alignment attribute (TFLite Micro needs the
flatbuffer 16-byte aligned)::

    alignas(16) const unsigned char g_model[] = {0x1c, 0x00, ...};
    const unsigned int g_model_len = 22984;
"""

from __future__ import annotations

import re

DEFAULT_NAME = "g_model"


def _check_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"{name!r} is not a C identifier")
    return name


def c_header(name: str = DEFAULT_NAME, header_name: str = "model_data.h") -> str:
    """The header declaring ``name`` and ``name_len``."""
    name = _check_name(name)
    guard = re.sub(r"[^A-Z0-9]", "_", header_name.upper()) + "_"
    return (
        f"#ifndef {guard}\n#define {guard}\n\n"
        f"extern const unsigned char {name}[];\n"
        f"extern const unsigned int {name}_len;\n\n"
        f"#endif  // {guard}\n"
    )


def c_source(
    model: bytes,
    name: str = DEFAULT_NAME,
    alignment: int = 16,
    header_name: str = "model_data.h",
) -> str:
    """The source defining the array (``xxd -i`` layout) and its length."""
    name = _check_name(name)
    if alignment < 1 or alignment & (alignment - 1):
        raise ValueError(f"alignment must be a power of two, got {alignment}")
    lines = []
    for start in range(0, len(model), 12):
        chunk = model[start : start + 12]
        lines.append("  " + ", ".join(f"0x{byte:02x}" for byte in chunk))
    body = ",\n".join(lines)
    return (
        f'#include "{header_name}"\n\n'
        f"alignas({alignment}) const unsigned char {name}[] = {{\n{body}\n}};\n"
        f"const unsigned int {name}_len = {len(model)};\n"
    )

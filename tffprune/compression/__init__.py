"""Upload encoding: sparse, quantized client updates with exact byte counts."""

from tffprune.compression.wire import (
    POSITION_CODINGS,
    VALUE_FORMATS,
    PayloadError,
    decode,
    encode,
    quantization_step,
    round_trip,
)

__all__ = [
    "POSITION_CODINGS",
    "VALUE_FORMATS",
    "PayloadError",
    "decode",
    "encode",
    "quantization_step",
    "round_trip",
]

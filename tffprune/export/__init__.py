"""Edge export: TFLite conversion, C arrays, sizes, TFLite/TFLM verification."""

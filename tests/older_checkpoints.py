"""Checkpoints rewritten as older format versions wrote them."""

import json

import numpy as np

from tffprune.pruning.packed_masks import unpack


def read_archive(path):
    """A checkpoint's arrays and its metadata, to edit."""
    with np.load(path) as archive:
        arrays = {key: archive[key] for key in archive.files}
    return arrays, json.loads(arrays.pop("meta").tobytes())


def write_archive(path, arrays, meta):
    """Writes the edited arrays and metadata back as a checkpoint."""
    arrays = {**arrays, "meta": np.frombuffer(json.dumps(meta).encode(), np.uint8)}
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def masks_as_version_5(arrays, meta):
    """Each client's masks as versions up to 5 kept them: one flat bit array.

    Version 6 keeps each weight's packed bytes (NumPy's little-endian
    ``packbits``) in turn; up to 5 the masks of all weights were flattened,
    joined and packed at once with NumPy's default (big-endian) bit order.
    """
    shapes = [tuple(s) for s in meta["shapes"][: meta["num_trainable"]]]
    for key in [k for k in arrays if k.startswith("mask_")]:
        masks, offset = [], 0
        for shape in shapes:
            size = -(-int(np.prod(shape)) // 8)
            masks.append(unpack(arrays[key][offset : offset + size], shape))
            offset += size
        arrays[key] = np.packbits(np.concatenate([m.ravel() for m in masks]))

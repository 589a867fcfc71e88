"""Image classification data sets by name, found on disk before the network.

Sources, in this order (the first that has the data set wins):

1. ``data_dir`` (``--data-dir``), else the ``TFFPRUNE_DATA_DIR`` variable;
2. the Keras cache, ``~/.keras/datasets`` (what ``tf.keras.datasets`` writes);
3. Debian's location ``/usr/share/datasets/<name>``
   (``apt-get install dataset-fashion-mnist``);
4. a Keras download, when the machine is online.

In each directory both the directory itself and a sub-directory named after the
data set are searched. When nothing is found, `DataError` names every place
looked and how to provide the files.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from tffprune.data.formats import DataError, read_cifar_batch, read_idx, read_npz

DEBIAN_ROOT = Path("/usr/share/datasets")
KERAS_CACHE = Path("~/.keras/datasets")
DATA_DIR_VARIABLE = "TFFPRUNE_DATA_DIR"


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A labelled data set split into train and test.

    Attributes:
        name: Registry name (``fashion_mnist``, ``mnist``, ``cifar10``,
            ``digits``), or the user's (an ``.npz`` path, ``arrays``).
        x_train: float32 inputs, shape (N, ...): images (N, height, width,
            channels) in [0, 1] for the named sets, or any feature shape.
        y_train: int32 labels, shape (N,).
        x_test: float32 inputs.
        y_test: int32 labels.
        num_classes: Number of classes.
        source: Where the data came from (a path, or a description).
        notes: What was done to the data on loading (e.g. integer scaling).
        inputs_scaled: Integer inputs were divided by their dtype's maximum
            (the named sets' documented [0, 1]; ``scale_inputs`` for yours).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    source: str
    notes: tuple[str, ...] = ()
    inputs_scaled: bool = False

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example, e.g. (height, width, channels)."""
        return tuple(self.x_train.shape[1:])


_IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
_CIFAR_TRAIN = [f"data_batch_{index}" for index in range(1, 6)]
_CIFAR_TEST = "test_batch"


def _find_file(directory: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def _load_idx_directory(directory: Path) -> dict[str, np.ndarray] | None:
    paths = {key: _find_file(directory, stem) for key, stem in _IDX_FILES.items()}
    if not any(paths.values()):
        return None
    missing = [_IDX_FILES[key] for key, path in paths.items() if path is None]
    if missing:
        raise DataError(
            f"{directory} has only part of an IDX data set: missing "
            f"{', '.join(missing)} (.gz or raw)"
        )
    return {key: read_idx(path) for key, path in paths.items()}


def _load_cifar_directory(directory: Path) -> dict[str, np.ndarray] | None:
    names = [*_CIFAR_TRAIN, _CIFAR_TEST]
    present = [name for name in names if (directory / name).is_file()]
    if not present:
        return None
    missing = sorted(set(names) - set(present))
    if missing:
        raise DataError(
            f"{directory} has only part of CIFAR-10: missing {', '.join(missing)}"
        )
    parts = [read_cifar_batch(directory / name) for name in _CIFAR_TRAIN]
    x_test, y_test = read_cifar_batch(directory / _CIFAR_TEST)
    return {
        "x_train": np.concatenate([images for images, _ in parts]),
        "y_train": np.concatenate([labels for _, labels in parts]),
        "x_test": x_test,
        "y_test": y_test,
    }


@dataclasses.dataclass(frozen=True)
class _Spec:
    """How to find one data set."""

    directory_names: tuple[str, ...]
    npz_names: tuple[str, ...]
    reader: Callable[[Path], dict[str, np.ndarray] | None]
    image_shape: tuple[int, ...]
    num_classes: int
    keras_name: str
    how_to_get: str


_SPECS = {
    "fashion_mnist": _Spec(
        directory_names=("fashion-mnist", "fashion_mnist"),
        npz_names=("fashion_mnist.npz", "fashion-mnist.npz"),
        reader=_load_idx_directory,
        image_shape=(28, 28),
        num_classes=10,
        keras_name="fashion_mnist",
        how_to_get=(
            "`apt-get install dataset-fashion-mnist`, or put the four IDX files "
            "(train-images-idx3-ubyte.gz, ...) in --data-dir"
        ),
    ),
    "mnist": _Spec(
        directory_names=("mnist",),
        npz_names=("mnist.npz",),
        reader=_load_idx_directory,
        image_shape=(28, 28),
        num_classes=10,
        keras_name="mnist",
        how_to_get=(
            "run `tf.keras.datasets.mnist.load_data()` on a connected machine and "
            "copy ~/.keras/datasets/mnist.npz, or put the four IDX files in --data-dir"
        ),
    ),
    "cifar10": _Spec(
        directory_names=("cifar-10-batches-py", "cifar10", "cifar-10"),
        npz_names=("cifar10.npz",),
        reader=_load_cifar_directory,
        image_shape=(32, 32, 3),
        num_classes=10,
        keras_name="cifar10",
        how_to_get=(
            "run `tf.keras.datasets.cifar10.load_data()` on a connected machine and "
            "copy ~/.keras/datasets/cifar-10-batches-py, or put the python batches "
            "(data_batch_1..5, test_batch) in --data-dir"
        ),
    ),
}

DATASET_NAMES = ("fashion_mnist", "mnist", "cifar10", "digits")


def _candidate_directories(name: str, data_dir: str | Path | None) -> list[Path]:
    spec = _SPECS[name]
    roots: list[Path] = []
    explicit = data_dir if data_dir is not None else os.environ.get(DATA_DIR_VARIABLE)
    if explicit:
        roots.append(Path(explicit).expanduser())
    roots.append(KERAS_CACHE.expanduser())
    directories: list[Path] = []
    for root in roots:
        directories.append(root)
        directories.extend(root / sub for sub in spec.directory_names)
    directories.extend(DEBIAN_ROOT / sub for sub in spec.directory_names)
    return directories


def _normalize(name: str, arrays: dict[str, np.ndarray], source: str) -> Dataset:
    """A named data set's arrays, validated as `from_arrays` validates yours.

    The one validation (`tffprune.data.arrays.as_inputs` / `as_labels`: dtype,
    NaN or infinite values, whole labels, one per example), then the data
    set's own image shape and label range.
    """
    from tffprune.data.arrays import as_inputs, as_labels

    spec = _SPECS[name]
    images, notes = {}, []
    for split in ("train", "test"):
        x = np.asarray(arrays[f"x_{split}"])
        if tuple(x.shape[1:]) != spec.image_shape:
            raise DataError(
                f"{source}: {name} images must be {spec.image_shape}, got "
                f"{tuple(x.shape[1:])}"
            )
        if x.ndim == 3:
            x = x[..., np.newaxis]
        labels = np.asarray(arrays[f"y_{split}"]).reshape(-1)
        try:
            x = as_inputs(x, f"x_{split}", notes, scale=True)
            y = as_labels(labels, f"y_{split}", len(x))
        except DataError as error:
            raise DataError(f"{source}: {error}") from None
        if y.size and y.max() >= spec.num_classes:
            raise DataError(
                f"{source}: labels must be in [0, {spec.num_classes}), got "
                f"[{y.min()}, {y.max()}]"
            )
        images[split] = (x, y)
    return Dataset(
        name=name,
        x_train=images["train"][0],
        y_train=images["train"][1],
        x_test=images["test"][0],
        y_test=images["test"][1],
        num_classes=spec.num_classes,
        source=source,
        inputs_scaled=True,
    )


def _load_digits() -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)[..., np.newaxis]
    labels = bunch.target.astype(np.int32)
    # A fixed, documented split: the first 1437 images train, the last 360 test
    # (80/20; scikit-learn's order already interleaves the classes).
    split = 1437
    return Dataset(
        name="digits",
        x_train=images[:split],
        y_train=labels[:split],
        x_test=images[split:],
        y_test=labels[split:],
        num_classes=10,
        source="scikit-learn load_digits (bundled)",
        inputs_scaled=True,
    )


def _download(name: str) -> dict[str, np.ndarray]:
    import tensorflow as tf

    loader = getattr(tf.keras.datasets, _SPECS[name].keras_name)
    (x_train, y_train), (x_test, y_test) = loader.load_data()
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


PYTHON_DATA_NAMES = ("arrays", "client_arrays")
"""The names `tffprune.data.from_arrays` / `from_client_arrays` (and
`from_client_data`) give their data sets, as a run's ``config.toml`` records."""


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    download: bool = True,
    scale_inputs: bool = False,
) -> Dataset:
    """Loads a data set by name from the first source that has it.

    Args:
        name: One of `DATASET_NAMES`, or the path of an ``.npz`` holding
            ``x_train, y_train, x_test, y_test`` (`load_npz_dataset`).
        data_dir: The directory to read it from (overrides
            ``TFFPRUNE_DATA_DIR``); an error if it does not hold the data.
        download: Whether to try a Keras download when no local copy exists.
        scale_inputs: For an ``.npz``: divide integer inputs by their dtype's
            maximum (else used as given). The named sets are always in [0, 1].

    Returns:
        The data set with float32 inputs (the named sets' images in [0, 1])
        and int32 labels.

    Raises:
        DataError: If the name is unknown, nothing is found (the message names
            every place looked), or a file is truncated or corrupt.
    """
    if is_dataset_file(name):
        return load_npz_dataset(name, scale_inputs)
    if name in PYTHON_DATA_NAMES:
        raise DataError(
            f"dataset {name!r} is what a tffprune.train run records for data "
            "passed in Python, which a command cannot load again: save the arrays "
            "as an .npz (x_train, y_train, x_test, y_test) and pass its path as "
            "--dataset, or as --representative-data to export"
        )
    if name not in DATASET_NAMES:
        raise DataError(
            f"unknown dataset {name!r}; expected one of {', '.join(DATASET_NAMES)} "
            "or a path to an .npz with x_train, y_train, x_test, y_test"
        )
    if name == "digits":
        return _load_digits()
    spec = _SPECS[name]
    looked: list[str] = []
    directories = _candidate_directories(name, data_dir)
    if data_dir is not None:  # only there: never silently somewhere else
        directories = directories[: 1 + len(spec.directory_names)]
    for directory in directories:
        for npz_name in spec.npz_names:
            npz_path = directory / npz_name
            looked.append(str(npz_path))
            if npz_path.is_file():
                return _normalize(name, read_npz(npz_path), str(npz_path))
        looked.append(f"{directory}/")
        if directory.is_dir():
            arrays = spec.reader(directory)
            if arrays is not None:
                return _normalize(name, arrays, str(directory))
    if data_dir is not None:
        places = "\n  ".join(_unique(looked))
        raise DataError(
            f"--data-dir {data_dir} holds no {name} files. Looked for:\n  {places}\n"
            f"To provide it: {spec.how_to_get}."
        )
    download_error = "downloads disabled"
    if download:
        try:
            return _normalize(name, _download(name), f"Keras download of {name}")
        except Exception as error:  # noqa: BLE001 - any failure means "offline"
            download_error = f"{type(error).__name__}: {error}".splitlines()[0]
    places = "\n  ".join(_unique(looked))
    raise DataError(
        f"data set {name!r} not found. Looked in:\n  {places}\n"
        f"Keras download failed ({download_error}).\n"
        f"To provide it: {spec.how_to_get}; or set --data-dir / "
        f"{DATA_DIR_VARIABLE} to a directory holding it."
    )


def _unique(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))


def is_dataset_file(name: str) -> bool:
    """Whether a ``--dataset`` value names a file rather than a data set."""
    return name.endswith(".npz") or "/" in name or os.sep in name


def load_npz_dataset(path: str | Path, scale_inputs: bool = False) -> Dataset:
    """Your own data set from an ``.npz`` with the Keras layout.

    ``x_train, y_train, x_test, y_test``: inputs of any shape per example
    (images (N, H, W, C) or (N, H, W), flat features (N, D)), labels as class
    indices. Validated as `tffprune.data.arrays.dataset_from_arrays` does
    (inputs used as given unless ``scale_inputs``, which divides integer
    inputs by their dtype's maximum; labels whole numbers from 0); images of
    shape (N, H, W) get a channel axis.

    Raises:
        DataError: If the file is missing, unreadable, lacks a key, or holds
            invalid arrays (the message names the file).
    """
    from tffprune.data.arrays import dataset_from_arrays

    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"dataset file {path} does not exist")
    arrays = read_npz(path)
    for key in ("x_train", "x_test"):
        if arrays[key].ndim == 3:
            arrays[key] = arrays[key][..., np.newaxis]
    try:
        return dataset_from_arrays(
            arrays["x_train"],
            arrays["y_train"],
            arrays["x_test"],
            arrays["y_test"],
            name=str(path),
            source=str(path.resolve()),
            scale_inputs=scale_inputs,
            option="--scale-inputs (scale_inputs=True in Python)",
        )
    except DataError as error:
        raise DataError(f"{path}: {error}") from None

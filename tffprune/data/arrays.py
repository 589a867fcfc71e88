"""Your own data: NumPy arrays, per-client arrays, or a TFF ``ClientData``.

Every entry point validates its input with an error that names the array and
what is wrong (shapes, dtypes, label range, NaN/Inf, empty clients, client
count) and returns a `tffprune.data.partition.FederatedData`, the same object
the named data sets give:

* `from_arrays`: one training set split over clients by a partition
  (``iid``, ``shards``, ``dirichlet``), plus a central test set;
* `from_client_arrays`: data already split by client, ``{client_id: (x, y)}``;
  client ids are kept (``clients.csv``, per-client state);
* `from_client_data`: a ``tff.simulation.datasets.ClientData``.

Inputs are used as given (as float32), the way Keras' ``fit`` uses them:
token ids for an ``Embedding``, 0..255 pixels for a ``Rescaling(1 / 255)``
layer. ``scale_inputs=True`` divides integer inputs by their dtype's maximum
(uint8 pixels to [0, 1]) for a model that expects that; either way the
returned data says what was done in ``dataset.notes``. Labels must be
integers (an integer dtype, or floats holding whole numbers) in
``[0, num_classes)``; a note names the classes in that range no label holds
(their outputs are never trained).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from tffprune.data.datasets import Dataset
from tffprune.data.formats import DataError
from tffprune.data.partition import (
    ClientSplit,
    FederatedData,
    build_federated_data,
    split_client_examples,
)

LARGE_FLOAT_INPUT = 10.0
"""Float inputs beyond this magnitude get a note: likely unscaled pixels (a
loss of 2e5 on 0..255 images); standardized features stay well below it."""


def as_inputs(
    array: object,
    name: str,
    notes: list[str],
    scale: bool = False,
    option: str = "scale_inputs=True",
) -> np.ndarray:
    """Validates model inputs; returns them as float32.

    Inputs are used as given, as Keras' ``fit`` uses them: token ids reach an
    ``Embedding`` as ids, pixels reach a ``Rescaling`` layer as 0..255.
    Integer inputs get one note in ``notes`` saying what was done with them;
    with ``scale`` they are divided by their dtype's maximum (uint8 pixels
    to [0, 1]). Float inputs beyond `LARGE_FLOAT_INPUT` get a note too.

    Args:
        array: The inputs, shape (examples, features...).
        name: The array's name in messages.
        notes: Where the notes go.
        scale: Divide integer inputs by their dtype's maximum.
        option: How the caller spells ``scale`` (named in the notes).

    Raises:
        DataError: If they are not numeric, have no examples, hold NaN/Inf,
            or hold integers float32 cannot represent exactly.
    """
    if hasattr(array, "element_spec"):  # a tf.data.Dataset, not an array
        raise DataError(
            f"{name} is a tf.data.Dataset; pass NumPy arrays (for an unbatched "
            "dataset of (x, y): x, y = map(np.stack, zip(*dataset.as_numpy_iterator()))"
            "), or per-client data to from_client_arrays / from_client_data"
        )
    array = np.asarray(array)
    if array.ndim < 2:
        raise DataError(
            f"{name} must have shape (examples, features...), got {array.shape}"
        )
    if array.shape[0] == 0:
        raise DataError(f"{name} has no examples")
    if np.issubdtype(array.dtype, np.bool_) or not np.issubdtype(
        array.dtype, np.number
    ):
        raise DataError(f"{name} must be numeric, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.integer):
        return _integer_inputs(array, name, notes, scale, option)
    array = array.astype(np.float32)
    bad = array.size - int(np.count_nonzero(np.isfinite(array)))
    if bad:
        raise DataError(f"{name} holds {bad} NaN or infinite values")
    largest = float(np.max(np.abs(array)))
    if largest > LARGE_FLOAT_INPUT:
        note = (
            f"{name}: float inputs range up to {largest:g} and are used as they "
            "are; divide pixel values by 255 (or start the model with "
            "tf.keras.layers.Rescaling(1 / 255))"
        )
        if note not in notes:
            notes.append(note)
    return array


def _integer_inputs(
    array: np.ndarray, name: str, notes: list[str], scale: bool, option: str
) -> np.ndarray:
    """Integer inputs as float32, scaled or as given, with a note saying which."""
    top = np.iinfo(array.dtype).max
    if scale:
        note = f"{name}: integer inputs ({array.dtype}) scaled to [0, 1] by 1/{top}"
        if note not in notes:
            notes.append(note)
        # float32 division is exact-rounded where float32 holds every value
        # (uint8, int16, ...), and 3x faster than going through float64.
        wide = np.float32 if top <= 2**24 else np.float64
        return (array.astype(wide) / wide(top)).astype(np.float32)
    low, high = int(array.min()), int(array.max())
    if max(abs(low), abs(high)) > 2**24:
        raise DataError(
            f"{name} holds integers up to {max(abs(low), abs(high))}, beyond "
            "float32's exact range (2**24); map them to smaller ids"
        )
    note = (
        f"{name}: integer inputs ({array.dtype}, {low}..{high}) used as given; "
        f"{option} divides them by {top}"
    )
    if note not in notes:
        notes.append(note)
    return array.astype(np.float32)


def as_labels(array: object, name: str, num_examples: int) -> np.ndarray:
    """Validates class labels; returns them as int32.

    Raises:
        DataError: If they are not whole numbers, negative, or not one per
            example.
    """
    labels = np.asarray(array)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if (
        labels.ndim == 2
        and labels.size
        and np.issubdtype(labels.dtype, np.number)
        and np.all((labels == 0) | (labels == 1))
        and np.all(labels.sum(axis=1) == 1)
    ):
        raise DataError(
            f"{name} is one-hot (shape {labels.shape}); pass class indices: "
            f"{name}.argmax(axis=1)"
        )
    if labels.ndim != 1:
        raise DataError(
            f"{name} must be one class index per example, got shape {labels.shape}"
        )
    if labels.shape[0] != num_examples:
        raise DataError(
            f"{name} has {labels.shape[0]} labels for {num_examples} examples"
        )
    if not np.issubdtype(labels.dtype, np.number) or np.issubdtype(
        labels.dtype, np.bool_
    ):
        raise DataError(f"{name} must be integer class indices, got {labels.dtype}")
    if not np.issubdtype(labels.dtype, np.integer):
        whole = np.isfinite(labels) & (labels == np.round(labels))
        if not np.all(whole):
            raise DataError(
                f"{name} must be whole class indices, got "
                f"{labels[~whole][0]!r} among {int(np.sum(~whole))} others"
            )
    if labels.size and labels.min() < 0:
        raise DataError(f"{name} must be >= 0, got {labels.min()}")
    return labels.astype(np.int32)


def _num_classes(
    label_sets: Sequence[np.ndarray], num_classes: int | None, notes: list[str]
) -> int:
    """The number of classes; a note in ``notes`` names classes never seen."""
    largest = max(int(labels.max()) for labels in label_sets if labels.size)
    if num_classes is None:
        num_classes = largest + 1
    elif num_classes < 2:
        raise DataError(f"num_classes must be >= 2, got {num_classes}")
    elif largest >= num_classes:
        raise DataError(f"labels must be in [0, {num_classes}), got a label {largest}")
    seen = np.zeros(num_classes, bool)
    for labels in label_sets:
        seen[labels] = True
    if not seen.all():
        missing = np.flatnonzero(~seen)
        listed = ", ".join(str(c) for c in missing[:10])
        more = f" and {missing.size - 10} more" if missing.size > 10 else ""
        notes.append(
            f"labels {listed}{more} never occur: the model has {num_classes} "
            f"outputs (classes 0..{num_classes - 1}) and "
            f"{'that class is' if missing.size == 1 else 'those classes are'} "
            "never trained"
        )
    return num_classes


def _same_shape(shapes: Mapping[str, tuple]) -> tuple:
    first_name, first = next(iter(shapes.items()))
    for name, shape in shapes.items():
        if shape != first:
            raise DataError(f"{name} examples have shape {shape}, {first_name} {first}")
    return first


def _dataset(
    name, x_train, y_train, x_test, y_test, num_classes, source, notes, scaled
) -> Dataset:
    _same_shape({"x_train": x_train.shape[1:], "x_test": x_test.shape[1:]})
    classes = _num_classes([y_train, y_test], num_classes, notes)
    return Dataset(
        name=name,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        num_classes=classes,
        source=source,
        notes=tuple(notes),
        inputs_scaled=scaled,
    )


def dataset_from_arrays(
    x_train: object,
    y_train: object,
    x_test: object,
    y_test: object,
    num_classes: int | None = None,
    name: str = "arrays",
    source: str = "arrays passed in Python",
    scale_inputs: bool = False,
    option: str = "scale_inputs=True",
) -> Dataset:
    """Validates four arrays into a `Dataset` (see the module docstring).

    ``option`` is how the caller spells ``scale_inputs`` in the notes.
    """
    notes: list[str] = []
    x_train = as_inputs(x_train, "x_train", notes, scale_inputs, option)
    y_train = as_labels(y_train, "y_train", x_train.shape[0])
    x_test = as_inputs(x_test, "x_test", notes, scale_inputs, option)
    y_test = as_labels(y_test, "y_test", x_test.shape[0])
    return _dataset(
        name,
        x_train,
        y_train,
        x_test,
        y_test,
        num_classes,
        source,
        notes,
        scale_inputs,
    )


def from_arrays(
    x_train: object,
    y_train: object,
    x_test: object,
    y_test: object,
    num_clients: int = 100,
    partition: str = "iid",
    seed: int = 0,
    num_classes: int | None = None,
    shards_per_client: int = 2,
    alpha: float = 0.5,
    client_test_fraction: float = 0.2,
    scale_inputs: bool = False,
) -> FederatedData:
    """Splits your training arrays over clients; the test arrays stay central.

    Args:
        x_train: Inputs, shape (N, ...): images (N, H, W, C) or features (N, D).
        y_train: Class indices, shape (N,).
        x_test: Central test inputs, shaped like ``x_train``'s examples.
        y_test: Central test labels.
        num_clients: Clients to split over (each gets at least 2 examples).
        partition: ``iid``, ``shards`` or ``dirichlet``.
        seed: Seed of the split.
        num_classes: Number of classes (default: largest label + 1).
        shards_per_client: For ``shards``.
        alpha: For ``dirichlet``.
        client_test_fraction: Share of each client's examples held out as its
            own test split.
        scale_inputs: Divide integer inputs by their dtype's maximum (uint8
            to [0, 1]); by default every input is used as given.

    Returns:
        The federated data.

    Raises:
        DataError: On invalid arrays or more clients than examples allow.
    """
    dataset = dataset_from_arrays(
        x_train, y_train, x_test, y_test, num_classes, scale_inputs=scale_inputs
    )
    if not isinstance(num_clients, int) or num_clients < 1:
        raise DataError(f"num_clients must be a whole number >= 1, got {num_clients}")
    if num_clients * 2 > dataset.y_train.size:
        raise DataError(
            f"{dataset.y_train.size} training examples cannot give {num_clients} "
            "clients 2 examples each; use fewer clients"
        )
    return build_federated_data(
        dataset,
        num_clients,
        partition,
        seed=seed,
        shards_per_client=shards_per_client,
        alpha=alpha,
        client_test_fraction=client_test_fraction,
    )


def from_client_arrays(
    clients: Mapping[object, tuple[object, object]],
    test: tuple[object, object],
    num_classes: int | None = None,
    seed: int = 0,
    client_test_fraction: float = 0.2,
    client_tests: Mapping[object, tuple[object, object]] | None = None,
    scale_inputs: bool = False,
) -> FederatedData:
    """Data already split by client.

    Args:
        clients: ``{client_id: (x, y)}``; ids are kept as strings, in order.
        test: ``(x_test, y_test)``, the central test set.
        num_classes: Number of classes (default: largest label + 1).
        seed: Seed of each client's own train/test split.
        client_test_fraction: Share of each client's examples held out as its
            own test split (ignored for clients in ``client_tests``).
        client_tests: Optional ``{client_id: (x, y)}`` own test sets.
        scale_inputs: Divide integer inputs by their dtype's maximum (uint8
            to [0, 1]); by default every input is used as given.

    Returns:
        The federated data, with ``client_ids``.

    Raises:
        DataError: On no clients, an empty client, or invalid arrays.
    """
    if not clients:
        raise DataError("no clients given")
    notes: list[str] = []
    inputs, labels, splits, ids, shapes = [], [], [], [], {}
    rng = np.random.default_rng(seed)
    offset = 0
    client_tests = dict(client_tests or {})
    unknown = [c for c in client_tests if c not in clients]
    if unknown:
        raise DataError(f"client_tests has clients with no training data: {unknown}")
    _check_ids_distinct_as_text(clients)
    for client_id, pair in clients.items():
        name = f"client {client_id!s}"
        x, y = _pair(pair, name)
        x = as_inputs(x, f"{name} inputs", notes, scale_inputs)
        y = as_labels(y, f"{name} labels", x.shape[0])
        indices = np.arange(offset, offset + y.size)
        shapes[name] = x.shape[1:]
        inputs.append(x)
        labels.append(y)
        offset += y.size
        if client_id in client_tests:
            tx, ty = _pair(client_tests[client_id], f"{name} test")
            tx = as_inputs(tx, f"{name} test inputs", notes, scale_inputs)
            ty = as_labels(ty, f"{name} test labels", tx.shape[0])
            test_indices = np.arange(offset, offset + ty.size)
            shapes[f"{name} test"] = tx.shape[1:]
            inputs.append(tx)
            labels.append(ty)
            offset += ty.size
            splits.append(ClientSplit(indices, test_indices))
        else:
            if y.size < 2 and client_test_fraction > 0:
                raise DataError(f"{name} has {y.size} example; at least 2 needed")
            splits.append(split_client_examples(indices, client_test_fraction, rng))
        ids.append(str(client_id))
    _same_shape(shapes)
    x_test, y_test = _pair(test, "test")
    x_test = as_inputs(x_test, "test inputs", notes, scale_inputs)
    y_test = as_labels(y_test, "test labels", x_test.shape[0])
    dataset = _dataset(
        "client_arrays",
        np.concatenate(inputs),
        np.concatenate(labels),
        x_test,
        y_test,
        num_classes,
        "per-client arrays passed in Python",
        notes,
        scale_inputs,
    )
    return FederatedData(
        dataset=dataset,
        clients=tuple(splits),
        partition="given",
        client_ids=tuple(ids),
    )


def _check_ids_distinct_as_text(clients: Mapping[object, object]) -> None:
    """Refuses ids that are one client in ``clients.csv`` and checkpoints."""
    by_text: dict[str, object] = {}
    for client_id in clients:
        other = by_text.setdefault(str(client_id), client_id)
        if other is not client_id:  # dict keys: distinct, yet the same text
            raise DataError(
                f"client ids {other!r} and {client_id!r} are both {str(client_id)!r} "
                "as text, which names a client in clients.csv and checkpoints; "
                "give every client an id of its own"
            )


def _pair(pair: object, name: str) -> tuple[object, object]:
    if not isinstance(pair, tuple | list) or len(pair) != 2:
        raise DataError(f"{name} must be a pair (x, y), got {type(pair).__name__}")
    return pair[0], pair[1]


def _client_arrays(client_data, client_id, input_key, label_key, name):
    """One client's examples of a ClientData as two stacked arrays."""
    inputs, labels = [], []
    for element in client_data.create_tf_dataset_for_client(client_id):
        if isinstance(element, Mapping):
            keys = list(element)
            label = label_key or next(
                (k for k in ("label", "labels", "y") if k in element), None
            )
            others = [k for k in keys if k != label]
            source = input_key or (others[0] if len(others) == 1 else None)
            if label is None or source is None:
                raise DataError(
                    f"{name}: cannot tell inputs from labels in keys {keys}; pass "
                    "input_key= and label_key="
                )
            x, y = element[source], element[label]
        elif isinstance(element, tuple | list) and len(element) == 2:
            x, y = element
        else:
            raise DataError(
                f"{name}: elements must be (x, y) or a mapping, got "
                f"{type(element).__name__}"
            )
        inputs.append(np.asarray(x))
        labels.append(np.asarray(y).reshape(()))
    if not inputs:
        raise DataError(f"{name} has no examples")
    return np.stack(inputs), np.stack(labels)


def from_client_data(
    train_client_data,
    test: tuple[object, object],
    test_client_data=None,
    num_classes: int | None = None,
    seed: int = 0,
    client_test_fraction: float = 0.2,
    input_key: str | None = None,
    label_key: str | None = None,
    scale_inputs: bool = False,
) -> FederatedData:
    """A TFF ``ClientData`` (e.g. ``tff.simulation.datasets.TestClientData``).

    Each client's examples are read once into arrays. Elements may be
    ``(x, y)`` pairs or mappings (``label``/``labels``/``y`` is the label;
    the other key the input, or name them with ``input_key``/``label_key``).

    Args:
        train_client_data: The clients' training data.
        test: ``(x_test, y_test)``, the central test set.
        test_client_data: Optional clients' own test data (same ids);
            without it each client holds out ``client_test_fraction``.
        num_classes: Number of classes (default: largest label + 1).
        seed: Seed of each client's own train/test split.
        client_test_fraction: Share held out per client without own tests.
        input_key: Element key of the inputs.
        label_key: Element key of the labels.
        scale_inputs: Divide integer inputs by their dtype's maximum (uint8
            to [0, 1]); by default every input is used as given.

    Returns:
        The federated data, with the ClientData's client ids.

    Raises:
        DataError: On an empty ClientData, an empty client or bad elements.
    """
    ids = list(train_client_data.client_ids)
    if not ids:
        raise DataError("the ClientData has no clients")
    clients = {
        i: _client_arrays(train_client_data, i, input_key, label_key, f"client {i}")
        for i in ids
    }
    client_tests = None
    if test_client_data is not None:
        client_tests = {
            i: _client_arrays(
                test_client_data, i, input_key, label_key, f"client {i} test"
            )
            for i in test_client_data.client_ids
            if i in clients
        }
    return from_client_arrays(
        clients,
        test,
        num_classes=num_classes,
        seed=seed,
        client_test_fraction=client_test_fraction,
        client_tests=client_tests,
        scale_inputs=scale_inputs,
    )

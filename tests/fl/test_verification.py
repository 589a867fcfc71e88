"""The real-codec check of a round, on updates worked out by hand."""

import numpy as np
import pytest

from tffprune.compression import wire
from tffprune.fl.verification import (
    SentUpload,
    UploadVerificationError,
    decoded_upload,
    verify_round,
)

WEIGHTS = [np.array([1.0, 2.0, 3.0, 4.0], np.float32)]


def _upload(client, step, mask, counted=None):
    """A client whose update is ``step`` at ``mask``, sent the server weights."""
    mask = [np.array(mask, bool)]
    update = [np.where(mask[0], step, 0.0).astype(np.float32)]
    size = wire.encoded_size(mask, "float32", zero_kept=[False], held=[None])
    return SentUpload(
        client,
        update,
        mask,
        [None],
        size if counted is None else counted,
        [w.copy() for w in WEIGHTS],
        1.0,
    )


def test_fedavg_of_the_decoded_uploads_is_the_mean_update_added():
    uploads = [_upload(0, 1.0, [1, 1, 1, 1]), _upload(1, 3.0, [1, 1, 1, 1])]
    # Mean update 2 added to every entry.
    verify_round(WEIGHTS, [np.array([3.0, 4.0, 5.0, 6.0])], uploads, "float32")
    with pytest.raises(UploadVerificationError, match="differ by up to 0.01"):
        verify_round(WEIGHTS, [np.array([3.0, 4.0, 5.0, 6.01])], uploads, "float32")


def test_sub_fedavg_averages_each_entry_over_the_clients_that_kept_it():
    # Client 0 keeps entries 0, 1 (update 1); client 1 keeps 0, 2 (update 3).
    # Entry 0: (2 + 4) / 2 = 3; entry 1: 3 (client 0); entry 2: 6 (client 1);
    # entry 3, kept by no one, keeps the server's 4.
    uploads = [_upload(0, 1.0, [1, 1, 0, 0]), _upload(1, 3.0, [1, 0, 1, 0])]
    values, masks = decoded_upload(uploads[1], [(4,)], "float32")
    np.testing.assert_array_equal(values[0], [4.0, 0.0, 6.0, 0.0])
    np.testing.assert_array_equal(masks[0], [True, False, True, False])

    verify_round(
        WEIGHTS, [np.array([3.0, 3.0, 6.0, 4.0])], uploads, "float32", masked=True
    )
    with pytest.raises(UploadVerificationError, match="weight 0"):
        # FedAvg's mean of the same uploads takes pruned entries as 0.
        verify_round(WEIGHTS, [np.array([3.0, 3.0, 6.0, 4.0])], uploads, "float32")


def test_a_miscounted_upload_is_named():
    upload = _upload(7, 1.0, [1, 0, 0, 0])
    wrong = _upload(7, 1.0, [1, 0, 0, 0], counted=upload.counted_bytes + 1)

    with pytest.raises(UploadVerificationError, match="client 7: encoded"):
        verify_round(WEIGHTS, [np.array([2.0, 2.0, 3.0, 4.0])], [wrong], "float32")


def test_a_round_without_uploads_must_leave_the_weights():
    verify_round(WEIGHTS, WEIGHTS, [], "int8")
    with pytest.raises(UploadVerificationError):
        verify_round(WEIGHTS, [WEIGHTS[0] + 1], [], "int8")

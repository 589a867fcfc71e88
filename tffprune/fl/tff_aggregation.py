"""Sub-FedAvg's masked mean as a TFF aggregation factory.

The TFF twin of `tffprune.fl.aggregation.sub_fedavg` (tests check one against
the other). A client's value is ``(values, masks, weight)``: a list of float32
tensors, a list of boolean masks of the same shapes, and a float32 scalar. The
factory's process sums ``weight * mask * value`` and ``weight * mask`` over
clients with ``tff.federated_sum`` and returns, per tensor, the mean and its
coverage::

    mean     = sum_k n_k m_k x_k / sum_k n_k m_k   (0 where the denominator is 0)
    coverage = sum_k n_k m_k

Where coverage is 0 no sampled client kept the entry; what to do there is the
caller's named choice (the process keeps the previous server value), never a
silent division by zero.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff


class MaskedMeanFactory(tff.aggregators.UnweightedAggregationFactory):
    """Creates the masked-mean `tff.templates.AggregationProcess`."""

    def create(self, value_type: tff.Type) -> tff.templates.AggregationProcess:
        """Builds the process for ``value_type = (values, masks, weight)``.

        Raises:
            TypeError: If ``value_type`` is not a 3-element struct of two
                equally structured float32 tensor lists and a float32 scalar.
        """
        if not isinstance(value_type, tff.StructType) or len(value_type) != 3:
            raise TypeError(
                f"expected (values, masks, weight) struct, got {value_type}"
            )
        values_type, masks_type, weight_type = value_type
        if len(values_type) != len(masks_type) or any(
            v.shape != m.shape or m.dtype != np.bool_
            for v, m in zip(values_type, masks_type, strict=True)
        ):
            raise TypeError(
                f"masks {masks_type} must be booleans shaped like values {values_type}"
            )
        if weight_type != tff.TensorType(np.float32):
            raise TypeError(f"weight must be a float32 scalar, got {weight_type}")

        @tff.tensorflow.computation(value_type)
        def weigh(value):
            values, masks, weight = value
            kept = [tf.cast(mask, tf.float32) * weight for mask in masks]
            return (
                [v * k for v, k in zip(values, kept, strict=True)],
                kept,
            )

        @tff.tensorflow.computation(weigh.type_signature.result)
        def divide(sums):
            totals, coverage = sums
            return (
                [
                    tf.math.divide_no_nan(t, c)
                    for t, c in zip(totals, coverage, strict=True)
                ],
                list(coverage),
            )

        @tff.federated_computation()
        def initialize():
            return tff.federated_value((), tff.SERVER)

        @tff.federated_computation(
            initialize.type_signature.result,
            tff.FederatedType(value_type, tff.CLIENTS),
        )
        def next_fn(state, value):
            sums = tff.federated_sum(tff.federated_map(weigh, value))
            return tff.templates.MeasuredProcessOutput(
                state=state,
                result=tff.federated_map(divide, sums),
                measurements=tff.federated_value((), tff.SERVER),
            )

        return tff.templates.AggregationProcess(initialize, next_fn)

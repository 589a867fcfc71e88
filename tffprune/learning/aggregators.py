"""The aggregate role of a round: FedAvg's mean and Sub-FedAvg's masked mean.

Two TFF aggregation factories with one result shape, ``(means, coverage)``
per tensor, so the server update is the same for both
(`tffprune.learning.finalizers`): where ``coverage > 0`` an entry takes the
server optimizer's step, elsewhere it keeps its value. Division by zero is
that named choice, never an accident. The values a client sends are what the
server reconstructs of its model (0 where it dropped an entry): the mean is
model averaging, as FedAvg's is, and any TFF factory that averages fits the
role (TFF's ``MeanFactory``, a robust mean); the server optimizer then steps
on ``w - mean``.

* `MaskedMeanFactory` (Sub-FedAvg; the TFF twin of
  `tffprune.fl.aggregation.sub_fedavg`, tests check one against the other).
  A client's value is ``(values, masks, weight)``::

      mean     = sum_k n_k m_k x_k / sum_k n_k m_k   (0 where the sum is 0)
      coverage = sum_k n_k m_k

* `WeightedMeanFactory` (FedAvg): ``(values, weight)``, averaged by any TFF
  factory (default TFF's own ``tff.aggregators.MeanFactory``; an unweighted
  one, e.g. a robust mean, gets the values alone); coverage is the total
  weight.

Both thread the state of their inner TFF processes from round to round and
report measurements: ``total_weight`` (sum of the client weights) and
``covered_fraction`` (share of entries at least one client contributed to).
"""

from __future__ import annotations

import collections

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff


def _coverage_measurements(coverage, total_weight):
    covered = tf.add_n([tf.math.count_nonzero(c > 0) for c in coverage])
    size = sum(int(np.prod(c.shape)) for c in coverage)
    return collections.OrderedDict(
        total_weight=total_weight,
        covered_fraction=tf.cast(covered, tf.float32) / float(size),
    )


class MaskedMeanFactory(tff.aggregators.UnweightedAggregationFactory):
    """Sub-FedAvg's masked mean as a `tff.templates.AggregationProcess`.

    Args:
        sum_factory: Sums the weighted values and coverages over clients
            (default ``tff.aggregators.SumFactory()``); its state is threaded.
    """

    def __init__(
        self, sum_factory: tff.aggregators.UnweightedAggregationFactory | None = None
    ) -> None:
        self._sum_factory = sum_factory or tff.aggregators.SumFactory()

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
            return ([v * k for v, k in zip(values, kept, strict=True)], kept, weight)

        sum_process = self._sum_factory.create(weigh.type_signature.result)

        @tff.tensorflow.computation(weigh.type_signature.result)
        def divide(sums):
            totals, coverage, _ = sums
            means = [
                tf.math.divide_no_nan(t, c)
                for t, c in zip(totals, coverage, strict=True)
            ]
            return means, list(coverage)

        @tff.tensorflow.computation(weigh.type_signature.result)
        def measure(sums):
            _, coverage, total_weight = sums
            return _coverage_measurements(coverage, total_weight)

        @tff.federated_computation()
        def initialize():
            return sum_process.initialize()

        @tff.federated_computation(
            initialize.type_signature.result,
            tff.FederatedType(value_type, tff.CLIENTS),
        )
        def next_fn(state, value):
            sums = sum_process.next(state, tff.federated_map(weigh, value))
            return tff.templates.MeasuredProcessOutput(
                state=sums.state,
                result=tff.federated_map(divide, sums.result),
                measurements=tff.federated_map(measure, sums.result),
            )

        return tff.templates.AggregationProcess(initialize, next_fn)


class WeightedMeanFactory(tff.aggregators.UnweightedAggregationFactory):
    """FedAvg's mean of ``(values, weight)`` by a TFF aggregation factory.

    Args:
        mean_factory: The mean (default
            ``tff.aggregators.MeanFactory(no_nan_division=True)``). A
            ``WeightedAggregationFactory`` gets the values and the weight; an
            ``UnweightedAggregationFactory`` the values alone.
    """

    def __init__(
        self,
        mean_factory: tff.aggregators.WeightedAggregationFactory
        | tff.aggregators.UnweightedAggregationFactory
        | None = None,
    ) -> None:
        self._mean_factory = mean_factory or tff.aggregators.MeanFactory(
            no_nan_division=True
        )

    def create(self, value_type: tff.Type) -> tff.templates.AggregationProcess:
        """Builds the process for ``value_type = (values, weight)``.

        Raises:
            TypeError: If ``value_type`` is not ``(float32 list, float32)``.
        """
        if not isinstance(value_type, tff.StructType) or len(value_type) != 2:
            raise TypeError(f"expected (values, weight) struct, got {value_type}")
        values_type, weight_type = value_type
        if weight_type != tff.TensorType(np.float32):
            raise TypeError(f"weight must be a float32 scalar, got {weight_type}")
        weighted = isinstance(
            self._mean_factory, tff.aggregators.WeightedAggregationFactory
        )
        mean_process = (
            self._mean_factory.create(values_type, weight_type)
            if weighted
            else self._mean_factory.create(values_type)
        )

        @tff.tensorflow.computation(value_type)
        def values_of(value):
            return value[0]

        @tff.tensorflow.computation(value_type)
        def weight_of(value):
            return value[1]

        @tff.tensorflow.computation(values_type, weight_type)
        def with_coverage(means, total_weight):
            return list(means), [tf.fill(tf.shape(m), total_weight) for m in means]

        @tff.tensorflow.computation(weight_type)
        def measure(total_weight):
            return collections.OrderedDict(
                total_weight=total_weight,
                covered_fraction=tf.cast(total_weight > 0, tf.float32),
            )

        @tff.federated_computation()
        def initialize():
            return mean_process.initialize()

        @tff.federated_computation(
            initialize.type_signature.result,
            tff.FederatedType(value_type, tff.CLIENTS),
        )
        def next_fn(state, value):
            weights = tff.federated_map(weight_of, value)
            values = tff.federated_map(values_of, value)
            mean = (
                mean_process.next(state, values, weights)
                if weighted
                else mean_process.next(state, values)
            )
            total_weight = tff.federated_sum(weights)
            return tff.templates.MeasuredProcessOutput(
                state=mean.state,
                result=tff.federated_map(with_coverage, (mean.result, total_weight)),
                measurements=tff.federated_map(measure, total_weight),
            )

        return tff.templates.AggregationProcess(initialize, next_fn)


def build_round_aggregator(
    factory: tff.aggregators.WeightedAggregationFactory
    | tff.aggregators.UnweightedAggregationFactory
    | None,
    upload_type: tff.Type,
    masked: bool,
) -> tff.templates.AggregationProcess:
    """The aggregation process of a round for its clients' uploads.

    Args:
        factory: The user's factory, or None for the round's own mean
            (`MaskedMeanFactory` for a masked upload, TFF's ``MeanFactory``
            otherwise). For an unmasked (FedAvg) upload any TFF factory fits:
            it averages the values, the round adds the coverage. For a
            masked (Sub-FedAvg) upload the factory gets ``(values, masks,
            weight)`` and must return ``(means, coverage)``, as
            `MaskedMeanFactory` does.
        upload_type: The type of one client's upload.
        masked: Whether the upload carries masks.

    Returns:
        An unweighted ``tff.templates.AggregationProcess`` over the uploads
        whose result is ``(means, coverage)``.

    Raises:
        TypeError: If a weighted factory is given for a masked upload.
    """
    if masked:
        if isinstance(factory, tff.aggregators.WeightedAggregationFactory):
            raise TypeError(
                "Sub-FedAvg's upload carries masks: pass MaskedMeanFactory() (or a "
                "factory whose create takes (values, masks, weight) and returns "
                f"(means, coverage)), not {type(factory).__name__}"
            )
        return (factory or MaskedMeanFactory()).create(upload_type)
    return WeightedMeanFactory(factory).create(upload_type)

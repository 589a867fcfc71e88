"""Several TFF workers in one round, with results in the clients' order.

TFF's ``MergeableCompExecutionContext`` (0.87) splits a round's clients over
its workers, runs each share up to the aggregation, merges the partial
aggregates and runs the rest per share. It merges, and concatenates the
shares' ``CLIENTS``-placed results, in the order the workers *finish*
(``asyncio.wait(FIRST_COMPLETED)``): a round's per-client outputs come back
permuted whenever the second share finishes first (measured: inputs
``[0, 1, 2, 3]`` over two workers returned ``[2, 3, 0, 1]``), so a driver
that keeps each client's mask by position gives it another client's, and the
merge's summation order changes from run to run.

`OrderedMergeableContext` runs the same compiled form with every step in the
shares' order: results in the clients' order, sums in one fixed order.

What it keeps from TFF's: each share's ``CLIENTS``-placed results are
computed again after the merge (TFF's ``after_merge`` has only the share's
arguments and the merged aggregate), so each client trains twice per round
on two or more workers.
"""

from __future__ import annotations

import asyncio

import tensorflow_federated as tff
from tensorflow_federated.python.common_libs import structure
from tensorflow_federated.python.core.impl.execution_contexts import (
    mergeable_comp_execution_context as mergeable,
)
from tensorflow_federated.python.core.impl.types import (
    computation_types,
    type_analysis,
    type_conversions,
)


class OrderedMergeableContext(mergeable.MergeableCompExecutionContext):
    """TFF's mergeable context with shares merged and returned in order.

    Args:
        async_contexts: One asynchronous TFF context per worker; a round is
            split into one share of clients per context.
    """

    def __init__(self, async_contexts) -> None:
        super().__init__(
            async_contexts=async_contexts,
            compiler_fn=tff.backends.native.compile_to_mergeable_comp_form,
        )

    def invoke(self, comp, arg=None):
        """Runs ``comp`` over the workers; see the module docstring."""
        form = self._compiler_pipeline.compile(comp)
        if arg is not None:
            arg = mergeable.MergeableCompExecutionContextValue(
                arg, form.up_to_merge.type_signature.parameter, self._num_subrounds
            )
        result = self._async_runner.run_coro_and_return_result(
            _run_in_order(form, arg, self._async_execution_contexts)
        )
        return type_conversions.type_to_py_container(
            result, form.after_merge.type_signature.result
        )


async def _run_in_order(form, arg, contexts):
    shares = arg.value() if arg is not None else [None] * len(contexts)
    # One share per context at most (fewer when there are fewer clients).
    if len(shares) > len(contexts):
        raise ValueError(f"{len(shares)} shares for {len(contexts)} workers")
    pairs = list(zip(shares, contexts, strict=False))
    partials = await asyncio.gather(
        *(context.invoke(form.up_to_merge, share) for share, context in pairs)
    )
    merged = partials[0]
    for partial in partials[1:]:
        merged = await contexts[0].invoke(
            form.merge, structure.Struct.unnamed(merged, partial)
        )

    def after(share, context):
        whole = merged if share is None else structure.Struct.unnamed(share, merged)
        return context.invoke(form.after_merge, whole)

    result_type = form.after_merge.type_signature.result
    if type_analysis.contains_only(
        result_type,
        lambda t: not isinstance(t, computation_types.FederatedType) or t.all_equal,
    ):
        return await after(*pairs[0])
    results = await asyncio.gather(*(after(share, context) for share, context in pairs))
    return mergeable._repackage_partitioned_values(list(results), result_type)

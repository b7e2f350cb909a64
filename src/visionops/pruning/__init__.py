"""TAO-style threshold channel pruning of Conv2d filters, built on torch-pruning's DependencyGraph.

Semantics follow TAO's ``prune`` ("min_weight", ``core/pruning/pruning.py``; brief section 5a):

1. For every Conv2d that is not excluded, score each output filter by the L2 norm of its *original*
   kernel over ``(c_in, kh, kw)``; biases and BatchNorm are ignored. All scores are taken before
   anything is pruned, so a layer's score never sees its input channels shrink.
2. Normalise the scores within the layer: ``max`` -> ``stat / max(stat)``; ``L2`` ->
   ``stat / ||stat||_2 * len(stat)``.
3. Convs whose outputs must keep the same channels (the inputs of a residual add, found by torch-pruning's
   dependency graph) form one group; their normalised scores are combined element-wise (``union`` = max,
   ``intersection`` = min, ``arithmetic_mean``, ``geometric_mean``) and the group shares one keep-set.
4. ``n_keep = #(stat > threshold)``; ``n_keep = max(n_keep, min(min_num_filters, n))``; round ``n_keep`` up to
   a multiple of ``granularity`` and cap at ``n``; keep the top-``n_keep`` filters by stat.
5. torch-pruning slices the convs' out-channels, the following BNs and the consumers' in-channels.

A pruned model is saved as its pruning history (``[module_name, is_out_channel_pruning, indices]``, plain
Python) next to its ``state_dict``; loading rebuilds the unpruned architecture, replays the history, then loads
the weights. That checkpoint loads with ``torch.load(..., weights_only=True)``, unlike a pickled module.
"""

from visionops.pruning.graph import History
from visionops.pruning.history import apply_pruning_history, load_pruned, pruned_channels_summary, save_pruned
from visionops.pruning.threshold import (
    COUPLED_TO_EXCLUDED,
    EQUALIZATIONS,
    EXCLUDED,
    KEPT,
    NORMALIZERS,
    PRUNED,
    UNSUPPORTED,
    LayerPruneRow,
    PruneConfig,
    PruneReport,
    equalize,
    filter_norms,
    normalize_stat,
    num_retained,
    prune_model,
    retained_indices,
)

__all__ = [
    "COUPLED_TO_EXCLUDED", "EQUALIZATIONS", "EXCLUDED", "KEPT", "NORMALIZERS", "PRUNED", "UNSUPPORTED", "History",
    "LayerPruneRow", "PruneConfig", "PruneReport", "apply_pruning_history", "equalize", "filter_norms",
    "load_pruned", "normalize_stat", "num_retained", "prune_model", "pruned_channels_summary", "retained_indices",
    "save_pruned",
]

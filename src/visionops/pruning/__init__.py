"""Channel pruning with TAO's semantics on torch-pruning's dependency graph.

* :mod:`.threshold`: TAO's ``prune`` ("min_weight"): per-filter L2 norms of the original kernels, normalised per
  layer, equalised across convs coupled by residual adds, thresholded with TAO's granularity and minimum.
* :mod:`.history`: a pruned model saved as its pruning history + state dict, rebuilt on load with
  ``torch.load(weights_only=True)``.
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

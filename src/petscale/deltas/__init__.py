"""What reads a study's kept deltas (``DIR/trials/<id>/``) or loads its models: the transfer
evaluation and the dense deltas. Each returns a table that the pure functions of
``petscale.analysis`` read (``transfer_matrix``, ``subspace_pairs``, ``spectrum``, ...);
``docs/ANALYSIS.md`` defines every quantity."""

from petscale.deltas.subspace import dense_deltas, subspace_table
from petscale.deltas.transfer import evaluate_transfer

__all__ = ["dense_deltas", "evaluate_transfer", "subspace_table"]

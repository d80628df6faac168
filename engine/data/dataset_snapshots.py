"""Which snapshot each batch of a training dataset was read from (no heavy imports:
lineage and reproduce read it)."""

from __future__ import annotations


def snapshot_of_batches(
    batch_ids: list[int], snapshot_hashes: list[str], own_snapshots: dict[int, str | None]
) -> list[tuple[int, str]]:
    """Each batch of a dataset with the snapshot its rows were trained from.

    A dataset lists its batches and, separately, its snapshots: a batch that carried
    its labels is read from its own snapshot; the batches labelled later share one
    joined snapshot (`engine.data.dataset._labelled_snapshot`), so the two lists differ in length.

    Args:
        own_snapshots: each batch's own snapshot hash (the `batches` table).
    """
    hashes = set(snapshot_hashes)
    joined = [h for h in snapshot_hashes if h not in set(own_snapshots.values())]
    pairs = []
    for batch_id in batch_ids:
        own = own_snapshots.get(batch_id)
        if own is not None and own in hashes:
            pairs.append((batch_id, own))
        elif joined:
            pairs.append((batch_id, joined[0]))
    return pairs

"""Users as centroids (rekface.search.users): built from a face table, updated one user at a time,
searched exactly with ties by UserId."""

from __future__ import annotations

import numpy as np
import pytest

from rekface.search.users import UserVectors, centroid
from rekface.stores.records import FaceTable


def table_with_users(n: int, rng: np.random.Generator) -> FaceTable:
    table = FaceTable.empty(n)
    e = rng.standard_normal((n, 128)).astype(np.float32)
    table.embeddings[:] = e / np.linalg.norm(e, axis=1, keepdims=True)
    # Users of 1 to 6 faces, and faces in no user, in no order.
    owners = [None if i % 5 == 0 else f"u{int(np.sqrt(i) * 3):04d}" for i in range(n)]
    table.user_ids[:] = np.array(owners, object)[rng.permutation(n)]
    return table


def test_centroids_of_a_table_are_the_normalised_means():
    rng = np.random.default_rng(0)
    table = table_with_users(600, rng)
    users = UserVectors.from_table(table)
    expected = sorted({u for u in table.user_ids.tolist() if u is not None})
    assert users.user_ids.tolist() == expected
    assert len(set(users.face_counts.tolist())) > 3  # several group sizes
    for user_id, count in zip(users.user_ids, users.face_counts, strict=True):
        rows = np.flatnonzero(table.user_ids == user_id)
        assert count == len(rows)
        np.testing.assert_allclose(
            users.vector(user_id), centroid(table.embeddings[rows]), atol=1e-6
        )
    assert users.vector("nobody") is None
    assert len(UserVectors.from_table(FaceTable.empty(3))) == 0


def test_replaced_sets_and_removes_users():
    rng = np.random.default_rng(1)
    users = UserVectors.from_table(table_with_users(100, rng))
    first, second = users.user_ids[:2].tolist()
    v = centroid(rng.standard_normal((3, 128)).astype(np.float32))
    out = users.replaced({first: None, second: (v, 3), "zz-new": (v, 1)})
    assert first not in out.user_ids.tolist() and out.user_ids.tolist() == sorted(out.user_ids)
    np.testing.assert_array_equal(out.vector(second), v)
    assert out.face_counts[out.user_ids.tolist().index("zz-new")] == 1
    assert len(out) == len(users) and users.vector(first) is not None  # the original is intact


def test_top_is_exact_with_ties_by_user_id():
    rng = np.random.default_rng(2)
    users = UserVectors.from_table(table_with_users(500, rng))
    q = users.vectors[7]
    brute = sorted(
        ((float(np.dot(v, q)), u) for u, v in zip(users.user_ids, users.vectors, strict=True)),
        key=lambda t: (-t[0], t[1]),
    )
    top = users.top(q, 10, -1.0)
    assert [m.user_id for m in top] == [u for _, u in brute[:10]]
    assert top[0].user_id == users.user_ids[7] and top[0].cosine == pytest.approx(1.0, abs=1e-6)
    assert [m.user_id for m in users.top(q, 3, -1.0, exclude_user_id=users.user_ids[7])] == [
        u for _, u in brute[1:4]
    ]
    threshold = brute[4][0]
    assert [m.user_id for m in users.top(q, 50, threshold)] == [u for _, u in brute[:5]]
    # Equal centroids tie: the lower UserId first, wherever it sits.
    twins = users.replaced({"a-twin": (q, 1), "b-twin": (q, 1)})
    assert [m.user_id for m in twins.top(q, 3, -1.0)][:3] == sorted(
        ["a-twin", "b-twin", str(users.user_ids[7])]
    )

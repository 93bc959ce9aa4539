"""benchmarks/users_search.py on a small scale: the latency part runs end to end through the
store and the search backend; the rank-1 protocol's pieces (who becomes a user from which photos,
which face of a photo is the person's, the synthetic users' shape) are right."""

from __future__ import annotations

import numpy as np

from benchmarks.users_search import FACES_PER_USER, central, latency, plan, synthetic_users
from rekface.adapters.bootstrap import build_context
from rekface.settings import Settings


def test_latency_part_runs(engine, tmp_path, capsys):
    ctx = build_context(Settings(data_dir=tmp_path), engine=engine)
    latency(ctx, 300, 10, np.random.default_rng(0))
    out = capsys.readouterr().out
    assert "300 users (CreateUser + AssociateFaces through the store)" in out
    assert "search part, warm (300 users x 5 faces)" in out
    users = ctx.search.user_vectors(ctx.store.get_collection("scale"))
    assert len(users) == 301 and set(users.face_counts.tolist()) == {1, FACES_PER_USER}


def test_synthetic_users_look_like_faces():
    rng = np.random.default_rng(1)
    mean = np.ones(128, np.float32) / np.sqrt(128)
    faces = synthetic_users(400, rng, mean)
    assert faces.shape == (400, FACES_PER_USER, 128)
    np.testing.assert_allclose(np.linalg.norm(faces, axis=2), 1.0, atol=1e-5)
    cross = faces[:, 0] @ faces[:, 0].T
    between = cross[~np.eye(400, dtype=bool)].mean()
    within = np.einsum("ud,ud->u", faces[:, 0], faces[:, 1]).mean()
    assert 0.81 < between < 0.87 and 0.93 < within < 0.97  # as real faces (0.84, 0.95)


def test_rank1_protocol():
    users, probes = plan()
    by_user = {p: rels for p, rels in users.items() if not p.startswith("singleton:")}
    for person, rels in by_user.items():
        mine = [rel for p, rel in probes if p == person]
        total = len(rels) + len(mine)
        assert len(rels) == (2 if total <= 3 else 3)  # 2 photos: both, no probe
        assert not mine or total >= 3
        assert not set(rels) & set(mine)  # a probe is never one of the user's own photos
    assert sum(p.startswith("singleton:") for p in users) == 400
    records = [
        {
            "Face": {
                "FaceId": "edge",
                "BoundingBox": {"Left": 0.0, "Top": 0.0, "Width": 0.6, "Height": 0.6},
            }
        },
        {
            "Face": {
                "FaceId": "centre",
                "BoundingBox": {"Left": 0.4, "Top": 0.4, "Width": 0.2, "Height": 0.2},
            }
        },
    ]
    assert central(records) == "centre"

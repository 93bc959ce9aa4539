"""CompareFaces: the largest face of the source against up to 100 largest faces of the target."""

from __future__ import annotations

from typing import Any

from rekface.errors import InvalidParameterException
from rekface.operations.context import Context
from rekface.operations.face_json import compared_face, source_face
from rekface.operations.images import read_image
from rekface.operations.quality_filter import passes

DEFAULT_THRESHOLD = 80.0


def compare_faces(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    threshold = float(request.get("SimilarityThreshold", DEFAULT_THRESHOLD))
    level = request.get("QualityFilter", "NONE")
    source_image = read_image(ctx, request["SourceImage"], "SourceImage")
    target_image = read_image(ctx, request["TargetImage"], "TargetImage")
    # Filtered faces are not compared: the filter applies before "largest" is chosen.
    sources = [f for f in ctx.engine.detect(source_image) if passes(f, source_image, level)]
    if not sources:
        raise InvalidParameterException(
            "There are no faces in the source image that match the quality filter"
            if level != "NONE"
            else "There are no faces in the source image"
        )
    source = sources[0]
    targets = [f for f in ctx.engine.detect(target_image) if passes(f, target_image, level)]
    ctx.engine.embed([source, *targets])
    matches, unmatched = [], []
    if targets:
        assert source.embedding is not None
        sims = ctx.engine.similarity(source.embedding, [t.embedding for t in targets])
        for face, sim in zip(targets, sims, strict=True):
            if sim >= threshold:
                matches.append(
                    {"Similarity": float(sim), "Face": compared_face(face, target_image)}
                )
            else:
                unmatched.append(compared_face(face, target_image))
    matches.sort(key=lambda m: -m["Similarity"])
    return {
        "SourceImageFace": source_face(source, source_image),
        "FaceMatches": matches,
        "UnmatchedFaces": unmatched,
    }

"""The rekface CDK app: ``cdk deploy`` (or ``python app.py`` to synthesize offline into cdk.out).

Context (``-c name=value``): see rekface_infra/config.py (arch, auth, reserved_concurrency,
deletion_protection, throttle_rate, ...). The layers come from ``make layers``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # rekface_infra, without installing it

from rekface_infra.application import build, new_app, synth  # noqa: E402

if __name__ == "__main__":
    # The cdk CLI passes CDK_OUTDIR; `python app.py` alone writes to infra/cdk.out as well.
    app = new_app(outdir=os.environ.get("CDK_OUTDIR") or str(HERE / "cdk.out"))
    build(app)
    synth(app)

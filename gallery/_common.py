"""What the gallery scripts share: this checkout's packages, one thread, no display, and the
side-by-side movie of two runs. Imported first by each script (``import _common``)."""
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

torch.set_num_threads(1)


def side_by_side(runs, X, y, out: str, *, fps: float = 6, figsize=(4.5, 4.5)) -> Path:
    """Train each ``(label, model, train_kwargs)`` of ``runs`` on ``(X, y)`` and write one GIF of
    their movies side by side (frame i of each run next to each other) to ``gallery/out``."""
    import numpy as np

    from splinescope import render
    from splinescope.spatial.train import train

    movies = []
    for label, model, kw in runs:
        ckpts = train(model, X, y, **kw)
        movies.append(render.frames(ckpts, data=(X, y), stats=False, label=label, figsize=figsize))
    images = [np.concatenate(frames, axis=1) for frames in zip(*(m.images for m in movies))]
    path = render.save(images, HERE / out, fps=fps)
    print(movies, f"{path.stat().st_size / 1e6:.2f} MB")
    return path

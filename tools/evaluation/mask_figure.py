"""Draw mask refinement on a real photo: docs/mask_refinement.png.

    python -m tools.evaluation.mask_figure --out docs/mask_refinement.png

The landmarks come from dlib's 68-point model (offline, real weights), because the real 106-point
InsightFace model cannot be downloaded here; refinement treats any landmark set the same way.
Left: the given mask (a generous ellipse over the head). Right: green is the refined mask, red what
was excluded as hair or non-skin.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from orchestrator import sample_photos
from orchestrator.contact_sheet import overlay_refinement
from orchestrator.imaging.masks import refine_mask
from tools.evaluation.dlib_faces import detect_faces


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/mask_refinement.png"))
    args = parser.parse_args(argv)
    image = sample_photos.astronaut()
    given = sample_photos.astronaut_face_mask()
    result = refine_mask(image, given, detect_faces(image)[0].landmarks68)
    before = image.copy()
    before[given] = (before[given] * 0.5 + np.array([255, 255, 0]) * 0.5).astype(np.uint8)
    after = overlay_refinement(image, given, result.mask)
    crop = (slice(0, 260), slice(100, 360))
    figure = np.concatenate([before[crop], np.full((260, 8, 3), 255, np.uint8), after[crop]], axis=1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(sample_photos.encode_png(cv2.resize(figure, None, fx=1.5, fy=1.5)))
    print(f"{result.reason}\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

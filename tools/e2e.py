"""`make e2e`: run a small task set through the public API and check the results.

    python -m tools.e2e [--orchestrator HOST:PORT] [--device cuda:0] [--out out/e2e]

Without --orchestrator it brings the stack up itself (real weights where `make models` put them,
stand-ins otherwise) and down at the end. For every task it checks:

1. the task returns a result;
2. the best image differs from the init image only inside the mask the service used;
3. identity: the face in the result is the character's, by an independent recogniser (dlib's ResNet
   descriptor, not the swap's own ArcFace): descriptor distance at most --identity-threshold (0.6,
   dlib's own same-person threshold);
4. per-stage timings are reported.

On stand-ins (any model reported as a stand-in) the quality check 3 is measured and reported but
not enforced: random weights cannot produce a face. Writes <out>/report.json; exits 1 if a check fails.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import grpc
import numpy as np
from inpaint.v1 import image_pb2, inpaint_pb2
from PIL import Image

from orchestrator import sample_photos
from orchestrator.client import InpaintClient, timings_s
from stack.local import Stack, StackConfig
from tools.evaluation.dlib_faces import detect_faces, face_descriptor

IDENTITY_THRESHOLD = 0.6


@dataclass(frozen=True)
class E2ETask:
    name: str
    init: np.ndarray
    mask: np.ndarray | None  # None: the service builds the mask from the chosen face
    character: np.ndarray
    more_characters: tuple[np.ndarray, ...] = ()  # further photos of the same identity
    face: inpaint_pb2.FaceSettings | None = None


@dataclass
class TaskResult:
    name: str
    returned: bool = False
    only_inside_mask: bool | None = None
    identity_distance: float | None = None
    identity_ok: bool | None = None
    identity_enforced: bool = True
    changed_outside_given_mask: int = 0
    timings_s: dict[str, float] = field(default_factory=dict)
    stand_in_models: list[str] = field(default_factory=list)
    best_id: str = ""
    error: str = ""

    @property
    def passed(self) -> bool:
        identity = self.identity_ok or not self.identity_enforced
        return self.returned and bool(self.only_inside_mask) and bool(identity) and bool(self.timings_s)


def task_set() -> list[E2ETask]:
    """Real photos from pip packages: a portrait with hair over the face, and one face of a group."""
    group = sample_photos.group()
    face = detect_faces(group)[0]
    x1, y1, x2, y2 = face.box
    mask = np.zeros(group.shape[:2], np.uint8)
    import cv2

    cv2.ellipse(
        mask, ((x1 + x2) // 2, (y1 + y2) // 2 - 5), (int((x2 - x1) * 0.7), int((y2 - y1) * 0.85)), 0, 0, 360, 1, -1
    )
    return [
        E2ETask(
            "astronaut_as_tom_hanks",
            sample_photos.astronaut(),
            sample_photos.astronaut_face_mask(),
            sample_photos.tom_hanks(),
        ),
        E2ETask("group_face_as_astronaut", group, mask.astype(bool), sample_photos.astronaut()),
        # The face features: no mask (the largest face chosen, its mask built), pixel boost and colour match;
        # two photos of the identity (the second mirrored), their mean identity put in.
        E2ETask(
            "astronaut_as_tom_hanks_no_mask_boosted",
            sample_photos.astronaut(),
            None,
            sample_photos.tom_hanks(),
            face=inpaint_pb2.FaceSettings(target=inpaint_pb2.FACE_TARGET_LARGEST, swap_size=256, colour_match=True),
        ),
        E2ETask(
            "astronaut_as_tom_hanks_two_photos",
            sample_photos.astronaut(),
            sample_photos.astronaut_face_mask(),
            sample_photos.tom_hanks(),
            more_characters=(np.ascontiguousarray(sample_photos.tom_hanks()[:, ::-1]),),
        ),
    ]


def _decode(image: image_pb2.Image) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(image.data)).convert("RGB"))


def identity_distance(result: np.ndarray, mask: np.ndarray, character: np.ndarray) -> float | None:
    """dlib descriptor distance between the face inside the mask and the character's largest face."""
    faces = [f for f in detect_faces(result) if mask[(f.box[1] + f.box[3]) // 2, (f.box[0] + f.box[2]) // 2]]
    reference = detect_faces(character)
    if not faces or not reference:
        return None
    a = face_descriptor(result, faces[0])
    b = face_descriptor(character, reference[0])
    return float(np.linalg.norm(a - b))


def run_task(client: InpaintClient, task: E2ETask, threshold: float, timeout_s: float) -> TaskResult:
    outcome = TaskResult(task.name)
    png = sample_photos.encode_png
    images = inpaint_pb2.TaskImages(init_image=image_pb2.Image(data=png(task.init)))
    if task.mask is not None:
        images.mask.data = png(task.mask)
    if task.more_characters:
        images.character_images.extend(image_pb2.Image(data=png(c)) for c in (task.character, *task.more_characters))
    else:
        images.character_image.data = png(task.character)
    # A fresh run each time (not a replay of an earlier e2e run on the same stack).
    request = inpaint_pb2.InpaintRequest(request_id=f"e2e-{task.name}-{time.time_ns()}", images=images)
    if task.face is not None:
        request.face.CopyFrom(task.face)
    try:
        response = client.inpaint(request, timeout_s)
    except grpc.RpcError as error:
        outcome.error = f"{error.code().name}: {error.details()}"
        return outcome
    outcome.returned = True
    outcome.best_id = response.best_candidate_id
    outcome.timings_s = {k: round(v, 3) for k, v in timings_s(response).items()}
    outcome.stand_in_models = list(response.stand_in_models)
    result = _decode(response.image)
    used_mask = _decode(response.refined_mask)[..., 0] > 127
    changed = (result != task.init).any(axis=2)
    outcome.only_inside_mask = bool(changed.any() and not (changed & ~used_mask).any())
    # The service's mask may grow beyond the given one (landmark hull); how far, for the report.
    if task.mask is not None:
        outcome.changed_outside_given_mask = int((changed & ~task.mask).sum())
    outcome.identity_enforced = not outcome.stand_in_models
    outcome.identity_distance = identity_distance(result, used_mask, task.character)
    outcome.identity_ok = outcome.identity_distance is not None and outcome.identity_distance <= threshold
    return outcome


def report_table(results: list[TaskResult], threshold: float) -> str:
    lines = []
    for r in results:
        distance = "no face" if r.identity_distance is None else f"{r.identity_distance:.3f}"
        identity = f"identity {distance} (<= {threshold})" + ("" if r.identity_enforced else " not enforced: stand-ins")
        status = "PASS" if r.passed else "FAIL"
        lines.append(
            f"{status}  {r.name}: returned={r.returned} only_inside_mask={r.only_inside_mask} {identity} "
            f"best={r.best_id} total={r.timings_s.get('total', 0):.1f}s {r.error}"
        )
        if r.timings_s:
            lines.append("      " + ", ".join(f"{k} {v:.2f}s" for k, v in r.timings_s.items() if "." not in k))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orchestrator", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("out/e2e"))
    parser.add_argument("--identity-threshold", type=float, default=IDENTITY_THRESHOLD)
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args(argv)
    tasks = task_set()
    stack: Stack | None = None
    if args.orchestrator is None:
        from stack.local import RUNS

        stack = Stack(RUNS / f"e2e-{time.strftime('%Y%m%d-%H%M%S')}", StackConfig(device=args.device))
        print(f"bringing the stack up (logs in {stack.run_dir}/) ...", flush=True)
        stack.up()
        address = f"127.0.0.1:{stack.config.ports.orchestrator}"
    else:
        address = args.orchestrator
    try:
        results = []
        with InpaintClient(address) as client:
            for task in tasks:
                print(f"task {task.name} ...", flush=True)
                results.append(run_task(client, task, args.identity_threshold, args.timeout))
    finally:
        if stack is not None:
            stack.down()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(
        json.dumps(
            {"threshold": args.identity_threshold, "tasks": [asdict(r) | {"passed": r.passed} for r in results]},
            indent=2,
        )
    )
    print(report_table(results, args.identity_threshold))
    failed = [r.name for r in results if not r.passed]
    print(f"\n{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

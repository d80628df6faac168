"""Serving on onnxruntime's CUDA provider: the same measurements as `serve.py`.

`load_model` puts sessions on CUDAExecutionProvider whenever this onnxruntime
build offers it, so the served endpoint and the in-process ceiling in
`serve.py` run on the GPU there; this script checks that the provider is
available, says which provider the sessions use, and runs `serve.py`'s
measurements (granian only by default). The CPU figures to put beside them are
`serve.py`'s, run on the same machine with `CUDA_VISIBLE_DEVICES=`. Without the
CUDA provider it says so and exits 0.

    .venv/bin/python bench/gpu_serve.py [--duration 4] [--servers granian]
    CUDA_VISIBLE_DEVICES= .venv/bin/python bench/serve.py --servers granian   # CPU, same machine
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    import onnxruntime as ort

    available = ort.get_available_providers()
    print(f"onnxruntime {ort.__version__}, providers: {', '.join(available)}")
    if "CUDAExecutionProvider" not in available:
        print("No CUDAExecutionProvider here (install onnxruntime-gpu on a CUDA machine):")
        print("nothing to measure on the GPU. The CPU figures come from bench/serve.py.")
        return
    if "--servers" not in sys.argv:
        sys.argv += ["--servers", "granian"]
    import serve

    serve.main()


if __name__ == "__main__":
    main()

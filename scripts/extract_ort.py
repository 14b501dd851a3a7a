"""Extract libonnxruntime.so.<version> from the pinned onnxruntime wheel (used by `make ort`)."""
import glob
import os
import sys
import zipfile

whl_dir, out_dir, version = sys.argv[1:4]
wheels = sorted(glob.glob(os.path.join(whl_dir, f"onnxruntime-{version}-*.whl")))
if not wheels:
    sys.exit(f"no onnxruntime-{version} wheel in {whl_dir}")
want = f"onnxruntime/capi/libonnxruntime.so.{version}"
with zipfile.ZipFile(wheels[-1]) as zf:
    data = zf.read(want)
tmp = os.path.join(out_dir, f".libonnxruntime.so.{version}.tmp")
with open(tmp, "wb") as f:
    f.write(data)
os.replace(tmp, os.path.join(out_dir, f"libonnxruntime.so.{version}"))
print(f"extracted {want} ({len(data)} bytes) to {out_dir}")

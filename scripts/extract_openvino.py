"""Lay out the OpenVINO plugin execution provider (PyPI onnxruntime-ep-openvino) beside ONNX Runtime.

Usage: python3 scripts/extract_openvino.py <wheel_dir> <out_dir> <version>
Copies every library of the wheel's onnxruntime_ep_openvino/ folder (the plugin, OpenVINO, TBB; they find
each other through RUNPATH $ORIGIN) into <out_dir>, each written to a temporary name and renamed.
"""
import glob
import os
import sys
import zipfile

whl_dir, out_dir, version = sys.argv[1:4]
wheels = sorted(glob.glob(os.path.join(whl_dir, f"onnxruntime_ep_openvino-{version}-*.whl")))
if not wheels:
    sys.exit(f"no onnxruntime_ep_openvino-{version} wheel in {whl_dir}")
os.makedirs(out_dir, exist_ok=True)
count = 0
with zipfile.ZipFile(wheels[-1]) as zf:
    for member in zf.namelist():
        folder, _, name = member.rpartition("/")
        if folder != "onnxruntime_ep_openvino" or ".so" not in name:
            continue
        tmp = os.path.join(out_dir, f".{name}.tmp")
        with open(tmp, "wb") as f:
            f.write(zf.read(member))
        os.chmod(tmp, 0o755)
        os.replace(tmp, os.path.join(out_dir, name))
        count += 1
print(f"extracted {count} OpenVINO plugin libraries to {out_dir}")

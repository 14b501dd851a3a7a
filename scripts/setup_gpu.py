"""Lay out ONNX Runtime's GPU libraries and the CUDA 13 / cuDNN 9 runtime they need, from pinned PyPI wheels.

Usage: python3 scripts/setup_gpu.py <cache_dir>

Result, in <cache_dir>/onnxruntime-gpu-<ORT_VERSION>/:
  libonnxruntime.so.<ORT_VERSION>, libonnxruntime_providers_{shared,cuda,tensorrt}.so  (side by side: ONNX Runtime
      loads its providers from the folder of libonnxruntime.so)
  cuda/          every shared library (.so*) of the NVIDIA runtime wheels, flattened
  LOAD_ORDER.txt the files of cuda/ to preload one by one (dlopen RTLD_GLOBAL), dependencies first (DT_NEEDED read off
                 the ELF files); without LD_LIBRARY_PATH, preloading is what lets the libraries' own dlopen calls
                 (libcudnn*.so.9, libcufft.so.12, libnvrtc.so.13, libnvrtc-builtins.so.13.0, libnvJitLink.so.13)
                 find them by SONAME. libcudnn_engines_runtime_compiled.so.9 NEEDs the driver's libcuda.so.1.
  MANIFEST.txt   file, size, sha256, source wheel of everything above (tab-separated)

Only the driver (libcuda.so.1, libnvidia-ml.so.1) is not here: it comes from the host.
TensorRT's own libraries (libnvinfer*) are not laid out either (PyPI tensorrt-cu13-libs, over 1 GB).
Idempotent: wheels already in <cache_dir>/whl are not downloaded again, files already extracted with the right
size and checksum are not rewritten. Standard library only.
"""
import fnmatch
import hashlib
import os
import re
import struct
import subprocess
import sys
import zipfile

ORT_VERSION = "1.31.1"

# (distribution, version). onnxruntime-gpu 1.31.1 was built with nvcc 13.0 (V13.0.88): the CUDA libraries are the
# CUDA 13.0 Update 2 component set, the oldest that needs nothing beyond a CUDA 13.0 driver (>= 580). Its own
# metadata asks for nvidia-cuda-runtime~=13.0, nvidia-cuda-nvrtc~=13.0, nvidia-cufft~=12.0, nvidia-curand~=10.0
# (extra "cuda") and nvidia-cudnn-cu13~=9.0 (extra "cudnn"); cuBLAS is NEEDED by the CUDA provider without a pin.
# The CUDA 13 wheels have no -cu13 suffix (nvidia-cuda-runtime-cu13 / nvidia-cublas-cu13 are 0.0.1 placeholders);
# cuDNN keeps it.
ORT_WHEEL = ("onnxruntime-gpu", ORT_VERSION)
NVIDIA_WHEELS = [
    ("nvidia-cuda-runtime", "13.0.96"),  # libcudart.so.13
    ("nvidia-cublas", "13.1.0.3"),  # libcublas.so.13, libcublasLt.so.13
    ("nvidia-cuda-nvrtc", "13.0.88"),  # libnvrtc.so.13, libnvrtc-builtins.so.13.0 (dlopened by nvrtc)
    ("nvidia-curand", "10.4.0.35"),  # libcurand.so.10
    ("nvidia-cufft", "12.0.0.61"),  # libcufft.so.12 (dlopened by the CUDA provider)
    ("nvidia-nvjitlink", "13.0.88"),  # libnvJitLink.so.13: nvidia-cufft's Requires-Dist; cuFFT dlopens it
    ("nvidia-cudnn-cu13", "9.28.1.4"),  # libcudnn*.so.9 (dlopened by the CUDA provider)
]

ORT_FILES = [
    f"libonnxruntime.so.{ORT_VERSION}",
    "libonnxruntime_providers_shared.so",
    "libonnxruntime_providers_cuda.so",
    "libonnxruntime_providers_tensorrt.so",
]

# Wheels are tagged manylinux_2_28 (onnxruntime-gpu), manylinux_2_27 (cuBLAS, cuDNN) or manylinux2014 / _2_17
# (the others); pip does not widen a --platform given as manylinux_2_28, so all are named. All run on glibc >= 2.28.
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]

# Tie-break for LOAD_ORDER.txt among libraries that do not depend on each other: the order of ONNX Runtime's own
# Python package (cublasLt, cublas, nvrtc, curand, cufft, cudart, cudnn). Dependencies always come first.
PREFERRED = ["libcudart.", "libnvJitLink.", "libcublasLt.", "libcublas.", "libnvrtc.", "libnvrtc-builtins.",
             "libcurand.", "libcufft.", "libcudnn.", "libcudnn_graph.", "libcudnn_engines_precompiled.",
             "libcudnn_engines_runtime_compiled.", "libcudnn_heuristic.", "libcudnn_ops.", "libcudnn_cnn.",
             "libcudnn_adv."]

# In cuda/ (they are in the wheels) but left out of LOAD_ORDER.txt: ONNX Runtime uses none of them, and the .alt
# builds of NVRTC export the same symbols as the real ones, so preloading them RTLD_GLOBAL would shadow those.
NOT_PRELOADED = {"libnvrtc.alt.so.13", "libnvrtc-builtins.alt.so.13.0", "libnvblas.so.13", "libcufftw.so.12"}

LIB_RE = re.compile(r"^nvidia/[^/]+/lib/(?P<name>[^/]+\.so(\.[0-9]+)*)$")


class SetupError(Exception):
    pass


def wheel_glob(dist, version):
    return f"{dist.replace('-', '_')}-{version}-*.whl"


def find_wheel(whl_dir, dist, version):
    pattern = wheel_glob(dist, version)
    found = sorted(n for n in os.listdir(whl_dir) if fnmatch.fnmatch(n.lower(), pattern.lower()))
    return os.path.join(whl_dir, found[-1]) if found else None


def ensure_wheel(whl_dir, dist, version):
    path = find_wheel(whl_dir, dist, version)
    if path:
        print(f"have {os.path.basename(path)}")
        return path
    print(f"downloading {dist}=={version} ...", flush=True)
    cmd = [sys.executable, "-m", "pip", "download", f"{dist}=={version}", "--no-deps", "--only-binary=:all:",
           "--python-version", "3.11", "-d", whl_dir, "-q", "--disable-pip-version-check"]
    for p in PLATFORMS:
        cmd[5:5] = ["--platform", p]
    proc = subprocess.run(cmd)
    if proc.returncode != 0:
        raise SetupError(f"pip download {dist}=={version} failed (exit {proc.returncode}): {' '.join(cmd)}")
    path = find_wheel(whl_dir, dist, version)
    if not path:
        raise SetupError(f"pip download {dist}=={version} succeeded but no {wheel_glob(dist, version)} in {whl_dir}")
    if not zipfile.is_zipfile(path):
        raise SetupError(f"{path} is not a zip file (incomplete download?): delete it and run again")
    return path


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def extract(zf, member, dest):
    """Write one zip member to dest atomically unless dest already holds it; returns (size, sha256)."""
    info = zf.getinfo(member)
    if os.path.isfile(dest) and not os.path.islink(dest) and os.path.getsize(dest) == info.file_size:
        h = hashlib.sha256()
        with zf.open(info) as src:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                h.update(chunk)
        want = h.hexdigest()
        if sha256_of(dest) == want:
            return info.file_size, want
    tmp = os.path.join(os.path.dirname(dest), f".{os.path.basename(dest)}.tmp")
    h = hashlib.sha256()
    with zf.open(info) as src, open(tmp, "wb") as out:
        for chunk in iter(lambda: src.read(1 << 20), b""):
            h.update(chunk)
            out.write(chunk)
    os.chmod(tmp, 0o755)
    os.replace(tmp, dest)
    return info.file_size, h.hexdigest()


def version_tuple(v):
    return tuple(int(x) for x in re.findall(r"\d+", v))


def compatible(version, spec):
    """True when version satisfies a ~=X.Y / ==X / >=X specifier (the forms onnxruntime-gpu's metadata uses)."""
    m = re.fullmatch(r"\s*(~=|==|>=)\s*([0-9.]+)\s*", spec)
    if not m:
        return True  # unknown form: not ours to judge
    op, ref = m.group(1), version_tuple(m.group(2))
    v = version_tuple(version)
    if op == "==":
        return v[: len(ref)] == ref
    if op == ">=":
        return v >= ref
    return v >= ref and v[: len(ref) - 1] == ref[:-1]


def check_ort_pins(ort_wheel):
    """Compare our pins with onnxruntime-gpu's Requires-Dist for the extras cuda and cudnn."""
    with zipfile.ZipFile(ort_wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(meta).decode("utf-8", "replace")
    ours = dict(NVIDIA_WHEELS)
    for line in text.splitlines():
        m = re.match(r"Requires-Dist:\s*([A-Za-z0-9_.-]+)\s*([^;]*);\s*extra\s*==\s*\"(cuda|cudnn)\"", line)
        if not m:
            continue
        dist, spec = m.group(1).lower().replace("_", "-"), m.group(2).strip()
        if dist not in ours:
            raise SetupError(f"onnxruntime-gpu {ORT_VERSION} requires {dist}{spec} (extra {m.group(3)}): not pinned here")
        if spec and not compatible(ours[dist], spec):
            raise SetupError(f"pinned {dist}=={ours[dist]} does not satisfy onnxruntime-gpu's {dist}{spec}")
        print(f"pin {dist}=={ours[dist]} satisfies onnxruntime-gpu's {dist}{spec}")


def elf_dynamic(path):
    """(SONAME, [DT_NEEDED...]) of a 64-bit little-endian ELF file, read with the standard library only."""
    with open(path, "rb") as f:
        ident = f.read(64)
        if ident[:4] != b"\x7fELF" or ident[4] != 2 or ident[5] != 1:
            raise SetupError(f"{path}: not a 64-bit little-endian ELF file")
        e_shoff, = struct.unpack_from("<Q", ident, 0x28)
        e_shentsize, e_shnum = struct.unpack_from("<HH", ident, 0x3A)
        f.seek(e_shoff)
        raw = f.read(e_shentsize * e_shnum)
        sections = [struct.unpack_from("<IIQQQQIIQQ", raw, i * e_shentsize) for i in range(e_shnum)]
        dyn = next((s for s in sections if s[1] == 6), None)  # SHT_DYNAMIC
        if dyn is None:
            return None, []
        f.seek(dyn[4])
        dyn_raw = f.read(dyn[5])
        strtab = sections[dyn[6]]
        f.seek(strtab[4])
        strings = f.read(strtab[5])

    def cstr(off):
        return strings[off: strings.index(b"\0", off)].decode()

    soname, needed = None, []
    for i in range(0, len(dyn_raw) - 15, 16):
        tag, val = struct.unpack_from("<qQ", dyn_raw, i)
        if tag == 0:
            break
        if tag == 1:
            needed.append(cstr(val))
        elif tag == 14:
            soname = cstr(val)
    return soname, needed


def load_order(cuda_dir, names):
    """Files of cuda_dir, each after the files it NEEDs (by SONAME); ties broken by PREFERRED, then by name."""
    info = {n: elf_dynamic(os.path.join(cuda_dir, n)) for n in names}
    by_soname = {}
    for n, (soname, _) in info.items():
        by_soname[soname or n] = n
        by_soname[n] = n

    def rank(n):
        for i, p in enumerate(PREFERRED):
            if n.startswith(p):
                return (i, n)
        return (len(PREFERRED), n)

    order, done, visiting = [], set(), set()

    def visit(n):
        if n in done:
            return
        if n in visiting:
            raise SetupError(f"dependency cycle through {n}")
        visiting.add(n)
        for dep in sorted((by_soname[d] for d in info[n][1] if d in by_soname), key=rank):
            visit(dep)
        visiting.discard(n)
        done.add(n)
        order.append(n)

    for n in sorted(names, key=rank):
        visit(n)
    return order


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: python3 scripts/setup_gpu.py <cache_dir>")
    cache_dir = os.path.abspath(sys.argv[1])
    whl_dir = os.path.join(cache_dir, "whl")
    out_dir = os.path.join(cache_dir, f"onnxruntime-gpu-{ORT_VERSION}")
    cuda_dir = os.path.join(out_dir, "cuda")
    os.makedirs(whl_dir, exist_ok=True)
    os.makedirs(cuda_dir, exist_ok=True)

    ort_wheel = ensure_wheel(whl_dir, *ORT_WHEEL)
    check_ort_pins(ort_wheel)
    nvidia = [(dist, ensure_wheel(whl_dir, dist, ver)) for dist, ver in NVIDIA_WHEELS]

    manifest = []  # (relative path, size, sha256, wheel)
    with zipfile.ZipFile(ort_wheel) as zf:
        for name in ORT_FILES:
            member = f"onnxruntime/capi/{name}"
            try:
                size, digest = extract(zf, member, os.path.join(out_dir, name))
            except KeyError:
                raise SetupError(f"{os.path.basename(ort_wheel)} has no {member}")
            manifest.append((name, size, digest, os.path.basename(ort_wheel)))
            print(f"  {name} {size}")

    source = {}
    for dist, wheel in nvidia:
        with zipfile.ZipFile(wheel) as zf:
            libs = [(i.filename, LIB_RE.match(i.filename).group("name")) for i in zf.infolist()
                    if not i.is_dir() and LIB_RE.match(i.filename)]
            if not libs:
                raise SetupError(f"{os.path.basename(wheel)} has no nvidia/*/lib/*.so* file")
            for member, name in libs:
                if name in source:
                    raise SetupError(f"{name} is in both {source[name]} and {os.path.basename(wheel)}")
                source[name] = os.path.basename(wheel)
                size, digest = extract(zf, member, os.path.join(cuda_dir, name))
                manifest.append((f"cuda/{name}", size, digest, os.path.basename(wheel)))
                print(f"  cuda/{name} {size}")

    # Files left over from another pin set would end up in the image: remove them.
    for name in os.listdir(cuda_dir):
        if name not in source:
            print(f"removing stale cuda/{name}")
            os.remove(os.path.join(cuda_dir, name))

    order = load_order(cuda_dir, [n for n in source if n not in NOT_PRELOADED])
    with open(os.path.join(out_dir, ".LOAD_ORDER.txt.tmp"), "w") as f:
        f.write("".join(f"cuda/{n}\n" for n in order))
    os.replace(os.path.join(out_dir, ".LOAD_ORDER.txt.tmp"), os.path.join(out_dir, "LOAD_ORDER.txt"))

    pins = ", ".join(f"{d}=={v}" for d, v in [ORT_WHEEL] + NVIDIA_WHEELS)
    lines = [f"# onnxruntime-gpu {ORT_VERSION} GPU layout, written by scripts/setup_gpu.py from: {pins}",
             "# file\tsize\tsha256\tsource wheel"]
    lines += [f"{p}\t{s}\t{d}\t{w}" for p, s, d, w in manifest]
    with open(os.path.join(out_dir, ".MANIFEST.txt.tmp"), "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(os.path.join(out_dir, ".MANIFEST.txt.tmp"), os.path.join(out_dir, "MANIFEST.txt"))

    total = sum(s for _, s, _, _ in manifest)
    print(f"laid out {len(manifest)} files ({total / 2**20:.0f} MiB) in {out_dir}")


if __name__ == "__main__":
    try:
        main()
    except SetupError as e:
        sys.exit(f"setup_gpu.py: error: {e}")
    except OSError as e:
        sys.exit(f"setup_gpu.py: error: {e}")

"""What both protocol drivers (triton_driver.py over HTTP, triton_grpc_driver.py over gRPC) need:
random inputs of a protocol datatype, and an output compared with ONNX Runtime's."""
import numpy as np
from tritonclient.utils import triton_to_np_dtype


def random_tensor(rng, datatype, shape):
    dtype = triton_to_np_dtype(datatype)
    if datatype == "BOOL":
        return rng.integers(0, 2, size=shape).astype(bool)
    if np.issubdtype(dtype, np.floating):
        return rng.random(size=shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -1000), min(info.max, 1000), size=shape, endpoint=True).astype(dtype)


def compare(expected, got):
    if got is None:
        return {"missing": True}
    same_type = got.dtype == expected.dtype
    same_shape = list(got.shape) == list(expected.shape)
    diff = None
    if same_shape:
        diff = float(np.max(np.abs(got.astype(np.float64) - expected.astype(np.float64)), initial=0.0))
    return {"dtype": str(got.dtype), "same_dtype": bool(same_type), "same_shape": bool(same_shape), "max_abs_diff": diff}

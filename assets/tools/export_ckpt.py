"""Export an rfdetr training checkpoint to ONNX with rfdetr's own exporter (batch axis dynamic), and check the
export against the PyTorch model on a random input.
Usage: python export_ckpt.py det|seg CHECKPOINT.pth RESOLUTION NUM_CLASSES OUT_DIR"""
import glob
import sys

import numpy as np
import onnxruntime as ort
import torch

from rfdetr import RFDETRNano, RFDETRSegNano

task, ckpt, res, nc, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
cls = RFDETRNano if task == "det" else RFDETRSegNano
# num_classes must be given: without it the model is built for 90 classes and the checkpoint's head is
# loaded into a different model than the one that was trained.
model = cls(pretrain_weights=ckpt, resolution=res, num_queries=100, num_select=100, group_detr=1, device="cpu",
            num_classes=nc)
x = np.random.default_rng(0).standard_normal((2, 3, res, res)).astype(np.float32)
with torch.no_grad():
    ref = model.model.model.eval()(torch.from_numpy(x))
model.export(output_dir=out, dynamic_batch=True, opset_version=17, verbose=False)
path = glob.glob(f"{out}/*.onnx")[0]
sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
got = sess.run(None, {sess.get_inputs()[0].name: x})
print(path, [o.name for o in sess.get_outputs()], [g.shape for g in got],
      "max |onnx - torch| boxes %.2e logits %.2e" % (np.abs(got[0] - ref["pred_boxes"].numpy()).max(),
                                                     np.abs(got[1] - ref["pred_logits"].numpy()).max()),
      *(["masks %.2e" % np.abs(got[2] - ref["pred_masks"].numpy()).max()] if task == "seg" else []))

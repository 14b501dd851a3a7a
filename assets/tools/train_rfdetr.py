"""Train a small RF-DETR (the rfdetr package's own model code, randomly initialised: no weights can be
downloaded here) on the synthetic shapes COCO set, export it with export_ckpt.py.
Usage: python train_rfdetr.py det|seg DATA_DIR OUT_DIR EPOCHS RESOLUTION
"""
import glob
import os
import sys

import torch

from rfdetr import RFDETRNano, RFDETRSegNano

task, data, out, epochs, res = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
torch.manual_seed(0)
cls = RFDETRNano if task == "det" else RFDETRSegNano
model = cls(pretrain_weights=None, resolution=res, num_queries=100, num_select=100, group_detr=1, device="cpu")
model.train(dataset_dir=data, output_dir=out, epochs=epochs, batch_size=4, grad_accum_steps=1, lr=4e-4,
            lr_encoder=4e-4, multi_scale=False, expanded_scales=False, use_ema=False, num_workers=2,
            tensorboard=False, run_test=False, checkpoint_interval=1, device="cpu", progress_bar=None)
print("checkpoints:", sorted(glob.glob(os.path.join(out, "checkpoint*.pth"))), flush=True)
# export with export_ckpt.py (it rebuilds the model with the checkpoint's class count and checks the ONNX output)

"""Cross-check a reference made by make_rfdetr_refs.py against rfdetr's own PyTorch `predict` on the training
checkpoint (stretch runs: rfdetr resizes straight to the square input). Its resize is torchvision's, not
cv2's, so small differences are expected; this reports them.
Usage: python crosscheck_rfdetr.py det|seg CHECKPOINT RESOLUTION REFERENCE.json SET_DIR CONF
"""
import json
import sys

import numpy as np
from PIL import Image, ImageOps

from rfdetr import RFDETRNano, RFDETRSegNano

task, ckpt, res, ref_path, set_dir, conf = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], float(sys.argv[6])
cls = RFDETRNano if task == "det" else RFDETRSegNano
model = cls(pretrain_weights=ckpt, resolution=res, num_queries=100, num_select=100, group_detr=1, device="cpu", num_classes=3)
ref = json.load(open(ref_path))
key = f"stretch/conf{conf}/iou0.45"
counts_equal, box_diffs, conf_diffs, class_ok, mask_ious = 0, [], [], True, []
for fn, entry in ref["images"].items():
    img = ImageOps.exif_transpose(Image.open(f"{set_dir}/images/shapes/{fn}")).convert("RGB")
    det = model.predict(img, threshold=conf)
    ours = entry["runs"][key]
    counts_equal += len(det) == len(ours)
    for p in ours:
        if len(det) == 0:
            continue
        b = np.array(p["bbox_xyxy"])
        # a query may answer for two classes (the same box twice): match by box, then class
        d = np.abs(det.xyxy - b).max(1) + 1e6 * (det.class_id != p["class_id"])
        j = int(d.argmin())
        box_diffs.append(float(d[j]))
        conf_diffs.append(abs(float(det.confidence[j]) - p["confidence"]))
        class_ok &= int(det.class_id[j]) == p["class_id"]
        if task == "seg" and det.mask is not None:
            from shapes import rle_decode
            m = rle_decode(p["mask_rle"])
            q = det.mask[j]
            union = (m | q).sum()
            mask_ious.append(float((m & q).sum() / union) if union else 1.0)  # both empty: equal
print(json.dumps({"key": key, "images_with_equal_counts": f"{counts_equal}/{len(ref['images'])}",
                  "max_box_diff_px": round(max(box_diffs, default=0), 3),
                  "median_box_diff_px": round(float(np.median(box_diffs)) if box_diffs else 0, 3),
                  "max_conf_diff": round(max(conf_diffs, default=0), 4),
                  "classes_equal": class_ok,
                  **({"min_mask_iou": round(min(mask_ious), 4), "median_mask_iou": round(float(np.median(mask_ious)), 4)}
                     if mask_ious else {})}))

"""Precision / recall (IoU >= 0.5, same class, greedy by confidence) of a reference's run against the fixtures'
ground truth. Usage: python gt_metrics.py SET_DIR REFERENCE.json RUN_KEY"""
import json
import os
import sys

sys.path.insert(0, os.environ.get("FIXTURE_TOOLS", "shared/fixture-tools"))  # refcore.py
from refcore import greedy_match  # noqa: E402

set_dir, ref_path, key = sys.argv[1:4]
gt = json.load(open(f"{set_dir}/ground_truth/shapes.json"))
ref = json.load(open(ref_path))
tp = fp = n_gt = 0
for fn, entry in ref["images"].items():
    inst = gt["images"][fn]["instances"]
    preds = entry["runs"][key]
    m = greedy_match([p["bbox_xyxy"] for p in preds], [p["class_id"] for p in preds], [p["confidence"] for p in preds],
                     [o["bbox_xyxy"] for o in inst], [o["class_id"] for o in inst])
    hits = sum(1 for _, g, _ in m if g >= 0)
    tp, fp, n_gt = tp + hits, fp + len(preds) - hits, n_gt + len(inst)
print(json.dumps({"run": key, "precision": round(tp / max(tp + fp, 1), 3), "recall": round(tp / max(n_gt, 1), 3),
                  "tp": tp, "fp": fp, "ground_truth": n_gt}))

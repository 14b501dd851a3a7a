"""Render the fixture tools' synthetic shapes scenes (same generator and seeds as gen_train_data.py's
det/seg sets: train 1000, valid 1001) straight into Roboflow's COCO export layout, which rfdetr trains on:
DIR/{train,valid,test}/_annotations.coco.json + the images. Category 0 is Roboflow's superclass
("shapes", supercategory "none"), 1..3 are circle, square, triangle (supercategory "shapes").
Usage: python make_coco.py DIR N_TRAIN N_VALID
"""
import json
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.environ.get("FIXTURE_TOOLS", "shared/fixture-tools"))  # shapes.py
from shapes import CLASS_NAMES, render_scene  # noqa: E402

OUT, N_TRAIN, N_VALID = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
S = 320


def split(name, seed, n):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    cats = [{"id": 0, "name": "shapes", "supercategory": "none"}] + [
        {"id": i + 1, "name": c, "supercategory": "shapes"} for i, c in enumerate(CLASS_NAMES)]
    images, anns = [], []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        img, inst = render_scene(rng, S, S)
        fn = f"{name}_{i:05d}.jpg"
        Image.fromarray(img).save(os.path.join(d, fn), quality=95)
        images.append({"id": i, "file_name": fn, "width": S, "height": S})
        for o in inst:
            x1, y1, x2, y2 = o["bbox_xyxy"]
            poly = [float(v) for xy in o["polygon_visible"] for v in xy]
            anns.append({"id": len(anns), "image_id": i, "category_id": o["class_id"] + 1,
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                         "segmentation": [poly], "iscrowd": 0})
    json.dump({"images": images, "annotations": anns, "categories": cats},
              open(os.path.join(d, "_annotations.coco.json"), "w"))


split("train", 1000, N_TRAIN)
split("valid", 1001, N_VALID)
split("test", 1001, N_VALID)

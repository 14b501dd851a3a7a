"""Reference outputs of an RF-DETR ONNX export, made with Roboflow's inference server pipeline for RF-DETR
(inference/models/rfdetr/rfdetr.py: RFDETRObjectDetection / RFDETRInstanceSegmentation, with
inference/core/utils/preprocess.py letterbox_image and inference/core/utils/postprocess.py mask2poly),
re-run here with numpy, OpenCV and onnxruntime on the fixture images.

One deliberate difference: Roboflow's numpy path normalises the BGR image it decoded with the RGB
ImageNet means/stds (channel 0 = blue gets the red mean) and only then converts to RGB. rfdetr trains
with torchvision's RGB normalisation, so this reference (and Sightline) normalise R, G, B with their own
mean/std.

Usage: python make_rfdetr_refs.py SET_DIR MODEL.onnx MODEL_ID det|seg CLASS_NAMES_TXT OUT.json
  env CONFS (default "0.25,0.5"): the confidence thresholds of the runs.
Run keys: "stretch/conf<c>/iou0.45" (Roboflow's "Stretch to") and "letterbox/conf<c>/iou0.45"
("Fit (black edges) in"); RF-DETR has no NMS, so the iou in the key is ignored.
"""
import json
import os
import sys

import cv2
import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

sys.path.insert(0, os.environ.get("FIXTURE_TOOLS", "shared/fixture-tools"))  # shapes.py
from shapes import rle_encode  # noqa: E402

SET_DIR, MODEL, MODEL_ID, TASK, NAMES_TXT, OUT = sys.argv[1:7]
CONFS = [float(c) for c in os.environ.get("CONFS", "0.25,0.5").split(",")]
MEANS, STDS = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
BACKGROUND = "background_class83422"
MAX_DET = 300

names = [l.strip() for l in open(NAMES_TXT) if l.strip()]
background = names.index(BACKGROUND) if BACKGROUND in names else None
served_names = [n for n in names if n != BACKGROUND]
sess = ort.InferenceSession(MODEL, providers=["CPUExecutionProvider"])
inp = sess.get_inputs()[0]
IN_H, IN_W = inp.shape[2], inp.shape[3]


def load_rgb(path):
    return np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))


def preprocess(rgb, mode):
    img = rgb.astype(np.float32) / 255.0
    for c in range(3):
        img[:, :, c] = (img[:, :, c] - MEANS[c]) / STDS[c]
    if mode == "stretch":
        resized = cv2.resize(img, (IN_W, IN_H))
    else:  # letterbox_image(..., color=(0, 0, 0)): resize_image_keeping_aspect_ratio + copyMakeBorder
        h, w = img.shape[:2]
        img_ratio, desired_ratio = w / h, IN_W / IN_H
        if img_ratio >= desired_ratio:
            nw, nh = IN_W, int(IN_W / img_ratio)
        else:
            nw, nh = int(IN_H * img_ratio), IN_H
        r = cv2.resize(img, (nw, nh))
        top, left = (IN_H - nh) // 2, (IN_W - nw) // 2
        resized = cv2.copyMakeBorder(r, top, IN_H - nh - top, left, IN_W - nw - left, cv2.BORDER_CONSTANT,
                                     value=(0, 0, 0))
    return np.expand_dims(np.transpose(resized, (2, 0, 1)).astype(np.float32), 0)


def sigmoid_stable(x):
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + z), z / (1 + z))


def mask2poly(mask):
    contours = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0]
    if contours:
        return np.array(contours[np.array([len(x) for x in contours]).argmax()]).reshape(-1, 2).astype("float32")
    return np.zeros((0, 2), "float32")


def postprocess(outs, orig_w, orig_h, mode, confidence):
    bboxes, logits = outs[0].astype(np.float32), outs[1].astype(np.float32)
    masks = outs[2] if TASK == "seg" else None
    _, _, num_classes = logits.shape
    flat = sigmoid_stable(logits)[0].reshape(-1)
    if len(flat) > MAX_DET:
        part = np.argpartition(-flat, MAX_DET)[:MAX_DET]
        order = part[np.argsort(-flat[part])]
    else:
        order = np.argsort(-flat)
    scores = flat[order]
    keep = scores > confidence
    order, scores = order[keep], scores[keep]
    qs, labels = order // num_classes, order % num_classes
    if background is not None:
        f = labels != background
        labels[labels > background] -= 1
        scores, labels, qs = scores[f], labels[f], qs[f]
    sel = bboxes[0, qs]
    xyxy = np.concatenate([sel[:, :2] - 0.5 * sel[:, 2:], sel[:, :2] + 0.5 * sel[:, 2:]], axis=1)
    if mode == "stretch":
        xyxy *= np.array([orig_w, orig_h, orig_w, orig_h], dtype=np.float32)
    else:
        scale = min(IN_W / orig_w, IN_H / orig_h)
        sw, sh = int(orig_w * scale), int(orig_h * scale)
        px, py = (IN_W - sw) / 2, (IN_H - sh) / 2
        b = xyxy * np.array([IN_W, IN_H, IN_W, IN_H], dtype=np.float32)
        b[:, [0, 2]] -= px
        b[:, [1, 3]] -= py
        xyxy = b / scale
    np.clip(xyxy, [0, 0, 0, 0], [orig_w, orig_h, orig_w, orig_h], out=xyxy)
    preds = []
    for i in range(len(scores)):
        if labels[i] >= len(served_names):
            continue
        p = {"class_id": int(labels[i]), "class_name": served_names[int(labels[i])],
             "confidence": round(float(scores[i]), 5), "bbox_xyxy": [round(float(v), 3) for v in xyxy[i]]}
        if masks is not None:
            m = masks[0, qs[i]]
            if mode != "stretch":
                mh, mw = m.shape
                scale = min(IN_W / orig_w, IN_H / orig_h)
                sw, sh = int(orig_w * scale), int(orig_h * scale)
                px, py = (IN_W - sw) / 2, (IN_H - sh) / 2
                x1, y1 = int(round(px * mw / IN_W)), int(round(py * mh / IN_H))
                x2, y2 = int(round((px + sw) * mw / IN_W)), int(round((py + sh) * mh / IN_H))
                m = m[y1:y2, x1:x2]
            if m.shape[1] != orig_w or m.shape[0] != orig_h:  # mask_decode_mode "accurate"
                m = cv2.resize(m.astype(np.float32), (orig_w, orig_h), interpolation=cv2.INTER_LINEAR)
            binary = (m > 0).astype(np.uint8)
            pts = mask2poly(binary)
            ph, pw = binary.shape
            p["polygon"] = [[float(x * (orig_w / pw)), float(y * (orig_h / ph))] for x, y in pts]
            p["mask_rle"] = rle_encode(binary.astype(bool))
            p["mask_pixels"] = int(binary.sum())
        preds.append(p)
    return preds


gt = json.load(open(f"{SET_DIR}/ground_truth/shapes.json"))
ref = {"model_id": MODEL_ID, "task": "instance-segmentation" if TASK == "seg" else "object-detection",
       "output_layout": "rfdetr", "class_names": served_names, "input_size": [IN_W, IN_H],
       "preprocessing": ("PIL open + exif_transpose + RGB; /255, (x - ImageNet mean) / std per RGB channel; then "
                         "stretch: cv2.resize(INTER_LINEAR) to the input; letterbox: Roboflow letterbox_image (new size "
                         "truncated with int(), pad floor((in - new) / 2), pad value 0 in normalised space)"),
       "postprocessing": ("Roboflow RFDETRObjectDetection.postprocess: stable sigmoid, top-300 of queries x classes, "
                          "score > conf, background_class83422 dropped and later classes shifted down, cxcywh -> xyxy, "
                          "back-mapped (letterbox: pad (in - int(orig*scale)) / 2), clipped; masks: letterbox padding "
                          "cropped (round), cv2 INTER_LINEAR to the original size, logit > 0, mask2poly (the external "
                          "contour with the most points)"),
       "run_keys": "<preprocessing>/conf<conf>/iou0.45 (no NMS: iou ignored)", "images": {}}
for fn in sorted(gt["images"]):
    rgb = load_rgb(f"{SET_DIR}/images/shapes/{fn}")
    h, w = rgb.shape[:2]
    entry = {"orig_wh": [w, h], "runs": {}, "near_threshold": {}}
    for mode in ("letterbox", "stretch"):
        outs = sess.run(None, {inp.name: preprocess(rgb, mode)})
        for c in CONFS:
            key = f"{mode}/conf{c}/iou0.45"
            entry["runs"][key] = postprocess(outs, w, h, mode, c)
            allp = postprocess(outs, w, h, mode, 0.0)
            entry["near_threshold"][key] = {
                "within_0.02_below": sum(1 for p in allp if c - 0.02 < p["confidence"] <= c),
                "within_0.02_above": sum(1 for p in allp if c < p["confidence"] < c + 0.02)}
    ref["images"][fn] = entry
counts = {k: sum(len(e["runs"][k]) for e in ref["images"].values()) for k in next(iter(ref["images"].values()))["runs"]}
ref["prediction_counts"] = counts
json.dump(ref, open(OUT, "w"))
print(MODEL_ID, json.dumps(counts))

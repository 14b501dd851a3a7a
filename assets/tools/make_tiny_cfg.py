"""Write a tiny fixture config from one of ultralytics' own model YAMLs: its `scales` replaced by the single
scale `t: [0.50, WIDTH, 1024]` and `nc` set (the fixtures' cfg/tiny*.yaml were made this way).
Usage: python make_tiny_cfg.py SRC.yaml DST.yaml NC WIDTH [KPT_SHAPE like 3,3]
"""
import re
import sys

src, dst, nc, width = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
text = open(src).read()
text = re.sub(r"^nc: \d+.*$", f"nc: {nc} # number of classes", text, flags=re.M)
text = re.sub(r"^scales:.*?(?=^\S)", f"scales:\n  t: [0.50, {width}, 1024]\n\n", text, flags=re.M | re.S)
if len(sys.argv) > 5:
    text = re.sub(r"^kpt_shape: .*$", f"kpt_shape: [{sys.argv[5]}]", text, flags=re.M)
open(dst, "w").write(text)

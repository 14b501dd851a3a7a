"""References for Sightline's embedding fixtures, from the upstream code only:

* Roboflow's CLIP (inference/models/clip/clip_model.py): OpenAI CLIP's `_transform(resolution)`
  (torchvision Resize with Pillow's bicubic, CenterCrop, RGB, ToTensor, Normalize) and
  `clip.tokenize` (77 tokens, int32) into visual.onnx / textual.onnx with onnxruntime; the raw
  projections, unnormalised, as Roboflow answers them; `/clip/compare` with Roboflow's cosine.
* fastembed: `ImageEmbedding` and `TextEmbedding` on the fixture folders through
  `specific_model_path` (its preprocessor_config.json transforms, its tokenizer loading, its
  onnxruntime call and pooling); vectors L2-normalised as Sightline's /embed routes answer them.

Images are opened with Pillow and turned upright by `ImageOps.exif_transpose`, as the server
decodes every request image.

* fastembed's classes for the hub models whose pipelines differ (`--hub`): jinaai/jina-clip-v1
  (JinaCLIPImageProcessor, pad to square), nomic-ai/nomic-embed-vision-v1.5 (NormalizedEmbedding:
  the first token of `last_hidden_state`) and google/siglip2-base-patch16-224
  (SiglipOnnxImageEmbedding: `pooler_output`), each by its catalogue name on a folder laid out as
  its repository (fixture ONNX files, the configurations in CONFIGS_DIR).

Usage: python make_embedding_refs.py MODELS_DIR IMAGES_DIR OUT.json
       python make_embedding_refs.py --hub MODELS_DIR IMAGES_DIR CONFIGS_DIR REFS.json
The second form adds the key `fastembed_hub` to an existing REFS.json.
"""

import html
import json
import os
import sys

import clip
import numpy as np
import onnxruntime as ort
from fastembed import ImageEmbedding, TextEmbedding
from PIL import Image, ImageOps

IMAGES = [
    "shapes_640x480.png",
    "shapes_300x500.png",
    "shapes_1920x1080.jpg",
    "shapes_exif6_480x640.jpg",
    "cls/cls_300x300_triangle.jpg",
    "cls/cls_64x64_circle.png",
    "embed/tiny_32x32.png",
    "embed/strip_40x24.png",
    "embed/grey_256.png",
    "embed/rgba_256.png",
    "embed/crop_375x224.png",
]

TEXTS = [
    "a photo of a circle",
    "A RED Square!!",
    "  multiple   spaces\tand\ttabs\n",
    "café naïve façade résumé",
    "Cre\u0300me bru\u0302le\u0301e",
    "emoji 🐶🚀 party 🎉",
    "日本語のテキスト",
    "中文字符测试",
    "it's don't we'll they're I'm you've she'd",
    "numbers 12345 and 3.14159",
    "curly quotes \u201chello\u201d \u2018world\u2019",
    "HTML &amp; entities &lt;b&gt; &eacute;t&eacute; &#39;x&#39;",
    "\ufb01ne \ufb02ow liga\ufb00ure",
    "\uff46\uff55\uff4c\uff4c\uff57\uff49\uff44\uff54\uff48 \uff21\uff22\uff23\uff11\uff12",
    "",
    " ",
    "a",
    "shapes",
    "a triangle",
    "a square",
]

# Over 77 tokens: clip.tokenize refuses it (Roboflow answers an error), fastembed truncates.
OVER_LONG = "word " * 100


def make_images(folder: str):
    """The extra fixture images: tiny, a thin strip, grey and RGBA, cut from the shapes scenes."""
    src = Image.open(os.path.join(folder, "shapes_320_00.png")).convert("RGB")
    out = os.path.join(folder, "embed")
    os.makedirs(out, exist_ok=True)
    src.resize((32, 32), Image.Resampling.BOX).save(os.path.join(out, "tiny_32x32.png"))
    src.crop((100, 140, 140, 164)).save(os.path.join(out, "strip_40x24.png"))
    Image.open(os.path.join(folder, "shapes_256_00.png")).convert("L").save(os.path.join(out, "grey_256.png"))
    rgba = Image.open(os.path.join(folder, "shapes_256_01.png")).convert("RGBA")
    alpha = Image.linear_gradient("L").resize(rgba.size)
    rgba.putalpha(alpha)
    rgba.save(os.path.join(out, "rgba_256.png"))
    # Short side already 224, long side 375: the centre crop's offset is 75.5, which torchvision
    # rounds half to even (76) and Hugging Face's processors floor (75).
    Image.open(os.path.join(folder, "shapes_640x480.png")).convert("RGB").crop((0, 0, 375, 224)).save(
        os.path.join(out, "crop_375x224.png"))


def open_upright(folder: str, name: str) -> Image.Image:
    image = Image.open(os.path.join(folder, name))
    image.load()
    return ImageOps.exif_transpose(image)


def roboflow_cosine(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def normalised(vectors):
    v = np.asarray(vectors, dtype=np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def roboflow_refs(models: str, images: dict):
    folder = os.path.join(models, "clip", "tiny-test")
    visual = ort.InferenceSession(os.path.join(folder, "visual.onnx"))
    textual = ort.InferenceSession(os.path.join(folder, "textual.onnx"))
    resolution = visual.get_inputs()[0].shape[2]
    preprocess = clip.clip._transform(resolution)

    def embed_image(image: Image.Image):
        # Roboflow's load_image_rgb hands an RGB array to Image.fromarray.
        rgb = Image.fromarray(np.asarray(image.convert("RGB")))
        x = np.expand_dims(preprocess(rgb), 0).astype(np.float32)
        return visual.run(None, {visual.get_inputs()[0].name: x})[0][0]

    def embed_text(text: str):
        tokens = clip.tokenize([text]).numpy().astype(np.int32)
        return tokens[0], textual.run(None, {textual.get_inputs()[0].name: tokens})[0][0]

    image_vectors = {name: embed_image(img) for name, img in images.items()}
    texts = {}
    for text in TEXTS:
        tokens, vector = embed_text(text)
        texts[text] = {"tokens": tokens.tolist(), "embedding": vector.tolist()}
    try:
        clip.tokenize([OVER_LONG])
        over_long_refused = False
    except RuntimeError:
        over_long_refused = True

    subject = "shapes_640x480.png"
    prompts = ["a photo of a circle", "a triangle", "a square", "shapes"]
    compare = {
        "image_to_text": {
            "subject": subject,
            "prompts": prompts,
            "similarity": [roboflow_cosine(image_vectors[subject], texts[p]["embedding"]) for p in prompts],
        },
        "text_to_image": {
            "subject": "shapes",
            "prompts": IMAGES[:4],
            "similarity": [roboflow_cosine(texts["shapes"]["embedding"], image_vectors[n]) for n in IMAGES[:4]],
        },
    }
    return {
        "model": "clip/tiny-test",
        "resolution": resolution,
        "images": {name: v.tolist() for name, v in image_vectors.items()},
        "texts": texts,
        "over_long_refused": over_long_refused,
        "compare": compare,
    }


def fastembed_refs(models: str, images: dict):
    vision = ImageEmbedding("Qdrant/clip-ViT-B-32-vision",
                            specific_model_path=os.path.join(models, "embed", "clip-tiny-vision"))
    resnet = ImageEmbedding("Qdrant/resnet50-onnx",
                            specific_model_path=os.path.join(models, "embed", "resnet-tiny"))
    text = TextEmbedding("Qdrant/clip-ViT-B-32-text",
                         specific_model_path=os.path.join(models, "embed", "clip-tiny-text"))
    names = list(images)
    pil = [images[n] for n in names]
    corpus = TEXTS + [OVER_LONG]
    tokenizer = text.model.tokenizer
    encodings = tokenizer.encode_batch(corpus)
    return {
        "embed/clip-tiny-vision": {n: v.tolist() for n, v in zip(names, normalised(list(vision.embed(pil))))},
        "embed/resnet-tiny": {n: v.tolist() for n, v in zip(names, normalised(list(resnet.embed(pil))))},
        "embed/clip-tiny-text": {
            t: {"tokens": e.ids[: sum(e.attention_mask)], "embedding": v.tolist()}
            for t, e, v in zip(corpus, encodings, normalised(list(text.embed(corpus))))
        },
    }


def pillow_resize_refs(image_dir: str):
    """sha256 of Pillow's `Image.resize` output bytes, per filter and size, for the resampler."""
    import hashlib

    cases = []
    for name, sizes in [("shapes_320_00.png", [(224, 224), (100, 37), (13, 9), (400, 123), (320, 150)]),
                        ("cls/cls_64x64_circle.png", [(224, 224), (150, 97), (64, 201), (7, 64)])]:
        image = Image.open(os.path.join(image_dir, name)).convert("RGB")
        for resample in range(6):
            for width, height in sizes:
                out = image.resize((width, height), Image.Resampling(resample))
                cases.append({"image": name, "resample": resample, "width": width, "height": height,
                              "sha256": hashlib.sha256(out.tobytes()).hexdigest()})
    return cases


def pooled_refs(models: str):
    """fastembed's own pooling of a token-level model (`add_custom_model` with MEAN and CLS
    pooling, normalised), on the corpus."""
    from fastembed.common.model_description import ModelSource, PoolingType

    folder = os.path.join(models, "embed", "clip-tiny-tokens")
    corpus = TEXTS + [OVER_LONG]
    refs = {}
    for name, pooling in [("acme/tiny-mean", PoolingType.MEAN), ("acme/tiny-cls", PoolingType.CLS)]:
        TextEmbedding.add_custom_model(model=name, pooling=pooling, normalization=True,
                                       sources=ModelSource(hf=name), dim=32, model_file="model.onnx")
        model = TextEmbedding(name, specific_model_path=folder)
        refs[name] = {t: v.tolist() for t, v in zip(corpus, model.embed(corpus))}
    return refs


def hub_refs(models: str, image_dir: str, configs: str):
    import tempfile

    from fastembed.image.normalized_embedding import supported_normalized_models

    images = {name: open_upright(image_dir, name) for name in IMAGES}
    embed = os.path.join(models, "embed")
    repos = {
        "jinaai/jina-clip-v1": ("onnx/vision_model.onnx", f"{embed}/clip-tiny-vision/model.onnx",
                                f"{configs}/jina-clip-v1.preprocessor_config.json"),
        "nomic-ai/nomic-embed-vision-v1.5": ("onnx/model.onnx", f"{embed}/siglip-tiny/model.onnx",
                                             f"{configs}/nomic-embed-vision-v1.5.preprocessor_config.json"),
        "google/siglip2-base-patch16-224": ("onnx/vision_model.onnx", f"{embed}/siglip-tiny/model.onnx",
                                            f"{embed}/siglip-tiny/preprocessor_config.json"),
    }
    # NormalizedEmbedding splits the flat output by the description's dim (768 for nomic); the
    # fixture's hidden size is 32.
    import dataclasses

    supported_normalized_models[:] = [dataclasses.replace(d, dim=32) for d in supported_normalized_models]
    refs = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, (model_file, onnx_file, config) in repos.items():
            folder = os.path.join(scratch, name.replace("/", "--"))
            os.makedirs(os.path.dirname(os.path.join(folder, model_file)), exist_ok=True)
            os.symlink(os.path.abspath(onnx_file), os.path.join(folder, model_file))
            os.symlink(os.path.abspath(config), os.path.join(folder, "preprocessor_config.json"))
            model = ImageEmbedding(name, specific_model_path=folder)
            names = list(images)
            vectors = normalised(list(model.embed([images[n] for n in names])))
            refs[name] = {n: v.tolist() for n, v in zip(names, vectors)}
    return refs


def add_hub_refs(models: str, image_dir: str, configs: str, refs_path: str):
    with open(refs_path) as f:
        refs = json.load(f)
    refs["fastembed_hub"] = hub_refs(models, image_dir, configs)
    with open(refs_path, "w") as f:
        json.dump(refs, f, ensure_ascii=False)
        f.write("\n")


def main(models: str, image_dir: str, out: str):
    make_images(image_dir)
    images = {name: open_upright(image_dir, name) for name in IMAGES}
    refs = {
        "images": IMAGES,
        "texts": TEXTS,
        "over_long": OVER_LONG,
        "roboflow": roboflow_refs(models, images),
        "fastembed": fastembed_refs(models, images),
        "pillow_resize": pillow_resize_refs(image_dir),
        "fastembed_pooled": pooled_refs(models),
    }
    with open(out, "w") as f:
        json.dump(refs, f, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    if sys.argv[1] == "--hub":
        add_hub_refs(*sys.argv[2:6])
    else:
        main(*sys.argv[1:4])

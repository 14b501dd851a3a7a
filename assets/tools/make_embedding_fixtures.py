"""Builds Sightline's embedding fixtures with the upstream code: a tiny, randomly initialised
open_clip CLIP exported in Roboflow's layout (visual.onnx, textual.onnx) and in fastembed's
Hugging Face layout (vision and text towers, preprocessor_config.json, tokenizer.json made from
CLIP's real BPE vocabulary), and a small ResNet-style image embedder laid out like
fastembed's Qdrant/resnet50-onnx.

Usage: python make_embedding_fixtures.py OUT_DIR
       python make_embedding_fixtures.py --siglip OUT_DIR
       python make_embedding_fixtures.py --vit-b-32 OUT_DIR
The `--siglip` form exports a tiny, randomly initialised transformers `SiglipVisionModel` laid out
like onnx-community/siglip2-base-patch16-224-ONNX's vision tower (outputs `last_hidden_state` and
`pooler_output`) as `OUT_DIR/embed/siglip-tiny/`, and the preprocessor configurations of
jinaai/jina-clip-v1 and nomic-ai/nomic-embed-vision-v1.5 as `OUT_DIR/configs/`.
The second form exports a randomly initialised open_clip ViT-B-32 (the size of Roboflow's
`clip/ViT-B-32`, about 600 MB) as `OUT_DIR/clip/ViT-B-32-random/` for `make bench` only; it is never
committed.
"""

import gzip
import json
import os
import sys
import tempfile

import open_clip
import torch
import torch.nn as nn
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
from torchvision.models.resnet import BasicBlock

OPSET = 18
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def tiny_clip() -> CLIP:
    torch.manual_seed(20)
    model = CLIP(
        embed_dim=64,
        vision_cfg=CLIPVisionCfg(layers=2, width=64, head_width=32, patch_size=32, image_size=224),
        text_cfg=CLIPTextCfg(context_length=77, vocab_size=49408, width=32, heads=2, layers=2),
    )
    return model.eval()


class Visual(nn.Module):
    def __init__(self, clip: CLIP):
        super().__init__()
        self.clip = clip

    def forward(self, image):
        return self.clip.encode_image(image)


class RoboflowTextual(nn.Module):
    """Roboflow feeds `clip.tokenize(...).astype(np.int32)`, 77 tokens, to textual.onnx."""

    def __init__(self, clip: CLIP):
        super().__init__()
        self.clip = clip

    def forward(self, text):
        return self.clip.encode_text(text.long())


class HfTextual(nn.Module):
    """open_clip's encode_text over a batch padded to its longest sequence, as fastembed's
    tokenizer pads: positions and the causal mask cut to the batch length, the pooled token the
    last attended one (the end-of-text token, where open_clip's argmax pooling lands)."""

    def __init__(self, clip: CLIP):
        super().__init__()
        self.clip = clip

    def forward(self, input_ids, attention_mask):
        c = self.clip
        length = input_ids.shape[1]
        x = c.token_embedding(input_ids)
        x = x + c.positional_embedding[:length]
        x = c.transformer(x, attn_mask=c.attn_mask[:length, :length])
        x = c.ln_final(x)
        last = attention_mask.sum(dim=-1) - 1
        x = x[torch.arange(x.shape[0]), last]
        return x @ c.text_projection


class HfTokens(nn.Module):
    """The text tower without pooling or projection: one vector per token, (N, L, width), as
    sentence-embedding models hand them to fastembed's mean or CLS pooling."""

    def __init__(self, clip: CLIP):
        super().__init__()
        self.clip = clip

    def forward(self, input_ids, attention_mask):
        c = self.clip
        length = input_ids.shape[1]
        x = c.token_embedding(input_ids) + c.positional_embedding[:length]
        x = c.transformer(x, attn_mask=c.attn_mask[:length, :length])
        return c.ln_final(x) * attention_mask.unsqueeze(-1).to(x.dtype)


class TinyResNet(nn.Module):
    """A ResNet (torchvision's BasicBlock) whose pooled map is the model output, (N, C, 1, 1),
    as Qdrant/resnet50-onnx leaves it for fastembed to flatten."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(21)
        self.stem = nn.Sequential(
            nn.Conv2d(3, 32, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        down = nn.Sequential(nn.Conv2d(32, 64, 1, stride=2, bias=False), nn.BatchNorm2d(64))
        self.layers = nn.Sequential(BasicBlock(32, 32), BasicBlock(32, 64, stride=2, downsample=down))
        self.pool = nn.AdaptiveAvgPool2d(1)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                nn.init.uniform_(m.running_mean, -0.1, 0.1)
                nn.init.uniform_(m.running_var, 0.5, 1.5)
        self.eval()

    def forward(self, pixel_values):
        return self.pool(self.layers(self.stem(pixel_values)))


def export(module, args, path, input_names, output_names, dynamic_axes):
    torch.onnx.export(
        module.eval(),
        args,
        path,
        input_names=input_names,
        output_names=output_names,
        dynamic_axes=dynamic_axes,
        opset_version=OPSET,
        dynamo=True,
        external_data=False,
    )


def bpe_vocab_files(folder: str):
    """vocab.json and merges.txt exactly as open_clip's SimpleTokenizer builds its encoder."""
    bpe = os.path.join(os.path.dirname(open_clip.__file__), "bpe_simple_vocab_16e6.txt.gz")
    merges = gzip.open(bpe).read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    merges = [tuple(m.split()) for m in merges]
    byte_chars = list(open_clip.tokenizer.bytes_to_unicode().values())
    vocab = byte_chars + [v + "</w>" for v in byte_chars] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    vocab_path = os.path.join(folder, "vocab.json")
    merges_path = os.path.join(folder, "merges.txt")
    with open(vocab_path, "w") as f:
        json.dump({t: i for i, t in enumerate(vocab)}, f, ensure_ascii=False)
    with open(merges_path, "w") as f:
        f.write("#version: 0.2\n")
        f.write("\n".join(" ".join(m) for m in merges) + "\n")
    return vocab_path, merges_path


def write_tokenizer(folder: str):
    """tokenizer.json in the form transformers' CLIP converter writes (openai/clip-vit-base-patch32,
    and so Qdrant/clip-ViT-B-32-text, carry this one): NFC, whitespace runs to one space and
    lowercase; CLIP's split pattern and byte-level pre-tokenizer; BPE with `</w>` word ends; the
    start and end tokens around every sequence."""
    with tempfile.TemporaryDirectory() as tmp:
        vocab_path, merges_path = bpe_vocab_files(tmp)
        vocab = json.load(open(vocab_path))
        merges = open(merges_path).read().split("\n")[1:-1]
    bos, eos = "<|startoftext|>", "<|endoftext|>"
    special = lambda content: {"id": vocab[content], "content": content, "single_word": False,
                               "lstrip": False, "rstrip": False, "normalized": False, "special": True}
    split = ("<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]"
             "|[^\\s\\p{L}\\p{N}]+")
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [special(bos), special(eos)],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFC"},
            {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "},
            {"type": "Lowercase"},
        ]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": split}, "behavior": "Removed", "invert": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        ]},
        "post_processor": {"type": "RobertaProcessing", "sep": [eos, vocab[eos]], "cls": [bos, vocab[bos]],
                           "trim_offsets": False, "add_prefix_space": False},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": eos, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "</w>", "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": False, "vocab": vocab, "merges": merges},
    }
    with open(os.path.join(folder, "tokenizer.json"), "w") as f:
        json.dump(tokenizer, f, ensure_ascii=False)
    write_json(os.path.join(folder, "tokenizer_config.json"), {
        "add_prefix_space": False, "bos_token": bos, "do_lower_case": True, "eos_token": eos,
        "errors": "replace", "model_max_length": 77, "pad_token": eos,
        "tokenizer_class": "CLIPTokenizer", "unk_token": eos,
    })
    write_json(os.path.join(folder, "special_tokens_map.json"),
               {"bos_token": bos, "eos_token": eos, "pad_token": eos, "unk_token": eos})


def write_json(path, value):
    with open(path, "w") as f:
        json.dump(value, f, indent=2)
        f.write("\n")


def main(out: str):
    clip = tiny_clip()
    image = torch.randn(2, 3, 224, 224)
    tokens = open_clip.tokenize(["a photo", "shapes"])

    roboflow = os.path.join(out, "clip", "tiny-test")
    os.makedirs(roboflow, exist_ok=True)
    export(Visual(clip), (image,), f"{roboflow}/visual.onnx", ["input"], ["embeddings"],
           {"input": {0: "batch"}, "embeddings": {0: "batch"}})
    export(RoboflowTextual(clip), (tokens.int(),), f"{roboflow}/textual.onnx", ["input"],
           ["embeddings"], {"input": {0: "batch"}, "embeddings": {0: "batch"}})

    vision = os.path.join(out, "embed", "clip-tiny-vision")
    os.makedirs(vision, exist_ok=True)
    export(Visual(clip), (image,), f"{vision}/model.onnx", ["pixel_values"], ["image_embeds"],
           {"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}})
    write_json(f"{vision}/preprocessor_config.json", {
        "crop_size": {"height": 224, "width": 224},
        "do_center_crop": True,
        "do_convert_rgb": True,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": CLIP_MEAN,
        "image_processor_type": "CLIPImageProcessor",
        "image_std": CLIP_STD,
        "resample": 3,
        "rescale_factor": 1 / 255,
        "size": {"shortest_edge": 224},
    })

    text = os.path.join(out, "embed", "clip-tiny-text")
    os.makedirs(text, exist_ok=True)
    mask = torch.ones_like(tokens)
    export(HfTextual(clip), (tokens[:, :8], mask[:, :8]), f"{text}/model.onnx",
           ["input_ids", "attention_mask"], ["text_embeds"],
           {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
            "text_embeds": {0: "batch"}})
    write_tokenizer(text)
    write_json(f"{text}/config.json", {
        "model_type": "clip_text_model", "max_position_embeddings": 77, "projection_dim": 64,
        "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 1,
    })

    tokens_dir = os.path.join(out, "embed", "clip-tiny-tokens")
    os.makedirs(tokens_dir, exist_ok=True)
    export(HfTokens(clip), (tokens[:, :8], mask[:, :8]), f"{tokens_dir}/model.onnx",
           ["input_ids", "attention_mask"], ["last_hidden_state"],
           {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
            "last_hidden_state": {0: "batch", 1: "sequence"}})
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "config.json"):
        with open(os.path.join(text, name), "rb") as src, open(os.path.join(tokens_dir, name), "wb") as dst:
            dst.write(src.read())

    resnet = os.path.join(out, "embed", "resnet-tiny")
    os.makedirs(resnet, exist_ok=True)
    export(TinyResNet(), (image,), f"{resnet}/model.onnx", ["pixel_values"], ["pooled"],
           {"pixel_values": {0: "batch"}, "pooled": {0: "batch"}})
    write_json(f"{resnet}/preprocessor_config.json", {
        "crop_pct": 0.875,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": IMAGENET_MEAN,
        "image_processor_type": "ConvNextFeatureExtractor",
        "image_std": IMAGENET_STD,
        "resample": 3,
        "rescale_factor": 1 / 255,
        "size": {"shortest_edge": 224},
    })

    # The PyTorch towers and their ONNX exports agree (a check of the export, not a reference).
    import onnxruntime as ort
    import numpy as np

    with torch.no_grad():
        want_img = clip.encode_image(image).numpy()
        want_txt = clip.encode_text(tokens).numpy()
    got_img = ort.InferenceSession(f"{roboflow}/visual.onnx").run(None, {"input": image.numpy()})[0]
    got_txt = ort.InferenceSession(f"{roboflow}/textual.onnx").run(None, {"input": tokens.int().numpy()})[0]
    n = int(tokens.argmax(-1).max()) + 1
    got_hf = ort.InferenceSession(f"{text}/model.onnx").run(
        None, {"input_ids": tokens[:, :n].numpy(), "attention_mask": (tokens[:, :n] != 0).long().numpy()})[0]
    for name, a, b in [("image", want_img, got_img), ("text", want_txt, got_txt), ("hf text", want_txt, got_hf)]:
        print(name, "max abs diff", float(np.abs(a - b).max()))


def vit_b_32(out: str):
    torch.manual_seed(32)
    model = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    folder = os.path.join(out, "clip", "ViT-B-32-random")
    os.makedirs(folder, exist_ok=True)
    image = torch.randn(2, 3, 224, 224)
    tokens = open_clip.tokenize(["a photo", "shapes"])
    export(Visual(model), (image,), f"{folder}/visual.onnx", ["input"], ["embeddings"],
           {"input": {0: "batch"}, "embeddings": {0: "batch"}})
    export(RoboflowTextual(model), (tokens.int(),), f"{folder}/textual.onnx", ["input"], ["embeddings"],
           {"input": {0: "batch"}, "embeddings": {0: "batch"}})


class SiglipVision(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values):
        out = self.model(pixel_values=pixel_values)
        return out.last_hidden_state, out.pooler_output


def siglip(out: str):
    from transformers import SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(22)
    config = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                num_attention_heads=2, image_size=224, patch_size=32)
    model = SiglipVisionModel(config).eval()
    folder = os.path.join(out, "embed", "siglip-tiny")
    os.makedirs(folder, exist_ok=True)
    image = torch.randn(2, 3, 224, 224)
    export(SiglipVision(model), (image,), f"{folder}/model.onnx", ["pixel_values"],
           ["last_hidden_state", "pooler_output"],
           {"pixel_values": {0: "batch"}, "last_hidden_state": {0: "batch"}, "pooler_output": {0: "batch"}})
    # onnx-community/siglip2-base-patch16-224-ONNX's preprocessor_config.json.
    write_json(f"{folder}/preprocessor_config.json", {
        "do_convert_rgb": None,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_processor_type": "SiglipImageProcessor",
        "image_std": [0.5, 0.5, 0.5],
        "processor_class": "SiglipProcessor",
        "resample": 2,
        "rescale_factor": 1 / 255,
        "size": {"height": 224, "width": 224},
    })
    configs = os.path.join(out, "configs")
    os.makedirs(configs, exist_ok=True)
    # jinaai/jina-clip-v1's preprocessor_config.json (its processor pads to a square).
    write_json(f"{configs}/jina-clip-v1.preprocessor_config.json", {
        "fill_color": 0,
        "image_processor_type": "JinaCLIPImageProcessor",
        "interpolation": "bicubic",
        "mean": CLIP_MEAN,
        "processor_class": "JinaCLIPProcessor",
        "resize_mode": "shortest",
        "size": 224,
        "std": CLIP_STD,
    })
    # A CLIP processor as nomic-ai/nomic-embed-vision-v1.5 uses, its crop size a bare number.
    write_json(f"{configs}/nomic-embed-vision-v1.5.preprocessor_config.json", {
        "crop_size": 224,
        "do_center_crop": True,
        "do_normalize": True,
        "do_resize": True,
        "image_mean": CLIP_MEAN,
        "image_processor_type": "CLIPImageProcessor",
        "image_std": CLIP_STD,
        "resample": 3,
        "size": {"shortest_edge": 224},
    })

    import numpy as np
    import onnxruntime as ort

    with torch.no_grad():
        want = model(pixel_values=image)
    got = ort.InferenceSession(f"{folder}/model.onnx").run(None, {"pixel_values": image.numpy()})
    for name, a, b in [("tokens", want.last_hidden_state.numpy(), got[0]),
                       ("pooled", want.pooler_output.numpy(), got[1])]:
        print(name, "max abs diff", float(np.abs(a - b).max()))


if __name__ == "__main__":
    if sys.argv[1] == "--vit-b-32":
        vit_b_32(sys.argv[2])
    elif sys.argv[1] == "--siglip":
        siglip(sys.argv[2])
    else:
        main(sys.argv[1])

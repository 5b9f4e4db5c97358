"""Writes a tiny BERT (random weights, fixed seed) in the transformers.js layout, for the tests.

A 2-layer BERT (hidden size 32, 23k parameters) for the `feature-extraction` pipeline:
OUT_DIR/tiny-bert/          config.json, tokenizer.json, tokenizer_config.json, onnx/model.onnx (weights inline)
OUT_DIR/tiny-bert-extdata/  the same model with its weights in onnx/model.onnx_data (ONNX external data) and
                            "transformers.js_config": {"use_external_data_format": true} in config.json
No expected outputs are stored: the tests run this plaintext model and its encrypted copy through
transformers.js and compare the two.

Everything is generated locally (WordPiece vocabulary written here; nothing is downloaded). Needs the .venv's
torch and transformers plus `onnx` and `onnxscript` (python-requirements-fixtures.txt). The output is committed
under test/fixtures/, so tests never run this script.
Usage: .venv/bin/python scripts/make_tiny_onnx_model.py test/fixtures [--seed 0]
"""

import argparse
import json
import os
import shutil

import onnx
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

WORDS = (
    "the a an and or of to in on for with is are was were be this that it model secret weights encrypted "
    "hello world tensor key sign trust browser node app load run text small tiny test data private public "
    "cat dog sat mat red blue green fast slow good bad yes no one two three"
).split()


def write_tokenizer(out: str) -> PreTrainedTokenizerFast:
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *list("abcdefghijklmnopqrstuvwxyz0123456789.,!?'-")]
    vocab += ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"] + WORDS
    ids = {t: i for i, t in enumerate(dict.fromkeys(vocab))}
    tok = Tokenizer(models.WordPiece(vocab=ids, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    tok.decoder = decoders.WordPiece()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        mask_token="[MASK]",
        model_max_length=64,
    )
    fast.save_pretrained(out)
    cfg_path = os.path.join(out, "tokenizer_config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    cfg["tokenizer_class"] = "BertTokenizer"
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
    for extra in ("special_tokens_map.json",):
        if os.path.exists(os.path.join(out, extra)):
            os.remove(os.path.join(out, extra))
    return fast


class Wrapper(torch.nn.Module):
    def __init__(self, model: BertModel):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        return out.last_hidden_state


def export(model: BertModel, path: str) -> None:
    ids = torch.tensor([[2, 10, 11, 3]])
    args = (ids, torch.ones_like(ids), torch.zeros_like(ids))
    torch.onnx.export(
        Wrapper(model),
        args,
        path,
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["last_hidden_state"],
        dynamic_axes={n: {0: "batch", 1: "sequence"} for n in ["input_ids", "attention_mask", "token_type_ids", "last_hidden_state"]},
        opset_version=17,
        dynamo=False,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.manual_seed(args.seed)
    inline = os.path.join(args.out, "tiny-bert")
    ext = os.path.join(args.out, "tiny-bert-extdata")
    for d in (inline, ext):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(os.path.join(d, "onnx"))
    tok = write_tokenizer(inline)
    config = BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        type_vocab_size=2,
        pad_token_id=0,
    )
    model = BertModel(config, add_pooling_layer=False).eval()
    config.save_pretrained(inline)
    export(model, os.path.join(inline, "onnx", "model.onnx"))
    # Re-save the inline graph through onnx so both variants come from the same proto.
    proto = onnx.load(os.path.join(inline, "onnx", "model.onnx"))
    onnx.save_model(proto, os.path.join(inline, "onnx", "model.onnx"))

    for name in os.listdir(inline):
        if name != "onnx":
            shutil.copy(os.path.join(inline, name), os.path.join(ext, name))
    with open(os.path.join(ext, "config.json")) as f:
        cfg = json.load(f)
    cfg["transformers.js_config"] = {"use_external_data_format": True}
    with open(os.path.join(ext, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
    onnx.save_model(
        onnx.load(os.path.join(inline, "onnx", "model.onnx")),
        os.path.join(ext, "onnx", "model.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="model.onnx_data",
        size_threshold=256,
    )
    total = sum(os.path.getsize(os.path.join(r, f)) for d in (inline, ext) for r, _, fs in os.walk(d) for f in fs)
    print(f"wrote tiny BERT ({sum(p.numel() for p in model.parameters())} parameters) to {inline} and {ext}: {total} bytes")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Write a tiny random-weight GGUF that llama.cpp's llama-server loads and generates from: the real engine's
model in the e2e. No weights come from any hub; the same seed gives the same bytes.

A Llama-architecture model (GGUF key and tensor names from the ``gguf`` package, the format's own writer)
of 2 blocks, 64-wide, 4 heads, a 512-token context, and a SentencePiece ("llama") vocabulary of the
control tokens, the printable-ASCII byte tokens (byte fallback, so any ASCII prompt tokenizes) and a few
word pieces. Every token it can generate is ASCII, so streamed text is always valid UTF-8. What it says is
noise; the e2e checks the serving, never the words.

    python testing/llamacpp/make_gguf.py OUT.gguf [--seed 0]

Needs the project's virtualenv (``gguf`` and ``numpy`` are dev dependencies).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import gguf
import numpy as np

CONTEXT = 512
WIDTH = 64
HEADS = 4
BLOCKS = 2
FEED_FORWARD = 128
WORD_PIECES = ("▁", "▁the", "▁model", "▁wakes", "▁from", "▁zero", "▁hearth", "▁a", "▁is", "ing", "ed", "s")


def vocabulary() -> tuple[list[str], list[float], list[int]]:
    """Tokens, scores and types: <unk> <s> </s>, byte tokens for newline and printable ASCII, word pieces."""
    tokens = ["<unk>", "<s>", "</s>"]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    for byte in (0x0A, *range(0x20, 0x7F)):
        tokens.append(f"<0x{byte:02X}>")
        types.append(gguf.TokenType.BYTE)
    for piece in WORD_PIECES:
        tokens.append(piece)
        types.append(gguf.TokenType.NORMAL)
    # SentencePiece merges by score: earlier pieces win.
    scores = [0.0] * (len(tokens) - len(WORD_PIECES)) + [-float(rank + 1) for rank in range(len(WORD_PIECES))]
    return tokens, scores, [int(kind) for kind in types]


def write(path: Path, *, seed: int) -> None:
    random = np.random.default_rng(seed)
    tokens, scores, types = vocabulary()

    def matrix(rows: int, columns: int) -> np.ndarray:
        # numpy's shape is the reverse of ggml's ne: (out, in) for a weight that maps in -> out.
        return (random.standard_normal((rows, columns)) * 0.05).astype(np.float16)

    writer = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    writer.add_name("hearth-e2e-tiny")
    writer.add_context_length(CONTEXT)
    writer.add_embedding_length(WIDTH)
    writer.add_block_count(BLOCKS)
    writer.add_feed_forward_length(FEED_FORWARD)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(HEADS)
    writer.add_rope_dimension_count(WIDTH // HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)

    def weight(kind: gguf.MODEL_TENSOR, block: int | None = None) -> str:
        base = gguf.TENSOR_NAMES[kind]
        return f"{base.format(bid=block) if block is not None else base}.weight"

    writer.add_tensor(weight(gguf.MODEL_TENSOR.TOKEN_EMBD), matrix(len(tokens), WIDTH))
    writer.add_tensor(weight(gguf.MODEL_TENSOR.OUTPUT_NORM), np.ones(WIDTH, dtype=np.float32))
    writer.add_tensor(weight(gguf.MODEL_TENSOR.OUTPUT), matrix(len(tokens), WIDTH))
    for block in range(BLOCKS):
        layer = {
            gguf.MODEL_TENSOR.ATTN_NORM: np.ones(WIDTH, dtype=np.float32),
            gguf.MODEL_TENSOR.ATTN_Q: matrix(WIDTH, WIDTH),
            gguf.MODEL_TENSOR.ATTN_K: matrix(WIDTH, WIDTH),
            gguf.MODEL_TENSOR.ATTN_V: matrix(WIDTH, WIDTH),
            gguf.MODEL_TENSOR.ATTN_OUT: matrix(WIDTH, WIDTH),
            gguf.MODEL_TENSOR.FFN_NORM: np.ones(WIDTH, dtype=np.float32),
            gguf.MODEL_TENSOR.FFN_GATE: matrix(FEED_FORWARD, WIDTH),
            gguf.MODEL_TENSOR.FFN_UP: matrix(FEED_FORWARD, WIDTH),
            gguf.MODEL_TENSOR.FFN_DOWN: matrix(WIDTH, FEED_FORWARD),
        }
        for kind, value in layer.items():
            writer.add_tensor(weight(kind, block), value)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("out", type=Path, help="where to write the .gguf")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the weights (default: 0)")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    partial = args.out.with_name(args.out.name + ".partial")
    write(partial, seed=args.seed)
    partial.replace(args.out)
    print(f"make_gguf: {args.out} ({args.out.stat().st_size} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

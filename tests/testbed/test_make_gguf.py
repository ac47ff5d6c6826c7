"""testing/llamacpp/make_gguf.py: the real engine's tiny model reads back as a Llama GGUF with the
tensors llama.cpp's loader requires, an ASCII-only vocabulary, and the same bytes for the same seed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gguf

from tests.helpers import REPO

SCRIPT = REPO / "testing" / "llamacpp" / "make_gguf.py"


def _make(out: Path, *extra: str) -> None:
    subprocess.run([sys.executable, str(SCRIPT), str(out), *extra], check=True, capture_output=True)


def test_the_tiny_model_reads_back_as_a_llama_gguf(tmp_path: Path) -> None:
    _make(tmp_path / "m.gguf")
    reader = gguf.GGUFReader(tmp_path / "m.gguf")
    fields = reader.fields
    architecture = fields["general.architecture"]
    assert bytes(architecture.parts[architecture.data[0]]).decode() == "llama"
    tensors = {tensor.name for tensor in reader.tensors}
    required = {"token_embd.weight", "output_norm.weight", "output.weight"}
    for block in range(2):
        required |= {
            f"blk.{block}.{kind}.weight"
            for kind in ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm")
        }
        required |= {f"blk.{block}.{kind}.weight" for kind in ("ffn_gate", "ffn_up", "ffn_down")}
    assert required <= tensors, sorted(required - tensors)
    tokens = fields["tokenizer.ggml.tokens"]
    vocabulary = [bytes(tokens.parts[index]).decode() for index in tokens.data]
    assert vocabulary[:3] == ["<unk>", "<s>", "</s>"]
    assert all(token.isascii() or token.startswith("▁") for token in vocabulary)


def test_the_same_seed_writes_the_same_bytes(tmp_path: Path) -> None:
    _make(tmp_path / "a.gguf")
    _make(tmp_path / "b.gguf")
    _make(tmp_path / "c.gguf", "--seed", "1")
    assert (tmp_path / "a.gguf").read_bytes() == (tmp_path / "b.gguf").read_bytes()
    assert (tmp_path / "a.gguf").read_bytes() != (tmp_path / "c.gguf").read_bytes()

"""A fake moondream2 snapshot: remote code with moondream2's shape, tiny random weights, offline.

moondream2's real code and weights cannot be downloaded here, so the moondream2 adapter's loading path
(`trust_remote_code` from a local directory, the pinned-revision check, the local tokenizer in place of
the hub download its code asks for, the per-image encoding cache, the prefill logits) is exercised on
this imitation. It mirrors the 2025 revisions' interface as the adapter uses it (`HfMoondream.model`
with `tokenizer`, `config.tokenizer.templates`, `encode_image`, `load_encoded_image`,
`_prefill_prompt`, `query(..., stream=, settings=)`), not their internals; it says nothing about how
the real model answers.

    .venv-moondream/bin/python -m tests.moondream.fake_moondream2 --out DIR
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HF_MOONDREAM = """
from transformers import PretrainedConfig, PreTrainedModel

from .moondream import MoondreamModel


class HfConfig(PretrainedConfig):
    model_type = "fake_moondream"


class HfMoondream(PreTrainedModel):
    config_class = HfConfig

    def __init__(self, config):
        super().__init__(config)
        self.model = MoondreamModel()
        self._is_kv_cache_setup = False
        self.post_init()

    def _init_weights(self, module):
        pass

    def _setup_caches(self):
        self._is_kv_cache_setup = True

    @property
    def encode_image(self):
        self._setup_caches()
        return self.model.encode_image

    @property
    def query(self):
        self._setup_caches()
        return self.model.query
"""

MOONDREAM = """
from dataclasses import dataclass
from types import SimpleNamespace

import torch
from PIL import Image
from tokenizers import Tokenizer
from torch import nn


@dataclass(frozen=True)
class EncodedImage:
    pos: int
    caches: torch.Tensor


class MoondreamModel(nn.Module):
    def __init__(self, dim=16):
        super().__init__()
        # What the real code does: a hub download at construction time (the adapter must intercept it).
        self.tokenizer = Tokenizer.from_pretrained("moondream/starmie-v1")
        vocab = self.tokenizer.get_vocab_size()
        eos = self.tokenizer.token_to_id("<|endoftext|>")
        self.config = SimpleNamespace(tokenizer=SimpleNamespace(
            eos_id=eos, templates={"query": {"prefix": [eos], "suffix": [eos]}},
        ))
        self.vision = nn.Linear(3 * 8 * 8, dim)
        self.embed = nn.Embedding(vocab, dim)
        self.head = nn.Linear(dim, vocab)
        self.encoder_runs = 0
        self._image = None

    @property
    def device(self):
        return self.head.weight.device

    def encode_image(self, image):
        if isinstance(image, EncodedImage):
            return image
        self.encoder_runs += 1
        small = image.convert("RGB").resize((8, 8), Image.Resampling.BILINEAR)
        pixels = torch.tensor(list(small.getdata()), dtype=torch.float32).flatten() / 255.0
        return EncodedImage(pos=1, caches=self.vision(pixels))

    def load_encoded_image(self, encoded):
        self._image = encoded.caches

    def _prefill_prompt(self, prompt_tokens, pos, temperature, top_p):
        hidden = self.embed(prompt_tokens).mean(dim=1) + self._image
        logits = self.head(hidden)
        next_token = torch.argmax(logits, dim=-1, keepdim=True)
        return logits, hidden, next_token, pos + prompt_tokens.shape[1]

    def query(self, image=None, question=None, stream=False, settings=None):
        encoded = self.encode_image(image)
        self.load_encoded_image(encoded)
        template = self.config.tokenizer.templates["query"]
        tokens = template["prefix"] + self.tokenizer.encode(question).ids + template["suffix"]
        max_tokens = (settings or {}).get("max_tokens", 16)

        def generator():
            current = list(tokens)
            for _ in range(max_tokens):
                _, _, next_token, _ = self._prefill_prompt(torch.tensor([current]), encoded.pos, 0.0, 1.0)
                token = int(next_token.item())
                if token == self.config.tokenizer.eos_id:
                    return
                current.append(token)
                yield self.tokenizer.decode([token])

        return {"answer": generator() if stream else "".join(generator())}
"""

CONFIG = {
    "model_type": "fake_moondream",
    "architectures": ["HfMoondream"],
    "auto_map": {"AutoConfig": "hf_moondream.HfConfig", "AutoModelForCausalLM": "hf_moondream.HfMoondream"},
}


def build(out: Path, revision: str) -> Path:
    """Write the fake snapshot (code, config, byte-level tokenizer.json, weights, REVISION, STANDIN) to `out`."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from servers.moondream.model import STANDIN_MARKER
    from servers.moondream.moondream2 import REVISION_FILE, TOKENIZER_FILE, local_tokenizer
    from servers.moondream.standin import build_byte_level_tokenizer

    out.mkdir(parents=True, exist_ok=True)
    (out / "hf_moondream.py").write_text(HF_MOONDREAM)
    (out / "moondream.py").write_text(MOONDREAM)
    (out / "config.json").write_text(json.dumps(CONFIG, indent=2))
    build_byte_level_tokenizer().backend_tokenizer.save(str(out / TOKENIZER_FILE))
    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(str(out), trust_remote_code=True, local_files_only=True)
    with local_tokenizer(out / TOKENIZER_FILE):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=True)
    model.save_pretrained(str(out))
    (out / REVISION_FILE).write_text(revision + "\n")
    (out / STANDIN_MARKER).write_text("A fake moondream2 snapshot for tests: its answers are noise.\n")
    return out


def main(argv: list[str] | None = None) -> None:
    from servers.moondream.moondream2 import PINNED_REVISION

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--revision", default=PINNED_REVISION)
    args = parser.parse_args(argv)
    print(build(args.out, args.revision))


if __name__ == "__main__":
    main()

"""A fake moondream2 snapshot: moondream2's remote code at revision 2025-06-21, shrunk, with tiny random weights.

moondream2's real weights cannot be downloaded here, so the moondream2 adapter's loading path
(`trust_remote_code` from a local directory, the pinned-revision check, the local tokenizer in place of
the hub download its code asks for, the per-image encoding cache, the prefill logits) is exercised on
this imitation.

Upstream: vikhyat/moondream, commit 78e9101 ("New tokenizer", 2025-06-19), files
`moondream/torch/moondream.py`, `hf_moondream.py`, `config.py` and `text.py`; the Hugging Face repository
vikhyatk/moondream2 at revision 2025-06-21 ships the same files flattened. What is copied as it is
there: `HfConfig`/`HfMoondream` (no `post_init`, caches set up lazily), `KVCache`, the prefix-bidirectional
attention mask, `encode_image` (BOS + image embeddings prefilled into the KV caches), `load_encoded_image`,
`_prefill_prompt`, `_generate_answer` (greedy at temperature 0, `answer_id` masked after the first token,
text yielded at spaces) and `query` -- in particular, with `reasoning=False`, `query` builds
prefix + question + query suffix and then appends the query suffix a second time before the first
answer token is predicted. What is smaller or simpler (marked "fake:" in the code): one 32x32 crop and a
linear patch embedding instead of the SigLIP encoder with overlapping crops, learned positions instead of
rotary embeddings, no region model (spatial refs and reasoning raise), float32 random weights instead of
the bfloat16 checkpoint, and token ids of a byte-level tokenizer built locally (the `templates` and
special ids are written into config.py's defaults, as upstream keeps them in `TokenizerConfig`).
It says nothing about how the real model answers.

    .venv-moondream/bin/python -m tests.moondream.fake_moondream2 --out DIR
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# Upstream's `HfConfig.__init__` replaces whatever config.json says with `{}`, so the model always runs
# with `MoondreamConfig`'s defaults; build() writes the fake's ids into those defaults.
CONFIG_PY = """
from dataclasses import dataclass, field
from typing import Dict, List, Optional


@dataclass(frozen=True)
class TextConfig:
    dim: int = 32
    ff_dim: int = 64
    n_layers: int = 2
    vocab_size: int = {vocab_size}
    max_context: int = 2048
    n_heads: int = 4
    n_kv_heads: int = 4


@dataclass(frozen=True)
class VisionConfig:
    # fake: one crop of 32x32 pixels in 8x8 patches (upstream: 378x378 crops in 14x14 patches)
    crop_size: int = 32
    enc_patch_size: int = 8
    in_channels: int = 3


@dataclass(frozen=True)
class TokenizerConfig:
    bos_id: int = {bos_id}
    eos_id: int = {eos_id}
    answer_id: int = {answer_id}
    thinking_id: int = {thinking_id}
    coord_id: int = {coord_id}
    size_id: int = {size_id}
    start_ground_points_id: int = {start_ground_points_id}
    end_ground_id: int = {end_ground_id}
    templates: Dict[str, Optional[Dict[str, List[int]]]] = field(
        default_factory=lambda: {{
            "caption": None,
            "query": {{"prefix": {query_prefix}, "suffix": {query_suffix}}},
            "detect": None,
            "point": None,
        }}
    )


@dataclass(frozen=True)
class MoondreamConfig:
    text: TextConfig = TextConfig()
    vision: VisionConfig = VisionConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()

    @classmethod
    def from_dict(cls, config_dict: dict):
        text_config = TextConfig(**config_dict.get("text", {{}}))
        vision_config = VisionConfig(**config_dict.get("vision", {{}}))
        tokenizer_config = TokenizerConfig(**config_dict.get("tokenizer", {{}}))
        return cls(text=text_config, vision=vision_config, tokenizer=tokenizer_config)
"""

TEXT_PY = """
import torch
import torch.nn as nn

from torch.nn import functional as F

from .config import TextConfig


def text_encoder(input_ids: torch.Tensor, w: nn.Module):
    return F.embedding(input_ids, w.wte)


def attn(x, w, pos_emb, kv_cache, attn_mask, n_heads, n_kv_heads, position_ids):
    bsz, q_len, d_model = x.shape
    head_dim = d_model // n_heads

    q, k, v = w.qkv(x).split([d_model, d_model, d_model], dim=-1)
    # fake: learned absolute positions where upstream applies rotary embeddings at `position_ids`.
    q = q + pos_emb[position_ids]
    k = k + pos_emb[position_ids]

    q = q.view(bsz, q_len, n_heads, head_dim).transpose(1, 2)
    k = k.view(bsz, q_len, n_kv_heads, head_dim).transpose(1, 2)
    v = v.view(bsz, q_len, n_kv_heads, head_dim).transpose(1, 2)

    if kv_cache is not None:
        k, v = kv_cache.update(position_ids, k, v)

    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
    out = out.transpose(1, 2).reshape(bsz, q_len, d_model)
    return w.proj(out)


def text_decoder(x, w, attn_mask, position_ids, config: TextConfig):
    for block in w.blocks:
        l_in = block.ln(x)
        l_attn = attn(
            l_in,
            block.attn,
            pos_emb=w.pos_emb,
            kv_cache=block.kv_cache,
            attn_mask=attn_mask,
            n_heads=config.n_heads,
            n_kv_heads=config.n_kv_heads,
            position_ids=position_ids,
        )
        l_mlp = block.mlp(l_in)
        x = x + l_attn + l_mlp
    return x


def lm_head(hidden_BTC: torch.Tensor, w: nn.Module):
    hidden_BC = hidden_BTC[:, -1, :]
    hidden_BC = w.post_ln(hidden_BC)
    logits = w.lm_head(hidden_BC)
    return logits


def build_text_model(config: TextConfig, dtype: torch.dtype) -> nn.Module:
    text = nn.ModuleDict(
        {
            "blocks": nn.ModuleList(
                [
                    nn.ModuleDict(
                        {
                            "ln": nn.LayerNorm(config.dim, dtype=dtype),
                            "attn": nn.ModuleDict(
                                {
                                    "qkv": nn.Linear(config.dim, 3 * config.dim, dtype=dtype),
                                    "proj": nn.Linear(config.dim, config.dim, dtype=dtype),
                                }
                            ),
                            "mlp": nn.Sequential(
                                nn.Linear(config.dim, config.ff_dim, dtype=dtype),
                                nn.GELU(approximate="tanh"),
                                nn.Linear(config.ff_dim, config.dim, dtype=dtype),
                            ),
                        }
                    )
                    for _ in range(config.n_layers)
                ]
            ),
            "post_ln": nn.LayerNorm(config.dim, dtype=dtype),
            "lm_head": nn.Linear(config.dim, config.vocab_size, dtype=dtype),
        }
    )
    # fake: random initial values (upstream allocates torch.empty and always loads a checkpoint).
    text.wte = nn.Parameter(torch.randn(config.vocab_size, config.dim, dtype=dtype))
    text.pos_emb = nn.Parameter(0.5 * torch.randn(config.max_context, config.dim, dtype=dtype))
    return text
"""

MOONDREAM_PY = '''
import torch
import torch.nn as nn

from typing import Literal, Tuple, TypedDict, Union, Dict, Any, Optional, List
from PIL import Image
from dataclasses import dataclass
from tokenizers import Tokenizer

from .config import MoondreamConfig
from .text import build_text_model, text_encoder, lm_head, text_decoder


TextSamplingSettings = TypedDict(
    "TextSamplingSettings",
    {
        "max_tokens": int,
        "temperature": float,
        "top_p": float,
    },
    total=False,
)


DEFAULT_MAX_TOKENS = 768
DEFAULT_TEMPERATURE = 0.5
DEFAULT_TOP_P = 0.3


@dataclass(frozen=True)
class EncodedImage:
    pos: int
    caches: List[Tuple[torch.Tensor, torch.Tensor]]


class KVCache(nn.Module):

    def __init__(self, n_heads, n_kv_heads, max_context, dim, device, dtype):
        super().__init__()
        cache_shape = (1, n_kv_heads, max_context, dim // n_heads)
        self.register_buffer(
            "k_cache", torch.zeros(*cache_shape, device=device, dtype=dtype)
        )
        self.register_buffer(
            "v_cache", torch.zeros(*cache_shape, device=device, dtype=dtype)
        )

    def update(self, pos_ids, k, v):
        kout, vout = self.k_cache, self.v_cache
        kout[:, :, pos_ids, :] = k
        vout[:, :, pos_ids, :] = v
        return kout, vout


class MoondreamModel(nn.Module):

    # fake: float32 by default (upstream: bfloat16).
    def __init__(
        self, config: MoondreamConfig, dtype=torch.float32, setup_caches=True
    ):
        super().__init__()
        self.config = config

        self.tokenizer = Tokenizer.from_pretrained("moondream/starmie-v1")
        # fake: a linear patch embedding stands in for build_vision_model (SigLIP + projection).
        patch = config.vision.enc_patch_size
        self.vision = nn.ModuleDict(
            {"patch_emb": nn.Linear(config.vision.in_channels * patch * patch, config.text.dim, dtype=dtype)}
        )
        n_patches = (config.vision.crop_size // patch) ** 2
        self.vision.pos_emb = nn.Parameter(0.1 * torch.randn(1, n_patches, config.text.dim, dtype=dtype))
        self.text = build_text_model(config.text, dtype)

        attn_mask = torch.tril(
            torch.ones(
                1, 1, config.text.max_context, config.text.max_context, dtype=torch.bool
            )
        )
        patch_w = config.vision.crop_size // config.vision.enc_patch_size
        prefix_attn_len = 1 + patch_w**2
        attn_mask[..., :prefix_attn_len, :prefix_attn_len] = 1
        self.register_buffer("attn_mask", attn_mask, persistent=False)

        # Initialize KV caches.
        if setup_caches:
            self._setup_caches()

    def _setup_caches(self):
        c = self.config.text
        for b in self.text.blocks:
            b.kv_cache = KVCache(
                c.n_heads,
                c.n_kv_heads,
                c.max_context,
                c.dim,
                device=self.device,
                dtype=self.vision.pos_emb.dtype,
            )

    @property
    def device(self):
        return self.vision.pos_emb.device

    def _prefill(self, x: torch.Tensor, attn_mask: torch.Tensor, pos_ids: torch.Tensor):
        return text_decoder(x, self.text, attn_mask, pos_ids, self.config.text)

    def _decode_one_tok(
        self, x: torch.Tensor, attn_mask: torch.Tensor, pos_ids: torch.Tensor
    ):
        hidden = text_decoder(x, self.text, attn_mask, pos_ids, self.config.text)
        logits = lm_head(hidden, self.text)
        return logits, hidden

    def _run_vision_encoder(self, image: Image.Image) -> torch.Tensor:
        # fake: one resized crop, cut into patches, embedded linearly.
        size = self.config.vision.crop_size
        patch = self.config.vision.enc_patch_size
        crop = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        pixels = torch.tensor(list(crop.getdata()), dtype=self.vision.pos_emb.dtype, device=self.device)
        pixels = pixels.view(size // patch, patch, size // patch, patch, 3).permute(0, 2, 1, 3, 4)
        patches = pixels.reshape(-1, 3 * patch * patch).div(255.0).sub(0.5).div(0.5)
        return self.vision.patch_emb(patches) + self.vision.pos_emb[0]

    def encode_image(self, image: Union[Image.Image, EncodedImage]) -> EncodedImage:
        if isinstance(image, EncodedImage):
            return image
        elif not isinstance(image, Image.Image):
            raise ValueError("image must be a PIL Image or EncodedImage")

        # Run through text model in addition to the vision encoder, to minimize
        # re-computation if multiple queries are performed on this image.
        with torch.inference_mode():
            img_emb = self._run_vision_encoder(image)
            bos_emb = text_encoder(
                torch.tensor([[self.config.tokenizer.bos_id]], device=self.device),
                self.text,
            )
            inputs_embeds = torch.cat([bos_emb, img_emb[None]], dim=1)
            mask = self.attn_mask[:, :, 0 : inputs_embeds.size(1), :]
            pos_ids = torch.arange(inputs_embeds.size(1), dtype=torch.long)
            self._prefill(inputs_embeds, mask, pos_ids)

        return EncodedImage(
            pos=inputs_embeds.size(1),
            caches=[
                (
                    b.kv_cache.k_cache[:, :, : inputs_embeds.size(1), :].clone(),
                    b.kv_cache.v_cache[:, :, : inputs_embeds.size(1), :].clone(),
                )
                for b in self.text.blocks
            ],
        )

    def _apply_top_p(self, probs: torch.Tensor, top_p: float):
        probs_sort, probs_idx = torch.sort(probs, dim=-1, descending=True)
        probs_sum = torch.cumsum(probs_sort, dim=-1)
        mask = probs_sum - probs_sort > top_p
        probs_sort[mask] = 0.0
        probs_sort.div_(probs_sort.sum(dim=-1, keepdim=True))
        next_probs = torch.zeros_like(probs)
        next_probs.scatter_(dim=-1, index=probs_idx, src=probs_sort)
        return next_probs

    def _prefill_prompt(
        self,
        prompt_tokens: torch.Tensor,
        pos: int,
        temperature: float,
        top_p: float,
        spatial_refs=None,
        attn_mask: Optional[torch.Tensor] = None,
    ):
        with torch.inference_mode():
            prompt_emb = text_encoder(prompt_tokens, self.text)

            if spatial_refs:
                raise NotImplementedError("fake: no region model")

            torch._dynamo.mark_dynamic(prompt_emb, 1)

            if attn_mask is None:
                attn_mask = self.attn_mask

            mask = attn_mask[:, :, pos : pos + prompt_emb.size(1), :]
            pos_ids = torch.arange(pos, pos + prompt_emb.size(1), dtype=torch.long)
            hidden_BC = self._prefill(prompt_emb, mask, pos_ids)
            logits_BV = lm_head(hidden_BC, self.text)

            if temperature == 0:
                next_token = torch.argmax(logits_BV, dim=-1).unsqueeze(1)
            else:
                probs = torch.softmax(logits_BV / temperature, dim=-1)
                probs = self._apply_top_p(probs, top_p)
                next_token = torch.multinomial(probs, num_samples=1)

        pos = pos + prompt_emb.size(1)
        return logits_BV, hidden_BC, next_token, pos

    def _generate_reasoning(self, prompt_tokens, pos, settings=None, spatial_refs=None, attn_mask=None):
        raise NotImplementedError("fake: reasoning needs the region model")

    def _generate_answer(
        self,
        prompt_tokens: torch.Tensor,
        pos: int,
        settings: Optional[TextSamplingSettings] = None,
        spatial_refs=None,
        eos_id: Optional[int] = None,
        attn_mask: Optional[torch.Tensor] = None,
    ):
        max_tokens = (
            settings.get("max_tokens", DEFAULT_MAX_TOKENS)
            if settings
            else DEFAULT_MAX_TOKENS
        )
        temperature = (
            settings.get("temperature", DEFAULT_TEMPERATURE)
            if settings
            else DEFAULT_TEMPERATURE
        )
        top_p = settings.get("top_p", DEFAULT_TOP_P) if settings else DEFAULT_TOP_P
        eos_id = eos_id if eos_id is not None else self.config.tokenizer.eos_id

        _, _, next_token, pos = self._prefill_prompt(
            prompt_tokens, pos, temperature, top_p, spatial_refs, attn_mask=attn_mask
        )

        def generator(next_token, pos):
            mask = torch.zeros(1, 1, 2048, device=self.device, dtype=torch.bool)
            mask[:, :, :pos] = 1
            pos_ids = torch.tensor([pos], device=self.device, dtype=torch.long)
            generated_tokens = 0

            # For properly handling token streaming with Unicode
            token_cache = []
            print_len = 0

            while (
                next_token_id := next_token.item()
            ) != eos_id and generated_tokens < max_tokens:
                # Add token to our cache
                token_cache.append(next_token_id)

                # Decode all tokens collected so far
                text = self.tokenizer.decode(token_cache)

                # After a newline, we flush the cache completely
                if text.endswith("\\n"):
                    printable_text = text[print_len:]
                    token_cache = []
                    print_len = 0
                    if printable_text:
                        yield printable_text
                # If the last token is a CJK character, we can safely print it
                elif len(text) > 0 and _is_cjk_char(ord(text[-1])):
                    printable_text = text[print_len:]
                    print_len += len(printable_text)
                    if printable_text:
                        yield printable_text
                # Otherwise, only yield up to the last space to avoid cutting words
                else:
                    last_space_idx = text.rfind(" ", print_len)
                    if last_space_idx >= print_len:
                        printable_text = text[print_len : last_space_idx + 1]
                        print_len += len(printable_text)
                        if printable_text:
                            yield printable_text

                with torch.inference_mode():
                    next_emb = text_encoder(next_token, self.text)
                    mask[:, :, pos], pos_ids[0] = 1, pos

                    logits_BV, _ = self._decode_one_tok(next_emb, mask, pos_ids)
                    logits_BV[:, self.config.tokenizer.answer_id] = float("-inf")

                    pos += 1

                    if temperature == 0:
                        next_token = torch.argmax(logits_BV, dim=-1).unsqueeze(
                            1
                        )  # (1, 1)
                    else:
                        probs = torch.softmax(logits_BV / temperature, dim=-1)  # (1, V)
                        probs = self._apply_top_p(probs, top_p)
                        next_token = torch.multinomial(probs, num_samples=1)  # (1, 1)

                    generated_tokens += 1

            # Flush any remaining text in the cache
            if token_cache:
                text = self.tokenizer.decode(token_cache)
                printable_text = text[print_len:]
                if printable_text:
                    yield printable_text

        return generator(next_token, pos)

    def query(
        self,
        image: Optional[Union[Image.Image, EncodedImage]] = None,
        question: str = None,
        reasoning: bool = False,
        spatial_refs=None,
        stream: bool = False,
        settings: Optional[TextSamplingSettings] = None,
    ):
        if self.config.tokenizer.templates["query"] is None:
            raise NotImplementedError("Model does not support querying.")

        if question is None:
            raise ValueError("question must be provided.")

        if spatial_refs and image is None:
            raise ValueError("spatial_refs can only be used with an image.")

        attn_mask = self.attn_mask
        if image is not None:
            image = self.encode_image(image)
            self.load_encoded_image(image)
            pos = image.pos
            prompt_toks = self.config.tokenizer.templates["query"]["prefix"]
        else:
            self._setup_caches()
            pos = 0
            prompt_toks = [
                self.config.tokenizer.bos_id
            ] + self.config.tokenizer.templates["query"]["prefix"]
            max_context = self.config.text.max_context
            attn_mask = torch.tril(
                torch.ones(1, 1, max_context, max_context, dtype=torch.bool)
            ).to(self.device)

        spatial_toks = []
        if spatial_refs:
            for ref in spatial_refs:
                coord_id = self.config.tokenizer.coord_id
                size_id = self.config.tokenizer.size_id
                if len(ref) == 2:
                    spatial_toks.extend([coord_id, coord_id])
                else:
                    spatial_toks.extend([coord_id, coord_id, size_id])

        prompt_tokens = [
            prompt_toks
            + spatial_toks
            + self.tokenizer.encode(question).ids
            + self.config.tokenizer.templates["query"]["suffix"]
        ]

        if reasoning:
            prompt_tokens[0] += [self.config.tokenizer.thinking_id]
            prompt_tokens = torch.tensor(prompt_tokens, device=self.device)
            pos, reasoning_text, reasoning_grounding = self._generate_reasoning(
                prompt_tokens, pos, settings, spatial_refs, attn_mask=attn_mask
            )
            prompt_tokens = [self.config.tokenizer.templates["query"]["suffix"]]
            reasoning_dict = {
                "reasoning": {"text": reasoning_text, "grounding": reasoning_grounding}
            }
        else:
            prompt_tokens[0] += self.config.tokenizer.templates["query"]["suffix"]
            reasoning_dict = {}

        prompt_tokens = torch.tensor(prompt_tokens, device=self.device)

        def generator():
            for token in self._generate_answer(
                prompt_tokens, pos, settings, spatial_refs, attn_mask=attn_mask
            ):
                yield token

        if stream:
            return {**reasoning_dict, "answer": generator()}
        else:
            return {**reasoning_dict, "answer": "".join(list(generator()))}

    def load_encoded_image(self, encoded_image: EncodedImage):
        for b, (k, v) in zip(self.text.blocks, encoded_image.caches):
            b.kv_cache.k_cache[:, :, : k.size(2), :] = k
            b.kv_cache.v_cache[:, :, : v.size(2), :] = v


def _is_cjk_char(cp):
    """Checks whether CP is the codepoint of a CJK character."""
    # This defines a "chinese character" as anything in the CJK Unicode block:
    # https://en.wikipedia.org/wiki/CJK_Unified_Ideographs_(Unicode_block)
    if (
        (cp >= 0x4E00 and cp <= 0x9FFF)
        or (cp >= 0x3400 and cp <= 0x4DBF)
        or (cp >= 0x2F800 and cp <= 0x2FA1F)
    ):
        return True
    return False
'''

HF_MOONDREAM_PY = """
import torch
import torch.nn as nn

from transformers import PreTrainedModel, PretrainedConfig
from typing import Union

from .config import MoondreamConfig
from .moondream import MoondreamModel

# Files sometimes don't get loaded without these...
from .text import *


class HfConfig(PretrainedConfig):
    _auto_class = "AutoConfig"
    model_type = "moondream1"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.config = {}


class HfMoondream(PreTrainedModel):
    _auto_class = "AutoModelForCausalLM"
    config_class = HfConfig

    def __init__(self, config):
        super().__init__(config)
        self.model = MoondreamModel(
            MoondreamConfig.from_dict(config.config), setup_caches=False
        )
        self._is_kv_cache_setup = False

    def _setup_caches(self):
        if not self._is_kv_cache_setup:
            self.model._setup_caches()
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

CONFIG_JSON = {
    "model_type": "moondream1",
    "architectures": ["HfMoondream"],
    "auto_map": {"AutoConfig": "hf_moondream.HfConfig", "AutoModelForCausalLM": "hf_moondream.HfMoondream"},
    "config": {},
}

# Upstream's special tokens, by the names of TokenizerConfig's ids, added to the byte-level tokenizer.
SPECIAL_IDS = ("answer_id", "thinking_id", "coord_id", "size_id", "start_ground_points_id", "end_ground_id")


def build(out: Path, revision: str) -> Path:
    """Write the fake snapshot (code, config, byte-level tokenizer.json, weights, REVISION, STANDIN) to `out`."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from servers.moondream.model import STANDIN_MARKER
    from servers.moondream.moondream2 import REVISION_FILE, TOKENIZER_FILE, local_tokenizer
    from servers.moondream.standin import build_byte_level_tokenizer

    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_byte_level_tokenizer().backend_tokenizer
    tokenizer.add_special_tokens([f"<|{name.removesuffix('_id')}|>" for name in SPECIAL_IDS])
    tokenizer.save(str(out / TOKENIZER_FILE))
    ids = {name: tokenizer.token_to_id(f"<|{name.removesuffix('_id')}|>") for name in SPECIAL_IDS}
    # As upstream, BOS and EOS are one token.
    ids["bos_id"] = ids["eos_id"] = tokenizer.token_to_id("<|endoftext|>")
    # Upstream's query prefix is [special, "query" word, special] and its suffix [answer_id].
    prefix = [
        tokenizer.token_to_id("<|im_start|>"),
        *tokenizer.encode("query").ids,
        tokenizer.token_to_id("<|im_end|>"),
    ]
    (out / "config.py").write_text(
        CONFIG_PY.format(
            vocab_size=tokenizer.get_vocab_size(), query_prefix=prefix, query_suffix=[ids["answer_id"]], **ids
        )
    )
    (out / "text.py").write_text(TEXT_PY)
    (out / "moondream.py").write_text(MOONDREAM_PY)
    (out / "hf_moondream.py").write_text(HF_MOONDREAM_PY)
    (out / "config.json").write_text(json.dumps(CONFIG_JSON, indent=2))
    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(str(out), trust_remote_code=True, local_files_only=True)
    with local_tokenizer(out / TOKENIZER_FILE):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=True)
    model.save_pretrained(str(out))
    (out / REVISION_FILE).write_text(revision + "\n")
    (out / STANDIN_MARKER).write_text("A fake moondream2 snapshot for tests: its answers are noise.\n")
    return out


def main(argv: list[str] | None = None) -> None:
    from servers.moondream.config import PINNED_REVISION

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--revision", default=PINNED_REVISION)
    args = parser.parse_args(argv)
    print(build(args.out, args.revision))


if __name__ == "__main__":
    main()

"""LAION-CLAP behind the :class:`ClapBackend` interface, loaded offline from a user's checkpoint.

One purpose: every workaround below concerns loading and calling the one
laion_clap model, and each is tested against the authors' pipeline in
``tests/test_clap_laion.py``.

The wrapped model is laion_clap's own ``CLAP`` (HTS-AT audio tower, RoBERTa
text tower), built by laion_clap's model factory exactly as its
``CLAP_Module`` builds it, with four changes that make it work here:

* ``laion_clap`` itself (``hook.py`` / ``CLAP_Module``) is never imported:
  at import time its ``training/data.py`` parses ``sys.argv`` with argparse
  (which breaks under pytest and papermill) and fetches three tokenizers
  from the Hugging Face hub (it hangs offline, or comes back with an empty
  vocabulary). Only its ``clap_module`` package, which holds the model, is
  loaded, lazily, with the hub switched off.
* The text tower is an untrained ``RobertaModel`` of the checkpoint's shape
  (roberta-base for every LAION checkpoint) instead of
  ``RobertaModel.from_pretrained("roberta-base")``, which would download;
  the checkpoint overwrites every text weight anyway.
* The RoBERTa tokenizer is built from ``vocab.json`` + ``merges.txt`` that
  the user gives (or finds in a local Hugging Face cache), and its size is
  checked against the checkpoint's vocabulary, so a silently empty
  tokenizer is an error, not garbage embeddings.
* The audio path is the authors' ``get_audio_embedding_from_data`` rebuilt
  on tensors so it is differentiable with respect to the waveform: the same
  int16 quantisation (as a straight-through estimator), the same "repeatpad"
  of clips shorter than 10 s, and the same fusion input for fusion models.
  Where the authors pick crops of clips longer than 10 s at random, this
  wrapper picks them deterministically (see :func:`_fusion_input`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import pickle
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from weaksep.clap.base import DEFAULT_TEMPLATE, ClapBackend

SAMPLE_RATE = 48_000  # LAION-CLAP's audio rate, Hz
CLIP_SAMPLES = 480_000  # the audio tower sees exactly 10 s at 48 kHz
MAX_TEXT_TOKENS = 77  # the authors' tokenizer call pads/truncates to 77 tokens
ROBERTA_VOCAB_SIZE = 50_265  # entries of roberta-base's vocab.json
TOKENIZER_FILES = ("vocab.json", "merges.txt")
HF_TOKENIZER_REPOS = ("roberta-base", "FacebookAI/roberta-base")

# HTS-AT variants by the width of their patch embedding (laion_clap's htsat.py).
_HTSAT_BY_WIDTH = {96: "HTSAT-tiny", 128: "HTSAT-base", 256: "HTSAT-large"}
# A key the position_ids buffer of transformers < 4.31 left in every LAION
# checkpoint; current RobertaModel does not persist that buffer.
_STALE_TEXT_KEYS = ("text_branch.embeddings.position_ids",)


# --- laion_clap, imported lazily and offline ---------------------------------


@contextlib.contextmanager
def _hub_offline() -> Iterator[None]:
    """Switch the Hugging Face hub off while laion_clap code runs; restore afterwards."""
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update({k: "1" for k in saved})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _clap_module() -> ModuleType:
    """laion_clap's ``clap_module`` package, without running ``laion_clap/__init__``.

    laion_clap itself puts its folder on ``sys.path`` and imports this package
    as top-level ``clap_module``; loading it under that same name keeps one
    copy if ``laion_clap`` gets imported too.
    """
    if "clap_module" in sys.modules:
        return sys.modules["clap_module"]
    spec = importlib.util.find_spec("laion_clap")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the LAION-CLAP backend needs the 'laion_clap' package (pip install laion-clap==1.1.5)")
    package_dir = Path(list(spec.submodule_search_locations)[0]) / "clap_module"
    module_spec = importlib.util.spec_from_file_location(
        "clap_module", package_dir / "__init__.py", submodule_search_locations=[str(package_dir)]
    )
    module = importlib.util.module_from_spec(module_spec)
    sys.modules["clap_module"] = module
    try:
        with _hub_offline():
            module_spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop("clap_module", None)
        raise
    return module


# --- checkpoint ---------------------------------------------------------------


def load_laion_state_dict(path: str | Path, weights_only: bool = True) -> dict[str, Tensor]:
    """Read a LAION-CLAP checkpoint into a plain state dict (``module.`` prefixes removed).

    Accepts the authors' layout ``{"state_dict": {"module.<key>": tensor}, "epoch": ...}``
    and a bare state dict. Never downloads: ``path`` must exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"LAION-CLAP checkpoint {path} does not exist; give the path of a downloaded checkpoint "
            "such as music_audioset_epoch_15_esc_90.14.pt or 630k-audioset-best.pt (nothing is downloaded)"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=weights_only)
    except pickle.UnpicklingError as err:
        raise RuntimeError(
            f"{path} holds objects that torch.load(weights_only=True) refuses; if you trust the file, "
            f"pass weights_only=False ({err})"
        ) from err
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not state or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(
            f"{path} is not a LAION-CLAP checkpoint: expected a dict of tensors, or one under 'state_dict'"
        )
    return {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in state.items()}


def _require(state: dict[str, Tensor], key: str, path: str | Path) -> Tensor:
    if key not in state:
        raise ValueError(f"{path} is not a LAION-CLAP RoBERTa/HTS-AT checkpoint: it has no '{key}'")
    return state[key]


def infer_audio_model(state: dict[str, Tensor], path: str | Path = "<checkpoint>") -> tuple[str, bool, str]:
    """(laion_clap audio config name, fusion enabled, fusion type) read off the checkpoint's keys/shapes."""
    width = int(_require(state, "audio_branch.patch_embed.proj.weight", path).shape[0])
    if width not in _HTSAT_BY_WIDTH:
        raise ValueError(f"{path}: HTS-AT patch embedding width {width} matches none of {_HTSAT_BY_WIDTH}")
    name = _HTSAT_BY_WIDTH[width]
    if "audio_branch.patch_embed.mel_conv2d.weight" in state:
        dims = "2d"
        fusion_prefix = "audio_branch.patch_embed.fusion_model."
    elif "audio_branch.mel_conv1d.0.weight" in state:
        dims = "1d"
        fusion_prefix = "audio_branch.fusion_model."
    else:
        return name, False, "None"
    fusion_keys = [k for k in state if k.startswith(fusion_prefix)]
    kind = "iaff" if any(".local_att2." in k for k in fusion_keys) else "aff" if fusion_keys else "daf"
    return name, True, f"{kind}_{dims}"


def _roberta_config(state: dict[str, Tensor], path: str | Path):
    """The text tower's RobertaConfig, sized from the checkpoint (roberta-base for LAION's)."""
    from transformers import RobertaConfig

    words = _require(state, "text_branch.embeddings.word_embeddings.weight", path)
    hidden = int(words.shape[1])
    if hidden != 768:
        raise ValueError(f"{path}: text hidden size {hidden}, but laion_clap's RoBERTa projection expects 768")
    layers = {int(m.group(1)) for k in state if (m := re.match(r"text_branch\.encoder\.layer\.(\d+)\.", k))}

    def rows(key: str) -> int:
        return int(_require(state, key, path).shape[0])

    return RobertaConfig(
        # What shapes cannot tell is roberta-base's: 64-wide heads, eps 1e-5, ids 0/1/2.
        vocab_size=int(words.shape[0]),
        hidden_size=hidden,
        num_hidden_layers=len(layers),
        num_attention_heads=hidden // 64,
        intermediate_size=rows("text_branch.encoder.layer.0.intermediate.dense.weight"),
        max_position_embeddings=rows("text_branch.embeddings.position_embeddings.weight"),
        type_vocab_size=rows("text_branch.embeddings.token_type_embeddings.weight"),
        layer_norm_eps=1e-5,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )


def build_clap_model(audio_model: str, enable_fusion: bool, fusion_type: str, text_config) -> torch.nn.Module:
    """laion_clap's ``CLAP`` via its own factory, with an untrained RoBERTa of ``text_config``'s shape.

    The factory would call ``RobertaModel.from_pretrained('roberta-base')``;
    that one name is swapped for a stand-in for the duration of the call.
    """
    from unittest import mock

    from transformers import RobertaModel

    class _UntrainedRoberta:
        @staticmethod
        def from_pretrained(*_args, **_kwargs):
            return RobertaModel(text_config)

    clap_module = _clap_module()
    with _hub_offline(), mock.patch.object(sys.modules["clap_module.model"], "RobertaModel", _UntrainedRoberta):
        model, _ = clap_module.create_model(
            audio_model,
            "roberta",
            precision="fp32",
            device=torch.device("cpu"),
            enable_fusion=enable_fusion,
            fusion_type=fusion_type,
        )
    return model


# --- tokenizer ------------------------------------------------------------------


def _hf_cache_tokenizer_dir() -> Path | None:
    """A local Hugging Face cache snapshot holding roberta-base's vocab.json and merges.txt, if any."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for repo in HF_TOKENIZER_REPOS:
        found = [try_to_load_from_cache(repo, name) for name in TOKENIZER_FILES]
        if all(isinstance(f, str) for f in found) and len({Path(f).parent for f in found}) == 1:
            return Path(found[0]).parent
    return None


def load_roberta_tokenizer(tokenizer_dir: str | Path | None, expected_vocab_size: int = ROBERTA_VOCAB_SIZE):
    """The RoBERTa byte-level BPE tokenizer from ``tokenizer_dir`` (vocab.json + merges.txt).

    With ``tokenizer_dir=None`` a roberta-base snapshot in the local Hugging
    Face cache is used; nothing is downloaded. Raises when a file is missing
    or the vocabulary does not have ``expected_vocab_size`` entries.
    """
    from transformers import RobertaTokenizer

    if tokenizer_dir is None:
        tokenizer_dir = _hf_cache_tokenizer_dir()
        if tokenizer_dir is None:
            raise FileNotFoundError(
                "no tokenizer_dir given and no roberta-base tokenizer in the local Hugging Face cache "
                f"(looked for {' and '.join(TOKENIZER_FILES)} of {' / '.join(HF_TOKENIZER_REPOS)}); give "
                "tokenizer_dir=DIR holding roberta-base's vocab.json and merges.txt (about 1.3 MB, from "
                "https://huggingface.co/FacebookAI/roberta-base)"
            )
    tokenizer_dir = Path(tokenizer_dir)
    missing = [name for name in TOKENIZER_FILES if not (tokenizer_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"tokenizer directory {tokenizer_dir} lacks {' and '.join(missing)}; it must hold roberta-base's "
            f"{' and '.join(TOKENIZER_FILES)} (from https://huggingface.co/FacebookAI/roberta-base)"
        )
    try:
        vocab = json.loads((tokenizer_dir / "vocab.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{tokenizer_dir / 'vocab.json'} is not a JSON token->id map: {err}") from err
    if not isinstance(vocab, dict) or len(vocab) != expected_vocab_size:
        size = len(vocab) if isinstance(vocab, dict) else type(vocab).__name__
        raise ValueError(
            f"{tokenizer_dir / 'vocab.json'} has {size} entries, expected {expected_vocab_size} "
            "(roberta-base's vocab.json has 50265)"
        )
    with _hub_offline():
        tokenizer = RobertaTokenizer(vocab=str(tokenizer_dir / "vocab.json"), merges=str(tokenizer_dir / "merges.txt"))
    if tokenizer.vocab_size != expected_vocab_size:
        raise ValueError(
            f"the tokenizer built from {tokenizer_dir} has {tokenizer.vocab_size} tokens, expected "
            f"{expected_vocab_size}: check vocab.json and merges.txt there are roberta-base's"
        )
    return tokenizer


# --- audio input, as the authors prepare it, on tensors -------------------------


def _quantise_int16(wav: Tensor) -> Tensor:
    """The authors' float -> int16 -> float round trip, with an identity gradient.

    Forward values equal ``int16_to_float32(float32_to_int16(x))`` (clip to
    [-1, 1], scale by 32767, truncate toward zero); the rounding has no useful
    gradient, so the gradient passes straight through.
    """
    quantised = torch.trunc(wav.clamp(-1.0, 1.0) * 32767.0) / 32767.0
    return wav + (quantised - wav).detach()


def _repeat_pad(wav: Tensor, length: int) -> Tensor:
    """The authors' "repeatpad": tile a short clip whole as often as it fits, then zero-pad to ``length``."""
    repeats = length // wav.shape[-1]
    tiled = wav.repeat(1, repeats)
    return F.pad(tiled, (0, length - tiled.shape[-1]))


def _fusion_input(mel: Tensor, chunk_frames: int) -> tuple[Tensor, bool]:
    """Fusion model input from one clip's log-mel (frames, mels): (4, chunk_frames, mels), longer flag.

    Clips longer than 10 s: a time-squeezed global view plus a front, middle
    and back chunk. The authors draw each chunk's start at random within a
    third of the possible starts; here it is the middle of that third, so an
    embedding does not change from call to call.
    """
    total = mel.shape[0]
    if total <= chunk_frames:
        return torch.stack([mel] * 4), False
    thirds = np.array_split(np.arange(total - chunk_frames + 1), 3)
    starts = [int(t[len(t) // 2]) if len(t) else 0 for t in thirds]
    chunks = [mel[s : s + chunk_frames] for s in starts]
    squeezed = F.interpolate(
        mel[None, None], size=(chunk_frames, mel.shape[1]), mode="bilinear", align_corners=False, antialias=True
    )[0, 0]
    return torch.stack([squeezed, *chunks]), True


class LaionClap(ClapBackend):
    """The authors' LAION-CLAP (HTS-AT audio, RoBERTa text), frozen, loaded from ``checkpoint``.

    Args:
        checkpoint: path of a LAION-CLAP checkpoint, e.g. ``music_audioset_epoch_15_esc_90.14.pt``
            (HTSAT-base) or ``630k-audioset-best.pt`` / ``630k-audioset-fusion-best.pt`` (HTSAT-tiny).
        tokenizer_dir: folder with roberta-base's ``vocab.json`` and ``merges.txt``; ``None``
            looks in the local Hugging Face cache.
        audio_model: laion_clap audio config name ("HTSAT-base", "HTSAT-tiny", "HTSAT-large");
            ``None`` reads it off the checkpoint, a given name must agree with it. Fusion is always
            read off the checkpoint.
        prompt_template: how an entity becomes a prompt.
        device: where the model lives.
        weights_only: passed to ``torch.load``; set False only for a checkpoint you trust that holds
            more than tensors.

    Attributes: ``sample_rate`` 48000 Hz, ``embed_dim`` 512, ``text_state_dim`` 768;
    ``audio_model`` and ``enable_fusion`` as loaded.
    """

    sample_rate = SAMPLE_RATE

    def __init__(
        self,
        checkpoint: str | Path,
        tokenizer_dir: str | Path | None = None,
        audio_model: str | None = None,
        prompt_template: str = DEFAULT_TEMPLATE,
        device: str | torch.device = "cpu",
        weights_only: bool = True,
    ) -> None:
        super().__init__(prompt_template)
        state = load_laion_state_dict(checkpoint, weights_only=weights_only)
        found_model, fusion, fusion_type = infer_audio_model(state, checkpoint)
        if audio_model is not None and audio_model != found_model:
            raise ValueError(f"audio_model={audio_model!r}, but {checkpoint} holds a {found_model} audio tower")
        text_config = _roberta_config(state, checkpoint)
        # The tokenizer must cover exactly the checkpoint's vocabulary: 50265 for LAION's RoBERTa.
        self.tokenizer = load_roberta_tokenizer(tokenizer_dir, expected_vocab_size=text_config.vocab_size)

        self.clap = build_clap_model(found_model, fusion, fusion_type, text_config)
        own_keys = set(self.clap.state_dict())
        state = {k: v for k, v in state.items() if not (k in _STALE_TEXT_KEYS and k not in own_keys)}
        missing, unexpected = self.clap.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"{checkpoint} does not fit laion_clap's {found_model} (fusion={fusion}) + RoBERTa model: "
                f"missing {sorted(missing)[:8]}{' ...' if len(missing) > 8 else ''}, "
                f"unexpected {sorted(unexpected)[:8]}{' ...' if len(unexpected) > 8 else ''}"
            )
        self.audio_model = found_model
        self.enable_fusion = fusion
        self.embed_dim = int(self.clap.joint_embed_shape)
        self.text_state_dim = int(text_config.hidden_size)
        audio_cfg = self.clap.audio_cfg
        if audio_cfg.sample_rate != SAMPLE_RATE or audio_cfg.clip_samples != CLIP_SAMPLES:
            raise ValueError(f"unexpected laion_clap audio config {audio_cfg}: expected 48 kHz, 480000-sample clips")
        self._mel = self._fusion_mel_transform(audio_cfg) if fusion else None
        self.to(device)
        self.freeze()

    # --- text ---------------------------------------------------------------
    @torch.no_grad()
    def _encode_text(self, prompts: list[str]) -> tuple[Tensor, Tensor, Tensor]:
        """Prompts -> (embedding (B, 512) L2-normalised, RoBERTa last hidden states (B, 77, 768), mask (B, 77))."""
        device = self._device()
        tokens = self.tokenizer(
            prompts, padding="max_length", truncation=True, max_length=MAX_TEXT_TOKENS, return_tensors="pt"
        )
        ids = tokens["input_ids"].to(device)
        mask = tokens["attention_mask"].to(device)
        out = self.clap.text_branch(input_ids=ids, attention_mask=mask)
        # The authors' text embedding: the projection of RoBERTa's pooled <s> state.
        emb = F.normalize(self.clap.text_projection(out["pooler_output"]), dim=-1)
        return emb, out["last_hidden_state"], mask.bool()

    # --- audio --------------------------------------------------------------
    @staticmethod
    def _fusion_mel_transform(audio_cfg) -> torch.nn.Module:
        """Log-mel (dB, power) exactly as laion_clap's data pipeline feeds fusion models."""
        import torchaudio

        return torch.nn.Sequential(
            torchaudio.transforms.MelSpectrogram(
                sample_rate=audio_cfg.sample_rate,
                n_fft=audio_cfg.window_size,
                win_length=audio_cfg.window_size,
                hop_length=audio_cfg.hop_size,
                center=True,
                pad_mode="reflect",
                power=2.0,
                norm=None,
                n_mels=audio_cfg.mel_bins,
                f_min=audio_cfg.fmin,
                f_max=audio_cfg.fmax,
            ),
            torchaudio.transforms.AmplitudeToDB(top_db=None),
        )

    def _encode_audio(self, wav: Tensor) -> Tensor:
        """wav (B, T) at 48 kHz -> projected audio embedding (B, 512), differentiable wrt ``wav``.

        Clips shorter than 10 s are repeat-padded to 10 s; longer clips are
        centre-cropped (non-fusion models) or summarised by the fusion input.
        """
        if wav.shape[-1] == 0:
            raise ValueError("embed_audio got empty waveforms (0 samples)")
        wav = _quantise_int16(wav.to(self._device(), torch.float32))
        batch, length = wav.shape
        if length <= CLIP_SAMPLES:
            waveform = _repeat_pad(wav, CLIP_SAMPLES)
        else:
            start = (length - CLIP_SAMPLES) // 2
            waveform = wav[:, start : start + CLIP_SAMPLES]
        inputs = {"waveform": waveform, "longer": torch.zeros(batch, dtype=torch.bool, device=wav.device)}
        if self.enable_fusion:
            chunk_frames = CLIP_SAMPLES // self.clap.audio_cfg.hop_size + 1
            # Fusion summarises a long clip whole; a short one is seen repeat-padded.
            mels = self._mel(wav if length > CLIP_SAMPLES else waveform).transpose(1, 2)  # (B, frames, mels)
            fused = [_fusion_input(m, chunk_frames) for m in mels]
            inputs["mel_fusion"] = torch.stack([f for f, _ in fused])
            inputs["longer"] = torch.tensor([longer for _, longer in fused], device=wav.device)
        features = self.clap.encode_audio(inputs, device=wav.device)["embedding"]
        return self.clap.audio_projection(features)

    def _logit_scale(self) -> Tensor:
        # The audio-side temperature, the one the authors use for audio-to-text logits.
        return self.clap.logit_scale_a.exp()

"""The LAION-CLAP wrapper, offline: random weights saved in the authors' checkpoint layout.

No pretrained weights exist here, so the checks are about plumbing: the
checkpoint loads into the right architecture, the audio path computes what
the authors' ``get_audio_embedding_from_data`` computes, gradients reach the
waveform, nothing in the model can change, and errors are clear.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torchaudio

# Not importorskip("laion_clap"): importing laion_clap runs argparse on sys.argv (pytest's).
if importlib.util.find_spec("laion_clap") is None:
    pytest.skip("laion_clap is not installed", allow_module_level=True)

pytestmark = pytest.mark.slow  # its fixture builds HTSAT and RoBERTa towers: about two minutes here

from laion_fixtures import LOGIT_SCALE, make_checkpoint, make_tokenizer_dir  # noqa: E402

from weaksep.clap import laion  # noqa: E402  (after the skip: it needs laion_clap at run time)


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> tuple[Path, int]:
    return make_tokenizer_dir(tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture(scope="module")
def base_checkpoint(tmp_path_factory, tokenizer_dir) -> tuple[Path, dict[str, torch.Tensor]]:
    path = tmp_path_factory.mktemp("ckpt") / "music_audioset_epoch_15_esc_90.14.pt"
    state = make_checkpoint(path, "HTSAT-base", tokenizer_dir[1])
    return path, state


@pytest.fixture(scope="module")
def clap(base_checkpoint, tokenizer_dir):
    return laion.LaionClap(base_checkpoint[0], tokenizer_dir=tokenizer_dir[0])


def authors_audio_embedding(clap, wav: np.ndarray) -> torch.Tensor:
    """What laion_clap's get_audio_embedding_from_data computes for short clips (non-fusion), in numpy."""
    inputs = []
    for clip in wav:
        clip = (np.clip(clip, -1.0, 1.0) * 32767.0).astype(np.int16) / 32767.0  # int16 round trip
        clip = np.tile(clip, 480_000 // len(clip))  # "repeatpad"
        clip = np.pad(clip, (0, 480_000 - len(clip)))
        inputs.append({"waveform": torch.from_numpy(clip).float(), "longer": torch.tensor([False])})
    with torch.no_grad():
        return clap.clap.get_audio_embedding(inputs)


def test_checkpoint_loads_into_the_right_model(clap, base_checkpoint):
    _, saved = base_checkpoint
    assert (clap.audio_model, clap.enable_fusion) == ("HTSAT-base", False)
    assert (clap.sample_rate, clap.embed_dim, clap.text_state_dim) == (48_000, 512, 768)
    loaded = clap.clap.state_dict()
    assert set(loaded) == set(saved) - {"text_branch.embeddings.position_ids"}
    for key in loaded:
        assert torch.equal(loaded[key], saved[key]), key
    assert clap.logit_scale.item() == pytest.approx(LOGIT_SCALE, rel=1e-5)


def test_text_embeddings_and_states(clap, tokenizer_dir):
    emb = clap.embed_text(["violin", "flute", "acoustic guitar"])
    assert emb.shape == (3, 512)
    assert torch.allclose(emb.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert not torch.allclose(emb[0], emb[1])
    # The authors' path (laion_clap's CLAP.get_text_embedding on their tokenizer call) agrees.
    tokens = clap.tokenizer(
        [clap.prompt(e) for e in ["violin", "flute", "acoustic guitar"]],
        padding="max_length",
        truncation=True,
        max_length=77,
        return_tensors="pt",
    )
    with torch.no_grad():
        reference = clap.clap.get_text_embedding(dict(tokens))
    torch.testing.assert_close(emb, reference, atol=1e-5, rtol=1e-5)

    states, mask = clap.text_states(["violin", "acoustic guitar"])
    ids = [clap.tokenizer(clap.prompt(e))["input_ids"] for e in ["violin", "acoustic guitar"]]
    assert all(i[0] == 0 and i[-1] == 2 for i in ids)  # <s> ... </s>: the pooler reads <s>
    n_tokens = [len(i) for i in ids]
    assert states.shape == (2, max(n_tokens), 768)
    assert mask.sum(dim=1).tolist() == n_tokens
    assert torch.all(states[~mask] == 0)


def test_text_embeddings_are_cached(clap, monkeypatch):
    calls: list[list[str]] = []
    encode = clap._encode_text

    def counting(prompts):
        calls.append(list(prompts))
        return encode(prompts)

    monkeypatch.setattr(clap, "_encode_text", counting)
    first = clap.embed_text(["church organ"])
    again = clap.embed_text(["church organ"])
    mixed = clap.embed_text(["church organ", "trumpet"])
    assert calls == [["The sound of church organ"], ["The sound of trumpet"]]
    assert torch.equal(first, again) and torch.equal(mixed[0], first[0])


def test_audio_matches_the_authors_pipeline_and_backpropagates(clap):
    rng = np.random.default_rng(1)
    wav_np = (0.3 * rng.standard_normal((2, 48_000))).astype(np.float32)  # 2 x 1 s at 48 kHz
    wav = torch.from_numpy(wav_np).requires_grad_(True)
    emb = clap.embed_audio(wav, 48_000)
    assert emb.shape == (2, 512)
    assert torch.allclose(emb.norm(dim=-1), torch.ones(2), atol=1e-5)
    torch.testing.assert_close(emb.detach(), authors_audio_embedding(clap, wav_np), atol=1e-4, rtol=1e-4)

    target = clap.embed_text(["violin", "flute"])
    (clap.logit_scale * (emb * target).sum()).backward()
    assert wav.grad is not None and torch.isfinite(wav.grad).all()
    assert wav.grad[0].abs().sum() > 0 and wav.grad[1].abs().sum() > 0
    assert all(p.grad is None for p in clap.parameters())


def test_audio_at_another_rate_is_resampled_to_48k(clap):
    torch.manual_seed(2)
    wav16 = 0.2 * torch.randn(1, 16_000)
    at_48k = torchaudio.functional.resample(wav16, 16_000, 48_000)
    torch.testing.assert_close(clap.embed_audio(wav16, 16_000), clap.embed_audio(at_48k, 48_000))


def test_parameters_are_frozen(clap):
    assert all(not p.requires_grad for p in clap.parameters())
    before = {k: v.clone() for k, v in clap.state_dict().items()}
    head = torch.nn.Linear(512, 4)
    optimiser = torch.optim.SGD(list(head.parameters()) + list(clap.parameters()), lr=1.0, momentum=0.9)
    clap.train()  # a frozen backend refuses training mode
    assert not clap.training and not clap.clap.audio_branch.training
    wav = (0.1 * torch.randn(2, 48_000)).requires_grad_(True)
    head(clap.embed_audio(wav, 48_000)).pow(2).sum().backward()
    optimiser.step()
    after = clap.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert head.weight.grad is not None and wav.grad is not None


def test_fusion_checkpoint(tmp_path, tokenizer_dir):
    path = tmp_path / "630k-audioset-fusion-best.pt"
    make_checkpoint(path, "HTSAT-tiny", tokenizer_dir[1], fusion=True)
    clap = laion.LaionClap(path, tokenizer_dir=tokenizer_dir[0])
    assert (clap.audio_model, clap.enable_fusion) == ("HTSAT-tiny", True)
    torch.manual_seed(3)
    short = (0.1 * torch.randn(2, 48_000)).requires_grad_(True)
    long = (0.1 * torch.randn(1, 48_000 * 12)).requires_grad_(True)  # 12 s: the fusion branch proper
    for wav in (short, long):
        emb = clap.embed_audio(wav, 48_000)
        assert emb.shape == (wav.shape[0], 512)
        assert torch.allclose(emb.norm(dim=-1), torch.ones(wav.shape[0]), atol=1e-5)
        if wav is long:  # the chunks of a long clip are chosen deterministically
            torch.testing.assert_close(emb, clap.embed_audio(wav, 48_000))
        emb.sum().backward()
        assert torch.isfinite(wav.grad).all() and wav.grad.abs().sum() > 0


def test_missing_tokenizer_file_is_a_clear_error(tmp_path, base_checkpoint, tokenizer_dir):
    partial = tmp_path / "tok"
    partial.mkdir()
    shutil.copy(tokenizer_dir[0] / "vocab.json", partial / "vocab.json")
    with pytest.raises(FileNotFoundError, match=r"lacks merges\.txt.*roberta-base") as err:
        laion.LaionClap(base_checkpoint[0], tokenizer_dir=partial)
    assert str(partial) in str(err.value)


def test_tokenizer_of_the_wrong_size_is_refused(tmp_path, base_checkpoint, tokenizer_dir):
    smaller, size = make_tokenizer_dir(tmp_path / "small")
    entries = json.loads((smaller / "vocab.json").read_text())
    kept = dict(list(entries.items())[:-1])
    (smaller / "vocab.json").write_text(json.dumps(kept))
    with pytest.raises(ValueError, match=rf"{size - 1} entries, expected {size}"):
        laion.LaionClap(base_checkpoint[0], tokenizer_dir=smaller)
    # The default expectation is roberta-base's vocabulary, so an empty tokenizer cannot pass.
    with pytest.raises(ValueError, match="expected 50265"):
        laion.load_roberta_tokenizer(tokenizer_dir[0])


def test_checkpoint_errors(tmp_path, base_checkpoint, tokenizer_dir):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        laion.LaionClap(tmp_path / "absent.pt", tokenizer_dir=tokenizer_dir[0])
    with pytest.raises(ValueError, match="holds a HTSAT-base audio tower"):
        laion.LaionClap(base_checkpoint[0], tokenizer_dir=tokenizer_dir[0], audio_model="HTSAT-tiny")
    junk = tmp_path / "junk.pt"
    torch.save({"state_dict": {"module.foo": torch.zeros(1)}}, junk)
    with pytest.raises(ValueError, match="audio_branch.patch_embed.proj.weight"):
        laion.LaionClap(junk, tokenizer_dir=tokenizer_dir[0])


def test_a_study_on_a_dataset_trains_and_scores_weak_with_the_laion_backend(tmp_path, tokenizer_dir):
    """The laion backend inside the study, on a dataset in its public layout (label manifests): the
    weak objective embeds the estimates with it, evaluation scores them with it, and the table's
    config names it. (``tests/test_reproduce.py`` runs the notebooks with it on captions.)"""
    from weaksep.data import prepare_data
    from weaksep.data.fixtures import write_fixture
    from weaksep.reproduce.study import Study

    checkpoint = tmp_path / "clap.pt"
    make_checkpoint(checkpoint, "HTSAT-tiny", tokenizer_dir[1])
    record = write_fixture("music", tmp_path / "music")
    manifests = prepare_data(tmp_path / "music", tmp_path / "manifests", skip_bad=True, echo=None)
    study = Study(
        "smoke",
        data_root=tmp_path / "cache",
        results_dir=tmp_path / "results",
        clap_backend="laion",
        clap_checkpoint=checkpoint,
        tokenizer_dir=tokenizer_dir[0],
        manifests=manifests,
        progress=False,
    )
    model = study.train("weak", 2, seed=0, steps=2)
    log = pd.read_csv(study.run_files(model) / "log.csv")
    assert np.isfinite(log["loss_contrastive"]).all()  # the CLAP embedded the estimates
    rows = study.evaluate({"weak": model}, 2)
    weak = rows[rows["regime"] == "weak"]
    assert len(weak) > 0 and weak["sdr"].notna().all() and np.isfinite(weak["clap_sim"]).all()
    assert set(weak["entity"]) <= set(record.classes)
    study.write_table("01_two_source", "two_source", rows)
    config = json.loads((tmp_path / "results" / "configs" / "01_two_source.json").read_text())
    assert config["clap"]["backend"] == "laion" and config["data"]["layout"] == "music"
    card = study.clap_card()  # what notebook 00 shows of a user's CLAP: measured here
    assert card["backend"] == "laion" and 0.0 <= card["zero_shot_accuracy"] <= 1.0
    assert str(tmp_path) not in (tmp_path / "results" / "clap_card.json").read_text()  # no machine path

"""The ClapBackend interface, on the default (proxy) backend; pretraining that really learns."""

import torch

from weaksep.clap import load_clap
from weaksep.clap.pretrain import average_precision, symmetric_contrastive_loss
from weaksep.clap.proxy import ProxyClap


def test_text_embeddings_normalised_cached_and_meaningful():
    clap = ProxyClap(8000).freeze()
    emb = clap.embed_text(["violin", "cello", "a dog barking"])
    assert emb.shape == (3, 384)
    assert torch.allclose(emb.norm(dim=-1), torch.ones(3), atol=1e-5)
    # The frozen sentence encoder knows that two bowed strings are closer than a dog.
    assert emb[0] @ emb[1] > emb[0] @ emb[2]
    assert clap.prompt("violin") == "The sound of violin" and "The sound of violin" in clap._text_cache
    states, mask = clap.text_states(["violin", "acoustic guitar"])
    assert states.shape[0] == 2 and states.shape[-1] == 384 and mask.dtype == torch.bool
    assert mask[1].sum() > mask[0].sum()  # the longer prompt has more tokens


def test_audio_embedding_is_normalised_gain_invariant_and_differentiable():
    clap = ProxyClap(8000).freeze()
    wav = torch.randn(2, 8000, requires_grad=True)
    emb = clap.embed_audio(wav, 8000)
    assert emb.shape == (2, 384) and torch.allclose(emb.norm(dim=-1), torch.ones(2), atol=1e-5)
    emb.sum().backward()
    assert wav.grad is not None and wav.grad.abs().sum() > 0
    quiet = clap.embed_audio(wav.detach() * 0.1, 8000)
    assert torch.allclose(quiet, emb.detach(), atol=1e-3)
    # resampling happens inside: a 16 kHz input is accepted
    assert clap.embed_audio(torch.randn(1, 16000), 16000).shape == (1, 384)


def test_frozen_backend_never_changes_or_trains():
    clap = ProxyClap(8000).freeze()
    before = {k: v.clone() for k, v in clap.state_dict().items()}
    probe = torch.nn.Linear(384, 1)
    opt = torch.optim.Adam(list(probe.parameters()) + list(clap.parameters()), lr=0.1)
    wav = torch.randn(4, 8000, requires_grad=True)
    clap.train()  # as a parent module's .train() would
    assert not clap.training
    for _ in range(3):
        loss = probe(clap.embed_audio(wav, 8000)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(not p.requires_grad for p in clap.parameters())
    assert all(torch.equal(before[k], v) for k, v in clap.state_dict().items())


def test_symmetric_loss_against_manual_computation():
    a = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    c = torch.nn.functional.normalize(torch.randn(3, 8), dim=-1)
    labels = torch.tensor([0, 0, 2, 1])
    logits = 10 * a @ c.T
    a2t = torch.nn.functional.cross_entropy(logits, labels)
    # text->audio: class 0 has two positives, each with target 1/2
    t2a = 0.0
    for cls, pos in ((0, [0, 1]), (1, [3]), (2, [2])):
        logp = logits[:, cls].log_softmax(0)
        t2a += -logp[pos].mean()
    expected = (a2t + t2a / 3) / 2
    assert torch.isclose(symmetric_contrastive_loss(a, c, labels, torch.tensor(10.0)), expected, atol=1e-5)


def test_average_precision_by_hand():
    import numpy as np

    assert average_precision(np.array([0.9, 0.8, 0.1]), np.array([True, True, False])) == 1.0
    # relevant at ranks 1 and 3: (1/1 + 2/3) / 2
    assert abs(average_precision(np.array([0.9, 0.5, 0.4]), np.array([True, False, True])) - (1 + 2 / 3) / 2) < 1e-12


def test_pretrained_smoke_clap_beats_chance_and_reloads(smoke_study, tmp_path):
    card = smoke_study.clap_card()
    assert 0 <= card["zero_shot_accuracy"] <= 1 and 0 <= card["mixture_map"] <= 1
    assert card["zero_shot_accuracy"] > 2 / 11  # twice chance among 11 instruments (0.48 measured)
    again = load_clap("proxy", smoke_study.clap_checkpoint)
    wav = smoke_study.clips("test").audio[:3]
    assert torch.allclose(again.embed_audio(wav, 8000), smoke_study.clap().embed_audio(wav, 8000), atol=1e-6)
    assert (smoke_study.results / "clap_card.md").exists()


def test_text_work_is_chunked_and_the_caches_are_bounded(monkeypatch):
    import weaksep.clap.base as base

    clap = ProxyClap(8000, 32, (8, 16)).freeze()
    texts = [f"sound number {i}" for i in range(50)]
    whole = clap.embed_text(texts).clone()
    monkeypatch.setattr(base, "TEXT_CHUNK", 8)
    monkeypatch.setattr(base, "TEXT_CACHE_SIZE", 20)
    monkeypatch.setattr(base, "STATE_CACHE_SIZE", 10)
    clap = ProxyClap(8000, 32, (8, 16)).freeze()
    sizes = []
    real = clap._encode_text
    monkeypatch.setattr(clap, "_encode_text", lambda prompts: sizes.append(len(prompts)) or real(prompts))
    chunked = clap.embed_text(texts)
    assert max(sizes) == 8 and sum(sizes) == 50  # 46 000 captions pass the text tower 8 at a time
    assert torch.allclose(whole, chunked, atol=1e-6)
    assert len(clap._text_cache) == 50  # a call keeps at least its own prompts
    for i in range(30):  # one new mixture sentence per step, as training makes them
        clap.embed_text([f"mixture {i}"])
        clap.text_states([f"mixture {i}"])
    assert len(clap._text_cache) == 20 and len(clap._state_cache) == 10
    assert "The sound of mixture 29" in clap._text_cache  # the least recent went first
    assert "The sound of sound number 0" not in clap._text_cache
    bound = 20 * clap.embed_dim * 4 + sum(t.numel() * 4 for t in clap._state_cache.values())
    assert clap.text_cache_bytes() == bound

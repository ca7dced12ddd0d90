"""The separator: shapes, mask range, STFT round trip, every conditioning mode, save and reload."""

import pytest
import torch

from weaksep.method.model import STFT, Separator, SeparatorConfig
from weaksep.training.checkpoint import load_separator, save_checkpoint


def make(conditioning="head", cond_levels=0, channels=(8, 16, 32)):
    cfg = SeparatorConfig(
        n_fft=256,
        hop=64,
        channels=channels,
        text_dim=12,
        text_state_dim=10,
        conditioning=conditioning,
        cond_levels=cond_levels,
        head_channels=8,
    )
    torch.manual_seed(0)
    return Separator(cfg)


def test_stft_round_trip():
    stft = STFT(256, 64)
    x = torch.randn(2, 4000)
    assert torch.allclose(stft.inverse(stft(x), 4000), x, atol=1e-5)


@pytest.mark.parametrize("conditioning,levels", [("head", 0), ("film", 1), ("film", 2), ("cross_attention", 2)])
def test_masks_shape_range_and_query_dependence(conditioning, levels):
    model = make(conditioning, levels)
    mix = torch.randn(2, 4000)
    text = torch.randn(2, 3, 12)
    states, mask = torch.randn(2, 3, 5, 10), torch.ones(2, 3, 5, dtype=torch.bool)
    masks, spec = model(mix, text, states, mask)
    assert masks.shape == (2, 3, 129, spec.shape[-1])
    assert masks.min() >= 0 and masks.max() <= 1
    # Different queries give different masks; the same query the same mask.
    assert not torch.allclose(masks[:, 0], masks[:, 1])
    text2 = torch.cat([text[:, :1], text[:, :1]], dim=1)
    states2 = torch.cat([states[:, :1], states[:, :1]], dim=1)
    m2, _ = model(mix, text2, states2, mask[:, :2])
    assert torch.allclose(m2[:, 0], m2[:, 1], atol=1e-6)
    est = model.estimates(masks, spec, 4000)
    assert est.shape == (2, 3, 4000)


def test_full_mask_returns_the_mixture():
    model = make()
    mix = torch.randn(1, 4000)
    spec = model.stft(mix)
    est = model.estimates(torch.ones(1, 1, *spec.shape[-2:]), spec, 4000)
    assert torch.allclose(est[0, 0], mix[0], atol=1e-5)


def test_save_reload_gives_identical_outputs(tmp_path):
    model = make("film", 1).eval()
    path = save_checkpoint(tmp_path / "m.pt", model, {"regime": "sup"}, step=3)
    again, run = load_separator(path)
    mix, text = torch.randn(1, 4000), torch.randn(1, 2, 12)
    assert torch.equal(model.separate(mix, text), again.separate(mix, text))
    assert run == {"regime": "sup"}


def test_bad_checkpoints_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt"):
        load_separator(bad)
    torch.save({"hello": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a weaksep separator checkpoint"):
        load_separator(tmp_path / "other.pt")
    path = save_checkpoint(tmp_path / "m.pt", make(), {}, step=0)
    with pytest.raises(ValueError, match="another model"):
        load_separator(path, expected=make(channels=(8, 16)).cfg)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_separator(tmp_path / "missing.pt")

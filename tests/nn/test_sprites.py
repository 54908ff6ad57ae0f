"""SpriteDecoder: what/where latents drawn as sprites, placed, and composited as ink."""

import pytest
import torch

from pyro_frmdn.nn import PixelLikelihood, SpriteDecoder

H = W = 12
S = 4  # sprite side


class Fixed(torch.nn.Module):
    """A sprite network that ignores its input and draws ``pattern`` (0/1) exactly."""

    def __init__(self, pattern):
        super().__init__()
        self.pattern = pattern

    def forward(self, what):
        logits = (2 * self.pattern - 1) * 40.0  # sigmoid(±40) is 0 or 1 to 1e-17
        return logits.flatten().expand(*what.shape[:-1], -1)


def sprite_decoder(k=1, what=1, **kwargs):
    torch.manual_seed(0)
    return SpriteDecoder(k * (what + 2), (1, H, W), k, S, hidden=(8,), **kwargs).double()


def latent(what, pixels_x, pixels_y):
    """The block of a sprite whose centre sits ``pixels_x, pixels_y`` pixels from the frame's."""
    centre = torch.tensor([2.0 * pixels_x / W, 2.0 * pixels_y / H], dtype=torch.float64)
    return torch.cat([what, torch.atanh(centre)])


@pytest.mark.parametrize("dx, dy", [(0, 0), (3, -2), (-4, 4), (1, 0)])
def test_a_sprite_lands_on_the_pixels_its_position_names(dx, dy):
    """A position a whole number of pixels from the centre pastes the sprite unchanged there."""
    g = torch.Generator().manual_seed(dx * 10 + dy)
    pattern = (torch.rand(1, S, S, generator=g, dtype=torch.float64) < 0.5).double()
    dec = sprite_decoder()
    dec.sprite = Fixed(pattern)
    canvas = dec.canvas(latent(torch.zeros(1, dtype=torch.float64), dx, dy))
    expected = torch.zeros(1, H, W, dtype=torch.float64)
    top, left = H // 2 - S // 2 + dy, W // 2 - S // 2 + dx
    expected[:, top : top + S, left : left + S] = pattern
    assert canvas.shape == (1, H, W)
    assert torch.allclose(canvas, expected, atol=1e-9)


def test_sprites_composite_as_independent_ink():
    """Two overlapping sprites give 1 - (1 - a)(1 - b) of their single canvases."""
    two = sprite_decoder(k=2, what=3)
    one = sprite_decoder(k=1, what=3)
    one.sprite = two.sprite
    z = torch.randn(6, 2 * 5, dtype=torch.float64) * 0.5
    a, b = one.canvas(z[:, :5]), one.canvas(z[:, 5:])
    assert torch.allclose(two.canvas(z), 1 - (1 - a) * (1 - b), atol=1e-12)
    assert bool((a > 0.01).any() & (b > 0.01).any())  # both sprites visible


def test_layout_splits_what_and_where_and_positions_are_bounded():
    dec = sprite_decoder(k=3, what=2)
    z = torch.randn(5, 7, 12, dtype=torch.float64) * 10
    what, centres = dec.layout(z)
    assert what.shape == (5, 7, 3, 2) and centres.shape == (5, 7, 3, 2)
    assert torch.equal(what[..., 1, :], z[..., 4:6])
    assert torch.equal(centres[..., 2, :], torch.tanh(z[..., 10:12]))


def test_the_maps_match_each_pixel_likelihood():
    z = torch.randn(2, 3, 6, dtype=torch.float64)
    for kind in ("bernoulli", "gaussian", "logistic"):
        dec = sprite_decoder(k=2, likelihood=kind)
        p = dec.canvas(z)
        maps = dec(z)
        px = PixelLikelihood(kind, 1).double()(maps)
        assert px.batch_shape == (2, 3) and px.event_shape == (1, H, W)
        shown = PixelLikelihood(kind, 1).frame(maps)
        assert torch.allclose(shown, p.clamp(1e-4, 1 - 1e-4) if kind == "bernoulli" else p)


def test_gradients_of_the_canvas_match_finite_differences():
    dec = sprite_decoder(k=2, what=2)
    z = (torch.randn(3, 8, dtype=torch.float64) * 0.6).requires_grad_()
    assert torch.autograd.gradcheck(dec.canvas, (z,), eps=1e-6, atol=1e-6)


def test_a_position_is_found_by_gradient_descent():
    """The sprite's pixels pull its position to where the target's ink is (1.5 pixels away)."""
    pattern = torch.zeros(1, S, S, dtype=torch.float64)
    pattern[:, 1:3, :] = 1.0
    dec = sprite_decoder()
    dec.sprite = Fixed(pattern)
    what = torch.zeros(1, dtype=torch.float64)
    target = dec.canvas(latent(what, 2, -1)).detach()
    z = latent(what, 0.5, 0.5).requires_grad_()
    opt = torch.optim.Adam([z], lr=0.02)
    for _ in range(300):
        loss = ((dec.canvas(z) - target) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    _, centre = dec.layout(z.detach())
    pixels = centre * torch.tensor([W / 2, H / 2], dtype=torch.float64)
    assert torch.allclose(pixels, torch.tensor([2.0, -1.0], dtype=torch.float64), atol=0.02)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="num_sprites"):
        SpriteDecoder(7, (1, H, W), num_sprites=2)
    with pytest.raises(ValueError, match="what_dim >= 1"):
        SpriteDecoder(4, (1, H, W), num_sprites=2)
    with pytest.raises(ValueError, match="sprite_size"):
        SpriteDecoder(6, (1, H, W), num_sprites=2, sprite_size=16)
    with pytest.raises(ValueError, match="likelihood"):
        SpriteDecoder(6, (1, H, W), likelihood="poisson")

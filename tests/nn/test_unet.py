"""The image U-Net: shapes at any size, the role of the time and the class label, zero-initialised output."""

import pytest
import torch

from moldiff.nn.unet import UNet


def _randomise(net: torch.nn.Module) -> torch.nn.Module:
    """Random weights in the zero-initialised layers (the untrained U-Net outputs exactly 0)."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            if bool((p == 0).all()):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    return net


@pytest.mark.parametrize(
    "shape, out_channels, mults",
    [((3, 1, 28, 28), None, (1, 2, 2)), ((2, 3, 13, 17), 6, (1, 2, 2)), ((1, 2, 8, 8), None, (1,))],
)
def test_output_shape_matches_the_input_at_any_size(shape, out_channels, mults):
    torch.manual_seed(0)
    net = UNet(
        shape[1],
        out_channels,
        base_channels=8,
        channel_mults=mults,
        num_res_blocks=2,
        groups=4,
        heads=2,
        attention_levels=(0, len(mults) - 1),
    )
    out = net(torch.randn(shape), torch.rand(shape[0]))
    assert out.shape == (shape[0], out_channels or shape[1], *shape[2:])


def test_untrained_output_is_zero_and_every_parameter_trains():
    torch.manual_seed(0)
    net = UNet(1, base_channels=8, channel_mults=(1, 2), num_res_blocks=1, groups=4, num_classes=3)
    x, t = torch.randn(2, 1, 8, 8), torch.rand(2)
    assert torch.equal(net(x, t, labels=torch.tensor([0, 1])), torch.zeros(2, 1, 8, 8))
    _randomise(net)(x, t, labels=torch.tensor([0, 2])).square().sum().backward()
    unused = [name for name, p in net.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert unused == []


def test_class_label_and_time_change_the_output():
    torch.manual_seed(0)
    net = _randomise(UNet(1, base_channels=8, channel_mults=(1, 2), num_res_blocks=1, groups=4, num_classes=10))
    x, t = torch.randn(4, 1, 12, 12), torch.full((4,), 0.3)
    a = net(x, t, labels=torch.tensor([0, 1, 2, 3]))
    b = net(x, t, labels=torch.tensor([5, 1, 2, 3]))
    assert (a[0] - b[0]).abs().max() > 1e-4  # the changed label changes its image ...
    assert torch.allclose(a[1:], b[1:], atol=1e-6)  # ... and no other
    null = net(x, t)
    assert torch.allclose(null, net(x, t, labels=torch.full((4,), -1)))  # -1 and None both mean the null label
    assert (null - a).abs().max() > 1e-4
    assert (net(x, t + 0.2, labels=torch.tensor([0, 1, 2, 3])) - a).abs().max() > 1e-4


def test_an_unconditional_network_refuses_labels():
    net = UNet(1, base_channels=8, channel_mults=(1,), num_res_blocks=1, groups=4)
    with pytest.raises(ValueError, match="num_classes=0"):
        net(torch.randn(1, 1, 8, 8), torch.rand(1), labels=torch.tensor([0]))
    with pytest.raises(ValueError, match="attention_levels"):
        UNet(1, channel_mults=(1, 2), attention_levels=(2,))

"""The grid layout and the standard-library PNG writer (read back with Pillow)."""

import numpy as np
import pytest
import torch
from PIL import Image

from moldiff.images.grid import make_grid, save_grid, write_png


def test_grid_layout_and_padding():
    images = torch.arange(5 * 2 * 3, dtype=torch.uint8).reshape(5, 1, 2, 3)
    grid = make_grid(images, nrow=3, padding=1, pad_value=255)
    assert grid.shape == (1, 2 * (2 + 1) + 1, 3 * (3 + 1) + 1)
    assert np.array_equal(grid[0, 1:3, 1:4], images[0, 0].numpy())
    assert np.array_equal(grid[0, 4:6, 5:8], images[4, 0].numpy())  # second row, second column
    assert (grid[0, 0] == 255).all() and (grid[0, 4:6, 9:12] == 255).all()  # border and the empty sixth cell
    assert make_grid(images).shape == (1, 2 * 4 + 2, 3 * 5 + 2)  # default: ceil(sqrt(5)) = 3 per row, 2 pixels padding


def test_float_images_are_converted_from_minus_one_to_one():
    grid = make_grid(torch.tensor([-1.0, 0.0, 1.0]).reshape(3, 1, 1, 1), nrow=3, padding=0)
    assert grid.tolist() == [[[0, 128, 255]]]


@pytest.mark.parametrize("channels, mode", [(1, "L"), (3, "RGB")])
def test_png_round_trip(tmp_path, channels, mode):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (channels, 7, 11), dtype=np.uint8)
    with Image.open(write_png(image, tmp_path / "sub" / "x.png")) as im:
        assert im.mode == mode and im.size == (11, 7)
        back = np.asarray(im)
    assert np.array_equal(back if channels == 3 else back[None], image.transpose(1, 2, 0) if channels == 3 else image)


def test_save_grid_writes_a_png(tmp_path):
    path = save_grid(torch.rand(6, 3, 4, 4) * 2 - 1, tmp_path / "grid.png", nrow=2)
    with Image.open(path) as im:
        assert im.size == (2 * 6 + 2, 3 * 6 + 2) and im.mode == "RGB"
    with pytest.raises(ValueError, match="C = 1 or 3"):
        make_grid(torch.zeros(2, 2, 4, 4))

"""Image data: the idx reader on the real files and on malformed ones, datasets, PNG folders."""

import gzip

import numpy as np
import pytest
import torch

from moldiff.images.data import (
    FASHION_MNIST_CLASSES,
    IdxFormatError,
    IdxImageDataset,
    ImageBatch,
    ImageFolderDataset,
    collate_images,
    read_idx,
    to_float,
    to_uint8,
    write_idx,
)

from .conftest import write_png_folder

MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]  # shared/data/README.md


def test_fashion_mnist_files(shared_data):
    root = shared_data / "images" / "fashion_mnist"
    images = read_idx(root / "train-images-idx3-ubyte.gz")
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    labels = read_idx(root / "train-labels-idx1-ubyte.gz")
    assert np.bincount(labels).tolist() == [6000] * 10
    test = IdxImageDataset(root, "test", FASHION_MNIST_CLASSES)
    assert len(test) == 10000 and test.image_shape == (1, 28, 28) and test.label_counts() == [1000] * 10
    assert test.class_names[9] == "Ankle boot"
    image, label = test[0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32 and isinstance(label, int)
    assert float(image.min()) >= -1 and float(image.max()) <= 1
    batch = collate_images(test.__getitems__([0, 5, 7]))
    assert isinstance(batch, ImageBatch) and batch.images.shape == (3, 1, 28, 28) and batch.labels.shape == (3,)
    assert torch.equal(to_uint8(batch.images), test.images[[0, 5, 7]])  # u / 127.5 - 1 round-trips exactly


def test_mnist_test_split(shared_data):
    mnist = IdxImageDataset(shared_data / "images" / "mnist", "test")
    assert mnist.images.shape == (10000, 1, 28, 28) and mnist.label_counts() == MNIST_TEST_COUNTS
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        IdxImageDataset(shared_data / "images" / "mnist", "train")  # not in the shared data


@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_write_then_read_idx(tmp_path, dtype, suffix):
    a = (
        (np.arange(24).reshape(2, 3, 4) * 3 - 20).astype(dtype)
        if dtype != "u1"
        else np.arange(24, dtype="u1").reshape(2, 3, 4)
    )
    b = read_idx(write_idx(a, tmp_path / f"a{suffix}"))
    assert b.dtype == a.dtype and np.array_equal(a, b)


def test_malformed_idx_files_name_the_problem(tmp_path):
    good = write_idx(np.zeros((5, 4, 4), np.uint8), tmp_path / "good")
    raw = good.read_bytes()
    cases = {
        "magic": (b"\x08\x03" + raw[2:], "wrong magic number"),
        "type": (raw[:2] + b"\x07" + raw[3:], "wrong magic number"),
        "truncated": (raw[:-10], "truncated: shape \\(5, 4, 4\\) needs 80 data bytes, found 70"),
        "header": (raw[:9], "truncated header"),
        "trailing": (raw + b"\x00\x00", "2 unexpected trailing bytes"),
        "tiny": (raw[:3], "too short"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(IdxFormatError, match=message):
            read_idx(path)
    cut = tmp_path / "cut.gz"
    cut.write_bytes(gzip.compress(raw)[:-12])
    with pytest.raises(IdxFormatError, match="gzip"):
        read_idx(cut)


def test_images_and_labels_must_agree(tmp_path):
    write_idx(np.zeros((5, 4, 4), np.uint8), tmp_path / "t10k-images-idx3-ubyte")
    write_idx(np.zeros(4, np.uint8), tmp_path / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(IdxFormatError, match="labels for 5 images"):
        IdxImageDataset(tmp_path, "test")


def test_float_conversion_round_trips():
    u = torch.arange(256, dtype=torch.uint8)
    x = to_float(u)
    assert float(x[0]) == -1 and float(x[-1]) == 1
    assert torch.equal(to_uint8(x), u) and torch.equal(
        to_uint8(torch.tensor([-3.0, 3.0])), torch.tensor([0, 255], dtype=torch.uint8)
    )


def test_png_folder_with_class_subfolders(tmp_path):
    written = write_png_folder(tmp_path, {"cat": 3, "ant": 2})
    data = ImageFolderDataset(tmp_path)
    assert data.class_names == ["ant", "cat"] and data.label_counts() == [2, 3] and data.image_shape == (1, 8, 8)
    for k, path in enumerate(data.files):
        rel = str(path.relative_to(tmp_path))
        assert np.array_equal(data.images[k].numpy(), written[rel])
        assert int(data.labels[k]) == data.class_names.index(rel.split("/")[0])
    batch = data.__getitems__([0, 4])
    assert torch.equal(to_uint8(batch.images), data.images[[0, 4]])


def test_png_folder_rgb_unlabelled_and_resized(tmp_path):
    write_png_folder(tmp_path, {"": 4}, size=(6, 10), mode="RGB")
    data = ImageFolderDataset(tmp_path)
    assert data.labels is None and data.num_classes == 0 and data.image_shape == (3, 6, 10)
    assert data[0][1] is None and collate_images([data[0], data[1]]).labels is None
    assert ImageFolderDataset(tmp_path, channels=1, size=4).image_shape == (1, 4, 4)


def test_png_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no .png files"):
        ImageFolderDataset(tmp_path)
    write_png_folder(tmp_path / "mixed", {"x": 1, "": 1})
    with pytest.raises(ValueError, match="mixes"):
        ImageFolderDataset(tmp_path / "mixed")
    write_png_folder(tmp_path / "sizes", {"": 1}, size=(9, 9))
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "sizes" / "zz.png")
    with pytest.raises(ValueError, match="differs"):
        ImageFolderDataset(tmp_path / "sizes")

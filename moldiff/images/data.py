"""Image datasets: the idx files of MNIST and Fashion-MNIST, and any folder of PNG files.

Every dataset holds its images in memory as ``uint8`` ``[N, C, H, W]`` (47 MB for Fashion-MNIST's
60,000 training images) and converts a batch at a time to floats in ``[-1, 1]``:

    ``x = u / 127.5 - 1``  for 8-bit values ``u`` in ``{0, ..., 255}``  (Ho et al. 2020, Sec. 4),

the inverse being :func:`to_uint8`. Items are ``(image [C, H, W] float, label)``; a batch is an
:class:`ImageBatch` (``images [B, C, H, W]``, ``labels [B]`` or ``None`` for unlabelled data).

The idx format (LeCun et al., http://yann.lecun.com/exdb/mnist/) is a big-endian header
``0x00 0x00 <type code> <ndim>``, then ``ndim`` 4-byte sizes, then the values; files may be gzipped.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from moldiff.errors import InputError

Tensor = torch.Tensor

__all__ = [
    "IdxFormatError",
    "read_idx",
    "write_idx",
    "to_float",
    "to_uint8",
    "ImageBatch",
    "collate_images",
    "ImageDataset",
    "IdxImageDataset",
    "ImageFolderDataset",
    "FASHION_MNIST_CLASSES",
    "MNIST_CLASSES",
]

#: idx type code -> numpy dtype (multi-byte values are big-endian)
IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

#: split -> (images file, labels file), without the optional ``.gz``
IDX_SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
MNIST_CLASSES = [str(d) for d in range(10)]


class IdxFormatError(InputError):
    """An idx file is malformed (wrong magic number, unknown type, truncated or over-long)."""


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an idx file (gzipped or not; gzip is recognised by its magic bytes, not the name).

    Args:
        path: the file.

    Returns:
        The array, with the file's shape and a native-endian dtype (``uint8`` for images and labels).

    Raises:
        IdxFormatError: the first two bytes are not zero, the type code or number of dimensions is
            invalid, or the data is shorter or longer than the header says. The message names the file.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise IdxFormatError(f"{path}: corrupt or truncated gzip stream ({err})") from None
    if len(raw) < 4:
        raise IdxFormatError(f"{path}: {len(raw)} bytes, too short for an idx header (4 bytes at least)")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise IdxFormatError(
            f"{path}: wrong magic number 0x{raw[:4].hex()} (expected 0x0000TTNN with type code TT in "
            f"{{{', '.join(f'{c:02x}' for c in IDX_DTYPES)}}} and NN dimensions)"
        )
    dtype, ndim = IDX_DTYPES[raw[2]], raw[3]
    if ndim == 0:
        raise IdxFormatError(f"{path}: the header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IdxFormatError(f"{path}: truncated header ({len(raw)} bytes, {ndim} dimensions need {header})")
    shape = tuple(int.from_bytes(raw[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(raw) - header
    if found < expected:
        raise IdxFormatError(f"{path}: truncated: shape {shape} needs {expected} data bytes, found {found}")
    if found > expected:
        raise IdxFormatError(f"{path}: {found - expected} unexpected trailing bytes after the {shape} array")
    values = np.frombuffer(raw, dtype=dtype, count=expected // dtype.itemsize, offset=header).reshape(shape)
    return values.astype(dtype.newbyteorder("="))  # a writable, native-endian copy


def write_idx(array: np.ndarray, path: str | os.PathLike) -> Path:
    """Write ``array`` as an idx file (gzipped when ``path`` ends in ``.gz``); the inverse of :func:`read_idx`."""
    array = np.asarray(array)
    codes = {v.newbyteorder("=").str[1:]: k for k, v in IDX_DTYPES.items()}
    key = array.dtype.newbyteorder("=").str[1:]
    if key not in codes:
        raise ValueError(f"idx cannot store dtype {array.dtype}")
    code = codes[key]
    data = bytes([0, 0, code, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    data += np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def to_float(images: Tensor) -> Tensor:
    """``uint8`` images to floats in ``[-1, 1]``: ``u / 127.5 - 1``."""
    return images.float() / 127.5 - 1.0


def to_uint8(images: Tensor) -> Tensor:
    """Floats in ``[-1, 1]`` to ``uint8``: ``round((x + 1) 127.5)`` clipped to ``[0, 255]``."""
    return ((images.detach().float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


@dataclass
class ImageBatch:
    """A batch of images.

    Attributes:
        images: ``[B, C, H, W]`` floats in ``[-1, 1]``.
        labels: ``[B]`` class indices, or ``None`` for unlabelled data.
    """

    images: Tensor
    labels: Optional[Tensor] = None

    def __len__(self) -> int:
        return self.images.shape[0]


def collate_images(items) -> ImageBatch:
    """Collate ``(image, label)`` items, or pass through a batch fetched whole by ``__getitems__``."""
    if isinstance(items, ImageBatch):
        return items
    images = torch.stack([im for im, _ in items])
    labels = None if items[0][1] is None else torch.as_tensor([int(lab) for _, lab in items], dtype=torch.long)
    return ImageBatch(images, labels)


class ImageDataset(torch.utils.data.Dataset):
    """Images held in memory as ``uint8 [N, C, H, W]``, with optional labels.

    Args:
        images: ``uint8`` ``[N, C, H, W]`` (``[N, H, W]`` is read as one channel).
        labels: ``[N]`` class indices in ``0..len(class_names)-1``, or ``None``.
        class_names: one name per class (default: ``"0"``, ``"1"``, ...; empty without labels).

    ``dataset[i]`` is ``(image [C, H, W] float in [-1, 1], label int or None)``; the engine's
    DataLoader fetches whole batches through ``__getitems__`` (one indexing operation).
    """

    def __init__(
        self,
        images: Tensor | np.ndarray,
        labels: Tensor | np.ndarray | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        images = torch.as_tensor(np.asarray(images)) if isinstance(images, np.ndarray) else images
        if images.dtype != torch.uint8:
            raise TypeError(f"images must be uint8, got {images.dtype}")
        if images.dim() == 3:
            images = images.unsqueeze(1)
        if images.dim() != 4:
            raise ValueError(f"images must be [N, C, H, W] or [N, H, W], got shape {tuple(images.shape)}")
        self.images = images.contiguous()
        self.labels = None
        if labels is not None:
            self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
            if self.labels.shape != (images.shape[0],):
                raise ValueError(f"{images.shape[0]} images but labels of shape {tuple(self.labels.shape)}")
            num = int(self.labels.max()) + 1 if len(self.labels) else 0
            self.class_names = list(class_names) if class_names is not None else [str(k) for k in range(num)]
            if len(self.labels) and (int(self.labels.min()) < 0 or num > len(self.class_names)):
                raise ValueError(f"labels must lie in 0..{len(self.class_names) - 1}")
        else:
            self.class_names = []

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)``."""
        return tuple(self.images.shape[1:])

    @property
    def num_classes(self) -> int:
        """Number of classes (0 without labels)."""
        return len(self.class_names)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int):
        label = None if self.labels is None else int(self.labels[index])
        return to_float(self.images[index]), label

    def __getitems__(self, indices: list[int]) -> ImageBatch:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return ImageBatch(to_float(self.images[idx]), None if self.labels is None else self.labels[idx])

    def subset(self, num: int) -> "ImageDataset":
        """The first ``num`` images (quick experiments)."""
        labels = None if self.labels is None else self.labels[:num]
        return ImageDataset(self.images[:num], labels, self.class_names if self.labels is not None else None)

    def label_counts(self) -> list[int]:
        """Images per class, ``[num_classes]``."""
        if self.labels is None:
            return []
        return torch.bincount(self.labels, minlength=self.num_classes).tolist()


def _find(root: Path, name: str) -> Path:
    for candidate in (root / name, root / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{root}: neither {name} nor {name}.gz found")


class IdxImageDataset(ImageDataset):
    """MNIST-style idx files: ``<root>/train-images-idx3-ubyte[.gz]`` and the matching labels
    (split ``"train"``), or ``t10k-*`` (split ``"test"``).

    Args:
        root: folder holding the idx files (e.g. ``../shared/data/images/fashion_mnist``).
        split: ``"train"`` or ``"test"``.
        class_names: names of the labels (default: ``"0"`` .. ``"9"``); see
            :data:`FASHION_MNIST_CLASSES`.

    Raises:
        FileNotFoundError: a file of the split is missing.
        IdxFormatError: a file is malformed, or images and labels disagree in number.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", class_names: Sequence[str] | None = None) -> None:
        if split not in IDX_SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {sorted(IDX_SPLITS)}")
        root = Path(root)
        image_file, label_file = (_find(root, name) for name in IDX_SPLITS[split])
        images, labels = read_idx(image_file), read_idx(label_file)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise IdxFormatError(f"{image_file}: expected uint8 images [N, H, W], got {images.dtype} {images.shape}")
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise IdxFormatError(f"{label_file}: {labels.shape} labels for {images.shape[0]} images")
        super().__init__(torch.from_numpy(images), labels.astype(np.int64), class_names or MNIST_CLASSES)
        self.root, self.split = root, split


class ImageFolderDataset(ImageDataset):
    """Every PNG under a folder, read with Pillow.

    Labels come from the sub-folders, as in ``root/<class name>/*.png`` (classes sorted by name);
    images directly inside ``root`` make an unlabelled dataset (mixing the two is an error).

    Args:
        root: the folder.
        channels: 1 (grey) or 3 (RGB); default: 1 if every image is grey-scale, else 3. Alpha is dropped.
        size: resize every image to ``size`` x ``size`` (bicubic) or ``(height, width)``; default: keep the
            size, which must then be the same for every image.
        extensions: file suffixes read (case-insensitive) (default: ``(".png",)``).

    Raises:
        FileNotFoundError: no image was found.
        ValueError: images of different sizes without ``size``, or a mix of labelled and unlabelled images.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        channels: int | None = None,
        size: int | Sequence[int] | None = None,
        extensions: Sequence[str] = (".png",),
    ) -> None:
        from PIL import Image

        root = Path(root)
        suffixes = {e.lower() for e in extensions}
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
        if not files:
            raise FileNotFoundError(f"no {'/'.join(sorted(suffixes))} files under {root}")
        parts = [p.relative_to(root).parts for p in files]
        labelled = [len(q) > 1 for q in parts]
        if any(labelled) and not all(labelled):
            raise ValueError(f"{root}: mixes images in class sub-folders with images at the top level")
        class_names = sorted({q[0] for q in parts}) if all(labelled) else None
        if channels is None:  # opening reads the header only
            grey = ("1", "L", "LA", "I", "I;16", "F")
            channels = 1
            for path in files:
                with Image.open(path) as im:
                    if im.mode not in grey:
                        channels = 3
                        break
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        target = None if size is None else ((size, size) if isinstance(size, int) else tuple(size))
        arrays = []
        for path in files:
            with Image.open(path) as raw:
                im = raw.convert("L" if channels == 1 else "RGB")
            if target is not None and im.size != (target[1], target[0]):
                im = im.resize((target[1], target[0]), Image.Resampling.BICUBIC)
            a = np.asarray(im, dtype=np.uint8)
            a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
            if arrays and a.shape != arrays[0].shape:
                raise ValueError(
                    f"{path}: size {a.shape[1:]} differs from {arrays[0].shape[1:]} of {files[0]}; pass size= to resize"
                )
            arrays.append(a)
        labels = None
        if class_names is not None:
            index = {name: k for k, name in enumerate(class_names)}
            labels = np.array([index[q[0]] for q in parts], dtype=np.int64)
        super().__init__(torch.from_numpy(np.stack(arrays)), labels, class_names)
        self.root, self.files = root, files


# ------------------------------------------------------------------------------------------------
# datasets named by a config
# ------------------------------------------------------------------------------------------------

_IDX_CLASSES = {"fashion_mnist": FASHION_MNIST_CLASSES, "mnist": MNIST_CLASSES, "idx": None}


@dataclass
class ImageSourceConfig:
    """Where a model's images come from (the image part of a ``data:`` section).

    Attributes:
        dataset: ``"fashion_mnist"``, ``"mnist"`` or ``"idx"`` (MNIST-format idx files, class names
            as given) or ``"folder"`` (PNG files; labels from sub-folders) (default: ``"fashion_mnist"``).
        root: folder of the idx files or of the PNGs; ``~`` and ``$VARS`` are expanded, relative
            paths are relative to the working directory (default: ``../shared/data/images/fashion_mnist``).
        split: idx split used for training: ``"train"`` or ``"test"`` (default: ``"train"``).
        valid_split: idx split for the validation loss and the evaluation metrics (``None``: none)
            (default: ``"test"``).
        valid_root: folder datasets: a second folder of validation PNGs (default: none).
        image_size: folder datasets: resize images to this square size (default: keep).
        channels: folder datasets: 1 or 3 (default: from the images).
        class_names: names of the labels of an ``idx`` dataset (default: ``"0"``, ``"1"``, ...).
        limit: train on the first ``limit`` images only (default: all).
    """

    dataset: str = "fashion_mnist"
    root: str = "../shared/data/images/fashion_mnist"
    split: str = "train"
    valid_split: Optional[str] = "test"
    valid_root: Optional[str] = None
    image_size: Optional[int] = None
    channels: Optional[int] = None
    class_names: Optional[list[str]] = None
    limit: Optional[int] = None


def _path(p: str) -> Path:
    return Path(os.path.expandvars(os.path.expanduser(p)))


def load_datasets(data: ImageSourceConfig) -> tuple[ImageDataset, ImageDataset | None]:
    """``(train_dataset, valid_dataset or None)`` for a data config."""
    if data.dataset in _IDX_CLASSES:
        names = data.class_names or _IDX_CLASSES[data.dataset]
        train = IdxImageDataset(_path(data.root), data.split, names)
        valid = IdxImageDataset(_path(data.root), data.valid_split, names) if data.valid_split else None
    elif data.dataset == "folder":
        train = ImageFolderDataset(_path(data.root), channels=data.channels, size=data.image_size)
        valid = None
        if data.valid_root:
            valid = ImageFolderDataset(
                _path(data.valid_root), channels=train.image_shape[0], size=data.image_size or train.image_shape[1:]
            )
    else:
        raise ValueError(f"unknown image dataset {data.dataset!r}; expected one of {sorted(_IDX_CLASSES) + ['folder']}")
    return train, valid


def dataset_stats(train: ImageDataset, name: str) -> dict:
    """Statistics an image model needs to sample without its data (and a description of the data)."""
    hist = torch.bincount(train.images.reshape(-1), minlength=256).double()  # exact moments, no float copy
    levels = torch.arange(256, dtype=torch.float64) / 127.5 - 1
    mean = float((hist * levels).sum() / hist.sum())
    return {
        "image_shape": list(train.image_shape),
        "num_classes": train.num_classes,
        "class_names": list(train.class_names),
        "dataset": name,
        "num_images": len(train),
        "pixel_mean": mean,
        "pixel_std": float(((hist * (levels - mean) ** 2).sum() / hist.sum()).sqrt()),
    }

"""Bad files in an image folder, each written here: named with its path before training (when
the folder is listed) or when decoded, also in a DataLoader worker; and the image modes an
image folder meets, converted to the channels the config asks for."""

import os

import numpy as np
import pytest
import torch
from helpers.data_files import write_image_folder
from PIL import Image
from torch.utils.data import DataLoader

from orbitcl.data import DataNotFoundError, ImageFolderDataModule
from orbitcl.data.folders import ImageFiles
from orbitcl.data.views import ImageDataset


def listed(root) -> ImageFolderDataModule:
    datamodule = ImageFolderDataModule(
        root, image_size=8, num_workers=0, batch_size=2, mean=[0.5] * 3, std=[0.5] * 3
    )
    datamodule.prepare_data()  # lists the images
    return datamodule


def read(path, channels: int = 3, size: int = 4) -> torch.Tensor:
    return ImageFiles([str(path)], size=size, channels=channels)[0]


def noise(path, size=(32, 32)) -> None:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)


@pytest.mark.parametrize("suffix", ["png", "jpg"])
@pytest.mark.parametrize("num_workers", [0, 1])
def test_a_truncated_image_is_named_when_decoded(tmp_path, suffix, num_workers):
    path = tmp_path / f"cut.{suffix}"
    noise(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    dataset = ImageDataset(ImageFiles([str(path)], 8, 3), torch.zeros(1), lambda image: image)
    with pytest.raises(DataNotFoundError) as error:
        list(DataLoader(dataset, batch_size=1, num_workers=num_workers))
    assert str(error.value).startswith(f"{path} cannot be read as an image (OSError: ")
    assert "truncated" in str(error.value) and "delete or replace it" in str(error.value)


def test_a_non_image_with_an_image_extension_is_named(tmp_path):
    (tmp_path / "notes.png").write_text("meeting notes, not a picture")
    with pytest.raises(DataNotFoundError, match="notes.png cannot be read as an image .*Unident"):
        read(tmp_path / "notes.png")


def test_a_decompression_bomb_is_named(tmp_path, monkeypatch):
    noise(tmp_path / "bomb.png", size=(32, 32))  # 1024 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # PIL refuses above twice this
    with pytest.raises(DataNotFoundError, match="bomb.png cannot be read .*DecompressionBomb"):
        read(tmp_path / "bomb.png")


def test_an_empty_file_is_named_before_training(tmp_path):
    write_image_folder(tmp_path / "pets", per_class=4)
    (tmp_path / "pets" / "dog" / "zero.jpg").write_bytes(b"")
    with pytest.raises(DataNotFoundError, match=r"pets/dog/zero.jpg is empty \(0 bytes\)"):
        listed(tmp_path / "pets")
    write_image_folder(tmp_path / "flat", per_class=4, classes=())
    (tmp_path / "flat" / "zero.png").write_bytes(b"")
    with pytest.raises(DataNotFoundError, match=r"flat/zero.png is empty"):
        listed(tmp_path / "flat")


def test_a_symlink_loop_is_named_before_training(tmp_path):
    write_image_folder(tmp_path / "pets", per_class=4)
    os.symlink(tmp_path / "pets", tmp_path / "pets" / "cat" / "again")  # cat/again/cat/again/...
    with pytest.raises(DataNotFoundError) as error:
        listed(tmp_path / "pets")
    link = tmp_path / "pets" / "cat" / "again"
    assert str(error.value).startswith(f"{link} is a symbolic link to {tmp_path / 'pets'}")
    assert "a folder it is inside" in str(error.value)
    os.unlink(link)
    os.symlink(tmp_path / "pets" / "cat" / "b.png", tmp_path / "pets" / "cat" / "a.png")
    os.symlink(tmp_path / "pets" / "cat" / "a.png", tmp_path / "pets" / "cat" / "b.png")
    with pytest.raises(DataNotFoundError, match="cat/a.png is a symbolic link that leads to no"):
        listed(tmp_path / "pets")


def test_a_linked_folder_outside_the_tree_is_followed(tmp_path):
    write_image_folder(tmp_path / "pets", per_class=4)
    write_image_folder(tmp_path / "more", per_class=3, classes=("cat",))
    os.symlink(tmp_path / "more" / "cat", tmp_path / "pets" / "cat" / "more")
    datamodule = listed(tmp_path / "pets")
    train, test = datamodule.items()
    assert len(train) + len(test) == 11


def test_a_class_folder_without_images_is_named(tmp_path):
    write_image_folder(tmp_path / "pets", per_class=4)
    (tmp_path / "pets" / "owl").mkdir()
    (tmp_path / "pets" / "owl" / "readme.txt").write_text("owls to come")
    with pytest.raises(DataNotFoundError) as error:
        listed(tmp_path / "pets")
    assert str(error.value).startswith(f"{tmp_path / 'pets' / 'owl'} is a class folder without")


def save(tmp_path, image: Image.Image, name: str):
    image.save(tmp_path / name)
    return tmp_path / name


@pytest.mark.parametrize(
    "make,name,rgb,grey",
    [
        # CMYK (0, 255, 255, 0): no cyan, full magenta and yellow: red
        (lambda: Image.new("CMYK", (6, 6), (0, 255, 255, 0)), "cmyk.tif", (255, 0, 0), 76),
        # 16-bit grey: 65535 is white, 25700 = 100 x 257 is 100 (PIL's own convert clips at 255)
        (lambda: Image.fromarray(np.full((6, 6), 25700, np.uint16)), "wide.png", (100,) * 3, 100),
        (lambda: Image.fromarray(np.full((6, 6), 65535, np.uint16)), "white.png", (255,) * 3, 255),
        # alpha dropped: the colour under a fully transparent pixel stays
        (lambda: Image.new("RGBA", (6, 6), (10, 200, 30, 0)), "alpha.png", (10, 200, 30), 124),
        (lambda: Image.new("LA", (6, 6), (77, 0)), "grey_alpha.png", (77,) * 3, 77),
    ],
)
def test_image_modes_give_the_channels_asked_for(tmp_path, make, name, rgb, grey):
    path = save(tmp_path, make(), name)
    colour = read(path, channels=3)
    assert colour.shape == (3, 4, 4) and colour.dtype == torch.uint8
    assert colour.flatten(1).unique(dim=1).flatten().tolist() == list(rgb)
    luma = read(path, channels=1)
    assert luma.shape == (1, 4, 4) and abs(int(luma.unique()) - grey) <= 1


@pytest.mark.parametrize("transparency", [None, 0])
def test_palette_images_give_their_colours(tmp_path, transparency):
    image = Image.new("P", (6, 6), 1)
    image.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    extra = {} if transparency is None else {"transparency": transparency}
    image.save(tmp_path / "palette.png", **extra)
    colour = read(tmp_path / "palette.png", channels=3)
    assert colour.flatten(1).unique(dim=1).flatten().tolist() == [10, 200, 30]
    assert read(tmp_path / "palette.png", channels=1).shape == (1, 4, 4)

from hydra import compose, initialize_config_dir
from PIL import Image

from lightdet.cli import CONFIG_DIR
from lightdet.runs.show_augment import show_augment
from tests.conftest import TINY


def test_show_augment_writes_a_grid_of_augmented_samples(tmp_path, tiny_shapes):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            "show_augment",
            overrides=[
                f"paths.root_dir={tmp_path}",
                f"data.source.root={tiny_shapes}",
                "augmentation=zoom",
                *(f"++data.source.{k}={v}" for k, v in TINY.items()),
                "num_images=3",
                "repeats=4",
                "cell_size=64",
                f"output={tmp_path}/grid.png",
            ],
            return_hydra_config=False,
        )
    path = show_augment(cfg)
    grid = Image.open(path)
    assert grid.size == (5 * 64 + 4 * 4, 3 * 64 + 2 * 4)  # the original and 4 draws, 4 px gaps
    cells = [grid.crop((c * 68, 0, c * 68 + 64, 64)) for c in range(5)]
    assert len({cell.tobytes() for cell in cells}) > 1  # the draws differ from each other

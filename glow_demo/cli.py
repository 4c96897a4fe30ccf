"""Command line: ``python -m glow_demo VERB ...``. Each verb is a thin layer over the API."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .data import DEFAULT_CELEBA, DEFAULT_CELEBA_TEST
from .images import photo_paths
from .model import DEFAULT_WEIGHTS, GlowConfig, bf16_supported
from .utkface import DEFAULT_UTKFACE


def _add_model_config(p: argparse.ArgumentParser) -> None:
    d = GlowConfig()
    p.add_argument("--resolution", type=int, default=d.resolution)
    p.add_argument("--levels", type=int, default=d.levels)
    p.add_argument("--steps", type=int, default=d.steps, help="flow steps per level")
    p.add_argument("--width", type=int, default=d.width, help="coupling network width")
    p.add_argument("--n-bits", type=int, default=d.n_bits)
    p.add_argument("--scale-floor", type=float, default=0.2,
                   help="lower bound of the coupling scale (0 = Glow's; e.g. 0.2 bounds "
                        "how fast decodes can explode off the data manifold)")


def _model_config(args: argparse.Namespace) -> GlowConfig:
    return GlowConfig(resolution=args.resolution, levels=args.levels, steps=args.steps,
                      width=args.width, n_bits=args.n_bits, scale_floor=args.scale_floor)


def cmd_pack(args: argparse.Namespace) -> None:
    from .data import combine_packs, pack_celeba, pack_celeba_test

    out = pack_celeba(args.celeba, args.out, args.resolution)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    if not args.celeba_test:
        return
    folder = Path(args.out).parent
    extra, strangers, dropped = pack_celeba_test(
        args.celeba_test, folder / "celeba-test-train.npz", folder / "strangers64.npz",
        args.resolution)
    print(f"aligned {args.celeba_test}: {dropped} images dropped (no face, or mostly "
          f"beyond the photo); strangers (50 people never trained on) in {strangers}")
    both = combine_packs(out, extra, folder / "faces64.npz")
    print(f"wrote {both} ({both.stat().st_size / 1e6:.1f} MB): CelebA's training images, "
          f"the aligned celeba-test people, CelebA's validation split last")


def cmd_train(args: argparse.Namespace) -> None:
    from .train import TrainConfig, train

    lr = TrainConfig.lr if args.lr is None else args.lr
    if args.lr is None and args.init_from:
        # the from-scratch rate undoes a trained model's last gains (README, "Continuing on
        # the CPU, the learning rate": even 5e-5 was too hot for the shipped model)
        print(f"warning: --init-from without --lr trains at {lr:g}, the rate for a model from "
              "scratch, which undoes a trained model's last gains: give --lr (the shipped "
              "model continues at ~3e-7)", flush=True)
    cfg = TrainConfig(
        data=args.data, out=args.out, batch_size=args.batch_size, lr=lr,
        warmup_steps=args.warmup, grad_clip=args.grad_clip, minutes=args.minutes,
        max_steps=args.max_steps, val_every=args.val_every, val_size=args.val_size,
        checkpoint_minutes=args.checkpoint_minutes, amp=args.amp, flip=args.flip,
        resume=args.resume,
        init_from=args.init_from, save_dtype=args.save_dtype, seed=args.seed,
        decay_minutes=args.decay_minutes,
    )
    model_dir = train(cfg, _model_config(args))
    print(f"model written to {model_dir}")


def _load_editor(args: argparse.Namespace):
    from .editor import FaceEditor

    return FaceEditor.load(args.weights)


def _photos(paths: list[str]) -> list[Path]:
    """Expand directories into the image files they hold, keep files as given."""
    out = photo_paths(paths)
    if not out:
        raise SystemExit("no image files given")
    return out


def cmd_sample(args: argparse.Namespace) -> None:
    from .images import save_grid
    from .model import Glow

    model = Glow.load(args.weights)
    images = model.sample(args.n, args.temperature, args.seed)
    path = save_grid(images, args.out, nrow=args.nrow or max(1, round(args.n**0.5)))
    print(f"wrote {args.n} samples at temperature {args.temperature} to {path}")


def cmd_sample_meter(args: argparse.Namespace) -> None:
    from .model import Glow
    from .sample_meter import measure, validation_crops

    model = Glow.load(args.weights)
    real = validation_crops(args.data, args.n)
    for name, (found, n) in measure(model, tuple(args.temperatures), args.n, args.seed,
                                    real).items():
        what = "real validation crops" if name == "real" else f"samples at {name}"
        print(f"{what:>26}: a face found in {found:2d} of {n} ({100 * found / n:.0f} %)")
    if real is None:
        print(f"(no {args.data}: `python -m glow_demo pack` adds the real crops' figure)")


def cmd_bpd(args: argparse.Namespace) -> None:
    import torch
    from PIL import Image

    from .data import celeba_crop
    from .images import pil_to_tensor
    from .model import Glow

    model = Glow.load(args.weights)
    res = model.config.resolution
    values = []
    packs = [Path(a) for a in args.images if a.endswith(".npz")]
    if packs:
        from .data import load_pack
        from .train import evaluate_bpd

        for pack in packs:  # every image of a pack (e.g. data/strangers64.npz), batched
            images = load_pack(pack).images
            print(f"{pack}: {len(images)} images, mean {evaluate_bpd(model, images):.4f} "
                  f"bits/dim ({model.config.n_bits}-bit)")
        if len(packs) == len(args.images):
            return
    for path in _photos([a for a in args.images if not a.endswith(".npz")]):
        with Image.open(path) as im:
            w, h = im.size
            # Square images are taken as crops already; CelebA-shaped ones get its crop.
            face = im.convert("RGB").resize((res, res), Image.LANCZOS) if w == h \
                else celeba_crop(im, res)
        with torch.no_grad():
            bpd = float(model.bits_per_dim(pil_to_tensor(face)[None])[0])
        values.append(bpd)
        if args.verbose:
            print(f"{path}: {bpd:.4f}")
    mean = float(torch.tensor(values).mean())
    print(f"{len(values)} images, mean {mean:.4f} bits/dim ({model.config.n_bits}-bit)")


def cmd_bench(args: argparse.Namespace) -> None:
    from .bench import run_bench

    run_bench(args.weights, repeats=args.repeats, photo=args.photo, train_steps=args.train_steps,
              compile_decode=not args.no_compile, startup=args.startup)


def cmd_compile_decode(args: argparse.Namespace) -> None:
    import torch

    from . import compiled
    from .model import Glow

    if args.nice and hasattr(os, "nice"):
        os.nice(args.nice)  # the app builds with this in the background, at low priority
    if args.threads:
        torch.set_num_threads(args.threads)
    model = Glow.load(args.weights)
    if args.dtype == "auto":  # as the app decodes (FaceEditor.load)
        args.dtype = "bfloat16" if bf16_supported() else "float32"
    model.decode_dtype = getattr(torch, args.dtype)
    if not compiled.compile_decode(model, args.cache):
        raise SystemExit("compile-decode: compiling failed (see the warning above)")
    print(compiled.package_path(model, args.cache))


def cmd_align(args: argparse.Namespace) -> None:
    from .align import align_face
    from .photo import PhotoError, load_photo

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failures = 0
    for path in _photos(args.photos):
        try:
            face = align_face(load_photo(path))
        except PhotoError as err:
            failures += 1
            print(f"{path}: {err}", file=sys.stderr)
            continue
        target = out / (path.stem + ".png")
        face.model_input(args.size).save(target) if args.size else \
            _save_array(face.crop, target)
        print(f"{path} -> {target} ({face.n_faces} face(s) found, largest used)")
    if failures:
        raise SystemExit(1)


def _save_array(array, path: Path) -> None:
    from PIL import Image

    Image.fromarray(array).save(path)


def _strengths(args: argparse.Namespace, names: list[str]) -> dict[str, float]:
    return {n: getattr(args, n) for n in names if getattr(args, n)}


def _faces_spec(text: str):
    """--faces: "largest", "all" or face numbers "1,3" (left to right, face 1 the
    leftmost; ``select_faces`` checks the range against the photo)."""
    text = text.strip().lower()
    if text in ("largest", "all"):
        return text
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--faces takes largest, all or face numbers such as 1,3; got {text!r}") from None


def _custom_directions(editor, pairs: list[list[str]]):
    """--direction FILE NAME=S ...: the directions with the files' ones added, and the
    strengths asked for."""
    from .custom_directions import CustomDirectionError, load_for, with_custom

    loaded, strengths = {}, {}
    for file, setting in pairs:
        name, sep, value = setting.partition("=")
        try:
            strength = float(value) if sep else 1.0
        except ValueError:
            raise SystemExit(f"--direction {file} {setting}: strength {value!r} is not a "
                             "number") from None
        try:
            found = {c.name: c for c in load_for(editor, file)}
        except CustomDirectionError as err:
            raise SystemExit(f"--direction {file}: {err}") from None
        if name not in found:
            raise SystemExit(f"--direction {file}: no direction {name!r} in it (it has "
                             f"{', '.join(found)})")
        loaded[name] = found[name]
        strengths[name] = strength
    try:
        return with_custom(editor.directions, list(loaded.values())), strengths
    except CustomDirectionError as err:
        raise SystemExit(str(err)) from None


def cmd_edit(args: argparse.Namespace) -> None:
    from .group import edit_photo
    from .photo import PhotoError

    editor = _load_editor(args)
    strengths = _strengths(args, [a.name for a in editor.attributes])
    directions = None
    if args.direction:
        directions, custom = _custom_directions(editor, args.direction)
        strengths.update(custom)
    disentangle = {n: tuple(args.keep) for n in strengths} if args.keep else None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failures = 0
    for path in _photos(args.photos):
        try:
            result = edit_photo(editor, path, strengths, args.faces, disentangle, directions)
        except (PhotoError, ValueError) as err:
            failures += 1
            print(f"{path}: {err}", file=sys.stderr)
            continue
        suffix = path.suffix if path.suffix.lower() in (".png", ".jpg", ".jpeg") else ".png"
        if args.crop:
            several = len(result.crops) > 1
            images = [(f"{path.stem}_face{i + 1}" if several else path.stem, crop)
                      for i, crop in enumerate(result.crops)]
        else:
            images = [(path.stem, result.photo)]
        notes = [f"{len(result.applied)} faces"] if len(result.applied) > 1 else []
        notes += [result.message] if result.message else []
        note = f" ({'; '.join(notes)})" if notes else ""
        for stem, image in images:
            target = out / (stem + suffix)
            image.save(target, quality=95) if suffix != ".png" else image.save(target)
            print(f"{path} -> {target}{note}")
    if failures:
        raise SystemExit(1)


def cmd_learn_direction(args: argparse.Namespace) -> None:
    from .custom_directions import (
        CustomDirectionError,
        learn_direction,
        load_for,
        save_directions,
    )

    editor = _load_editor(args)
    out = Path(args.out)
    kept = []
    try:
        if out.exists():  # add to the file: several sliders in one
            kept = [c for c in load_for(editor, out) if c.name != args.name]
        with_, without = photo_paths(args.with_), photo_paths(args.without)
        if args.with_examples or args.without_examples:
            from .example_faces import example_gallery

            picked = example_gallery(editor).pick(args.with_examples, args.without_examples)
            with_, without = [*with_, *picked[0]], [*without, *picked[1]]
        custom = learn_direction(editor, args.name, with_, without, label=args.label)
    except CustomDirectionError as err:
        raise SystemExit(f"error: {err}") from None
    save_directions(out, [*kept, custom])
    print(f"{custom.name}: {custom.advice}")
    print(f"wrote {out} ({len(kept) + 1} direction(s)); use it with "
          f"`python -m glow_demo edit PHOTO -o OUT --direction {out} {custom.name}=1.0`")


def cmd_example_faces(args: argparse.Namespace) -> None:
    """Write the example faces, numbered as `learn-direction --with-examples` takes them."""
    from .example_faces import example_gallery

    gallery = example_gallery(_load_editor(args))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for face in gallery.faces:
        face.image.save(out / f"example{face.number:02d}.png")
        print(f"{face.number:2d}: {face.source}")
    print(f"wrote {len(gallery)} example faces to {out}")


def cmd_mix(args: argparse.Namespace) -> None:
    from .photo import PhotoError

    editor = _load_editor(args)
    try:
        a, b = editor.prepare(args.photo_a), editor.prepare(args.photo_b)
    except PhotoError as err:
        raise SystemExit(str(err)) from None
    frames = editor.morph(a, b, steps=args.steps, size=args.size)
    path = editor.save_animation(frames, args.out, fps=args.fps)
    print(f"wrote {len(frames)}-step morph to {path}")


def cmd_directions(args: argparse.Namespace) -> None:
    from .age_direction import build_age_direction
    from .data import load_pack
    from .direction_fitting import build_directions
    from .directions import AGE_YEARS, Directions
    from .model import Glow

    model = Glow.load(args.weights)
    if args.only_utkface:
        # add to the directions already there (Directions.load checks they fit this model)
        directions = Directions.load(args.weights)
    else:
        data = Path(args.data)
        if not data.is_file():
            from .data import pack_celeba

            print(f"{data} not found: packing {args.celeba} first")
            pack_celeba(args.celeba, data)
        pack = load_pack(data)
        train, _ = pack.split()  # the validation faces stay unseen: the meter edits them
        n = min(args.limit or len(train), len(train))
        unseen = None
        if args.unseen and Path(args.unseen).is_file():
            from .direction_fitting import encode_all

            faces = load_pack(args.unseen)
            if faces.attr_names != pack.attr_names:
                raise SystemExit(f"{args.unseen} has other labels than {data}")
            unseen = (encode_all(model, faces.images), faces.attrs)
        elif args.unseen:
            print(f"{args.unseen} not found (`python -m glow_demo pack --celeba-test` writes "
                  "it): units from the training folds alone, short for new faces")
        directions = build_directions(model, args.weights, train[:n], pack.attr_names,
                                      pack.attrs[:n], method=args.method,
                                      shrinkage=args.shrinkage, quantile=args.quantile,
                                      unseen=unseen, shrink=args.shrink)
        calibration = directions.meta.get("unseen_calibration")
        if calibration:
            print(f"units lengthened x{calibration['scale']:.3f}: the median ratio of the "
                  f"held-out gap on {calibration['n_images']} faces the model never trained "
                  f"on ({args.unseen}) to the same gap on the training folds, over "
                  f"{len(calibration['ratios'])} attributes")
    utkface = args.utkface or (str(DEFAULT_UTKFACE) if args.only_utkface else None)
    if utkface:
        vector, info = build_age_direction(model, args.weights, utkface, n=args.utkface_n,
                                           warp=args.utkface_warp, units=args.age_units,
                                           hold_colour=not args.age_keeps_colour,
                                           shrink=args.shrink)
        directions = directions.add_direction(AGE_YEARS, vector, info)
        line = (f"{AGE_YEARS}: {info['n_images']} UTKFace faces, ages {info['ages'][0]}-"
                f"{info['ages'][1]}, {info['n_skipped']} skipped (no usable face); norm "
                f"{info['norm']:.2f} at +{info['years_per_strength']:g} years (sampling "
                f"noise ~{info['noise_norm_estimate']:.2f})")
        if "age" in directions.vectors:
            age = directions.vectors["age"]
            cos = float(vector @ age / (vector.norm() * age.norm()))
            line += f"; CelebA age norm {float(age.norm()):.2f}, cosine {cos:.2f}"
        print(line)
    directions.save(args.weights)
    print(f"wrote {len(directions.vectors)} directions to {args.weights}")


def cmd_meter(args: argparse.Namespace) -> None:
    import json

    from .meter import (
        METER_FILE,
        Meter,
        celeba_validation_photos,
        format_table,
        measure,
        summarise,
        train_meter,
    )

    folder = Path(args.meter)
    if args.train or not (folder / METER_FILE).is_file():
        meter = train_meter(args.data, args.utkface, epochs=args.epochs,
                            age_epochs=args.age_epochs, utk_limit=args.utk_limit)
        meter.save(folder)
        print(f"wrote the meter to {folder}")
    else:
        meter = Meter.load(folder)
    acc = meter.meta["attribute_accuracy_val"]
    print("held-out accuracy (CelebA 9,001-10,000; majority class in brackets): " + ", ".join(
        f"{a} {v:.1%} ({meter.meta['attribute_majority_val'][a]:.0%})" for a, v in acc.items()))
    print(f"age: mean absolute error {meter.meta['age_mae_val']:.1f} years on "
          f"{meter.meta['n_age_val']} held-out UTKFace adults (18-80); mean error by decade "
          f"{meter.meta['age_bias_by_decade_val']}")
    if not args.n and not args.utkface_n:
        return
    from .editor import FaceEditor

    photos = celeba_validation_photos(args.celeba, args.n) if args.n else []
    if args.utkface_n:
        from .utkface import read_utkface, select_utkface

        photos += [f.path for f in select_utkface(read_utkface(args.utkface), args.utkface_n,
                                                  split="val")]
    edits = [(name, s) for name in args.edits for s in args.strengths]
    editor = FaceEditor.load(args.weights)
    rows = summarise(measure(editor, meter, photos, edits, within_sliders=args.within_sliders))
    ends = " (every part within its slider's range)" if args.within_sliders else ""
    print(f"{len(photos)} held-out photos, model {args.weights}{ends}:")
    print(format_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m glow_demo", description=__doc__)
    sub = parser.add_subparsers(dest="verb", required=True)

    p = sub.add_parser("pack", help="crop CelebA to the model's input and pack it for training")
    p.add_argument("--celeba", default=str(DEFAULT_CELEBA))
    p.add_argument("-o", "--out", default="data/celeba64.npz")
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--celeba-test", nargs="?", const=str(DEFAULT_CELEBA_TEST), default="",
                   metavar="DIR", help="also align CelebA's test split (950 more people) "
                   "into OUT's folder: faces64.npz for training, strangers64.npz to measure")
    p.set_defaults(func=cmd_pack)

    p = sub.add_parser("train", help="train a Glow (resumable; torchrun for several processes)")
    p.add_argument("--data", default="data/celeba64.npz", help="pack written by `pack`")
    p.add_argument("--out", default="runs/celeba64", help="run directory")
    p.add_argument("--batch-size", type=int, default=32, help="per process")
    p.add_argument("--lr", type=float, default=None,
                   help="peak learning rate (default 1e-3, for a model from scratch; with "
                   "--init-from give a low one: the shipped model continues at ~3e-7)")
    p.add_argument("--warmup", type=int, default=200, help="learning-rate warm-up steps")
    p.add_argument("--grad-clip", type=float, default=50.0)
    p.add_argument("--minutes", type=float, default=0.0, help="stop (and save) after this long")
    p.add_argument("--max-steps", type=int, default=0)
    p.add_argument("--val-every", type=int, default=500)
    p.add_argument("--val-size", type=int, default=1000)
    p.add_argument("--checkpoint-minutes", type=float, default=5.0)
    p.add_argument("--decay-minutes", type=float, default=0.0,
                   help="cosine learning-rate decay (to 5%%) over the last this many of --minutes")
    p.add_argument("--amp", action="store_true",
                   help="bf16 coupling networks (2.5-3x faster on a CPU with avx512_bf16)")
    p.add_argument("--no-flip", dest="flip", action="store_false",
                   help="no random horizontal flips of training images")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--init-from", default="", metavar="MODEL_DIR",
                   help="start from a saved model's weights (fresh optimiser)")
    p.add_argument("--save-dtype", default="float32", choices=["float32", "float16"],
                   help="dtype of OUT/model/glow.safetensors")
    p.add_argument("--seed", type=int, default=0)
    _add_model_config(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sample", help="a grid of random faces")
    p.add_argument("-n", type=int, default=16)
    p.add_argument("--temperature", "-t", type=float, default=0.7)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--nrow", type=int, default=0)
    p.add_argument("-o", "--out", default="samples.png")
    _add_weights(p)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("sample-meter", help="share of random faces in which dlib finds a face")
    p.add_argument("-n", type=int, default=64)
    p.add_argument("--temperatures", type=float, nargs="+", default=[0.5, 0.7])
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--data", default="data/celeba64.npz", help="pack for the real crops")
    _add_weights(p)
    p.set_defaults(func=cmd_sample_meter)

    p = sub.add_parser("bpd", help="mean bits/dim of face images aligned like the training data")
    p.add_argument("images", nargs="+", help="image files, directories or packs (.npz)")
    p.add_argument("-v", "--verbose", action="store_true", help="print every image's value")
    _add_weights(p)
    p.set_defaults(func=cmd_bpd)

    p = sub.add_parser("bench", help="encode/decode latency and training throughput on this CPU")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--train-steps", type=int, default=3)
    p.add_argument("--photo", default=None, help="also time a full edit of this photo")
    p.add_argument("--no-compile", action="store_true", help="skip the compiled decoder")
    p.add_argument("--startup", action="store_true",
                   help="also time python app.py from start until it serves its page")
    _add_weights(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("compile-decode",
                       help="build the compiled one-image decoder the app loads (cached)")
    p.add_argument("--dtype", choices=["auto", "bfloat16", "float32"], default="auto",
                   help="precision of the coupling nets in the decode (auto: as the app's, "
                        "bf16 where the CPU has it natively)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--nice", type=int, default=0, help="lower this process's priority by this")
    p.add_argument("--cache", default=None,
                   help="package folder (default $GLOW_DEMO_CACHE or ~/.cache/glow-demo)")
    _add_weights(p)
    p.set_defaults(func=cmd_compile_decode)

    p = sub.add_parser("align", help="find, align and crop the face in each photo")
    p.add_argument("photos", nargs="+")
    p.add_argument("-o", "--out", required=True, help="output directory")
    p.add_argument("--size", type=int, default=0,
                   help="resize crops to this size (default: the photo's own resolution)")
    p.set_defaults(func=cmd_align)

    p = sub.add_parser("edit", help="edit the face in each photo along attribute directions")
    p.add_argument("photos", nargs="+")
    p.add_argument("-o", "--out", required=True, help="output directory (names = input names)")
    p.add_argument("--crop", action="store_true", help="write the edited aligned face only")
    p.add_argument("--keep", nargs="*", default=[], metavar="ATTR",
                   help="disentangle: hold these attributes fixed (e.g. --age 1 --keep male)")
    p.add_argument("--faces", type=_faces_spec, default="largest",
                   help="which faces to edit: largest (default), all, or face numbers "
                   "from the left such as 1,3 (face 1 is the leftmost)")
    p.add_argument("--direction", nargs=2, action="append", default=[],
                   metavar=("FILE", "NAME=S"),
                   help="a custom slider from a file written by `learn-direction`, at "
                   "strength S (repeatable)")
    _add_weights(p)
    from .directions import EXTRA_ATTRIBUTES, MAIN_ATTRIBUTES, OTHER_ATTRIBUTES

    for name, label in EXTRA_ATTRIBUTES.items():
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, type=float, default=0.0,
                       metavar="S", help=f"{label}: strength 1.0 = +30 years")
    for name, (_, _, label) in {**MAIN_ATTRIBUTES, **OTHER_ATTRIBUTES}.items():
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, type=float, default=0.0,
                       metavar="S", help=f"{label} strength (1.0 = CelebA's mean difference)")
    p.set_defaults(func=cmd_edit)

    p = sub.add_parser("learn-direction",
                       help="a slider of your own from >= 3 faces with an attribute and "
                       ">= 3 without (photos and/or example faces)")
    p.add_argument("name", help="the slider's name, e.g. hat")
    p.add_argument("--with", dest="with_", nargs="+", default=[], metavar="PHOTO",
                   help="photos (or folders) of faces with the attribute")
    p.add_argument("--without", nargs="+", default=[], metavar="PHOTO",
                   help="photos (or folders) of faces without it")
    p.add_argument("--with-examples", default="", metavar="N,N,N",
                   help="example faces with the attribute, by number (see `example-faces`); "
                   "counted with --with")
    p.add_argument("--without-examples", default="", metavar="N,N,N",
                   help="example faces without it, by number")
    p.add_argument("--label", default=None, help="the slider's label")
    p.add_argument("-o", "--out", required=True,
                   help="the .safetensors file to write (an existing one is added to)")
    _add_weights(p)
    p.set_defaults(func=cmd_learn_direction)

    p = sub.add_parser("example-faces",
                       help="write the numbered example faces learn-direction can pick from")
    p.add_argument("-o", "--out", required=True, help="output directory")
    _add_weights(p)
    p.set_defaults(func=cmd_example_faces)

    p = sub.add_parser("mix", help="morph one face into another (GIF or MP4)")
    p.add_argument("photo_a")
    p.add_argument("photo_b")
    p.add_argument("--steps", type=int, default=9)
    p.add_argument("--size", type=int, default=256, help="frame size in pixels")
    p.add_argument("--fps", type=float, default=8)
    p.add_argument("-o", "--out", default="morph.gif", help=".gif or .mp4")
    _add_weights(p)
    p.set_defaults(func=cmd_mix)

    p = sub.add_parser("directions", help="rebuild attribute directions from labelled CelebA")
    p.add_argument("--data", default="data/celeba64.npz", help="pack (built if missing)")
    p.add_argument("--celeba", default=str(DEFAULT_CELEBA))
    p.add_argument("--limit", type=int, default=0,
                   help="use only the first N faces of the training split (1-9,000)")
    p.add_argument("--method", default="conditional",
                   choices=["mean", "shrunk", "lda", "conditional"],
                   help="mean: difference of mean latents; shrunk: the same with each level "
                   "shrunk by its signal share and label-calibrated units; lda: Fisher "
                   "discriminant with shrinkage; conditional: the difference among faces "
                   "alike in gender, age and makeup, label-calibrated units (see README)")
    p.add_argument("--quantile", type=float, default=0.95,
                   help="shrunk, conditional: 1.0 moves the median face without an "
                   "attribute to this quantile of the faces with it (held-out)")
    p.add_argument("--unseen", default="data/strangers64.npz", metavar="PACK",
                   help="faces the model never trained on (`pack --celeba-test`'s strangers): "
                   "the units are lengthened by how much further apart such faces sit "
                   "(directions.unseen_scale); skipped if the file is missing or ''")
    p.add_argument("--shrinkage", type=float, default=0.5,
                   help="lda: how far the latent covariance is shrunk to the identity")
    p.add_argument("--no-shrink", dest="shrink", action="store_false",
                   help="conditional and age_years: keep every latent level whole instead of "
                   "scaling each by its James-Stein factor (most of the fitted vector is "
                   "sampling noise on the fine levels; see README)")
    p.add_argument("--utkface", nargs="?", const=str(DEFAULT_UTKFACE), default=None,
                   metavar="DIR", help="also learn `age_years` (strength 1.0 = +30 years) "
                   f"from UTKFace's real ages (DIR default: {DEFAULT_UTKFACE})")
    p.add_argument("--utkface-n", type=int, default=2000, metavar="N",
                   help="UTKFace adults (18-80, balanced by decade and gender) to use")
    p.add_argument("--utkface-warp", action="store_true",
                   help="align UTKFace's chips with one fitted transform instead of dlib on "
                   "each (~100x faster, so --utkface-n can be much larger)")
    p.add_argument("--age-units", default="heldout", choices=["slope", "heldout"],
                   help="age_years 1.0: slope = the mean latent change of 30 years; heldout "
                   "= the step over which held-out UTKFace adults' real ages rise 30 years "
                   "(longer; see README)")
    p.add_argument("--age-keeps-colour", action="store_true",
                   help="do not hold the face's colour and brightness fixed in the age "
                   "regression (older UTKFace faces are redder: aging then paints red "
                   "patches)")
    p.add_argument("--only-utkface", action="store_true",
                   help="add `age_years` to the existing directions of this model without "
                   "re-encoding CelebA (implies --utkface)")
    _add_weights(p)
    p.set_defaults(func=cmd_directions)

    p = sub.add_parser("meter", help="train the edit meter (once) and measure edits on "
                       "held-out photos: attribute gained, age change, same person")
    p.add_argument("--meter", default="runs/meter", help="folder of the meter's weights")
    p.add_argument("--train", action="store_true", help="retrain even if the folder has one")
    p.add_argument("--data", default="data/celeba64.npz", help="pack written by `pack`")
    p.add_argument("--celeba", default=str(DEFAULT_CELEBA))
    p.add_argument("--utkface", default=str(DEFAULT_UTKFACE))
    p.add_argument("--epochs", type=int, default=6, help="attribute classifier epochs")
    p.add_argument("--age-epochs", type=int, default=8)
    p.add_argument("--utk-limit", type=int, default=0, help="train the age regressor on "
                   "at most this many UTKFace chips (0: all of the training split)")
    p.add_argument("-n", type=int, default=0, help="CelebA validation photos to edit")
    p.add_argument("--utkface-n", type=int, default=0,
                   help="also this many held-out UTKFace adults (balanced by decade, gender)")
    p.add_argument("--edits", nargs="+", default=["smile", "age_years", "glasses",
                                                   "blond_hair"])
    p.add_argument("--strengths", nargs="+", type=float,
                   default=[-1.5, -1.0, -0.5, 0.5, 1.0, 1.5])
    p.add_argument("--within-sliders", action="store_true",
                   help="keep every part of an edit within its slider's range, as the app "
                   "does: smile+age_years at 1.5 is smile 1.5 with age 1.0 (+30 years)")
    p.add_argument("--json", default="", help="also write the table's rows here")
    _add_weights(p)
    p.set_defaults(func=cmd_meter)
    return parser


def _add_weights(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", default=str(DEFAULT_WEIGHTS), help="model directory")


def main(argv: list[str] | None = None) -> int:
    from .model import WeightsError

    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except WeightsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

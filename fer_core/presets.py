"""Training recipes. BASE is the original study's recipe; presets override parts of it; flags override presets."""

# The networks and augmentations a recipe may name (fer_core.models builds them, fer_core.transforms applies them).
BACKBONES = ["resnet50", "efficientnet_b0", "mobilenet_v2", "efficientnet_lite0", "efficientnet_lite1",
             "efficientnet_lite2", "dlib_face_resnet", "hse_face_mobilenet", "mobileface", "facenet",
             "mobilenet_v3_large", "resnet18"]
AUGMENTATIONS = ["none", "v1", "v2"]

BASE = dict(
    backbone="resnet50", weights="imagenet", img_size=224, epochs=34, batch_size=32, lr=1e-4, weight_decay=1e-5,
    warmup_epochs=0.0, label_smoothing=0.1, va_weight=1.0, va_loss="mse", aug="v1", class_balance=False,
    soft_labels=False, mixup=0.0, ema=0.0, tta=False, dropout=0.2, early_stop=0, workers=2, seed=0, val_frac=0.1,
    test_frac=0.1, cutmix=0.0, resize_from=0, head_lr_mult=1.0, first_layer_lr_mult=1.0, extra_data=None,
    extra_count=0, teacher=None, kd_weight=0.5, kd_temperature=2.0, bf16=False, landmark_weight=0.0,
    sam=0.0,
)

PRESETS = {
    # The original study's four runs (GPU-sized: a ResNet-50 224 px epoch on 2,500 images takes ~15 min on 2 CPU cores).
    "resnet50-34e": dict(backbone="resnet50", epochs=34),
    "efficientnet_b0-34e": dict(backbone="efficientnet_b0", epochs=34),
    "resnet50-v2-15e": dict(backbone="resnet50", epochs=15, aug="v2"),
    "resnet50-v2-10e": dict(backbone="resnet50", epochs=10, aug="v2"),
    # The study's recipe on a backbone whose ImageNet weights ship offline: a like-for-like CPU baseline.
    "study-lite0": dict(backbone="efficientnet_lite0", epochs=10, img_size=112),
    # CPU presets: small input, ImageNet EfficientNet-Lite0 (its weights ship offline), warm-up, EMA, flip TTA.
    "cpu-fast": dict(backbone="efficientnet_lite0", img_size=112, epochs=8, batch_size=64, lr=5e-4,
                     weight_decay=0.05, warmup_epochs=0.5, aug="v2", workers=0, ema=0.99, tta=True),
    # Stage 1 of cpu-best: fifteen epochs on FER+ (27k faces, the same 8 classes) at 64 px.
    "ferplus-pretrain": dict(backbone="efficientnet_lite0", img_size=64, epochs=15, batch_size=128, lr=1e-3,
                             weight_decay=0.05, warmup_epochs=0.15, aug="v1", workers=0, ema=0.99, tta=True),
    # Stage 2, initialised from the FER+ stage: cpu-fast's recipe with a gentler backbone learning rate (the heads get
    # 4x: the valence/arousal head starts untrained), MSE + (1 - CCC) for valence/arousal, and 10,000 FER+ training
    # images mixed into the AffectNet ones (--extra-data PATH to FER+), which curbs overfitting; 6 epochs.
    "cpu-best": dict(backbone="efficientnet_lite0", img_size=112, epochs=6, batch_size=64, lr=2.5e-4, head_lr_mult=4.0,
                     va_loss="mse+ccc", weight_decay=0.05, warmup_epochs=0.5, aug="v2", workers=0, ema=0.99, tta=True,
                     weights="artifacts/runs/ferplus-pretrain/checkpoints/best.pt", extra_count=10000),
    # The face-pretrained road: dlib's face-recognition ResNet (3M faces) instead of ImageNet. Stage 1: ten FER+
    # epochs at 112 px (its smallest input is 103 px).
    "ferplus-dlib": dict(backbone="dlib_face_resnet", img_size=112, epochs=10, batch_size=128, lr=1e-3,
                         weight_decay=0.05, warmup_epochs=0.15, aug="v1", workers=0, ema=0.99, tta=True),
    # Stage 2, initialised from ferplus-dlib: twelve AffectNet epochs at 150 px (the network's native input size).
    "dlib-best": dict(backbone="dlib_face_resnet", img_size=150, epochs=12, batch_size=64, lr=2.5e-4, head_lr_mult=4.0,
                      va_loss="mse+ccc", weight_decay=0.05, warmup_epochs=0.5, aug="v2", workers=0, ema=0.99, tta=True,
                      weights="artifacts/runs/ferplus-dlib/checkpoints/best.pt"),
    # The same two stages on HSE's MobileNet, trained on VGGFace2 identities, then age and gender.
    "ferplus-hse": dict(backbone="hse_face_mobilenet", img_size=112, epochs=10, batch_size=128, lr=1e-3,
                        weight_decay=0.05, warmup_epochs=0.15, aug="v1", workers=0, ema=0.99, tta=True),
    "hse-best": dict(backbone="hse_face_mobilenet", img_size=150, epochs=12, batch_size=64, lr=2.5e-4, head_lr_mult=4.0,
                     va_loss="mse+ccc", weight_decay=0.05, warmup_epochs=0.5, aug="v2", workers=0, ema=0.99, tta=True,
                     weights="artifacts/runs/ferplus-hse/checkpoints/best.pt"),
    # The same two stages on becauseofAI's MobileFace (20k convolution weights), at its native 112 px throughout;
    # the small network takes a higher learning rate and more epochs on AffectNet (chosen on validation).
    "ferplus-mobileface": dict(backbone="mobileface", img_size=112, epochs=10, batch_size=128, lr=1e-3,
                               weight_decay=0.05, warmup_epochs=0.15, aug="v1", workers=0, ema=0.99, tta=True),
    "mobileface-best": dict(backbone="mobileface", img_size=112, epochs=30, batch_size=64, lr=1e-3,
                            head_lr_mult=4.0, va_loss="mse+ccc", weight_decay=0.05, warmup_epochs=0.5, aug="v2",
                            workers=0, ema=0.99, tta=True,
                            weights="artifacts/runs/ferplus-mobileface/checkpoints/best.pt"),
}
# hse-best's AffectNet stage straight from HSE's face weights: one command, no FER+ data needed; two epochs more than
# hse-best's stage, which starts from FER+.
PRESETS["hse-fast"] = {**{k: v for k, v in PRESETS["hse-best"].items() if k != "weights"}, "epochs": 14}
# The same recipes on Sandberg's FaceNet (CASIA-WebFace) at its native 160 px on AffectNet. Its plain convolutions
# cost five times HSE's network, so these train under bfloat16 where the CPU computes it natively (float32 elsewhere,
# with a warning); three FER+ epochs at a gentler learning rate, two fewer AffectNet epochs without FER+.
FACENET = dict(backbone="facenet", bf16=True)
PRESETS["ferplus-facenet"] = {**PRESETS["ferplus-hse"], **FACENET, "epochs": 3, "lr": 5e-4}
PRESETS["facenet-best"] = {**PRESETS["hse-best"], **FACENET, "img_size": 160,
                           "weights": "artifacts/runs/ferplus-facenet/checkpoints/best.pt"}
PRESETS["facenet-fast"] = {**PRESETS["hse-fast"], **FACENET, "img_size": 160, "epochs": 12}

DESCRIPTIONS = {
    "resnet50-34e": "study: ImageNet ResNet-50, 224 px, 34 epochs, v1 augmentation",
    "efficientnet_b0-34e": "study: ImageNet EfficientNet-B0, 224 px, 34 epochs, v1 augmentation",
    "resnet50-v2-15e": "study v2: ResNet-50, 15 epochs, + random erasing and perspective",
    "resnet50-v2-10e": "study v2: ResNet-50, 10 epochs, + random erasing and perspective",
    "study-lite0": "the study's recipe (lr 1e-4, v1 aug) on EfficientNet-Lite0 at 112 px, 10 epochs",
    "cpu-fast": "EfficientNet-Lite0 (ImageNet) 112 px, 8 epochs: a useful model on 2 CPU cores in minutes",
    "ferplus-pretrain": "stage 1 of cpu-best: EfficientNet-Lite0 64 px, 15 epochs on FER+ (--name ferplus-pretrain)",
    "cpu-best": "stage 2: from the ferplus-pretrain run under --out (train that preset first), AffectNet + "
                "10,000 FER+ images (--extra-data PATH), 6 epochs, MSE + CCC loss",
    "ferplus-dlib": "stage 1 of dlib-best: dlib's face-recognition ResNet 112 px, 10 epochs on FER+ "
                    "(--name ferplus-dlib)",
    "dlib-best": "stage 2: from the ferplus-dlib run under --out (train that preset first), 12 AffectNet epochs "
                 "at 150 px, MSE + CCC loss",
    "ferplus-hse": "stage 1 of hse-best: HSE's VGGFace2 MobileNet (identity, age, gender) 112 px, 10 epochs on FER+ "
                   "(--name ferplus-hse)",
    "hse-best": "stage 2: from the ferplus-hse run under --out (train that preset first), 12 AffectNet epochs "
                "at 150 px, MSE + CCC loss",
    "ferplus-mobileface": "stage 1 of mobileface-best: becauseofAI's MobileFace (identity) 112 px, 10 epochs on FER+ "
                          "(--name ferplus-mobileface)",
    "mobileface-best": "stage 2: from the ferplus-mobileface run under --out (train that preset first), 30 "
                       "AffectNet epochs at 112 px, lr 1e-3, MSE + CCC loss",
    "hse-fast": "HSE's VGGFace2 MobileNet straight to AffectNet (no FER+ stage), 150 px, 14 epochs: about 9 min on "
                "2 CPU cores",
    "ferplus-facenet": "stage 1 of facenet-best: Sandberg's FaceNet (CASIA-WebFace identities) 112 px, 3 epochs on "
                       "FER+, bfloat16 (--name ferplus-facenet)",
    "facenet-best": "stage 2: from the ferplus-facenet run under --out (train that preset first), 12 AffectNet "
                    "epochs at 160 px, MSE + CCC loss, bfloat16",
    "facenet-fast": "FaceNet straight to AffectNet (no FER+ stage), 160 px, 12 epochs, bfloat16: about 10 min on 2 "
                    "CPU cores with AMX, about 2.4x that in float32",
}


def resolve(preset: str | None, explicit: dict) -> dict:
    """BASE, then the preset, then every flag the user actually gave (non-None)."""
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    out = dict(BASE)
    out.update(PRESETS.get(preset, {}))
    out.update({k: v for k, v in explicit.items() if v is not None})
    return out

"""The core tests' training settings: a small from-scratch CNN on 16x16 images, one epoch, a real training run in
well under a second. (zoo_core.testing.TINY is the plugin tests' counterpart, at 32 px for geometric tasks.)"""

FAST = dict(backbone="cnn2", pretrained=False, image_size=16, epochs=1, batch_size=8, workers=0, quiet=True)
FAST_FLAGS = ["--backbone", "cnn2", "--no-pretrained", "--image-size", "16", "--epochs", "1",
              "--batch-size", "8", "--workers", "0"]

"""The small networks zoo builds from scratch (model.backbones.SmallNet), as a table that imports no torch:
`zoo list` reads it through the default plugin that registers them."""

SMALL_NETS = {
    # name: (default input size, description); built by zoo_core.model.backbones.SmallNet
    "linear": ((1, 28, 28), "no hidden layer: pixels to the head (a linear classifier)"),
    "mlp": ((1, 28, 28), "one hidden layer of 100 units"),
    "cnn1": ((1, 28, 28), "one conv layer (9 filters, 5x5)"),
    "cnn2": ((1, 28, 28), "two conv + max-pool blocks (16, 32 filters)"),
    "lenet": ((3, 32, 32), "LeNet-5 (CIFAR-10 variant)"),
}

"""zoo-ocr: reading a line of text of any length, `zoo train ocr`.

A CRNN: a convolutional feature map whose height is pooled and whose width is time, a bidirectional GRU,
one score per character and time step, trained with CTC; read by greedy or beam-search decoding (the
beam optionally held to a regular expression or a lexicon). Registering imports no torch: components are
named "module:attr" and imported when used."""

from zoo_core import BackboneSpec, DatasetSpec, HeadSpec, LossSpec, TaskSpec, hookimpl

CTC = "logits/ctc"  # (B, T, 1 + len(alphabet)) scores per time step; index 0 is CTC's blank


@hookimpl
def register_tasks(register):
    register(TaskSpec("ocr", "zoo_ocr.task:OcrTask", CTC,
                      "read a line of text of any length: CRNN + CTC (default: captchas and rendered lines)"))


@hookimpl
def register_datasets(register):
    register(DatasetSpec("text-lines", "zoo_ocr.datasets:embedded_dataset", CTC,
                         "captchas of 1-9 characters (captcha package) and text lines rendered in Pillow's and "
                         "captcha's fonts, seeded and cached (embedded)",
                         recipe={"backbone": "ocr-cnn", "pretrained": False, "head": "crnn", "loss": "ctc",
                                 "mode": "finetune", "backbone_lr_mult": 1.0, "augment": "light", "epochs": 14,
                                 "batch_size": 32, "lr": 2e-3, "image_size": 32}))
    register(DatasetSpec("text-folder", "zoo_ocr.datasets:folder_dataset", CTC,
                         "DIR/*.png whose file names are the text (AB12C.png, AB12C_2.png); DIR/train, DIR/val",
                         matches="zoo_ocr.datasets:is_folder"))
    register(DatasetSpec("text-csv", "zoo_ocr.datasets:csv_dataset", CTC,
                         "CSV with path and text columns (paths relative to the CSV); optional split column",
                         matches="zoo_ocr.datasets:is_csv"))


@hookimpl
def register_backbones(register):
    register(BackboneSpec("ocr-cnn", "zoo_ocr.model:ocr_cnn", weights="none",
                          description="six conv blocks for a line of text, from scratch: height 32 pooled to 2, "
                                      "width / 4 time steps; input 1 x 32 x any width"))


@hookimpl
def register_heads(register):
    register(HeadSpec("crnn", "zoo_ocr.model:crnn_head", CTC, input="pyramid",
                      description="height pooled, width as time, bidirectional GRU, a score per character and step "
                                  "(options: hidden, layers, dropout, level)"))


@hookimpl
def register_losses(register):
    register(LossSpec("ctc", "zoo_ocr.model:ctc_loss", (CTC,),
                      "CTC over each image's own time steps (padding excluded); a target longer than them is refused"))

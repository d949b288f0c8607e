"""Exporting a trained model for deployment, task-aware: the task wraps the model (softmax, decoding,
normalisation) and names its outputs; the file carries what is needed to use it without zoo's config:
task, output kind, the task's info (class names, ...), preprocessing, zoo version.

Every exporter is checked the same way, whatever the task: the file is run on a real validation batch
(random normalised noise only when the model has no data, e.g. a pretrained backbone) and compared with
the PyTorch model; the largest difference is reported and the export fails above the tolerance.
"""

from __future__ import annotations

import inspect
import json
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from ..base.errors import ZooError

# |onnx - torch| <= ATOL + RTOL * |torch| everywhere, for float32 exports (ONNX Runtime fuses and
# reorders operations, so bit-identical outputs are not expected; 1e-4 on probabilities is invisible).
RTOL, ATOL = 1e-3, 1e-4
PARITY_BATCH = 8  # images of the validation split the exported file is checked on
SPATIAL_AXES = {"height": 2, "width": 3}  # Task.dynamic_size names -> axes of the NCHW input
# A file with dynamic axes is also checked at the example's size plus this many pixels on each dynamic axis
# (a multiple of every usual stride, so a size the model accepts stays one it accepts).
SECOND_SIZE_STEP = 32


def dynamic_axes(task) -> tuple[str, ...]:
    """The task's Task.dynamic_size, checked: a subset of ("height", "width"), in that order."""
    declared = tuple(getattr(task, "dynamic_size", ()) or ())
    unknown = [a for a in declared if a not in SPATIAL_AXES]
    if unknown:
        raise ZooError(f"task '{task.name}': dynamic_size {unknown[0]!r} is not one of height, width")
    return tuple(a for a in SPATIAL_AXES if a in declared)


def _dynamic_of(metadata: dict[str, Any]) -> tuple[str, ...]:
    """The dynamic spatial axes an exported file declares (its preprocessing metadata)."""
    return tuple(metadata.get("preprocessing", {}).get("dynamic_size", ()) or ())


def second_size(example: torch.Tensor, dynamic: tuple[str, ...]) -> torch.Tensor | None:
    """`example` grown by SECOND_SIZE_STEP pixels on each dynamic axis (edge pixels repeated), or None
    when no axis is dynamic: a file traced or exported at one size must also be right at another."""
    if not dynamic:
        return None
    pad_w = SECOND_SIZE_STEP if "width" in dynamic else 0
    pad_h = SECOND_SIZE_STEP if "height" in dynamic else 0
    return torch.nn.functional.pad(example, (0, pad_w, 0, pad_h), mode="replicate")


def export_metadata(predictor, output_names: list[str]) -> dict[str, Any]:
    """JSON-able facts that travel inside the exported file: enough to preprocess an image, read the
    outputs, and (with the run's train config) evaluate the file on the run's own validation split."""
    from ..registry.plugins import _core_version

    cfg = getattr(predictor, "config", {}) or {}
    mc = cfg.get("model", {})
    meta = {"zoo_version": _core_version(), "task": predictor.task.name, "output": predictor.task.output,
            "outputs": output_names, "info": predictor.info,
            "preprocessing": {**predictor.data_config.to_dict(), "fit": predictor.task.fit, "input": "RGB" if
                              predictor.data_config.channels == 3 else "L", "layout": "NCHW, float32, normalised",
                              # input_size's height and width are then what training used, not a requirement
                              "dynamic_size": list(dynamic_axes(predictor.task)),
                              # the letterbox's padding colour (0..255, the mean colour: 0 once normalised)
                              **({"pad_value": [round(m * 255) for m in predictor.data_config.mean]}
                                 if predictor.task.fit == "pad" else {})},
            "backbone": mc.get("backbone"), "head": mc.get("head")}
    if mc:
        meta["model"] = mc
    if cfg.get("train"):
        meta["train"] = cfg["train"]
    return meta


def example_input(data_config, batch: int = 2) -> torch.Tensor:
    """A seeded, image-like batch (normalised noise): zeros would hide differences a real input shows."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(batch, *data_config.input_size, generator=g)


def _outputs(result: Any) -> list[torch.Tensor]:
    if isinstance(result, dict):
        return list(result.values())
    if isinstance(result, (list, tuple)):
        return list(result)
    return [result]


def compare(expected: list[np.ndarray], got: list[np.ndarray], path: Path, what: str,
            rtol: float = RTOL, atol: float = ATOL) -> float:
    """The largest absolute difference between two lists of outputs; a ZooError above the tolerance."""
    if len(expected) != len(got):
        raise ZooError(f"{path}: {what} gives {len(got)} outputs, PyTorch {len(expected)}")
    diff = 0.0
    for e, g in zip(expected, got):
        e, g = np.asarray(e, dtype=np.float64), np.asarray(g, dtype=np.float64)
        if e.shape != g.shape:
            raise ZooError(f"{path}: {what} output shape {g.shape} differs from PyTorch's {e.shape}")
        if e.size:
            diff = max(diff, float(np.abs(e - g).max()))
            if not np.allclose(g, e, rtol=rtol, atol=atol):
                raise ZooError(f"{path}: {what} outputs differ from PyTorch by up to {diff:.2e} "
                               f"(tolerance {atol:g} + {rtol:g} x |value|); the export is not faithful")
    return diff


def onnx_session(path: str | Path, threads: int | None = None):
    """An ONNX Runtime CPU session with every graph optimisation; onnxruntime is an optional extra."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ZooError("onnxruntime is not installed: pip install 'zoo-core[onnx]' (or pip install onnxruntime)") from None
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # warnings about unused initializers are noise for users
    if threads:
        options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise ZooError(f"{path}: ONNX Runtime cannot load it ({str(e).splitlines()[0][:200]})") from None


def run_onnx(session, inputs: torch.Tensor) -> list[np.ndarray]:
    return session.run(None, {session.get_inputs()[0].name: np.ascontiguousarray(inputs.detach().cpu().numpy(), np.float32)})


def _add_metadata(proto, metadata: dict[str, Any]) -> None:
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = f"zoo.{key}", value if isinstance(value, str) else json.dumps(value)


def _write_onnx(model: nn.Module, example: torch.Tensor, path: Path, output_names: list[str],
                metadata: dict[str, Any], opset: int | None) -> None:
    import onnx

    batch = torch.export.Dim("batch", min=1)
    dynamic = _dynamic_of(metadata)
    # the spatial axes as DYNAMIC, not named Dims: torch.export then derives what the model needs (a
    # minimum size, a multiple of its stride) instead of failing on it; the input's axes are named below
    shapes = {0: batch, **{SPATIAL_AXES[a]: torch.export.Dim.DYNAMIC for a in dynamic}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import logging

        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        # a failed conversion to an older opset is logged with its traceback and the newer file kept: checked below
        logging.getLogger("onnxscript").setLevel(logging.CRITICAL)
        try:
            if dynamic and _has_rnn(model):
                raise NotImplementedError("recurrent layers over a dynamic axis")  # known to fail, and slowly: below
            torch.onnx.export(model, (example,), str(path), dynamo=True, input_names=["input"], output_names=output_names,
                              dynamic_shapes=(shapes,), opset_version=opset, verbose=False, external_data=False)
        except Exception as e:
            if not (dynamic and _has_rnn(model)):
                raise ZooError(f"torch.onnx cannot export this model ({type(e).__name__}: "
                               f"{str(e).strip().splitlines()[0][:200] if str(e).strip() else ''})") from None
            # torch.export decomposes nn.GRU/LSTM/RNN at the example's length (it adds a guard T == example's T),
            # so a recurrent model over a dynamic axis goes through torch.onnx's TorchScript-based exporter,
            # which writes ONNX's own GRU/LSTM operators; checked against PyTorch like any other file.
            _write_onnx_torchscript(model, example, path, output_names, dynamic, opset)
    proto = onnx.load(str(path))
    written = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset and written != opset:
        path.unlink(missing_ok=True)
        newer = opset > (written or 0)
        raise ZooError(f"--opset {opset}: torch.onnx cannot {'write' if newer else 'convert this model to'} opset "
                       f"{opset} (it gave {written}); {'use an older' if newer else 'try a newer'} one, or leave --opset out "
                       "(opset 18)")
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    for a in dynamic:
        dims[SPATIAL_AXES[a]].dim_param = a  # "height"/"width" for people reading the file, not "s12"
    _add_metadata(proto, metadata)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def _has_rnn(model: nn.Module) -> bool:
    return any(isinstance(m, nn.RNNBase) for m in model.modules())


def _write_onnx_torchscript(model: nn.Module, example: torch.Tensor, path: Path, output_names: list[str],
                            dynamic: tuple[str, ...], opset: int | None) -> None:
    axes = {"input": {0: "batch", **{SPATIAL_AXES[a]: a for a in dynamic}}, **{n: {0: "batch"} for n in output_names}}
    try:
        torch.onnx.export(model, (example,), str(path), dynamo=False, input_names=["input"], output_names=output_names,
                          dynamic_axes=axes, opset_version=opset or 18)
    except Exception as e:
        raise ZooError(f"torch.onnx cannot export this model ({type(e).__name__}: "
                       f"{str(e).strip().splitlines()[0][:200] if str(e).strip() else ''})") from None


def export_onnx(model: nn.Module, example: torch.Tensor, path: Path, *, output_names: list[str],
                metadata: dict[str, Any], opset: int = 18, check: bool = True) -> dict[str, Any]:
    """ONNX through torch.export: one file, dynamic batch (and the task's dynamic_size axes), named outputs,
    zoo metadata in metadata_props; validated with onnx.checker, then run with ONNX Runtime on `example`
    (and, with dynamic axes, at a second size) against PyTorch (the export fails above RTOL/ATOL)."""
    model = model.eval()
    _write_onnx(model, example, path, output_names, metadata, opset or None)
    facts: dict[str, Any] = {"outputs": list(output_names), "opset": opset}
    if not check:
        return facts
    session = onnx_session(path)
    diff = 0.0
    for x in (example, second_size(example, _dynamic_of(metadata))):
        if x is None:
            continue
        with torch.no_grad():
            expected = [t.numpy() for t in _outputs(model(x))]
        diff = max(diff, compare(expected, run_onnx(session, x), path, "ONNX Runtime"))
    return {**facts, "max_abs_diff_vs_pytorch": diff}


def export_torchscript(model: nn.Module, example: torch.Tensor, path: Path, *, output_names: list[str],
                       metadata: dict[str, Any]) -> dict[str, Any]:
    """A traced TorchScript module, loadable from C++ with torch::jit::load; zoo's metadata in the
    extra file zoo.json. Loaded back and compared with PyTorch like ONNX (at another batch size, and at
    another height or width when the task declares them dynamic)."""
    model = model.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # trace is deprecated in favour of torch.export, but C++ users need it
        traced = torch.jit.trace(model, example, strict=False)
        traced.save(str(path), _extra_files={"zoo.json": json.dumps(metadata)})
        loaded = torch.jit.load(str(path), map_location="cpu")
        half = example[: max(1, len(example) // 2)]  # another batch size than traced: the batch stays dynamic
        # tracing records sizes as they are computed, so a dynamic height or width must be checked at another size
        other = second_size(half, _dynamic_of(metadata))
        diff = max(compare([t.numpy() for t in _outputs(model(x))], [t.numpy() for t in _outputs(loaded(x))], path,
                           "TorchScript") for x in (example, half, other) if x is not None)
    return {"outputs": list(output_names), "max_abs_diff_vs_pytorch": diff}


def export_safetensors(model: nn.Module, example: torch.Tensor, path: Path, *, output_names: list[str],
                       metadata: dict[str, Any]) -> dict[str, Any]:
    """The weights and the config that rebuilds the network (no code, no pickle): safetensors with zoo's
    metadata as JSON strings. Checked by rebuilding the model from the file alone."""
    from safetensors.torch import load_file, save_model

    if "model" not in metadata:
        raise ZooError("safetensors export needs a trained run (its config rebuilds the network); "
                       "a pretrained backbone's weights come with its plugin")
    save_model(model, str(path), metadata={f"zoo.{k}": v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()})
    rebuilt = rebuild_from_metadata(metadata)
    missing, unexpected = rebuilt.load_state_dict(load_file(str(path)), strict=False)
    if missing or unexpected:
        raise ZooError(f"{path}: the saved weights do not fit the rebuilt model (missing {missing[:3]}, unexpected {unexpected[:3]})")
    with torch.no_grad():
        diff = compare([t.numpy() for t in _outputs(model(example))], [t.numpy() for t in _outputs(rebuilt.eval()(example))],
                       path, "the rebuilt model", rtol=0, atol=1e-6)
    return {"outputs": list(output_names), "max_abs_diff_vs_pytorch": diff}


def rebuild_from_metadata(metadata: dict[str, Any]) -> nn.Module:
    """The deployment model, untrained, from an exported file's metadata (task + model config)."""
    from ..model.model import build_model
    from ..registry.plugins import get_zoo

    zoo = get_zoo()
    task = zoo.tasks.create(metadata["task"])
    deployed, _ = task.deploy(build_model(zoo, metadata["model"]), metadata["info"])
    return deployed


def latency_ms(session, example: torch.Tensor, seconds: float = 1.0, min_runs: int = 5) -> float:
    """Median milliseconds of one session run on `example` (after one warm-up)."""
    run_onnx(session, example)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < seconds:
        t = time.perf_counter()
        run_onnx(session, example)
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def _unshare_weights(src: Path, dst: Path) -> Path:
    """The model with a copy of each weight per node that reads it. ONNX Runtime's static quantizer
    refuses a weight shared by several nodes ("shared mode is not supported for weight"), which a head
    applied to every pyramid level (FCOS, RetinaNet) has; each copy is then quantized on its own."""
    import onnx

    proto = onnx.load(str(src))
    graph = proto.graph
    initializers = {t.name: t for t in graph.initializer}
    readers: dict[str, int] = {}
    changed = False
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name not in initializers:
                continue
            readers[name] = readers.get(name, 0) + 1
            if readers[name] > 1:
                copy = onnx.TensorProto()
                copy.CopyFrom(initializers[name])
                copy.name = f"{name}__zoo_copy{readers[name]}"
                graph.initializer.append(copy)
                node.input[i] = copy.name
                changed = True
    if not changed:
        return src
    onnx.save(proto, str(dst))
    return dst


def export_onnx_int8(model: nn.Module, example: torch.Tensor, path: Path, *, output_names: list[str],
                     metadata: dict[str, Any], calibration: Callable[[int], Iterator[torch.Tensor]] | None = None,
                     evaluate: Callable[[Path], dict[str, float]] | None = None, mode: str = "static",
                     calibration_images: int = 256, calibrate_method: str = "minmax", per_channel: bool = True,
                     opset: int = 18, latency_seconds: float = 1.0) -> dict[str, Any]:
    """8-bit ONNX with ONNX Runtime's post-training quantization. static (default): QDQ, int8 weights per
    output channel, uint8 activations whose ranges are calibrated on `calibration_images` training images;
    dynamic: int8 weights, activation ranges computed at run time (no calibration). Reports size and
    batch-1 latency (each file timed for `latency_seconds`) against the float32 export and, when the
    model has data, the validation scores of both."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if mode not in ("static", "dynamic"):
        raise ZooError(f"exporter 'onnx-int8': mode '{mode}' is not one of static, dynamic")
    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    if calibrate_method not in methods:
        raise ZooError(f"exporter 'onnx-int8': calibrate_method '{calibrate_method}' is not one of {', '.join(methods)}")
    if mode == "static" and (isinstance(calibration_images, bool) or not isinstance(calibration_images, int)
                             or calibration_images < 1):
        raise ZooError(f"exporter 'onnx-int8': calibration_images must be a whole number >= 1, got {calibration_images!r} "
                       "(or --set mode=dynamic, which calibrates nothing)")
    if mode == "static" and calibration is None:
        # Ranges calibrated on seeded noise would quantize every real image wrongly, silently.
        raise ZooError("exporter 'onnx-int8': static quantization calibrates on the run's training images, and "
                       "they cannot be read (moved or deleted?); put them back, or --set mode=dynamic")
    with tempfile.TemporaryDirectory(prefix="zoo-int8-") as tmp:
        fp32, prepared = Path(tmp) / "fp32.onnx", Path(tmp) / "prepared.onnx"
        facts = export_onnx(model, example, fp32, output_names=output_names, metadata=metadata, opset=opset)
        try:  # shape inference and folding make quantization find every Conv/MatMul; optional
            quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        except Exception:
            prepared = fp32
        prepared = _unshare_weights(prepared, Path(tmp) / "unshared.onnx")
        import logging

        root = logging.getLogger()  # the quantizer warns on the root logger about every 1-D weight it leaves alone
        level = root.level
        root.setLevel(logging.ERROR)
        try:
            if mode == "dynamic":
                quantize_dynamic(str(prepared), str(path), weight_type=QuantType.QInt8, per_channel=per_channel)
            else:
                batches = calibration(calibration_images)
                source = "training images"

                class Reader(CalibrationDataReader):
                    def get_next(self):
                        x = next(batches, None)
                        return None if x is None else {"input": np.ascontiguousarray(x.numpy(), np.float32)}

                quantize_static(str(prepared), str(path), Reader(), quant_format=QuantFormat.QDQ,
                                per_channel=per_channel, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                calibrate_method=methods[calibrate_method])
        finally:
            root.setLevel(level)
        proto = onnx.load(str(path))
        _add_metadata(proto, {**metadata, "quantization": {"mode": mode, "per_channel": per_channel, **(
            {"calibration": f"{calibration_images} {source}", "method": calibrate_method} if mode == "static" else {})}})
        onnx.save(proto, str(path))

        session, reference = onnx_session(path), onnx_session(fp32)
        with torch.no_grad():
            expected = [t.numpy() for t in _outputs(model(example))]
        got = run_onnx(session, example)
        diff = max(float(np.abs(np.asarray(e, np.float64) - g).max()) if e.size else 0.0 for e, g in zip(expected, got))
        one = example[:1]
        facts = {"outputs": facts["outputs"], "max_abs_diff_vs_pytorch": diff,
                 "fp32_bytes": fp32.stat().st_size, "fp32_latency_ms": latency_ms(reference, one, latency_seconds),
                 "latency_ms": latency_ms(session, one, latency_seconds)}
        if evaluate is not None:
            facts["fp32_scores"], facts["scores"] = evaluate(fp32), evaluate(path)
    return facts


def reference_batch(predictor, n: int = PARITY_BATCH) -> tuple[torch.Tensor, str]:
    """The batch exported files are checked on: the first `n` images of the run's validation split, or
    seeded noise when there is no data to read (a pretrained backbone, a Hub model whose data is elsewhere)."""
    splits = _splits(predictor)
    if splits is not None and len(splits.val):
        batch = predictor.task.collate([splits.val[i] for i in range(min(n, len(splits.val)))])
        return batch.inputs, f"{len(batch)} validation images"
    return example_input(predictor.data_config, n), "seeded noise (no validation data)"


def _splits(predictor):
    try:
        return predictor.eval_splits() if hasattr(predictor, "eval_splits") else None
    except ZooError:
        return None


def calibration_batches(predictor, batch_size: int = 32) -> Callable[[int], Iterator[torch.Tensor]] | None:
    """n -> batches of the first n training images (seeded order, the evaluation transform), for
    calibrating quantization; None without data."""
    splits = _splits(predictor)
    if splits is None or len(splits.train) == 0:
        return None

    def batches(n: int) -> Iterator[torch.Tensor]:
        order = torch.randperm(len(splits.train), generator=torch.Generator().manual_seed(0))[:n].tolist()
        for start in range(0, len(order), batch_size):
            yield predictor.task.collate([splits.train[i] for i in order[start:start + batch_size]]).inputs

    return batches


def export(predictor, fmt: str, out: str | Path | None = None, example: torch.Tensor | None = None,
           **options: Any) -> tuple[Path, dict[str, Any]]:
    """Export a run (or any Predictor) with the exporter `fmt`: (path written, facts to print).
    `options` go to the exporter (e.g. opset=17, mode="dynamic"), checked against its signature; the
    file is checked on `example`, by default the first images of the run's validation split."""
    from ..base.artifacts import atomic_write
    from ..registry.plugins import get_zoo

    component = get_zoo().exporters.get(fmt)
    options = component.check_options(options)
    # A model pulled from the Hub lives in the Hugging Face cache, which is never written to: export here.
    run_dir = getattr(predictor, "dir", None)
    default_dir = run_dir if run_dir is not None and (run_dir / "best.safetensors").is_file() else Path(".")
    path = Path(out) if out else default_dir / f"model{component.spec.suffix}"
    if path.is_dir():
        raise ZooError(f"-o {path}: a folder; give the file to write, e.g. {path / ('model' + component.spec.suffix)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    predictor.model.to("cpu").eval()
    deployed, names = predictor.task.deploy(predictor.model, predictor.info)
    metadata = export_metadata(predictor, names)
    given = example
    example, checked_on = reference_batch(predictor) if example is None else (example, f"{len(example)} given inputs")
    accepted = inspect.signature(component.factory).parameters
    if "calibration" in accepted:
        options["calibration"] = calibration_batches(predictor)
        if options["calibration"] is None and given is not None:  # the caller's own images: real data too
            options["calibration"] = lambda n, _batch=given: iter([_batch[:n]])
    if "evaluate" in accepted and hasattr(predictor, "eval_splits") and _splits(predictor) is not None:
        options["evaluate"] = predictor.evaluate_exported
    facts: dict[str, Any] = {}

    def write(p: Path) -> None:
        facts.update(component.factory(deployed.eval(), example, p, output_names=names, metadata=metadata, **options) or {})

    atomic_write(path, write)
    return path, {"bytes": path.stat().st_size, "checked_on": checked_on, **facts}


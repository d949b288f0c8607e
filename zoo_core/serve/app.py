"""The HTTP app: /predict, /model, /health, the page at / and the API docs, around any Predictor.

It knows no task: predictions are the task's Prediction objects (record() for JSON, draw() for the
picture), options are the task's predict_options, and the model's facts come from the run's config.
"""

from __future__ import annotations

import hmac
import io
import logging
import tempfile
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from ..base.errors import ZooError
from ..data.images import open_image
from ..prediction.predictor import Predictor, check_predict_options
from .batching import Batcher
from .uploads import UploadError, decode, read_uploads

STATIC = Path(__file__).parent / "static"
API_KEY_HEADER = "X-API-Key"
log = logging.getLogger("zoo.serve")


@dataclass
class ServeOptions:
    """How the server batches and what it accepts; `zoo serve`'s flags of the same names."""

    api_key: str | None = None  # None: no key asked (allowed on the loopback only, see serve())
    max_batch: int = 16  # images predicted together at most
    batch_wait_ms: float = 5.0  # how long a batch waits for more images once its first one is there
    workers: int = 1  # inference threads
    max_upload_mb: float = 20.0  # largest request body
    max_pixels: int = 40_000_000  # largest image (width x height), against decompression bombs
    max_images: int = 64  # files in one multipart request
    runtime: str = "torch"
    # The task's predict options fixed when the server starts (`zoo serve --option NAME=VALUE`), paths
    # included; a request may change only the options its task marks safe for requests (Setting.request_safe).
    predict_options: dict[str, Any] | None = None


def fixed_options(task, given: dict[str, Any] | None) -> dict[str, Any]:
    """The options every request starts from: the task's defaults and `given`, each checked like a
    setting; a path option must name something that exists (the server never creates a folder a request asked for)."""
    values = check_predict_options(task, dict(given or {}))
    for s in task.predict_options:
        if getattr(s, "path", False) and (given or {}).get(s.name) not in (None, "") and not Path(values[s.name]).exists():
            raise ZooError(f"--option {s.name}={values[s.name]}: no such file or folder; create it first")
    return values


def request_options(task, fixed: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    """`fixed` with the query string's options, each one the task marks safe for requests, checked and bounded."""
    declared = {s.name: s for s in task.predict_options}
    values = dict(fixed)
    for key, value in params.items():
        s = declared.get(key)
        if s is None:
            check_predict_options(task, {key: value})  # the one-line "no prediction option ... its options: ..."
        if not s.request_safe:
            raise UploadError(400, f"option '{key}' cannot be set by a request"
                                   f"{' (it names a path on the server)' if getattr(s, 'path', False) else ''}; "
                                   f"the server's operator sets it: zoo serve --option {key}=VALUE")
        values[key] = s.check(value, "query parameter")
    return values


def zoo_version() -> str:
    try:
        return version("zoo-core")
    except PackageNotFoundError:
        return "unknown"


def model_facts(predictor: Predictor, name: str, options: ServeOptions, fixed: dict[str, Any]) -> dict[str, Any]:
    """What GET /model answers: enough for a client to know what it talks to, without knowing the task."""
    task = predictor.task
    config = getattr(predictor, "config", None) or {}
    model = config.get("model", {})
    info = predictor.info
    return {
        "model": name,
        "task": task.name,
        "task_description": task.description,
        "output": task.output,
        "classes": info.get("classes"),
        "info": info,
        "backbone": model.get("backbone", getattr(predictor, "name", None)),
        "head": model.get("head"),
        "preprocessing": {**predictor.data_config.to_dict(), "fit": task.fit},
        # only the options a request may set (typed and bounded); path options never appear
        "predict_options": [{"name": s.name, "type": s.type.__name__, "default": fixed.get(s.name, s.default),
                             "help": s.help, **({"choices": list(s.choices)} if s.choices else {}),
                             **({"min": s.min} if s.min is not None else {}),
                             **({"max": s.max} if s.max is not None else {})}
                            for s in task.predict_options if s.request_safe],
        "metrics": config.get("best") or None,  # the best epoch's validation scores, as the run saved them
        "zoo_version": zoo_version(),
        "runtime": options.runtime,
        "batching": {"max_batch": options.max_batch, "batch_wait_ms": options.batch_wait_ms, "workers": options.workers},
        "limits": {"max_upload_mb": options.max_upload_mb, "max_pixels": options.max_pixels, "max_images": options.max_images},
        "api_key_required": bool(options.api_key),
    }


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": " ".join(str(message).split())}, status_code=status)


def truthy(name: str, value: str) -> bool:
    """A boolean query parameter (draw=1, image=1)."""
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("", "0", "false", "no", "off"):
        return False
    raise UploadError(400, f"{name} must be 1 or 0, got '{value}'")


PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "description": "One or several images as multipart form files (any field name), or one image's bytes "
                       "as the whole body (its name, for the answer, in an X-Filename header).",
        "content": {
            "multipart/form-data": {"schema": {"type": "object", "properties": {
                "files": {"type": "array", "items": {"type": "string", "format": "binary"}}}}},
            "image/*": {"schema": {"type": "string", "format": "binary"}},
        },
    },
    "parameters": [
        {"name": "draw", "in": "query", "required": False, "schema": {"type": "boolean", "default": False},
         "description": "Answer with the image(s) and the prediction drawn on them (PNG) instead of JSON."},
        {"name": "image", "in": "query", "required": False, "schema": {"type": "boolean", "default": False},
         "description": "An image-valued task (restore, autoencode): answer with the output image itself (PNG)."},
    ],
    "responses": {"200": {"description": "`zoo predict --json` for the images, in order; a PNG with draw=1",
                          "content": {"application/json": {}, "image/png": {}}},
                  "4XX": {"description": "{\"error\": \"one line\"}"}},
}


def create_app(predictor: Predictor, name: str, options: ServeOptions | None = None) -> FastAPI:
    options = options or ServeOptions()
    batcher = Batcher(predictor.predict, options.max_batch, options.batch_wait_ms, options.workers)
    task = predictor.task
    fixed = fixed_options(task, options.predict_options)  # a bad or missing one fails the start, not a request
    facts = model_facts(predictor, name, options, fixed)

    @asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title=f"zoo serve: {name}", version=zoo_version(), lifespan=lifespan, docs_url=None, redoc_url=None,
                  description=f"A zoo **{task.name}** model. `POST /predict` answers what `zoo predict --json` prints.")
    app.state.batcher = batcher

    # ------------------------------------------------------------------ errors: one line of JSON, no trace
    @app.exception_handler(UploadError)
    async def _upload_error(request, e: UploadError):
        return error(e.status, e.message)

    @app.exception_handler(ZooError)
    async def _zoo_error(request, e: ZooError):
        return error(400, str(e))

    @app.exception_handler(HTTPException)
    async def _http_error(request, e: HTTPException):
        return JSONResponse({"error": str(e.detail)}, status_code=e.status_code, headers=getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, e: RequestValidationError):
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error(400, f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(Exception)
    async def _internal_error(request, e: Exception):
        log.exception("internal error on %s", request.url.path)  # the trace goes to the server's log only
        return error(500, f"internal error ({type(e).__name__}); the server's log has the details")

    # ------------------------------------------------------------------ the key, on everything but the page
    header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="The key given to zoo serve --api-key")

    def check_key(key: str | None = Security(header)):
        if key is None or not hmac.compare_digest(key.encode(), options.api_key.encode()):
            raise HTTPException(401, f"missing or wrong API key: send it in the {API_KEY_HEADER} header",
                                headers={"WWW-Authenticate": API_KEY_HEADER})

    api = APIRouter(dependencies=[Depends(check_key)] if options.api_key else [])

    @api.get("/model", summary="What the model is: task, classes, preprocessing, metrics, zoo version")
    async def model_info():
        served = {**facts["batching"], **batcher.stats.as_dict()}  # how full the batches were, so far
        return JSONResponse({**facts, "batching": served})

    @api.post("/predict", summary="Predict images: the task's prediction JSON, or the drawing with ?draw=1",
              openapi_extra=PREDICT_BODY)
    async def predict(request: Request):
        params = dict(request.query_params)
        draw = truthy("draw", params.pop("draw", "0"))
        as_image = truthy("image", params.pop("image", "0"))  # an image-valued prediction's own PNG
        predict_options = request_options(task, fixed, params)  # only the task's request-safe options (top_k=...)
        uploads = await read_uploads(request, int(options.max_upload_mb * 1e6), options.max_images)
        images = await run_in_threadpool(lambda: [decode(u, options.max_pixels) for u in uploads])
        predictions = await batcher.predict(images, predict_options)
        for p, u in zip(predictions, uploads):
            p.source = u.name
        if as_image:
            if len(predictions) != 1 or not hasattr(predictions[0], "png"):
                raise UploadError(400, f"image=1 answers one image-valued prediction ({task.name} gives "
                                       f"{'none' if not hasattr(predictions[0], 'png') else 'one per image: send one'})")
            return Response(await run_in_threadpool(predictions[0].png), media_type="image/png")
        if draw:
            png = await run_in_threadpool(draw_png, predictions, images)
            return Response(png, media_type="image/png")
        return JSONResponse([p.record() for p in predictions])

    app.include_router(api)

    # ------------------------------------------------------------------ open: health, the page, the docs
    @app.get("/health", summary="Is the server up")
    async def health():
        return {"status": "ok"}

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    mount_docs(app)
    return app


def draw_png(predictions: list, images: list) -> bytes:
    """One drawn image as it is; several side by side (the same grid `zoo predict --draw` writes)."""
    drawn = [p.draw(open_image(im, 3)) for p, im in zip(predictions, images)]
    if len(drawn) == 1:
        buffer = io.BytesIO()
        drawn[0].save(buffer, format="PNG")
        return buffer.getvalue()
    from ..pictures.draw import image_grid

    with tempfile.TemporaryDirectory() as folder:
        return image_grid(drawn, Path(folder) / "grid.png", titles=[p.source for p in predictions]).read_bytes()


def mount_docs(app: FastAPI) -> None:
    """Swagger UI at /docs from the files swagger-ui-bundle ships, not from a CDN: it works offline."""
    from fastapi.openapi.docs import get_swagger_ui_html

    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:  # the schema still works; the page says what to install
        @app.get("/docs", include_in_schema=False)
        async def no_docs():
            return HTMLResponse("<p>The API docs page needs swagger-ui-bundle: pip install 'zoo-core[serve]'. "
                                "The schema is at <a href='/openapi.json'>/openapi.json</a>.</p>")
        return

    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return get_swagger_ui_html(openapi_url=app.openapi_url, title=app.title + " - API docs",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/static/favicon.svg")

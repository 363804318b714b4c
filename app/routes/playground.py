"""The playground at /: static files of this package (plain JavaScript modules drawing SVG,
no build step and nothing from another origin), so that it works offline. The page sends its
own Content-Security-Policy: this origin's scripts, styles and requests only."""

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/static/playground"
FILES = Path(__file__).resolve().parents[1] / "static" / "playground"
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)

router = APIRouter(include_in_schema=False)


@router.get("/")
def playground() -> FileResponse:
    return FileResponse(FILES / "index.html", headers={"Content-Security-Policy": POLICY})


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount(ASSETS, StaticFiles(directory=FILES), name="playground-assets")

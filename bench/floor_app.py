"""The HTTP floor for bench/intake.py: the same server (uvicorn, FastAPI) answering the same requests with a
fixed 201 and no work. Intake's rate divided by this one is how much of the machine's HTTP capacity is left
after registering complaints — a ratio that holds on a noisy machine where absolute rates do not."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


def create_app() -> FastAPI:
    app = FastAPI()

    @app.post("/api/v1/complaints")
    async def accept(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"case_no": "KF20261130-00001"}, status_code=201)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app

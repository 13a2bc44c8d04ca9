"""Two copies of this app chain into one trace: /front calls /back of another process over httpx."""

from __future__ import annotations

import os

import httpx
from fastapi import FastAPI

import obskit

app = FastAPI()


@app.get("/back")
async def back() -> dict[str, bool]:
    return {"ok": True}


@app.get("/front")
async def front() -> dict[str, int]:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{os.environ['CHAIN_BACKEND']}/back")
    return {"backend": response.status_code}


obskit.configure(app, service_name=os.environ.get("CHAIN_SERVICE", "chain"))

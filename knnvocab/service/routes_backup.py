"""``POST /v1/backups``: a backup of the whole deployment made by the service, which owns
an embedded home's store, so a backup runs while the service serves and writes go on (a
domain mid-change is exported once its change ends). Deployment admin tokens only."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from knnvocab.service.auth import DeploymentAdmin
from knnvocab.service.routes_writes import inside
from knnvocab.service.state import state_of

router = APIRouter(prefix="/v1", tags=["deployment"])


class NewBackup(BaseModel):
    folder: str = Field(description="A new folder (or an unfinished backup) under the data root.")


@router.post("/backups", status_code=201, summary="Back up every domain (deployment admin)")
def backup(body: NewBackup, request: Request, who: DeploymentAdmin) -> dict[str, Any]:
    from knnvocab.portable.backup import create_backup

    state = state_of(request)
    folder = inside(state, who, body.folder, "backup folder")
    return create_backup(state.ws, folder).to_json()

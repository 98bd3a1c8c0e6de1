"""Versions record how they make zero-shot prompts: their templates and the rule that
turns a class name into the words put into them, so changing the defaults never changes
what an old version answers.

Every version written before this revision was read with the default ensemble and rule
of that time, frozen here: the server defaults fill them in for existing rows.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

# what knnvocab.embed.prompts.DEFAULT_TEMPLATES was when versions did not record it; a
# copy, because a migration must do the same thing however the code changes later
_TEMPLATES = [
    "a photo of a {}.",
    "a photo of the {}.",
    "a photo of a small {}.",
    "a photo of a large {}.",
    "a bad photo of a {}.",
    "a cropped photo of the {}.",
    "there is a {} in the scene.",
]
_RULE = "words-v1"


def upgrade() -> None:
    with op.batch_alter_table("vocab_version") as batch:
        batch.add_column(
            sa.Column("templates", JSON, nullable=False, server_default=json.dumps(_TEMPLATES))
        )
        batch.add_column(
            sa.Column("prompt_rule", sa.String(32), nullable=False, server_default=_RULE)
        )


def downgrade() -> None:
    rows = op.get_bind().execute(sa.text("SELECT templates, prompt_rule FROM vocab_version"))
    custom = sum(
        1
        for templates, rule in rows
        if (json.loads(templates) if isinstance(templates, str) else templates) != _TEMPLATES
        or rule != _RULE
    )
    if custom:
        # history is never rewritten to fit an older schema
        raise RuntimeError(
            f"cannot downgrade below revision 0003: the catalog holds {custom} versions with "
            "their own prompt templates, which revision 0002 cannot represent"
        )
    with op.batch_alter_table("vocab_version") as batch:
        batch.drop_column("prompt_rule")
        batch.drop_column("templates")

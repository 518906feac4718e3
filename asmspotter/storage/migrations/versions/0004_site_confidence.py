"""Confidence levels: the verifier's score and level of every observation.

Observations recorded before this revision have neither (NULL): tracking treats
their sites as having no earlier level.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add observation.verifier_score and observation.confidence (nullable)."""
    with op.batch_alter_table("observation") as batch:
        batch.add_column(sa.Column("verifier_score", sa.Float(), nullable=True))
        batch.add_column(sa.Column("confidence", sa.String(16), nullable=True))


def downgrade() -> None:
    """Drop the two columns."""
    with op.batch_alter_table("observation") as batch:
        batch.drop_column("confidence")
        batch.drop_column("verifier_score")

"""The probability each observation's outline was cut at.

Tracking compares a site's growth only between outlines cut at one threshold (a
verifier-confirmed candidate is cut lower than a detection, so its outline is larger
for the same ground). Observations recorded before this revision have none (NULL):
their sites compare with any cut, as they did.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add observation.outline_threshold (nullable)."""
    op.add_column("observation", sa.Column("outline_threshold", sa.Float(), nullable=True))


def downgrade() -> None:
    """Drop it."""
    with op.batch_alter_table("observation") as batch:
        batch.drop_column("outline_threshold")

"""Alert retries and dismissals: alert_delivery.last_attempt_at, site.dismissed_at/_area_ha.

``last_attempt_at`` lets a failed delivery back off by attempts; ``dismissed_at``
and ``dismissed_area_ha`` record when a person dismissed a site and how big it was
then, so it alerts again only if it grows beyond the AOI's expansion thresholds
and the negative example carries its date.

Revision ID: 0002
Revises: 0001
Create Date: 2024-06-15
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the three nullable columns (no table rewrite on SQLite or PostgreSQL)."""
    op.add_column("alert_delivery", sa.Column("last_attempt_at", sa.DateTime(timezone=True)))
    op.add_column("site", sa.Column("dismissed_at", sa.DateTime(timezone=True)))
    op.add_column("site", sa.Column("dismissed_area_ha", sa.Float()))


def downgrade() -> None:
    """Drop the columns again."""
    with op.batch_alter_table("site") as batch:
        batch.drop_column("dismissed_area_ha")
        batch.drop_column("dismissed_at")
    with op.batch_alter_table("alert_delivery") as batch:
        batch.drop_column("last_attempt_at")

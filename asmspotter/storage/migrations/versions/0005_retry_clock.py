"""Retry clock: alert retries count run attempts of the AOI, re-runs of a window included.

``aoi.run_attempts`` grows with every run attempt; each delivery attempt records it
(``alert_delivery.aoi_run_attempts``), so the backoff waits a number of run
attempts. Before, it counted run rows started since the attempt: re-running one
window advanced it at most once. Existing AOIs start at the sum of their runs'
attempts; existing deliveries keep NULL and fall back to the old count once.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add aoi.run_attempts (filled from run.attempts) and alert_delivery.aoi_run_attempts."""
    with op.batch_alter_table("aoi") as batch:
        batch.add_column(
            sa.Column("run_attempts", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("alert_delivery") as batch:
        batch.add_column(sa.Column("aoi_run_attempts", sa.Integer(), nullable=True))
    op.execute(
        "UPDATE aoi SET run_attempts = COALESCE("
        "(SELECT SUM(run.attempts) FROM run WHERE run.aoi_name = aoi.name), 0)"
    )


def downgrade() -> None:
    """Drop the two columns."""
    with op.batch_alter_table("alert_delivery") as batch:
        batch.drop_column("aoi_run_attempts")
    with op.batch_alter_table("aoi") as batch:
        batch.drop_column("run_attempts")

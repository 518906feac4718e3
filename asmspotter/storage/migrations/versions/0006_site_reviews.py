"""Site reviews: confirm / dismiss decisions as history, and site.confirmed_at.

The review web app (``asmspotter web``) and ``asmspotter sites dismiss`` record
every decision in ``site_review`` (who decided is not known: one shared token);
``site.confirmed_at`` marks sites a person confirmed as mines, which become
training positives as dismissed sites become negatives.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add site.confirmed_at (nullable) and the site_review table."""
    op.add_column("site", sa.Column("confirmed_at", sa.DateTime(timezone=True)))
    op.create_table(
        "site_review",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("site_id", sa.String(120), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("area_ha", sa.Float(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "decision IN ('confirmed', 'dismissed')", name="ck_site_review_decision"
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["site.id"], name="fk_site_review_site_id_site", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_site_review"),
    )
    op.create_index("ix_site_review_site_id", "site_review", ["site_id"])


def downgrade() -> None:
    """Drop the table and the column again."""
    op.drop_index("ix_site_review_site_id", table_name="site_review")
    op.drop_table("site_review")
    with op.batch_alter_table("site") as batch:
        batch.drop_column("confirmed_at")

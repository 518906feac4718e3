"""Weekly digests: the digest_delivery table.

A channel subscribed to ``weekly_digest`` gets one summary of an AOI's active
sites per ISO week; this table remembers which week went to which channel.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create digest_delivery with its unique (digest_key, channel_id) key."""
    op.create_table(
        "digest_delivery",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("aoi_name", sa.String(100), nullable=False),
        sa.Column("digest_key", sa.String(255), nullable=False),
        sa.Column("channel_id", sa.String(64), nullable=False),
        sa.Column("channel_label", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('delivered', 'failed', 'outbox')", name="ck_digest_delivery_status"
        ),
        sa.ForeignKeyConstraint(
            ["aoi_name"], ["aoi.name"], name="fk_digest_delivery_aoi_name_aoi", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_digest_delivery"),
        sa.UniqueConstraint(
            "digest_key", "channel_id", name="uq_digest_delivery_digest_key_channel_id"
        ),
    )
    op.create_index("ix_digest_delivery_aoi_name", "digest_delivery", ["aoi_name"])


def downgrade() -> None:
    """Drop the table."""
    op.drop_index("ix_digest_delivery_aoi_name", table_name="digest_delivery")
    op.drop_table("digest_delivery")

"""Initial schema: aoi, scene, run, site, observation, alert_delivery.

Revision ID: 0001
Revises:
Create Date: 2024-06-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _in(column: str, values: tuple[str, ...]) -> str:
    """SQL check expression ``column IN ('a', 'b')``; a frozen copy of the schema's helper."""
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


EVENT_KINDS = ("new", "expanded", "unchanged", "shrunk", "not_seen")


def upgrade() -> None:
    """Create every table of the first schema."""
    op.create_table(
        "aoi",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("epsg", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_aoi"),
    )
    op.create_table(
        "scene",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("provider", sa.String(100), nullable=False),
        sa.Column("scene_id", sa.String(255), nullable=False),
        sa.Column("aoi_name", sa.String(100), nullable=False),
        sa.Column("acquired", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cloud_pct", sa.Float(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("local_path", sa.Text(), nullable=True),
        sa.CheckConstraint(_in("status", ("used", "skipped")), name="ck_scene_status"),
        sa.ForeignKeyConstraint(
            ["aoi_name"], ["aoi.name"], name="fk_scene_aoi_name_aoi", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_scene"),
        sa.UniqueConstraint(
            "provider", "scene_id", "aoi_name", name="uq_scene_provider_scene_id_aoi_name"
        ),
    )
    op.create_index("ix_scene_aoi_name", "scene", ["aoi_name"])
    op.create_table(
        "run",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("aoi_name", sa.String(100), nullable=False),
        sa.Column("window_start", sa.Date(), nullable=False),
        sa.Column("window_end", sa.Date(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("n_scenes", sa.Integer(), nullable=True),
        sa.Column("composite_path", sa.Text(), nullable=True),
        sa.Column("probability_path", sa.Text(), nullable=True),
        sa.Column("sites_path", sa.Text(), nullable=True),
        sa.Column("clear_wkt", sa.Text(), nullable=True),
        sa.Column("epsg", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.CheckConstraint(_in("status", ("running", "completed", "failed")), name="ck_run_status"),
        sa.ForeignKeyConstraint(
            ["aoi_name"], ["aoi.name"], name="fk_run_aoi_name_aoi", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_run"),
        sa.UniqueConstraint("aoi_name", "window_end", name="uq_run_aoi_name_window_end"),
    )
    op.create_table(
        "site",
        sa.Column("id", sa.String(120), nullable=False),
        sa.Column("aoi_name", sa.String(100), nullable=False),
        sa.Column("first_seen", sa.Date(), nullable=False),
        sa.Column("last_seen", sa.Date(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("dismissed_reason", sa.Text(), nullable=True),
        sa.Column("geometry_wkt", sa.Text(), nullable=False),
        sa.Column("epsg", sa.Integer(), nullable=False),
        sa.Column("area_ha", sa.Float(), nullable=False),
        sa.Column("centroid_lon", sa.Float(), nullable=False),
        sa.Column("centroid_lat", sa.Float(), nullable=False),
        sa.CheckConstraint(_in("status", ("active", "dismissed")), name="ck_site_status"),
        sa.ForeignKeyConstraint(
            ["aoi_name"], ["aoi.name"], name="fk_site_aoi_name_aoi", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_site"),
    )
    op.create_index("ix_site_aoi_name_first_seen", "site", ["aoi_name", "first_seen"])
    op.create_table(
        "observation",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("site_id", sa.String(120), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("area_ha", sa.Float(), nullable=False),
        sa.Column("previous_area_ha", sa.Float(), nullable=True),
        sa.Column("growth_ha", sa.Float(), nullable=True),
        sa.Column("growth_pct", sa.Float(), nullable=True),
        sa.Column("mean_probability", sa.Float(), nullable=True),
        sa.Column("clear_observations", sa.Integer(), nullable=False),
        sa.Column("geometry_wkt", sa.Text(), nullable=False),
        sa.Column("epsg", sa.Integer(), nullable=False),
        sa.Column("centroid_lon", sa.Float(), nullable=False),
        sa.Column("centroid_lat", sa.Float(), nullable=False),
        sa.CheckConstraint(_in("kind", EVENT_KINDS), name="ck_observation_kind"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["run.id"], name="fk_observation_run_id_run", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["site.id"], name="fk_observation_site_id_site", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_observation"),
        sa.UniqueConstraint("site_id", "run_id", name="uq_observation_site_id_run_id"),
    )
    op.create_index("ix_observation_run_id", "observation", ["run_id"])
    op.create_table(
        "alert_delivery",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.String(120), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("event_key", sa.String(255), nullable=False),
        sa.Column("channel_id", sa.String(64), nullable=False),
        sa.Column("channel_label", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(_in("kind", EVENT_KINDS), name="ck_alert_delivery_kind"),
        sa.CheckConstraint(
            _in("status", ("delivered", "failed", "outbox")), name="ck_alert_delivery_status"
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["run.id"], name="fk_alert_delivery_run_id_run", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_alert_delivery"),
        sa.UniqueConstraint(
            "event_key", "channel_id", name="uq_alert_delivery_event_key_channel_id"
        ),
    )
    op.create_index("ix_alert_delivery_run_id", "alert_delivery", ["run_id"])


def downgrade() -> None:
    """Drop every table, children first."""
    op.drop_index("ix_alert_delivery_run_id", table_name="alert_delivery")
    op.drop_table("alert_delivery")
    op.drop_index("ix_observation_run_id", table_name="observation")
    op.drop_table("observation")
    op.drop_index("ix_site_aoi_name_first_seen", table_name="site")
    op.drop_table("site")
    op.drop_table("run")
    op.drop_index("ix_scene_aoi_name", table_name="scene")
    op.drop_table("scene")
    op.drop_table("aoi")

"""The offline demo: the synthetic world into the warehouse, then a look at it in SQL."""

from __future__ import annotations

import os
import time

from ingest.synthetic import SyntheticWorldConfig, generate_world
from warehouse.store import Warehouse

COVERAGE_SQL = """\
SELECT source,
       count(DISTINCT field_path)  AS fields,
       count(*)                    AS observations,
       min(observed_at)::DATE      AS first_observed,
       max(observed_at)::DATE      AS last_observed
FROM observations
GROUP BY source
ORDER BY source"""

REVISIONS_SQL = """\
SELECT observed_at::DATE              AS month,
       arg_min(value, known_at)       AS first_release,
       min(known_at)::DATE            AS released,
       arg_max(value, known_at)       AS latest,
       max(known_at)::DATE            AS revised
FROM observations
WHERE field_path = 'country_us.macro.labor.nonfarm_payrolls_change'
GROUP BY ALL
ORDER BY month DESC
LIMIT 6"""


def run_demo(
    warehouse_path: str | os.PathLike[str] | None = None,
    *,
    start: str = "2005-01-01",
    end: str = "2024-12-31",
    seed: int = 0,
) -> Warehouse:
    """Generate the synthetic world, ingest every source, export Parquet, print queries."""
    from warehouse.cli import print_table

    started = time.perf_counter()
    world = generate_world(SyntheticWorldConfig(start=start, end=end, seed=seed))
    print(
        f"synthetic world {start} .. {end} (seed {seed}): "
        f"{sum(len(f) for f in world.sources.values()):,} observations "
        f"in {time.perf_counter() - started:.1f}s"
    )
    warehouse = Warehouse(warehouse_path)
    print(f"warehouse: {warehouse.path}")
    for name, frame in world.sources.items():
        report = warehouse.ingest(frame, source=f"synthetic_{name}")
        print(
            f"  ingest synthetic_{name:<9} {report.rows_in:>8,} rows: "
            f"{report.rows_inserted:,} new, {report.rows_revised:,} restated, "
            f"{report.rows_unchanged:,} unchanged ({report.seconds:.2f}s)"
        )
    export = warehouse.export_parquet()
    print(f"parquet export: {export}")
    for title, query in (
        ("coverage by source", COVERAGE_SQL),
        ("payrolls: first release vs latest vintage", REVISIONS_SQL),
    ):
        print(f"\n-- {title}\n{query};")
        print_table(warehouse.sql(query))
    print('\nnext: guwm sql "SELECT * FROM fields WHERE n_observations > 0"  |  guwm info')
    return warehouse

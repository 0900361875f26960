"""The six source adapters of the seed, each returning (DatasetSpec, long-format data).

    from ingest.adapters import fred_adapter, yahoo_finance_adapter, pmi_adapter, \\
        earnings_adapter, news_adapter, tabular_adapter
"""

from ingest.earnings import earnings_adapter
from ingest.fred import fred_adapter
from ingest.news import news_adapter
from ingest.pmi import pmi_adapter
from ingest.tabular import tabular_adapter
from ingest.yahoo import yahoo_finance_adapter

__all__ = [
    "earnings_adapter",
    "fred_adapter",
    "news_adapter",
    "pmi_adapter",
    "tabular_adapter",
    "yahoo_finance_adapter",
]

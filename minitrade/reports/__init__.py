"""The HTML report site under state/reports/, rendered from plain data the caller gathers.

    from minitrade.reports import PlanInput, SiteInput, render_site
    index = render_site(SiteInput(plans=[PlanInput(name="spy", ...)], generated_at=now), reports_dir)

This package never imports the store: `minitrade report` and the runner read rows through
`minitrade.store.reporting` and hand them over, which keeps rendering pure and testable.
"""

from __future__ import annotations

from minitrade.reports.model import Curves, PlanInput, SiteInput, buy_and_hold, curves, stat_rows
from minitrade.reports.site import render_index, render_plan, render_site

__all__ = ["Curves", "PlanInput", "SiteInput", "buy_and_hold", "curves", "render_index", "render_plan",
           "render_site", "stat_rows"]

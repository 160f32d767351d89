"""Performance reports, their exports, and the equity and chart plots an operator reads."""

from fractald.reporting.report import Period, Report, build_report, period_bounds

__all__ = ["Period", "Report", "build_report", "period_bounds"]

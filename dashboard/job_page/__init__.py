"""The job page's read model: one job, its attempts, its family and its correlation
trace, as typed values the templates only display.

One module per part of the page (summary, timeline, family, trace, actions; `page`
puts them together), so each part's reads and rules can be read on one screen. Every
query is served by an index, so the page costs the same on a table of ten million rows
as on ten; lists are bounded, and past a bound the page says "more".
"""

from dashboard.job_page.page import JobPage, load_page
from dashboard.job_page.summary import JobRef, Summary, load_summary

__all__ = ["JobPage", "JobRef", "Summary", "load_page", "load_summary"]

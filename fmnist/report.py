"""`python -m fmnist.report run=RUN_ID | model=best [report.key=value ...]`: redraw a run's reports
from its logged model and the data, logged to that run (fmnist/reports/redraw.py)."""

from fmnist import cli

main = cli.entry("report", "fmnist.reports.redraw:redraw")

if __name__ == "__main__":
    main()
